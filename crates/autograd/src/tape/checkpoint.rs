//! Checkpointed segments (activation checkpointing): memory traded for recomputation.
//!
//! [`Tape::checkpoint`] runs a closure — the *segment* — on a scratch tape and records one
//! node for it on this tape. The node keeps the segment's inputs and the closure, not the
//! tensors the segment's own nodes saved for backward; the scratch tape, and everything it
//! saved, is freed as soon as the segment's output is known. When the reverse sweep reaches
//! the node, the closure runs again on a fresh scratch tape from the saved inputs, a sweep
//! goes down that tape from the segment's output to its inputs, the contributions that
//! reach the inputs are sent on, and the scratch tape is freed before the sweep moves on.
//! A deep network checkpointed every √N blocks keeps √N block inputs plus, while one
//! segment is recomputed, √N blocks' saved tensors: O(√N) memory instead of O(N), for one
//! extra forward pass.
//!
//! **Exact.** The recomputation runs the same ops on the same values, so it gives the same
//! values, saved tensors and backward arithmetic. The contributions leaving the segment are
//! sent to its inputs one by one, in the order the sweep inside made them — the order the
//! sweep would have made them without checkpointing — so every sum of contributions is
//! added up in the same order: gradients are bit-identical (tests/integration/checkpoint.rs).
//!
//! **Inputs.** The closure sees only its inputs: it must be `'static`, so it cannot capture
//! a `Var` (which borrows its tape) — every value the segment differentiates, parameters
//! included, is passed as an input. Using an outer `Var` inside the segment is a compile
//! error; with a tape leaked to `'static` it is a runtime error naming the line.
//!
//! **Recorded backward** ([`Var::backward_create_graph`]) is supported: there the segment
//! is recomputed on the tape itself (its gradients must be differentiable again), so it
//! saves no memory.
//!
//! **Hooks.** A hook registered inside the segment on one of its inputs or on its output
//! is moved to the outer tape when the segment first runs, and runs once there; a hook on
//! a value inside the segment runs when the recomputation's sweep reaches that value.
//!
//! **Anomaly mode** is inherited by the scratch tapes: a NaN or an infinity found inside a
//! segment, in its forward pass or in its recomputation, is reported as
//! [`Error::Anomaly`] at the segment's node, with the op and the source line inside the
//! segment that produced it.

use super::extras::SweepExtras;
use super::{Plain, Recorded, Sweep, Tape, Var, Vjp};
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::ops::Op;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::sync::Arc;

/// A segment's computation: its inputs on some tape, to its output on the same tape.
trait SegmentFn<T>: Send + Sync {
    fn run<'s>(&self, inputs: &[Var<'s, T>]) -> Var<'s, T>
    where
        T: Element;
}

impl<T: Element, F> SegmentFn<T> for F
where
    F: for<'s> Fn(&[Var<'s, T>]) -> Var<'s, T> + Send + Sync,
{
    fn run<'s>(&self, inputs: &[Var<'s, T>]) -> Var<'s, T> {
        self(inputs)
    }
}

/// The node of a checkpointed segment: what its backward rule needs to recompute it.
#[derive(Clone)]
pub(crate) struct SegmentOp<T> {
    /// The segment, run once in the forward pass and again in backward.
    f: Arc<dyn SegmentFn<T>>,
    /// The inputs' values in argument order, untracked ones included: all the node keeps.
    inputs: Box<[Tensor<T>]>,
    /// Nodes the segment's forward pass recorded on its scratch tape.
    pub nodes: usize,
    /// Bytes those nodes saved for backward: what checkpointing does not keep.
    pub avoided_bytes: usize,
    /// The line that called `checkpoint`, for errors found in backward.
    at: Caller,
}

impl<T: Element> SegmentOp<T> {
    /// Bytes the node keeps alive: its inputs.
    pub fn saved_bytes(&self) -> usize {
        self.inputs.iter().map(Tensor::bytes).sum()
    }

    /// Checks that a recomputation gave what the forward pass gave: a tracked value of the
    /// output's shape (`shape`, the adjoint's) on `tape`.
    fn check_replay(&self, tape: &Tape<T>, out: &Var<'_, T>, shape: &[usize]) -> Result<()> {
        let reason = if !std::ptr::eq(out.tape, tape) {
            RETURNED_FOREIGN.to_string()
        } else if out.shape() != shape || !out.is_tracked() {
            format!(
                "the recomputation gave a {} value of shape {:?}, the forward pass a tracked one \
                 of shape {shape:?}: the closure must compute the same thing every time it runs",
                if out.is_tracked() {
                    "tracked"
                } else {
                    "constant"
                },
                out.shape()
            )
        } else {
            return Ok(());
        };
        Err(Error::InvalidArgument {
            op: "checkpoint",
            reason,
            at: self.at,
        })
    }
}

const RETURNED_FOREIGN: &str = "the closure returned a Var of another tape: a segment \
    computes its output from the inputs it is given";

impl<T: Element> Tape<T> {
    /// Runs `f` as a checkpointed segment: its internals are not kept for backward but
    /// recomputed when backward reaches them, so a deep network trains in less memory for
    /// the price of one more forward pass (PyTorch's `torch.utils.checkpoint`, JAX's
    /// `remat`).
    ///
    /// `f` receives the inputs — the same values, on a scratch tape — and returns the
    /// segment's output. This tape records a single node, `checkpoint`, which keeps the
    /// inputs and `f`; backward runs `f` again from them, differentiates it, and frees it
    /// before going on. Gradients are bit-identical to those of the same computation
    /// without checkpointing, in `f32` and `f64`; [`Tape::memory_report`] lists each segment
    /// with the bytes it keeps and the bytes it avoids.
    ///
    /// ```
    /// use autograd::{Tape, Tensor, Var, seeded_rng};
    ///
    /// // h = relu(x·w) + x: a residual block, the notebook's skip connection.
    /// fn block<'t>(x: &Var<'t, f64>, w: &Var<'t, f64>) -> Var<'t, f64> {
    ///     &x.matmul(w).relu() + x
    /// }
    /// let mut rng = seeded_rng(0);
    /// let (x0, w0) = (Tensor::uniform(&[4, 8], -1.0, 1.0, &mut rng), Tensor::uniform(&[8, 8], -0.5, 0.5, &mut rng));
    ///
    /// let tape = Tape::new();
    /// let (x, w) = (tape.var(x0.clone()), tape.var(w0.clone()));
    /// let h = tape.checkpoint([&x, &w], |[x, w]| block(x, w)); // w is an input too
    /// let loss = (&h * &h).sum();
    /// let grads = loss.backward();
    /// assert_eq!(tape.op_names(), ["leaf", "leaf", "checkpoint", "mul", "sum"]);
    ///
    /// // The same gradients, bit for bit, as without checkpointing:
    /// let plain = Tape::new();
    /// let (px, pw) = (plain.var(x0), plain.var(w0));
    /// let h = block(&px, &pw);
    /// let plain_grads = (&h * &h).sum().backward();
    /// assert_eq!(grads.wrt(&w).to_vec(), plain_grads.wrt(&pw).to_vec());
    /// assert_eq!(grads.wrt(&x).to_vec(), plain_grads.wrt(&px).to_vec());
    /// // … keeping the two inputs instead of the block's internals:
    /// assert!(tape.saved_bytes() < plain.saved_bytes());
    /// ```
    ///
    /// **Inputs.** `f` must be `'static` (and `Send + Sync`, as the tape can move to
    /// another thread): it cannot capture a `Var`, which borrows its tape. Every value the
    /// segment uses and should receive a gradient — its parameters included — is one of
    /// `inputs`. Capturing a `Var` is a compile error:
    ///
    /// ```compile_fail
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let (x, w) = (tape.var(Tensor::ones(&[2, 2])), tape.var(Tensor::ones(&[2, 2])));
    /// let h = tape.checkpoint([&x], |[x]| x.matmul(&w)); // `w` is not an input: rejected
    /// ```
    ///
    /// Tensors, seeds and other owned data can be moved into `f` (`move |[x]| …`), and
    /// shared modules through an `Arc`; `nn::Checkpoint` wraps a module this way and passes
    /// its parameters as inputs. Use [`Tape::checkpoint_slice`] for a number of inputs known
    /// only at run time.
    ///
    /// **Determinism.** `f` runs twice and must compute the same thing both times: random
    /// draws must come from a generator state moved into `f` (cloned at each run), not
    /// from a generator outside it. A recomputation whose output differs in shape or in
    /// being tracked is an error at backward.
    ///
    /// **Nesting, hooks, anomaly mode, backward variants.** `f` may itself checkpoint
    /// segments on the tape it receives. Hooks registered inside `f` on its inputs or its
    /// output run once, on the outer values; hooks on values inside `f` run during the
    /// recomputation. Anomaly mode is inherited: a NaN inside the segment is reported at
    /// the segment's node with the op and the line inside `f` that produced it.
    /// [`Var::backward_leaves`] frees each segment's recomputation before going on;
    /// [`Var::backward_create_graph`] is supported, but recomputes the segment on this tape
    /// (its gradients must be differentiable again), so it saves no memory. Inside
    /// [`Tape::no_grad`], or when no input is tracked, `f` simply runs on this tape.
    ///
    /// # Panics
    /// If an input belongs to another tape or `f` returns a `Var` of another tape; see
    /// [`Tape::try_checkpoint`].
    #[track_caller]
    pub fn checkpoint<const N: usize, F>(&self, inputs: [&Var<'_, T>; N], f: F) -> Var<'_, T>
    where
        F: for<'s> Fn(&[Var<'s, T>; N]) -> Var<'s, T> + Send + Sync + 'static,
    {
        or_panic(self.try_checkpoint(inputs, f))
    }

    /// [`Tape::checkpoint`], as a `Result`.
    #[track_caller]
    pub fn try_checkpoint<const N: usize, F>(
        &self,
        inputs: [&Var<'_, T>; N],
        f: F,
    ) -> Result<Var<'_, T>>
    where
        F: for<'s> Fn(&[Var<'s, T>; N]) -> Var<'s, T> + Send + Sync + 'static,
    {
        self.try_checkpoint_slice(&inputs, move |given| {
            f(given
                .try_into()
                .expect("a segment receives exactly its inputs"))
        })
    }

    /// [`Tape::checkpoint`] with inputs in a slice, for a number of them known only at run
    /// time (a module's parameters).
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let weights: Vec<_> = (1..=3).map(|k| tape.var(Tensor::scalar(k as f64))).collect();
    /// let inputs: Vec<_> = weights.iter().collect();
    /// let product = tape.checkpoint_slice(&inputs, |w| w.iter().skip(1).fold(w[0].clone(), |p, w| &p * w));
    /// assert_eq!(product.backward().wrt(&weights[0]).item(), 6.0); // 2 · 3
    /// ```
    ///
    /// # Panics
    /// If an input belongs to another tape or `f` returns a `Var` of another tape; see
    /// [`Tape::try_checkpoint_slice`].
    #[track_caller]
    pub fn checkpoint_slice<F>(&self, inputs: &[&Var<'_, T>], f: F) -> Var<'_, T>
    where
        F: for<'s> Fn(&[Var<'s, T>]) -> Var<'s, T> + Send + Sync + 'static,
    {
        or_panic(self.try_checkpoint_slice(inputs, f))
    }

    /// [`Tape::checkpoint_slice`], as a `Result`: [`Error::ForeignTape`] for an input of
    /// another tape, [`Error::InvalidArgument`] when `f` returns a `Var` of another tape.
    #[track_caller]
    pub fn try_checkpoint_slice<F>(&self, inputs: &[&Var<'_, T>], f: F) -> Result<Var<'_, T>>
    where
        F: for<'s> Fn(&[Var<'s, T>]) -> Var<'s, T> + Send + Sync + 'static,
    {
        let at = Caller::here();
        if inputs.iter().any(|v| !std::ptr::eq(v.tape, self)) {
            return Err(Error::ForeignTape {
                op: "checkpoint",
                at,
            });
        }
        let returned_foreign = || Error::InvalidArgument {
            op: "checkpoint",
            reason: RETURNED_FOREIGN.into(),
            at,
        };
        if !self.is_recording() || inputs.iter().all(|v| v.id.is_none()) {
            // Nothing to differentiate: the segment runs here, as without checkpointing.
            let here: Vec<Var<'_, T>> = inputs
                .iter()
                .map(|v| Var {
                    tape: self,
                    id: v.id,
                    value: v.value.clone(),
                })
                .collect();
            let out = f(&here);
            return if std::ptr::eq(out.tape, self) {
                Ok(out)
            } else {
                Err(returned_foreign())
            };
        }

        let scratch = self.segment_tape();
        let leaves = scratch.segment_inputs(inputs.iter().map(|v| (v.is_tracked(), &v.value)), at);
        let out = f(&leaves);
        if !std::ptr::eq(out.tape, &scratch) {
            return Err(returned_foreign());
        }
        let Some(out_id) = out.id else {
            return Ok(self.constant(out.value.clone())); // it does not depend on the inputs
        };
        let floor = leaves.iter().filter(|v| v.is_tracked()).count();
        let segment = SegmentOp {
            f: Arc::new(f),
            inputs: inputs.iter().map(|v| v.value.clone()).collect(),
            nodes: scratch.len() - floor,
            avoided_bytes: scratch.saved_bytes(),
            at,
        };
        let value = out.value.clone();
        let ids: SmallVec<[Option<usize>; 4]> = inputs.iter().map(|v| v.id).collect();
        let n = self.push(
            Op::Checkpoint(Box::new(segment)),
            ids.iter().copied(),
            value.shape(),
            at,
        );

        // Hooks on the inputs and the output belong to this tape's nodes.
        let tracked: SmallVec<[usize; 4]> = ids.iter().flatten().copied().collect();
        scratch.hand_over_hooks(self, |node| match node {
            _ if node < floor => Some(tracked[node]),
            _ if node == out_id => Some(n),
            _ => None,
        });
        if let Some(e) = scratch.anomaly()
            && matches!(e, Error::Anomaly { node, .. } if scratch.feeds(node, out_id))
        {
            self.note_forward_anomaly(in_segment(e, n));
        }
        self.inspect_value(n, &value, || {
            inputs.iter().map(|v| Some(v.shape().into())).collect()
        });
        Ok(Var {
            tape: self,
            id: Some(n),
            value,
        })
    }

    /// A scratch tape for a segment run inside this one: it inherits anomaly mode and knows
    /// it runs inside this tape (for the error of a value used across the boundary).
    fn segment_tape(&self) -> Tape<T> {
        let mut scratch = Tape::new();
        scratch.set_detect_anomaly(self.detects_anomalies());
        scratch.enclosing = self.enclosing.iter().copied().chain([self.id]).collect();
        scratch
    }

    /// Whether `other` is the scratch tape of a segment running inside this tape.
    pub(super) fn encloses(&self, other: &Tape<T>) -> bool {
        other.enclosing.contains(&self.id)
    }

    /// A segment's inputs on its scratch tape: a leaf for each tracked one (nodes 0, 1, …
    /// in order, not checked by anomaly mode: their values were, outside), a constant for
    /// each untracked one.
    fn segment_inputs<'a>(
        &self,
        inputs: impl Iterator<Item = (bool, &'a Tensor<T>)>,
        at: Caller,
    ) -> Vec<Var<'_, T>> {
        inputs
            .map(|(tracked, value)| Var {
                tape: self,
                id: tracked.then(|| self.push(Op::Leaf, [], value.shape(), at)),
                value: value.clone(),
            })
            .collect()
    }
}

/// The backward rule of a segment in first-order backward: recompute it on a scratch tape,
/// sweep that tape from its output (seeded with `g`) down to its input leaves, and send
/// each contribution that reaches an input on, in the order it was made.
pub(super) fn recompute_plain<T: Element>(
    segment: &SegmentOp<T>,
    g: &Tensor<T>,
    cx: &mut Vjp<'_, T, Plain>,
) -> Result<()> {
    for (id, contribution) in sweep_recomputed(segment, g, cx.tape, cx.id, cx.inputs)? {
        cx.send_to(id, contribution);
    }
    Ok(())
}

/// The contributions a segment's recomputation sends to its inputs: (input node,
/// contribution), in sweep order. `inputs` are the node's input ids, `n` the node.
fn sweep_recomputed<T: Element>(
    segment: &SegmentOp<T>,
    g: &Tensor<T>,
    tape: &Tape<T>,
    n: usize,
    inputs: &[Option<usize>],
) -> Result<Vec<(usize, Tensor<T>)>> {
    let scratch = tape.segment_tape();
    let values = inputs.iter().zip(segment.inputs.iter());
    let leaves = scratch.segment_inputs(values.map(|(id, v)| (id.is_some(), v)), segment.at);
    let out = segment.f.run(&leaves);
    segment.check_replay(&scratch, &out, g.shape())?;
    let tracked: SmallVec<[usize; 4]> = inputs.iter().flatten().copied().collect();
    let floor = tracked.len();
    let Some(o) = out.id.filter(|&o| o >= floor) else {
        // The segment returned one of its inputs.
        return Ok(out
            .id
            .map(|leaf| (tracked[leaf], g.clone()))
            .into_iter()
            .collect());
    };
    // Hooks on the output ran on the segment's node, before this rule.
    scratch.drop_hooks(|node| node == o);
    scratch
        .check_forward_anomaly(Some(o))
        .map_err(|e| in_segment(e, n))?;
    let extras = SweepExtras::first_order(&scratch, Some(o));
    let mut sweep = Sweep::above(floor, &scratch, Plain, Some(o), g.clone(), extras);
    sweep.keep_intermediate = false;
    let escaped = sweep.run_above().map_err(|e| in_segment(e, n))?;
    Ok(escaped
        .into_iter()
        .map(|(leaf, c)| (tracked[leaf], c))
        .collect())
}

/// The backward rule of a segment in recorded backward: the segment runs again *on the
/// tape itself*, from the inputs' own nodes, so that the gradients it sends are recorded
/// and can be differentiated again; a recorded sweep from its output down to where it
/// started gives the contributions to the inputs.
pub(super) fn recompute_recorded<'t, T: Element>(
    segment: &SegmentOp<T>,
    g: &Var<'t, T>,
    cx: &mut Vjp<'_, T, Recorded<'t, T>>,
) -> Result<()> {
    let tape = cx.lift.0;
    if !tape.is_recording() {
        // Inside `no_grad` nothing is recorded: constants, as first-order backward gives.
        for (id, c) in sweep_recomputed(segment, g.value(), tape, cx.id, cx.inputs)? {
            cx.send_to(id, tape.constant(c));
        }
        return Ok(());
    }
    let inputs: Vec<Var<'t, T>> = (0..segment.inputs.len())
        .map(|k| cx.input(k, &segment.inputs[k]))
        .collect();
    let start = tape.len();
    let hooks = tape.hook_count();
    let out = segment.f.run(&inputs);
    // The hooks `f` registers again were registered (or handed over) in the forward pass.
    tape.truncate_hooks(hooks);
    segment.check_replay(tape, &out, g.shape())?;
    match out.id {
        Some(o) if o >= start => {
            let sweep = Sweep::above(start, tape, Recorded(tape), Some(o), g.clone(), {
                SweepExtras::recorded(tape)
            });
            for (id, c) in sweep.run_above()? {
                cx.send_to(id, c);
            }
        }
        // The segment returned one of its inputs.
        Some(input) => cx.send_to(input, g.clone()),
        None => {}
    }
    Ok(())
}

/// An anomaly found inside the segment at node `n`, reported at that node: the op, input
/// shapes and source line stay those inside the segment, and the message says which node
/// of the segment's own tape (whose numbering the message's input ids follow) it was.
fn in_segment(mut e: Error, n: usize) -> Error {
    if let Error::Anomaly { node, what, .. } = &mut e {
        *what = format!("{what} (in checkpointed segment %{n}, at its own node %{node})");
        *node = n;
    }
    e
}

/// The error of a `Var` of the tape outside a checkpointed segment used inside it.
pub(super) fn outside_value(op: &'static str, at: Caller) -> Error {
    Error::InvalidArgument {
        op,
        reason: "a Var from outside a checkpointed segment is used inside it: pass it to \
                 `checkpoint` as one of the segment's inputs"
            .into(),
        at,
    }
}
