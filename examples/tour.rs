//! The whole tutorial, chapter after chapter: `cargo run --release --example tour`.
//!
//! Options: `--out DIR` (figures, default `target/tutorial`), `--smoke` (small sizes),
//! `--docs DIR` (also write the Markdown pages: `-- --docs docs/tutorial`).
fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&wengert::tutorial::chapters())
}
