//! Chapter 6 — The unraveled view: `cargo run --release --example 06_unraveled [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch06_unraveled::CHAPTER])
}
