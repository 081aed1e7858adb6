//! The whole tutorial, chapter after chapter: `cargo run --release --example tour`.
//!
//! Options: `--out DIR` (figures, default `target/tutorial`), `--smoke` (small sizes),
//! `--docs DIR` (also write the Markdown pages: `-- --docs docs/tutorial`).
use wengert::autograd::alloc_meter::CountingAllocator;

/// Counts heap bytes, so that chapters 8 and 10 can report each step's peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&wengert::tutorial::chapters())
}
