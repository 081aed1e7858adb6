//! Chapter 1 — The tape: `cargo run --release --example 01_tape [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch01_tape::CHAPTER])
}
