//! Random programs over the op API (see `op_program.rs`): a few hundred from proptest on
//! every run, and every input the fuzzer found a bug with (`tests/fixtures/fuzz/`, one
//! file per finding), replayed as regression tests.

use super::op_program::{Report, run};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_op_programs_keep_the_property(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        run(&bytes);
    }
}

/// The proptest's programs are not all trivial: across a fixed set of byte strings, ops
/// are called, errors returned, values compared and backward passes run.
#[test]
fn programs_exercise_calls_errors_comparisons_and_backward() {
    let mut total = Report::default();
    for seed in 0..200u64 {
        // splitmix64: fixed, well-mixed bytes.
        let mut state = seed;
        let bytes: Vec<u8> = (0..300)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect();
        let r = run(&bytes);
        total.calls += r.calls;
        total.errors += r.errors;
        total.compared += r.compared;
        total.backward += r.backward;
    }
    assert!(total.calls > 1000, "{total:?}");
    assert!(total.errors > 100, "{total:?}");
    assert!(total.compared > 300, "{total:?}");
    assert!(total.backward > 150, "{total:?}");
}

/// Every input in `tests/fixtures/fuzz/` (a crash, hang or failed property the fuzzer
/// found, fixed since) runs clean.
#[test]
fn the_fuzzers_findings_stay_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the fixture directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    for file in &files {
        let bytes = std::fs::read(file).expect("a fixture");
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{} fails again", file.display());
    }
}
