//! Chapter 5 — Degradation: `cargo run --release --example 05_degradation [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch05_degradation::CHAPTER])
}
