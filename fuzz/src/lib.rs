//! Shared pieces of the fuzz targets: the module the parameter-file loader is fuzzed on, and
//! the property every input must satisfy; and the op-program interpreter of the `ops` target.

/// The generator, interpreter and property of the `ops` target: autograd's integration
/// tests own it (their proptest runs the same programs in CI), and this crate, which is
/// never published, includes it from there by path instead of keeping a copy.
#[path = "../../crates/autograd/tests/integration/op_program.rs"]
pub mod op_program;

use autograd::{Element, seeded_rng};
use nn::io::{LoadOptions, from_bytes, from_bytes_with, to_bytes};
use nn::{BatchNorm1d, Linear, Module, Relu, Sequential};

/// A small module with parameters and buffers: `0.weight [2, 3]`, `0.bias [2]`,
/// `2.weight [2]`, `2.bias [2]`, `2.running_mean [2]`, `2.running_var [2]`,
/// `2.num_batches_tracked []` (an `I64` count).
pub fn module<T: Element>() -> Sequential<T> {
    Sequential::new()
        .push(Linear::<T>::new(3, 2, true, &mut seeded_rng(0)))
        .push(Relu)
        .push(BatchNorm1d::<T>::new(2))
}

/// Every parameter and buffer, in order, as name, shape and raw bits (so that NaNs compare).
pub fn snapshot<T: Element>(m: &dyn Module<T>) -> Vec<(String, Vec<usize>, Vec<u64>)> {
    let bits = |name: String, t: autograd::Tensor<T>| {
        let data = t
            .data()
            .iter()
            .map(|x| {
                let x = x.to_f64().unwrap_or(f64::NAN);
                if std::mem::size_of::<T>() == 4 {
                    u64::from((x as f32).to_bits())
                } else {
                    x.to_bits()
                }
            })
            .collect();
        (name, t.shape().to_vec(), data)
    };
    let params = m
        .named_parameters()
        .into_iter()
        .map(|(n, p)| bits(n, p.value()));
    let buffers = m
        .named_buffers()
        .into_iter()
        .map(|(n, b)| bits(n, b.value()));
    params.chain(buffers).collect()
}

/// Loads `bytes` into a fresh [`module`] of element type `T`, strictly and then not, and
/// checks the loader's contract (a panic anywhere here is a finding):
/// - on success, every tensor keeps its name and shape, and saving the module again and
///   loading that into a fresh module reproduces it bit for bit;
/// - a non-strict load reports as missing only names the module has;
/// - on error, the module is unchanged.
pub fn check_load<T: Element>(bytes: &[u8]) {
    check_strict_load::<T>(bytes);
    let m = module::<T>();
    let before = snapshot(&m);
    match from_bytes_with(&m, bytes, &LoadOptions::non_strict()) {
        Ok(report) => {
            let names: Vec<String> = before.iter().map(|(n, ..)| n.clone()).collect();
            assert!(
                report.missing.iter().all(|n| names.contains(n)),
                "missing names the module lacks: {report:?}"
            );
            let layout = |s: &[(String, Vec<usize>, Vec<u64>)]| {
                s.iter()
                    .map(|(n, shape, data)| (n.clone(), shape.clone(), data.len()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                layout(&snapshot(&m)),
                layout(&before),
                "a load changed the layout"
            );
        }
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(
                snapshot(&m),
                before,
                "a failed non-strict load changed the module: {e}"
            );
        }
    }
}

fn check_strict_load<T: Element>(bytes: &[u8]) {
    let m = module::<T>();
    let before = snapshot(&m);
    match from_bytes(&m, bytes) {
        Ok(()) => {
            let after = snapshot(&m);
            let layout = |s: &[(String, Vec<usize>, Vec<u64>)]| {
                s.iter()
                    .map(|(n, shape, data)| (n.clone(), shape.clone(), data.len()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(layout(&after), layout(&before), "a load changed the layout");
            let saved = to_bytes(&m).expect("saving a loaded module");
            let again = module::<T>();
            from_bytes(&again, &saved).expect("reloading a saved module");
            assert_eq!(snapshot(&again), after, "save/load round trip differs");
        }
        Err(e) => {
            // The error must render (its Display must not panic either).
            let _ = e.to_string();
            assert_eq!(
                snapshot(&m),
                before,
                "a failed load changed the module: {e}"
            );
        }
    }
}
