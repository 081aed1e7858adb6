//! # autograd
//!
//! Reverse-mode automatic differentiation on a Wengert tape.
//!
//! - [`Tensor`]: an n-d array of `f32` or `f64`, row-major, shared storage (cloning never
//!   copies data).
//! - [`Tape`]: a flat list of nodes in execution order. Every operation on a tracked
//!   [`Var`] — `+` first of all — appends one node.
//! - [`Var::backward`]: one reverse loop over that list, accumulating adjoints. A value
//!   used twice (a skip connection) receives both contributions, summed.
//! - [`Var::backward_create_graph`]: the same sweep, recorded on the tape, so gradients
//!   can be differentiated again.
//! - Looking inside: the tape prints as a table ([`Tape::table`]), reports its memory by op
//!   and by named region ([`Tape::memory_report`], [`Tape::region`]), exports Graphviz DOT
//!   ([`Tape::to_dot`]), runs gradient hooks ([`Tape::register_hook`]), keeps the separate
//!   contributions at a skip connection ([`Tape::track_contributions`]), steps through
//!   backward node by node ([`Var::backward_steps`]) and finds the first NaN or infinity
//!   ([`Tape::set_detect_anomaly`]). See docs/tape.md.
//! - [`Tape::checkpoint`]: activation checkpointing — a segment recorded as one node that
//!   keeps its inputs and is recomputed in backward, with bit-identical gradients.
//!
//! ```
//! use autograd::{Tape, Tensor};
//!
//! let tape = Tape::new();
//! let x = tape.var(Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3]).unwrap());
//! let w = tape.var(Tensor::from_vec(vec![0.5f32, 0.5, 0.5], &[3]).unwrap());
//! // A residual connection: h = relu(w ⊙ x) + x. `x` is used twice.
//! let h = &(&w * &x).relu() + &x;
//! let loss = (&h * &h).sum();
//! let grads = loss.backward();
//! // ∂loss/∂x sums the contribution through the branch and through the skip.
//! assert_eq!(grads.wrt(&x).to_vec(), vec![4.5, -4.0, 13.5]);
//! ```
//!
//! Errors: every fallible op has a `try_*` form returning [`Result`]; the plain form and
//! the operators panic with the same message, which names the op, the shapes and your
//! source line.
#![deny(missing_docs)]

pub mod alloc_meter;
pub mod buffer_pool;
mod element;
mod error;
mod gradcheck;
mod inspect;
mod kernels;
mod ops;
mod shape;
mod tape;
mod tensor;

pub use element::Element;
pub use error::{AnomalyPhase, Caller, Dims, Error, Result};
pub use gradcheck::{GradcheckOptions, GradcheckReport, Mismatch, gradcheck, gradgradcheck};
pub use inspect::{MemoryReport, MemoryUse, SegmentUse, Table, ValueSummary};
#[doc(hidden)]
pub use kernels::{F32Kernel, bench_gemm_f32, set_f32_kernel};
pub use kernels::{num_threads, set_num_threads};
pub use ops::{GeluApproximation, Mask};
pub use rand;
pub use shape::{Axis, Shape, broadcast_shapes, checked_numel, numel};
pub use tape::{
    BackwardStep, BackwardSteps, Contribution, Gradients, HookHandle, Tape, Var, VarGradients,
};
pub use tensor::{Tensor, seeded_rng};
