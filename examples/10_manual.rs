//! Chapter 10 — Autograd vs manual backprop: `cargo run --release --example 10_manual [-- --out DIR]`.
use wengert::autograd::alloc_meter::CountingAllocator;

/// Counts heap bytes, so that the chapter can report each step's peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch10_manual::CHAPTER])
}
