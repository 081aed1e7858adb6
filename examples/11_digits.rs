//! Chapter 11 — Real images: handwritten digits: `cargo run --release --example 11_digits [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch11_digits::CHAPTER])
}
