//! Chapter 2 — Why depth is hard: `cargo run --release --example 02_depth [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch02_depth::CHAPTER])
}
