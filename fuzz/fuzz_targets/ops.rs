//! Arbitrary bytes decoded into a small program over autograd's op API (random shapes with
//! 0, 1 and enormous dimensions, random ops and parameters, f32 and f64, then backward):
//! never a panic, hang or crash; every failure an `Error`; small results equal to a naive
//! reference. The generator, interpreter and property are `op_program` (shared with the
//! proptest of autograd's test suite).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wengert_fuzz::op_program;

fuzz_target!(|data: &[u8]| {
    op_program::run(data);
});
