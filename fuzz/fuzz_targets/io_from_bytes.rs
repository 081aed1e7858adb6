//! Arbitrary bytes into `nn::io::from_bytes`: never a panic; a successful load keeps every
//! tensor's shape and round-trips; a failed one leaves the module unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wengert_fuzz::check_load;

fuzz_target!(|data: &[u8]| {
    check_load::<f32>(data);
    check_load::<f64>(data);
});
