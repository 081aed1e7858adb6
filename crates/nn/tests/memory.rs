//! No leaks: 10,000 training steps of a small residual MLP with flat memory. A counting
//! global allocator measures the live bytes of the thread that trains after step 100 and
//! after step 10,000: the tape and everything it saved are freed every step, so the two
//! are equal.
//!
//! Only the training thread's allocations count: the test harness's main thread allocates
//! now and then while the test runs (about 900 bytes, sometimes after step 100 on a busy
//! machine), which a process-wide count would report as a leak.

use autograd::{Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Linear, Module, ResidualBlock};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // `try_with`: allocations while a thread is being torn down are not counted.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged, only counting bytes (in a
// const-initialised thread-local, which itself never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn live_bytes_are_flat_over_ten_thousand_steps() {
    autograd::set_num_threads(1);
    let mut rng = seeded_rng(5);
    let input = Linear::<f32>::with_init(2, 8, true, Init::he(), &mut rng);
    let blocks: Vec<ResidualBlock<f32>> = (0..2)
        .map(|_| ResidualBlock::new(8, Init::he(), &mut rng))
        .collect();
    let output = Linear::<f32>::with_init(8, 1, true, Init::he(), &mut rng);
    let x = Tensor::uniform(&[16, 2], -1.0, 1.0, &mut rng);
    let y = x.sum_axes(&[1], true).map(f32::sin);
    let mut params = input.parameters();
    params.extend(blocks.iter().flat_map(|b| b.parameters()));
    params.extend(output.parameters());

    let mut live_at = [0isize; 2];
    let mut losses = Vec::with_capacity(10_000);
    for step in 1..=10_000 {
        let (loss, grads) = {
            let tape = Tape::new();
            let cx = Ctx::train(&tape, step);
            let mut h = input.forward(&cx, &cx.input(x.clone()));
            for b in &blocks {
                h = b.forward(&cx, &h);
            }
            let diff = &output.forward(&cx, &h) - &cx.input(y.clone());
            let loss = (&diff * &diff).mean();
            (loss.item(), cx.param_grads(&loss.backward()))
        };
        for p in &params {
            if let Some(g) = grads.get(p) {
                p.update(|w| {
                    w.iter_mut()
                        .zip(g.data())
                        .for_each(|(w, &g)| *w -= 0.01 * g)
                });
            }
        }
        drop(grads);
        losses.push(loss);
        match step {
            100 => live_at[0] = live(),
            10_000 => live_at[1] = live(),
            _ => {}
        }
    }
    // `losses` was allocated up front, so it does not grow between the two readings.
    println!(
        "live bytes after step 100: {}, after step 10,000: {}",
        live_at[0], live_at[1]
    );
    assert_eq!(live_at[0], live_at[1]);
    assert!(losses[9_999] < losses[0], "training made progress");
}
