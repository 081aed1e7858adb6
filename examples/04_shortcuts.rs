//! Chapter 4 — Gradient flow with shortcuts: `cargo run --release --example 04_shortcuts [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch04_shortcuts::CHAPTER])
}
