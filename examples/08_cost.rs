//! Chapter 8 — What residuals cost: `cargo run --release --example 08_cost [-- --out DIR]`.
use wengert::autograd::alloc_meter::CountingAllocator;

/// Counts heap bytes, so that the chapter can report peak memory.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn main() -> std::process::ExitCode {
    wengert::tutorial::cli::main(&[wengert::tutorial::ch08_cost::CHAPTER])
}
