//! Chapter 7 — Shapes that change: `cargo run --release --example 07_shapes [-- --out DIR]`.
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch07_shapes::CHAPTER])
}
