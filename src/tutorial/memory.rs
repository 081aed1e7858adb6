//! One definition of peak memory, shared by chapters 8 and 10.
//!
//! The peak of a step is the most heap bytes live at once while the step runs, above the
//! bytes live before it. The model, its inputs and its optimizer state exist before the
//! step, so they are not counted; everything the step allocates is — activations, the tape,
//! gradients, temporaries — even if it is freed before the step ends. The tensor buffer
//! cache is off during the measurement ([`autograd::alloc_meter::peak_bytes`]), and a
//! warm-up step on another copy of the model first allocates the per-thread buffers that
//! the matrix kernels keep for the life of the program.

use super::Source;
use autograd::alloc_meter::peak_bytes;

/// This file, for the pages that show its cell.
pub const SOURCE: Source = source!("memory.rs");

/// The peak bytes of one `step` on a fresh state from `fresh()` (see the [module
/// docs](self)), or `None` when the counting allocator is not installed.
pub fn step_peak<S>(fresh: impl Fn() -> S, mut step: impl FnMut(&mut S)) -> Option<usize> {
    // cell: peak
    step(&mut fresh()); // warm-up on another copy: the kernels' per-thread buffers
    let mut state = fresh(); // the model and its inputs exist before the measurement
    let (_, peak) = peak_bytes(|| step(&mut state)); // most bytes live at once, above those before
    // end cell
    peak
}
