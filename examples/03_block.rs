//! Chapter 3 — The residual block: `cargo run --release --example 03_block [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch03_block::CHAPTER])
}
