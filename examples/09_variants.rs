//! Chapter 9 — Variants: `cargo run --release --example 09_variants [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch09_variants::CHAPTER])
}
