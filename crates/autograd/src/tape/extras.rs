//! The optional features of the reverse sweep, all off by default:
//!
//! - **gradient hooks** ([`Tape::register_hook`]): a closure sees a value's gradient when
//!   the sweep reaches its node (the gradient is final there) and may replace it;
//! - **contributions** ([`Tape::track_contributions`]): the separate contributions
//!   arriving at a value from each consumer, kept before they are summed;
//! - **anomaly mode** ([`Tape::set_detect_anomaly`]): every recorded value, every
//!   untracked input of a recorded op and every gradient is checked for NaN and
//!   infinities, and the first node that produced or received one is reported as
//!   [`Error::Anomaly`];
//! - **value summaries** ([`Tape::set_value_summaries`]): min/mean/max of every recorded
//!   value, for the table and the DOT export (the tape does not otherwise keep values).
//!
//! [`SweepExtras`] is what one sweep needs of them. When nothing is switched on it holds
//! an empty `Vec`, a `None` and a `false`: a few checks per node, no allocation.

use super::{Lift, Sends, Tape, Var};
use crate::element::Element;
use crate::error::{AnomalyPhase, Caller, Dims, Error, Result, or_panic};
use crate::inspect::ValueSummary;
use crate::tensor::Tensor;
use std::cell::{Cell, RefCell};

/// A gradient hook: sees a gradient, may return a replacement of the same shape.
type HookFn<T> = Box<dyn FnMut(&Tensor<T>) -> Option<Tensor<T>> + Send>;

struct Hook<T> {
    node: usize,
    id: u64,
    at: Caller,
    f: HookFn<T>,
}

/// What the tape keeps for its inspection features.
pub(crate) struct Inspection<T> {
    hooks: RefCell<Vec<Hook<T>>>,
    next_hook: Cell<u64>,
    /// Nodes whose incoming contributions first-order backward keeps.
    tracked: RefCell<Vec<usize>>,
    detect_anomaly: Cell<bool>,
    /// The first non-finite value recorded while anomaly mode was on.
    anomaly: RefCell<Option<Error>>,
    summarize: Cell<bool>,
    summaries: RefCell<Vec<Option<ValueSummary<T>>>>,
}

impl<T> Default for Inspection<T> {
    fn default() -> Self {
        Inspection {
            hooks: RefCell::new(Vec::new()),
            next_hook: Cell::new(0),
            tracked: RefCell::new(Vec::new()),
            detect_anomaly: Cell::new(false),
            anomaly: RefCell::new(None),
            summarize: Cell::new(false),
            summaries: RefCell::new(Vec::new()),
        }
    }
}

/// Identifies a registered hook, to remove it with [`Tape::remove_hook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HookHandle {
    tape: u64,
    id: u64,
}

/// One contribution to a value's gradient, from one of its consumers (see
/// [`Tape::track_contributions`] and [`Gradients::contributions`](super::Gradients::contributions)).
#[derive(Clone, Debug)]
pub struct Contribution<T> {
    /// The consumer node that sent it.
    pub from: usize,
    /// The consumer's op.
    pub op: &'static str,
    /// ∂L/∂value through that consumer alone (the value's shape).
    pub tensor: Tensor<T>,
}

impl<T: Element> Contribution<T> {
    /// The contribution's Euclidean norm.
    pub fn norm(&self) -> T {
        self.tensor.norm()
    }
}

impl<T: Element> Tape<T> {
    /// Registers a gradient hook on `v`: when first-order backward reaches `v`'s node, `v`'s
    /// gradient is final (every contribution has been summed), and `f` sees it. Returning
    /// `Some(g)` replaces it — in the returned [`Gradients`](super::Gradients) and in what
    /// flows on to `v`'s inputs; `None` keeps it. Several hooks on one value run in
    /// registration order, each seeing the previous one's result.
    ///
    /// Hooks run in [`Var::backward`] (and its variants) and in [`Var::backward_steps`],
    /// not in recorded backward ([`Var::backward_create_graph`]): a replaced gradient would
    /// be a constant there and cut the graph of gradients, so recorded backward ignores
    /// hooks. A hook must not run backward on its own tape.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(3.0));
    /// let h = &x * &x;
    /// tape.register_hook(&h, |g| Some(g.map(|v| v.clamp(-1.0, 1.0)))); // clip at h
    /// let g = (&h * 5.0).backward();
    /// assert_eq!(g.wrt(&h).item(), 1.0); // 5, clipped
    /// assert_eq!(g.wrt(&x).item(), 6.0); // the clipped gradient flows on: 1 · 2x
    /// ```
    ///
    /// # Panics
    /// If `v` is untracked (a constant) or belongs to another tape; see
    /// [`Tape::try_register_hook`].
    #[track_caller]
    pub fn register_hook(
        &self,
        v: &Var<'_, T>,
        f: impl FnMut(&Tensor<T>) -> Option<Tensor<T>> + Send + 'static,
    ) -> HookHandle {
        or_panic(self.try_register_hook(v, f))
    }

    /// [`Tape::register_hook`], as a `Result`.
    #[track_caller]
    pub fn try_register_hook(
        &self,
        v: &Var<'_, T>,
        f: impl FnMut(&Tensor<T>) -> Option<Tensor<T>> + Send + 'static,
    ) -> Result<HookHandle> {
        let node = self.own_node("register_hook", v)?;
        let id = self.inspect.next_hook.get();
        self.inspect.next_hook.set(id + 1);
        let mut hooks = self.inspect.hooks.try_borrow_mut().map_err(|_| {
            invalid(
                "register_hook",
                "a hook cannot register hooks while it runs",
            )
        })?;
        hooks.push(Hook {
            node,
            id,
            at: Caller::here(),
            f: Box::new(f),
        });
        Ok(HookHandle { tape: self.id, id })
    }

    /// Removes a hook; false if it was already removed or belongs to another tape.
    pub fn remove_hook(&self, handle: HookHandle) -> bool {
        let Ok(mut hooks) = self.inspect.hooks.try_borrow_mut() else {
            return false;
        };
        let before = hooks.len();
        hooks.retain(|h| !(handle.tape == self.id && h.id == handle.id));
        hooks.len() < before
    }

    /// Keeps, in every later first-order backward, the separate contributions arriving at
    /// `v` from each of its consumers, before they are summed: at a skip connection
    /// `h = F(x) + x`, one from the branch's first op and one from the add. Read them with
    /// [`Gradients::contributions`](super::Gradients::contributions). They sum to `v`'s
    /// gradient (before any hook on `v` runs). Recorded backward does not keep them.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(2.0));
    /// tape.track_contributions(&x);
    /// let h = &(&x * &x) + &x; // x feeds a mul (twice) and an add
    /// let g = h.backward();
    /// let parts: Vec<(&str, f64)> =
    ///     g.contributions(&x).iter().map(|c| (c.op, c.tensor.item())).collect();
    /// assert_eq!(parts, vec![("add", 1.0), ("mul", 2.0), ("mul", 2.0)]);
    /// assert_eq!(g.wrt(&x).item(), 5.0);
    /// ```
    ///
    /// # Panics
    /// If `v` is untracked or belongs to another tape; see
    /// [`Tape::try_track_contributions`].
    #[track_caller]
    pub fn track_contributions(&self, v: &Var<'_, T>) {
        or_panic(self.try_track_contributions(v))
    }

    /// [`Tape::track_contributions`], as a `Result`.
    #[track_caller]
    pub fn try_track_contributions(&self, v: &Var<'_, T>) -> Result<()> {
        let node = self.own_node("track_contributions", v)?;
        self.inspect.tracked.borrow_mut().push(node);
        Ok(())
    }

    /// Switches anomaly mode (PyTorch's `detect_anomaly`) on or off.
    ///
    /// While it is on, every value recorded on the tape is checked for NaN and infinities
    /// as it is recorded, and so is every untracked input (a constant) of a recorded op:
    /// a NaN that enters through a constant is reported at the first op that consumes it,
    /// even if that op's value is finite. The first such node is remembered
    /// ([`Tape::anomaly`]) and the op still returns its value. A backward from an output that depends on that node returns
    /// the error before sweeping. Every gradient is checked during the sweep (first-order
    /// and recorded), and backward stops at the first node whose contribution to an input —
    /// or whose own accumulated gradient — is not finite, with [`Error::Anomaly`] naming its
    /// index, op, input shapes and the line that recorded it.
    ///
    /// It costs one pass over every value and every gradient; switch it on to debug.
    ///
    /// ```
    /// use autograd::{AnomalyPhase, Error, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// tape.set_detect_anomaly(true);
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 0.0], &[2]).unwrap());
    /// let y = x.ln().sum(); // ln 0 = −∞
    /// let Some(Error::Anomaly { phase, node, op, .. }) = tape.anomaly() else { panic!() };
    /// assert_eq!((phase, node, op), (AnomalyPhase::Forward, 1, "ln"));
    /// assert!(y.try_backward().is_err());
    /// ```
    pub fn set_detect_anomaly(&self, on: bool) {
        self.inspect.detect_anomaly.set(on);
    }

    /// Whether anomaly mode is on.
    pub fn detects_anomalies(&self) -> bool {
        self.inspect.detect_anomaly.get()
    }

    /// The first non-finite value recorded while anomaly mode was on
    /// ([`Error::Anomaly`] with phase [`AnomalyPhase::Forward`]).
    pub fn anomaly(&self) -> Option<Error> {
        self.inspect.anomaly.borrow().clone()
    }

    /// Keeps a [`ValueSummary`] (min, mean, max, NaN and infinity counts) of every value
    /// recorded from now on, shown by [`Tape::table`] and [`Tape::to_dot`]. One pass over
    /// each value at record time.
    pub fn set_value_summaries(&self, on: bool) {
        self.inspect.summarize.set(on);
    }

    /// The summary of node `id`'s value, if it was recorded with summaries on.
    pub fn value_summary(&self, id: usize) -> Option<ValueSummary<T>> {
        self.inspect.summaries.borrow().get(id).copied().flatten()
    }

    /// The node of a `Var` of this tape, or an error naming `op`.
    #[track_caller]
    fn own_node(&self, op: &'static str, v: &Var<'_, T>) -> Result<usize> {
        if !std::ptr::eq(self, v.tape) {
            return Err(Error::ForeignTape {
                op,
                at: Caller::here(),
            });
        }
        v.id.ok_or_else(|| {
            invalid(
                op,
                "the value is untracked (a constant): no gradient flows to it",
            )
        })
    }

    /// Anomaly check and summary of a value just recorded as node `id`.
    #[inline]
    pub(crate) fn inspect_value(
        &self,
        id: usize,
        value: &Tensor<T>,
        input_shapes: impl FnOnce() -> Box<[Option<Dims>]>,
    ) {
        let (detect, summarize) = (
            self.inspect.detect_anomaly.get(),
            self.inspect.summarize.get(),
        );
        if !detect && !summarize {
            return;
        }
        let summary = ValueSummary::of(value);
        if detect && !summary.is_finite() && self.inspect.anomaly.borrow().is_none() {
            let (op, at) = self.op_and_caller(id);
            *self.inspect.anomaly.borrow_mut() = Some(Error::Anomaly {
                phase: AnomalyPhase::Forward,
                node: id,
                op,
                input_shapes: input_shapes(),
                what: format!("produced {}", summary.non_finite_counts()),
                at,
            });
        }
        if summarize {
            let mut summaries = self.inspect.summaries.borrow_mut();
            if summaries.len() <= id {
                summaries.resize(id + 1, None);
            }
            summaries[id] = Some(summary);
        }
    }

    /// In anomaly mode, a NaN or an infinity that enters node `id` through one of its
    /// untracked `inputs` (a constant, or a value computed from constants only, which the
    /// tape did not record): reported at this node, the first recorded op that consumes
    /// it — even when the op's own value comes out finite (`x / ∞ = 0`).
    #[inline]
    pub(crate) fn inspect_constants(&self, id: usize, inputs: &[&Var<'_, T>]) {
        if self.inspect.detect_anomaly.get() {
            self.check_constants(id, inputs);
        }
    }

    /// [`Tape::inspect_constants`] in anomaly mode.
    fn check_constants(&self, id: usize, inputs: &[&Var<'_, T>]) {
        if self.inspect.anomaly.borrow().is_some() {
            return;
        }
        let Some((k, found)) = inputs
            .iter()
            .enumerate()
            .filter(|(_, v)| v.id.is_none())
            .find_map(|(k, v)| non_finite(&v.value).map(|found| (k, found)))
        else {
            return;
        };
        let (op, at) = self.op_and_caller(id);
        *self.inspect.anomaly.borrow_mut() = Some(Error::Anomaly {
            phase: AnomalyPhase::Forward,
            node: id,
            op,
            input_shapes: inputs.iter().map(|v| Some(v.shape().into())).collect(),
            what: format!("has an untracked input (argument {k}, a constant) holding {found}"),
            at,
        });
    }

    /// In anomaly mode, the forward anomaly that `output` depends on, as an error.
    pub(crate) fn check_forward_anomaly(&self, output: Option<usize>) -> Result<()> {
        if !self.detects_anomalies() {
            return Ok(());
        }
        match (&*self.inspect.anomaly.borrow(), output) {
            (Some(e @ Error::Anomaly { node, .. }), Some(o)) if self.feeds(*node, o) => {
                Err(e.clone())
            }
            _ => Ok(()),
        }
    }

    fn op_and_caller(&self, id: usize) -> (&'static str, Caller) {
        let nodes = self.nodes.borrow();
        (nodes[id].op.name(), nodes[id].at)
    }

    /// A backward-pass anomaly at node `id`.
    fn backward_anomaly(&self, id: usize, what: String) -> Error {
        let nodes = self.nodes.borrow();
        let node = &nodes[id];
        Error::Anomaly {
            phase: AnomalyPhase::Backward,
            node: id,
            op: node.op.name(),
            input_shapes: nodes
                .inputs(id)
                .iter()
                .map(|i| i.map(|i| nodes.shape(i).into()))
                .collect(),
            what,
            at: node.at,
        }
    }

    /// Runs the hooks of node `id` on its gradient `g`; the replacement, if any hook made
    /// one.
    fn run_hooks(&self, id: usize, g: &Tensor<T>) -> Result<Option<Tensor<T>>> {
        let mut hooks = self
            .inspect
            .hooks
            .try_borrow_mut()
            .map_err(|_| invalid("backward", "a hook cannot run backward on its own tape"))?;
        let mut replaced: Option<Tensor<T>> = None;
        for hook in hooks.iter_mut().filter(|h| h.node == id) {
            let current = replaced.as_ref().unwrap_or(g);
            if let Some(new) = (hook.f)(current) {
                if new.shape() != g.shape() {
                    return Err(Error::ShapeMismatch {
                        op: "gradient hook",
                        expected: g.shape().into(),
                        got: new.shape().into(),
                        at: hook.at,
                    });
                }
                replaced = Some(new);
            }
        }
        Ok(replaced)
    }
}

/// What a checkpointed segment's scratch tapes hand over (see `tape/checkpoint.rs`).
impl<T: Element> Tape<T> {
    /// Moves the hooks on the nodes that `to_outer` maps to a node of `outer` there, in
    /// registration order, and drops the others.
    pub(super) fn hand_over_hooks(
        &self,
        outer: &Tape<T>,
        to_outer: impl Fn(usize) -> Option<usize>,
    ) {
        let hooks = std::mem::take(&mut *self.inspect.hooks.borrow_mut());
        let mut outer_hooks = outer.inspect.hooks.borrow_mut();
        for hook in hooks {
            if let Some(node) = to_outer(hook.node) {
                let id = outer.inspect.next_hook.get();
                outer.inspect.next_hook.set(id + 1);
                outer_hooks.push(Hook { node, id, ..hook });
            }
        }
    }

    /// Drops the hooks on the nodes for which `drop` is true.
    pub(super) fn drop_hooks(&self, drop: impl Fn(usize) -> bool) {
        self.inspect.hooks.borrow_mut().retain(|h| !drop(h.node));
    }

    /// Number of hooks registered (to drop, with [`Tape::truncate_hooks`], those a
    /// recomputation registers again).
    pub(super) fn hook_count(&self) -> usize {
        self.inspect.hooks.borrow().len()
    }

    /// Keeps the first `len` hooks.
    pub(super) fn truncate_hooks(&self, len: usize) {
        self.inspect.hooks.borrow_mut().truncate(len);
    }

    /// Records `e` as the tape's forward anomaly unless one was found before.
    pub(super) fn note_forward_anomaly(&self, e: Error) {
        let mut anomaly = self.inspect.anomaly.borrow_mut();
        if anomaly.is_none() {
            *anomaly = Some(e);
        }
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Registers a gradient hook on this value: see [`Tape::register_hook`].
    ///
    /// # Panics
    /// If the value is untracked.
    #[track_caller]
    pub fn register_hook(
        &self,
        f: impl FnMut(&Tensor<T>) -> Option<Tensor<T>> + Send + 'static,
    ) -> HookHandle {
        self.tape.register_hook(self, f)
    }
}

#[track_caller]
fn invalid(op: &'static str, reason: &str) -> Error {
    Error::InvalidArgument {
        op,
        reason: reason.into(),
        at: Caller::here(),
    }
}

/// Read access to the tensor behind a value of the sweep (a `Tensor`, or a `Var`'s value).
pub(crate) trait Valued<T> {
    fn tensor(&self) -> &Tensor<T>;
}

impl<T> Valued<T> for Tensor<T> {
    fn tensor(&self) -> &Tensor<T> {
        self
    }
}

impl<T: Element> Valued<T> for Var<'_, T> {
    fn tensor(&self) -> &Tensor<T> {
        &self.value
    }
}

/// The features one sweep uses, taken from the tape when the sweep starts.
pub(crate) struct SweepExtras<T> {
    /// Nodes with hooks, ascending; the sweep pops them from the back as it passes them.
    hooked: Vec<usize>,
    /// Per node, whether its incoming contributions are kept (`None`: no node is).
    tracked: Option<Vec<bool>>,
    /// The kept contributions: (receiving node, contribution), in sweep order.
    contributions: Vec<(usize, Contribution<T>)>,
    /// Whether every gradient is checked for NaN and infinities.
    anomaly: bool,
}

impl<T: Element> SweepExtras<T> {
    /// Nothing switched on.
    pub fn none() -> Self {
        SweepExtras {
            hooked: Vec::new(),
            tracked: None,
            contributions: Vec::new(),
            anomaly: false,
        }
    }

    /// First-order backward from `output`: hooks, contributions, anomaly checks.
    pub fn first_order(tape: &Tape<T>, output: Option<usize>) -> Self {
        let Some(output) = output else {
            return Self::none();
        };
        let mut hooked: Vec<usize> = tape.inspect.hooks.borrow().iter().map(|h| h.node).collect();
        hooked.sort_unstable();
        hooked.dedup();
        let tracked = tape.inspect.tracked.borrow();
        let tracked = (!tracked.is_empty()).then(|| {
            let mut mask = vec![false; output + 1];
            for &id in tracked.iter().filter(|&&id| id <= output) {
                mask[id] = true;
            }
            mask
        });
        SweepExtras {
            hooked,
            tracked,
            contributions: Vec::new(),
            anomaly: tape.detects_anomalies(),
        }
    }

    /// Recorded backward: anomaly checks only (hooks and contributions are first-order).
    pub fn recorded(tape: &Tape<T>) -> Self {
        SweepExtras {
            anomaly: tape.detects_anomalies(),
            ..Self::none()
        }
    }

    /// Whether any feature is on (when none is, the sweep skips [`SweepExtras::at_node`]
    /// and [`SweepExtras::sent`]).
    #[inline]
    pub fn any(&self) -> bool {
        !self.hooked.is_empty() || self.tracked.is_some() || self.anomaly
    }

    /// At node `id`, whose gradient `g` is final: its hooks, then the anomaly check.
    pub fn at_node<L: Lift<T>>(
        &mut self,
        tape: &Tape<T>,
        lift: &L,
        id: usize,
        g: &mut L::V,
    ) -> Result<()> {
        while self.hooked.last().is_some_and(|&h| h > id) {
            self.hooked.pop();
        }
        if self.hooked.last() == Some(&id)
            && let Some(new) = tape.run_hooks(id, g.tensor())?
        {
            *g = lift.lift(None, new);
        }
        if self.anomaly
            && let Some(found) = non_finite(g.tensor())
        {
            return Err(tape.backward_anomaly(id, format!("has a gradient with {found}")));
        }
        Ok(())
    }

    /// After node `from`'s backward rule made `sends`: anomaly checks, kept contributions.
    pub fn sent<V: Valued<T>>(
        &mut self,
        tape: &Tape<T>,
        from: usize,
        sends: &Sends<V>,
    ) -> Result<()> {
        if self.anomaly {
            for (to, c) in sends {
                if let Some(found) = non_finite(c.tensor()) {
                    let what = format!("sent a gradient with {found} to its input %{to}");
                    return Err(tape.backward_anomaly(from, what));
                }
            }
        }
        if let Some(tracked) = &self.tracked {
            for (to, c) in sends.iter().filter(|(to, _)| tracked[*to]) {
                let op = tape.nodes.borrow()[from].op.name();
                let tensor = c.tensor().clone();
                self.contributions
                    .push((*to, Contribution { from, op, tensor }));
            }
        }
        Ok(())
    }

    /// The kept contributions: (receiving node, contribution).
    pub fn into_contributions(self) -> Vec<(usize, Contribution<T>)> {
        self.contributions
    }
}

/// `None` if every element is finite, else a description of the NaN and infinities.
fn non_finite<T: Element>(t: &Tensor<T>) -> Option<String> {
    if t.data().iter().all(|v| v.is_finite()) {
        None
    } else {
        Some(ValueSummary::of(t).non_finite_counts())
    }
}
