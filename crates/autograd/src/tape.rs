//! The tape core: the Wengert list, `Var`, and the reverse sweep.
//!
//! A [`Tape`] is a flat `Vec` of [`Node`]s in execution order. Every operation on a tracked
//! [`Var`] appends one node: its op (with exactly the tensors its backward needs), the ids
//! of its inputs, its output shape, the source line that recorded it and the region it was
//! recorded in. Backward is one loop over that list in reverse, accumulating adjoints: no
//! recursion, no topological sort, no reference-counted graph. A value used by several
//! nodes simply receives several contributions, which are summed in place.
//!
//! The loop is [`Sweep::step`], one node at a time, shared by `backward`, recorded backward
//! and the step-through iterator ([`BackwardSteps`]). The optional features of the sweep —
//! gradient hooks, per-consumer contributions, anomaly checks — live in [`extras`]; when
//! none is switched on they cost a few `bool`/`Option` checks per node. Checkpointed
//! segments ([`Tape::checkpoint`]), one node that recomputes its part of the graph when the
//! sweep reaches it, live in [`checkpoint`].

mod checkpoint;
mod extras;
mod steps;

pub(crate) use checkpoint::SegmentOp;
pub use extras::{Contribution, HookHandle};
pub use steps::{BackwardStep, BackwardSteps};

use crate::buffer_pool;
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::ops::{Algebra, Op, SavedTensor};
use crate::tensor::Tensor;
use extras::{Inspection, SweepExtras, Valued};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};

/// A copy of a node's input ids (see [`Nodes::inputs`]), for a sweep that records while it
/// runs and so cannot keep the list borrowed.
pub(crate) type Inputs = SmallVec<[Option<usize>; 2]>;

/// One entry of the Wengert list. Its input ids and output shape live in the list's side
/// arrays ([`Nodes`]), so a node is small and recording one copies little.
pub(crate) struct Node<T> {
    /// What was computed, with the tensors its backward needs.
    pub op: Op<T>,
    /// The user's source line that recorded the node.
    pub at: Caller,
    /// The region the node was recorded in: 0 outside every region, else 1 + an index
    /// into the tape's region names (see [`Tape::region`]).
    pub region: u32,
    /// Where its input ids are in [`Nodes::input_ids`].
    inputs: Span,
    /// Where its output dimensions are in [`Nodes::dims`] (empty for a 0-d value).
    shape: Span,
}

/// A run of entries in one of the list's side arrays.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// No entries (the dimensions of a 0-d value).
    const EMPTY: Span = Span { start: 0, len: 0 };

    /// Appends `items` to `list`; where they went.
    fn append<V>(list: &mut Vec<V>, items: impl IntoIterator<Item = V>) -> Span {
        let start = list.len();
        list.extend(items);
        let index = |i: usize| {
            u32::try_from(i).unwrap_or_else(|_| panic!("tape: more than 2³² − 1 entries"))
        };
        Span {
            start: index(start),
            len: index(list.len() - start),
        }
    }

    fn of<V>(self, list: &[V]) -> &[V] {
        let start = self.start as usize;
        &list[start..start + self.len as usize]
    }
}

/// The Wengert list: nodes in execution order, and beside them, node after node, their
/// input ids and output dimensions.
pub(crate) struct Nodes<T> {
    /// Not dropped one by one: only the [`owners`](Nodes::owners) hold anything to free.
    nodes: Vec<ManuallyDrop<Node<T>>>,
    /// Ids of each node's inputs, in the op's argument order; `None` marks an untracked
    /// input (a constant), which receives no gradient.
    input_ids: Vec<Option<usize>>,
    /// Each node's output dimensions.
    dims: Vec<usize>,
    /// The nodes whose op owns memory (a saved tensor, boxed state), ascending. The other
    /// ops (leaves and the light path's, which save numbers) free nothing when dropped, so
    /// dropping the list visits these alone.
    owners: Vec<usize>,
}

impl<T> Nodes<T> {
    /// Empty lists, reusing the allocations of the last tape dropped on this thread.
    fn new() -> Self {
        Nodes {
            nodes: buffer_pool::spare_vec(),
            input_ids: buffer_pool::spare_vec(),
            dims: buffer_pool::spare_vec(),
            owners: buffer_pool::spare_vec(),
        }
    }

    /// Appends a node; its id.
    fn push(
        &mut self,
        op: Op<T>,
        inputs: impl IntoIterator<Item = Option<usize>>,
        shape: &[usize],
        at: Caller,
        region: u32,
    ) -> usize {
        let shape = match shape {
            [] => Span::EMPTY, // a 0-d value: nothing to append
            dims => Span::append(&mut self.dims, dims.iter().copied()),
        };
        if !op.owns_nothing() {
            self.owners.push(self.nodes.len());
        }
        self.append(op, inputs, shape, at, region)
    }

    /// [`Nodes::push`] on the light path of scalar programs: a node with a 0-d value whose
    /// op owns nothing ([`Op::owns_nothing`]), so it need not be listed among the owners.
    #[inline(always)]
    fn push_number<const N: usize>(
        &mut self,
        op: Op<T>,
        inputs: [Option<usize>; N],
        at: Caller,
        region: u32,
    ) -> usize {
        debug_assert!(op.owns_nothing());
        self.append(op, inputs, Span::EMPTY, at, region)
    }

    /// Appends the node and its input ids (its dimensions are in place); its id.
    #[inline(always)]
    fn append(
        &mut self,
        op: Op<T>,
        inputs: impl IntoIterator<Item = Option<usize>>,
        shape: Span,
        at: Caller,
        region: u32,
    ) -> usize {
        let inputs = Span::append(&mut self.input_ids, inputs);
        self.nodes.push(ManuallyDrop::new(Node {
            op,
            at,
            region,
            inputs,
            shape,
        }));
        self.nodes.len() - 1
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Node<T>> + ExactSizeIterator {
        self.nodes.iter().map(|node| &**node)
    }

    pub fn get(&self, i: usize) -> Option<&Node<T>> {
        self.nodes.get(i).map(|node| &**node)
    }

    /// Ids of node `i`'s inputs (`None`: a constant).
    pub fn inputs(&self, i: usize) -> &[Option<usize>] {
        self.nodes[i].inputs.of(&self.input_ids)
    }

    /// Shape of node `i`'s value.
    pub fn shape(&self, i: usize) -> &[usize] {
        self.nodes[i].shape.of(&self.dims)
    }
}

impl<T> std::ops::Index<usize> for Nodes<T> {
    type Output = Node<T>;
    fn index(&self, i: usize) -> &Node<T> {
        &self.nodes[i]
    }
}

/// A Wengert list: records operations on tracked [`Var`]s and differentiates them.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::new();
/// let a = tape.var(Tensor::scalar(3.0));
/// let b = tape.var(Tensor::scalar(4.0));
/// let y = &(&a + &b) * &a; // y = (a + b)·a
/// let g = y.backward();
/// assert_eq!(g.wrt(&a).item(), 2.0 * 3.0 + 4.0); // ∂y/∂a = 2a + b
/// assert_eq!(g.wrt(&b).item(), 3.0); // ∂y/∂b = a
/// assert_eq!(tape.len(), 4); // two leaves, one Add, one Mul
/// ```
///
/// A tape can also be looked inside: it prints as a table (`Display`), reports its memory
/// by op and by [region](Tape::region) ([`Tape::memory_report`]), exports Graphviz DOT
/// ([`Tape::to_dot`]), runs gradient hooks ([`Tape::register_hook`]), keeps the separate
/// contributions arriving at a value ([`Tape::track_contributions`]), steps through
/// backward one node at a time ([`Var::backward_steps`]) and finds the first NaN or
/// infinity ([`Tape::set_detect_anomaly`]).
pub struct Tape<T: Element = f32> {
    id: u64,
    pub(crate) nodes: RefCell<Nodes<T>>,
    recording: Cell<bool>,
    /// Full names ("outer/inner") of the regions seen so far; node region `k` is `[k − 1]`.
    pub(crate) region_names: RefCell<Vec<String>>,
    /// The region being recorded (0: none).
    region: Cell<u32>,
    /// Hooks, tracked contributions, anomaly mode, value summaries (all off by default).
    pub(crate) inspect: Inspection<T>,
    /// For the scratch tape of a checkpointed segment, the ids of the tapes it runs inside,
    /// outermost first (empty for a tape of your own).
    enclosing: Vec<u64>,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(0);

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Nodes<T> {
    /// Keeps the lists' allocations for the next tape (a training loop builds a tape of
    /// the same length every step).
    fn drop(&mut self) {
        for &i in &self.owners {
            self.nodes[i].op = Op::Leaf; // drops what the op owned
        }
        // Every op left owns nothing ([`Op::owns_nothing`]): the nodes are let go without
        // visiting each one (they are `ManuallyDrop`).
        buffer_pool::keep_vec(std::mem::take(&mut self.nodes));
        buffer_pool::keep_vec(std::mem::take(&mut self.input_ids));
        buffer_pool::keep_vec(std::mem::take(&mut self.dims));
        buffer_pool::keep_vec(std::mem::take(&mut self.owners));
    }
}

/// Puts a `Cell` back to its old value when dropped (also when `f` panics).
struct Restore<'a, V: Copy>(&'a Cell<V>, V);

impl<V: Copy> Drop for Restore<'_, V> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

impl<T: Element> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Nodes::new()),
            recording: Cell::new(true),
            region_names: RefCell::new(Vec::new()),
            region: Cell::new(0),
            inspect: Inspection::default(),
            enclosing: Vec::new(),
        }
    }

    /// A tracked leaf: gradients flow to it. The tensor's data is shared, not copied.
    #[track_caller]
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        let id = self.push(Op::Leaf, [], value.shape(), Caller::here());
        self.inspect_value(id, &value, || Box::new([]));
        Var {
            tape: self,
            id: Some(id),
            value,
        }
    }

    /// An untracked value (a constant): usable in every op, never receives a gradient and
    /// adds no node to the tape.
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        Var {
            tape: self,
            id: None,
            value,
        }
    }

    /// Runs `f` without recording: every value computed inside is untracked.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::scalar(2.0f64));
    /// let y = tape.no_grad(|| &x * &x);
    /// assert!(!y.is_tracked());
    /// assert_eq!(tape.len(), 1);
    /// ```
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let _restore = Restore(&self.recording, self.recording.replace(false));
        f()
    }

    /// Runs `f` inside a named region: every node recorded inside is labelled with it, for
    /// [`Tape::memory_report`], the table and the DOT export.
    ///
    /// Regions nest: inside `region("stage2", …)`, `region("block3", …)` labels its nodes
    /// `"stage2/block3"`. A node carries only its innermost label (reports are flat, one
    /// line per full name; [`MemoryReport::region_inclusive`](crate::MemoryReport::region_inclusive)
    /// adds up a name and everything nested in it). Entering a name again reuses its label.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[4]));
    /// let y = tape.region("block1", || (&x * &x).tanh());
    /// let _z = tape.region("block2", || &y.exp() + &y);
    /// assert_eq!(tape.region_name(y.node_id().unwrap()).as_deref(), Some("block1"));
    /// assert_eq!(tape.region_name(0), None); // x was recorded outside every region
    /// ```
    pub fn region<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        let outer = self.region.get();
        let full = match outer {
            0 => name.to_string(),
            k => format!("{}/{name}", self.region_names.borrow()[k as usize - 1]),
        };
        let inner = self.region_label(full);
        let _restore = Restore(&self.region, self.region.replace(inner));
        f()
    }

    /// The label of region `name`, created on first use.
    fn region_label(&self, name: String) -> u32 {
        let mut names = self.region_names.borrow_mut();
        let index = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                names.push(name);
                names.len() - 1
            }
        };
        u32::try_from(index + 1).unwrap_or_else(|_| panic!("region: more than 2³² − 1 names"))
    }

    /// The full name of the region node `id` was recorded in (`None` outside every region
    /// or for an id past the end of the tape).
    pub fn region_name(&self, id: usize) -> Option<String> {
        let k = self.nodes.borrow().get(id)?.region;
        self.region_names_of(k).map(|name| name.to_string())
    }

    /// The name behind a node's region label (`None` for 0, outside every region).
    pub(crate) fn region_names_of(&self, label: u32) -> Option<std::cell::Ref<'_, str>> {
        let names = self.region_names.borrow();
        let i = (label as usize).checked_sub(1)?;
        std::cell::Ref::filter_map(names, |n| n.get(i).map(String::as_str)).ok()
    }

    /// Whether operations are being recorded (false inside [`Tape::no_grad`]).
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name of each recorded op, in execution order.
    pub fn op_names(&self) -> Vec<&'static str> {
        self.nodes.borrow().iter().map(|n| n.op.name()).collect()
    }

    /// Bytes kept alive for backward by every node's saved tensors (a tensor saved by two
    /// nodes counts twice, once for each). [`Tape::memory_report`] breaks it down.
    pub fn saved_bytes(&self) -> usize {
        self.nodes.borrow().iter().map(|n| n.op.saved_bytes()).sum()
    }

    fn push(
        &self,
        op: Op<T>,
        inputs: impl IntoIterator<Item = Option<usize>>,
        shape: &[usize],
        at: Caller,
    ) -> usize {
        let region = self.region.get();
        self.nodes.borrow_mut().push(op, inputs, shape, at, region)
    }

    /// Records the result of an op on `inputs`. When no input is tracked, or inside
    /// `no_grad`, nothing is recorded and `op` is never built (nothing is saved).
    #[track_caller]
    pub(crate) fn record(
        &self,
        inputs: &[&Var<'_, T>],
        value: Tensor<T>,
        op: impl FnOnce() -> Op<T>,
    ) -> Var<'_, T> {
        self.record_with_output(inputs, value, |_| op())
    }

    /// [`Tape::record`] of an op built from its own output (one that saves it).
    #[track_caller]
    pub(crate) fn record_with_output(
        &self,
        inputs: &[&Var<'_, T>],
        value: Tensor<T>,
        op: impl FnOnce(&Tensor<T>) -> Op<T>,
    ) -> Var<'_, T> {
        let id = if self.recording.get() && inputs.iter().any(|v| v.id.is_some()) {
            let ids = inputs.iter().map(|v| v.id);
            let id = self.push(op(&value), ids, value.shape(), Caller::here());
            self.inspect_recorded(id, inputs, &value);
            Some(id)
        } else {
            None
        };
        Var {
            tape: self,
            id,
            value,
        }
    }

    /// [`Tape::record`] on the light path of scalar programs: the 0-d `value` of an op on
    /// `inputs`, with no iterator over a slice of inputs and no shape to copy.
    #[inline]
    #[track_caller]
    pub(crate) fn record_number<const N: usize>(
        &self,
        inputs: [&Var<'_, T>; N],
        value: T,
        op: impl FnOnce() -> Op<T>,
    ) -> Var<'_, T> {
        let ids = inputs.map(|v| v.id);
        let value = Tensor::scalar(value);
        let id = if self.recording.get() && ids.iter().any(Option::is_some) {
            let region = self.region.get();
            let id = (self.nodes.borrow_mut()).push_number(op(), ids, Caller::here(), region);
            self.inspect_recorded(id, &inputs, &value);
            Some(id)
        } else {
            None
        };
        Var {
            tape: self,
            id,
            value,
        }
    }

    /// The anomaly checks and value summary of node `id`, just recorded from `inputs`
    /// (each a check of a flag when inspection is off).
    #[inline]
    fn inspect_recorded(&self, id: usize, inputs: &[&Var<'_, T>], value: &Tensor<T>) {
        self.inspect_constants(id, inputs);
        self.inspect_value(id, value, || {
            inputs.iter().map(|v| Some(v.shape().into())).collect()
        });
    }

    /// Whether the value of node `id` flows into node `output` (through tracked inputs).
    pub(crate) fn feeds(&self, id: usize, output: usize) -> bool {
        if id > output {
            return false;
        }
        let nodes = self.nodes.borrow();
        let mut reached = vec![false; output + 1 - id];
        reached[output - id] = true;
        for i in (id..=output).rev() {
            if reached[i - id] {
                for &input in nodes.inputs(i).iter().flatten() {
                    if input >= id {
                        reached[input - id] = true;
                    }
                }
            }
        }
        reached[0]
    }
}

/// The adjoint of each node (`None`: the output does not depend on it).
pub(crate) type Adjoints<V> = Vec<Option<V>>;

/// The contributions one node's backward rule sends: (input node, ∂L/∂input).
pub(crate) type Sends<V> = SmallVec<[(usize, V); 2]>;

/// The reverse sweep, shared by first-order backward, recorded backward and the
/// step-through iterator: adjoints of the nodes `output` down to 0 and the next node to
/// visit. Each [`Sweep::step`] visits one node.
pub(crate) struct Sweep<'a, T: Element, L: Lift<T>> {
    tape: &'a Tape<T>,
    lift: L,
    /// The adjoint of each node from `floor` up to the output, at index `node − floor`.
    adjoints: Vec<Option<L::V>>,
    /// The sweep visits nodes `floor..` only (0 but for a checkpointed segment's sweep,
    /// whose inputs lie below it); contributions sent below it are kept in `escaped`.
    floor: usize,
    /// Contributions sent to nodes below `floor`: (node, contribution), in sweep order.
    escaped: Vec<(usize, L::V)>,
    /// Nodes `floor..floor + unvisited` are still to visit, from the top down.
    unvisited: usize,
    /// Hooks, contributions, anomaly checks: each a `bool`/`Option` check when off.
    extras: SweepExtras<T>,
    /// Whether adjoints of intermediate (non-leaf) nodes are kept once their node is
    /// visited; dropping them keeps peak memory near a hand-written backward.
    keep_intermediate: bool,
}

impl<'a, T: Element, L: Lift<T>> Sweep<'a, T, L> {
    /// A sweep from `output` (seeded with `seed`), or an empty one for an untracked output.
    fn new(
        tape: &'a Tape<T>,
        lift: L,
        output: Option<usize>,
        seed: L::V,
        extras: SweepExtras<T>,
    ) -> Self {
        Self::above(0, tape, lift, output, seed, extras)
    }

    /// A sweep from `output` that visits nodes `floor..=output` only (`output ≥ floor`).
    fn above(
        floor: usize,
        tape: &'a Tape<T>,
        lift: L,
        output: Option<usize>,
        seed: L::V,
        extras: SweepExtras<T>,
    ) -> Self {
        let mut adjoints: Vec<Option<L::V>> = buffer_pool::spare_vec();
        adjoints.extend(std::iter::repeat_with(|| None).take(output.map_or(0, |o| o + 1 - floor)));
        if let Some(o) = output {
            adjoints[o - floor] = Some(seed);
        }
        Sweep {
            tape,
            lift,
            unvisited: adjoints.len(),
            adjoints,
            floor,
            escaped: Vec::new(),
            extras,
            keep_intermediate: true,
        }
    }

    /// One step of the reverse sweep: visits the next node (counting down) that has an
    /// adjoint and returns its id, or `None` when the sweep is over.
    ///
    /// The node's adjoint is final when the sweep reaches it: all its consumers come later
    /// in the list. Its op's vector–Jacobian product sends one contribution to each tracked
    /// input, and contributions are accumulated. `observe` sees the node, its adjoint and
    /// the contributions before they are accumulated. The optional features run at two
    /// points: on the final adjoint (hooks, anomaly check) and on the contributions
    /// (anomaly check, kept contributions).
    pub(crate) fn step(
        &mut self,
        observe: impl FnOnce(usize, &L::V, &[(usize, L::V)]),
    ) -> Result<Option<usize>> {
        let Some((local, g)) = next_with_adjoint(&mut self.adjoints, &mut self.unvisited) else {
            return Ok(None);
        };
        let i = self.floor + local;
        let extras = self.extras.any();
        if extras {
            self.extras.at_node(self.tape, &self.lift, i, g)?;
        }
        // An adjoint that holds no element sends nothing: each contribution would be zero
        // (an input without one gets zeros), and some rules would first build a
        // non-empty intermediate from the other dimensions of an empty tensor, which may
        // be enormous (softmax's sum along its axis of a [2⁴⁰, 0] gradient).
        let sends = if crate::shape::numel(g.shape()) == 0 {
            Sends::new()
        } else {
            vjp(self.tape, &self.lift, i, g)?
        };
        if extras {
            self.extras.sent(self.tape, i, &sends)?;
        }
        observe(i, g, &sends);
        if !self.keep_intermediate && !matches!(self.tape.nodes.borrow()[i].op, Op::Leaf) {
            self.adjoints[local] = None; // visited: no consumer will read it again
        }
        for (id, contribution) in sends {
            let Some(local) = id.checked_sub(self.floor) else {
                self.escaped.push((id, contribution));
                continue;
            };
            match &mut self.adjoints[local] {
                // The first contribution is stored as is: no zero-fill, no add.
                slot @ None => *slot = Some(contribution),
                Some(sum) => sum.accumulate(contribution),
            }
        }
        Ok(Some(i))
    }

    /// Steps with no observer: the run of nodes that can take the light path of scalar
    /// programs ([`Sweep::scalar_steps`]), else one [`Sweep::step`]. The last node visited.
    fn quiet_steps(&mut self) -> Result<Option<usize>> {
        if L::NUMBERS && !self.extras.any() {
            let last = self.scalar_steps();
            if last.is_some() {
                return Ok(last);
            }
        }
        self.step(|_, _, _| {})
    }

    /// [`Sweep::step`] on the light path of scalar programs (micrograd style, every value
    /// 0-d), node after node for as long as it applies: when the next node's adjoint is a
    /// number and its op saved only numbers, its contributions are computed on numbers
    /// ([`Op::scalar_vjp`], the same bits as its `vjp`) and added straight into the
    /// adjoints, with no tensor per intermediate. Stops before the first node it cannot
    /// take, leaving it to `step`, or when the sweep is over; the last node visited.
    fn scalar_steps(&mut self) -> Option<usize> {
        let nodes = self.tape.nodes.borrow();
        let mut last = None;
        while let Some((local, g)) = next_with_adjoint(&mut self.adjoints, &mut self.unvisited) {
            let i = self.floor + local;
            let node = &nodes[i];
            let Some(contributions) = g.tensor().as_scalar().and_then(|g| node.op.scalar_vjp(g))
            else {
                self.unvisited = local + 1; // not visited: `step` takes it
                break;
            };
            if !self.keep_intermediate && !matches!(node.op, Op::Leaf) {
                self.adjoints[local] = None; // visited: no consumer will read it again
            }
            for (id, d) in nodes.inputs(i).iter().zip(contributions) {
                let Some(id) = *id else { continue };
                let lifted = || self.lift.lift(None, Tensor::scalar(d));
                match id.checked_sub(self.floor) {
                    None => self.escaped.push((id, lifted())),
                    Some(local) => match &mut self.adjoints[local] {
                        slot @ None => *slot = Some(lifted()),
                        Some(sum) => match L::number_mut(sum) {
                            Some(s) => *s += d,
                            None => sum.accumulate(lifted()),
                        },
                    },
                }
            }
            last = Some(i);
        }
        last
    }

    /// Runs every remaining step; the adjoint of every node.
    fn run(mut self) -> Result<(Adjoints<L::V>, SweepExtras<T>)> {
        debug_assert_eq!(self.floor, 0, "a sweep above a floor ends with run_above");
        while self.quiet_steps()?.is_some() {}
        Ok((self.adjoints, self.extras))
    }

    /// Runs every remaining step of a sweep [above a floor](Sweep::above); the
    /// contributions that left it, in the order they were made.
    fn run_above(mut self) -> Result<Vec<(usize, L::V)>> {
        while self.quiet_steps()?.is_some() {}
        buffer_pool::keep_vec(std::mem::take(&mut self.adjoints));
        Ok(self.escaped)
    }
}

/// Node `i`'s backward rule applied to its adjoint `g`: the contributions to its tracked
/// inputs, as (input node, contribution). Only a checkpointed segment's rule can fail (its
/// recomputation meets an anomaly or a hook error).
fn vjp<T: Element, L: Lift<T>>(
    tape: &Tape<T>,
    lift: &L,
    i: usize,
    g: &L::V,
) -> Result<Sends<L::V>> {
    lift.with_node(tape, i, |op, inputs| {
        let mut cx = Vjp {
            tape,
            lift,
            id: i,
            inputs,
            sends: SmallVec::new(),
        };
        op.vjp(g, &mut cx)?;
        Ok(cx.sends)
    })
}

/// The next node to visit (below `unvisited`, which moves down to it) that has an adjoint,
/// and that adjoint.
fn next_with_adjoint<'a, V>(
    adjoints: &'a mut [Option<V>],
    unvisited: &mut usize,
) -> Option<(usize, &'a mut V)> {
    let i = adjoints[..*unvisited].iter().rposition(Option::is_some)?;
    *unvisited = i;
    adjoints[i].as_mut().map(|g| (i, g))
}

/// How the reverse sweep sees saved tensors: as plain tensors (first-order backward,
/// straight to the kernels) or as `Var`s on the tape (recorded backward, for gradients of
/// gradients). Each op's backward rule is written once, generic over this.
pub(crate) trait Lift<T: Element> {
    /// The values the backward rules compute with.
    type V: Algebra<T> + Valued<T>;
    /// Whether contributions may be computed on plain numbers ([`Op::scalar_vjp`]): true
    /// for first-order backward, false where the rules must record.
    const NUMBERS: bool;
    /// A saved tensor that is the value of node `id` (or a constant when `None`).
    fn lift(&self, id: Option<usize>, value: Tensor<T>) -> Self::V;
    /// The number inside an accumulated 0-d adjoint, writable in place, where the sweep
    /// [computes on numbers](Lift::NUMBERS) (`None` for any other value).
    fn number_mut(_: &mut Self::V) -> Option<&mut T> {
        None
    }
    /// Gives `f` node `i`'s op and inputs.
    fn with_node<R>(
        &self,
        tape: &Tape<T>,
        i: usize,
        f: impl FnOnce(&Op<T>, &[Option<usize>]) -> R,
    ) -> R;
    /// The backward rule of a checkpointed segment: recompute it, differentiate it, send
    /// its inputs their contributions (see [`checkpoint`]).
    fn segment_vjp(segment: &SegmentOp<T>, g: &Self::V, cx: &mut Vjp<'_, T, Self>) -> Result<()>
    where
        Self: Sized;
}

/// First-order backward: saved tensors are used as they are.
pub(crate) struct Plain;

impl<T: Element> Lift<T> for Plain {
    type V = Tensor<T>;
    const NUMBERS: bool = true;
    fn lift(&self, _: Option<usize>, value: Tensor<T>) -> Tensor<T> {
        value
    }
    #[inline]
    fn number_mut(adjoint: &mut Tensor<T>) -> Option<&mut T> {
        adjoint.as_scalar_mut()
    }
    fn with_node<R>(
        &self,
        tape: &Tape<T>,
        i: usize,
        f: impl FnOnce(&Op<T>, &[Option<usize>]) -> R,
    ) -> R {
        let nodes = tape.nodes.borrow();
        f(&nodes[i].op, nodes.inputs(i))
    }
    fn segment_vjp(segment: &SegmentOp<T>, g: &Tensor<T>, cx: &mut Vjp<'_, T, Self>) -> Result<()> {
        checkpoint::recompute_plain(segment, g, cx)
    }
}

/// Recorded backward: every backward computation is itself recorded on the tape.
pub(crate) struct Recorded<'t, T: Element>(&'t Tape<T>);

impl<'t, T: Element> Lift<T> for Recorded<'t, T> {
    type V = Var<'t, T>;
    const NUMBERS: bool = false;
    fn lift(&self, id: Option<usize>, value: Tensor<T>) -> Var<'t, T> {
        Var {
            tape: self.0,
            id,
            value,
        }
    }
    fn with_node<R>(
        &self,
        tape: &Tape<T>,
        i: usize,
        f: impl FnOnce(&Op<T>, &[Option<usize>]) -> R,
    ) -> R {
        // The rule records new nodes, so the list must not stay borrowed while it runs.
        let (op, inputs) = {
            let nodes = tape.nodes.borrow();
            (nodes[i].op.clone(), Inputs::from_slice(nodes.inputs(i)))
        };
        f(&op, &inputs)
    }
    fn segment_vjp(
        segment: &SegmentOp<T>,
        g: &Var<'t, T>,
        cx: &mut Vjp<'_, T, Self>,
    ) -> Result<()> {
        checkpoint::recompute_recorded(segment, g, cx)
    }
}

/// What a backward rule sees of its node: the saved tensors lifted to the sweep's value
/// type, which inputs need a gradient, and where to send the contributions.
pub(crate) struct Vjp<'a, T: Element, L: Lift<T>> {
    /// The tape being swept.
    tape: &'a Tape<T>,
    lift: &'a L,
    id: usize,
    inputs: &'a [Option<usize>],
    sends: SmallVec<[(usize, L::V); 2]>,
}

impl<T: Element, L: Lift<T>> Vjp<'_, T, L> {
    /// Whether input `k` is tracked (and so needs a contribution).
    pub fn needs(&self, k: usize) -> bool {
        self.inputs.get(k).is_some_and(Option::is_some)
    }
    /// A saved tensor that is the value of input `k`.
    pub fn input(&self, k: usize, value: &impl SavedTensor<T>) -> L::V {
        self.lift.lift(self.inputs[k], value.to_tensor())
    }
    /// A saved tensor that is the node's own output.
    pub fn output(&self, value: &impl SavedTensor<T>) -> L::V {
        self.lift.lift(Some(self.id), value.to_tensor())
    }
    /// Sends input `k` its contribution ∂L/∂input (its shape); kept as (input node,
    /// contribution), nothing for an untracked input.
    pub fn send(&mut self, k: usize, contribution: L::V) {
        if let Some(Some(id)) = self.inputs.get(k) {
            self.sends.push((*id, contribution));
        }
    }
    /// Sends node `id` (one of the tracked inputs) a contribution: a segment's inputs
    /// receive one per consumer inside it, in the order the sweep inside made them.
    fn send_to(&mut self, id: usize, contribution: L::V) {
        debug_assert!(self.inputs.contains(&Some(id)));
        self.sends.push((id, contribution));
    }
}

/// A value on a tape: what you compute with. Cheap to clone (the data is shared).
///
/// Operators `+ - * /` and unary `-` work on owned and borrowed `Var`s and with scalars on
/// either side; each records exactly one node.
///
/// # Panics
/// The operators panic where the `try_*` method would return an error (shapes that do not
/// broadcast, `Var`s of different tapes), with the same message, naming your source line.
#[derive(Clone)]
pub struct Var<'t, T: Element = f32> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: Option<usize>,
    pub(crate) value: Tensor<T>,
}

impl<'t, T: Element> Var<'t, T> {
    /// The computed value.
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }

    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The single value of a one-element `Var`.
    #[track_caller]
    pub fn item(&self) -> T {
        self.value.item()
    }

    /// The tape this value belongs to.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// This value's node on the tape (`None` for an untracked value).
    pub fn node_id(&self) -> Option<usize> {
        self.id
    }

    /// Whether gradients flow to this value.
    pub fn is_tracked(&self) -> bool {
        self.id.is_some()
    }

    /// The same value, untracked: no gradient flows back through it.
    pub fn detach(&self) -> Var<'t, T> {
        self.tape.constant(self.value.clone())
    }

    /// Checks that every operand lives on this `Var`'s tape.
    #[track_caller]
    #[inline]
    pub(crate) fn same_tape(&self, op: &'static str, others: &[&Var<'_, T>]) -> Result<()> {
        match others.iter().find(|o| !std::ptr::eq(self.tape, o.tape)) {
            None => Ok(()),
            Some(o) if self.tape.encloses(o.tape) || o.tape.encloses(self.tape) => {
                Err(checkpoint::outside_value(op, Caller::here()))
            }
            Some(_) => Err(Error::ForeignTape {
                op,
                at: Caller::here(),
            }),
        }
    }

    /// Gradients of this scalar with respect to every value on the tape.
    ///
    /// # Panics
    /// If the value is not a scalar (one element); use [`Var::backward_with`].
    #[track_caller]
    pub fn backward(&self) -> Gradients<T> {
        or_panic(self.try_backward())
    }

    /// [`Var::backward`], as a `Result`.
    #[track_caller]
    pub fn try_backward(&self) -> Result<Gradients<T>> {
        self.check_scalar()?;
        self.try_backward_with(Tensor::ones(self.shape()))
    }

    /// Gradients of `Σ seed ⊙ self` (a vector–Jacobian product) for a value of any shape.
    #[track_caller]
    pub fn backward_with(&self, seed: Tensor<T>) -> Gradients<T> {
        or_panic(self.try_backward_with(seed))
    }

    /// [`Var::backward_with`], as a `Result`.
    #[track_caller]
    pub fn try_backward_with(&self, seed: Tensor<T>) -> Result<Gradients<T>> {
        let (grads, extras) = self.first_order_sweep(seed)?.run()?;
        Ok(Gradients {
            tape: self.tape.id,
            grads,
            contributions: extras.into_contributions(),
        })
    }

    /// [`Var::backward`] keeping only the gradients of leaves (parameters and tracked
    /// inputs): each intermediate adjoint is freed as soon as the sweep has passed its node,
    /// so the peak memory of a training step stays close to a hand-written backward's.
    /// [`Gradients::get`] of an intermediate value then gives `None`.
    ///
    /// # Panics
    /// If the value is not a scalar.
    #[track_caller]
    pub fn backward_leaves(&self) -> Gradients<T> {
        or_panic(self.try_backward_leaves())
    }

    /// [`Var::backward_leaves`], as a `Result`.
    #[track_caller]
    pub fn try_backward_leaves(&self) -> Result<Gradients<T>> {
        self.check_scalar()?;
        let mut sweep = self.first_order_sweep(Tensor::ones(self.shape()))?;
        sweep.keep_intermediate = false;
        let (grads, extras) = sweep.run()?;
        Ok(Gradients {
            tape: self.tape.id,
            grads,
            contributions: extras.into_contributions(),
        })
    }

    /// Backward one node at a time: an iterator over the reverse sweep that yields, for
    /// each node that receives an adjoint (from this output down to node 0), the node, its
    /// adjoint and the contributions it sends to its inputs — the annotated Wengert table,
    /// row by row. It then gives the same gradients as [`Var::backward`].
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(3.0));
    /// let y = &(&x * &x) + &x; // x² + x
    /// let mut steps = y.backward_steps();
    /// let first = steps.next().unwrap();
    /// assert_eq!((first.node, first.op), (2, "add"));
    /// assert_eq!(first.sends.len(), 2); // one to the mul, one to x
    /// let rest: Vec<&str> = steps.by_ref().map(|s| s.op).collect();
    /// assert_eq!(rest, vec!["mul", "leaf"]);
    /// assert_eq!(steps.into_gradients().wrt(&x).item(), 7.0); // 2x + 1
    /// ```
    ///
    /// # Panics
    /// If the value is not a scalar, or anomaly mode found a non-finite value it depends
    /// on; see [`Var::try_backward_steps_with`].
    #[track_caller]
    pub fn backward_steps(&self) -> BackwardSteps<'t, T> {
        or_panic(self.try_backward_steps())
    }

    /// [`Var::backward_steps`], as a `Result`.
    #[track_caller]
    pub fn try_backward_steps(&self) -> Result<BackwardSteps<'t, T>> {
        self.check_scalar()?;
        self.try_backward_steps_with(Tensor::ones(self.shape()))
    }

    /// [`Var::backward_steps`] with an explicit seed, as a `Result`.
    #[track_caller]
    pub fn try_backward_steps_with(&self, seed: Tensor<T>) -> Result<BackwardSteps<'t, T>> {
        Ok(BackwardSteps::new(self.first_order_sweep(seed)?))
    }

    /// The sweep of first-order backward from this value, with the tape's hooks, tracked
    /// contributions and anomaly checks.
    #[track_caller]
    fn first_order_sweep(&self, seed: Tensor<T>) -> Result<Sweep<'t, T, Plain>> {
        self.check_seed(seed.shape())?;
        self.tape.check_forward_anomaly(self.id)?;
        let extras = SweepExtras::first_order(self.tape, self.id);
        Ok(Sweep::new(self.tape, Plain, self.id, seed, extras))
    }

    /// Gradients as `Var`s recorded on the same tape (PyTorch's `create_graph=True`), so
    /// they can be differentiated again: Hessian–vector products, gradient penalties.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::new();
    /// let x = tape.var(Tensor::scalar(3.0f64));
    /// let y = &(&x * &x) * &x; // x³
    /// let dy = y.backward_create_graph().wrt(&x); // 3x² = 27
    /// assert_eq!(dy.item(), 27.0);
    /// let d2y = dy.backward().wrt(&x); // 6x = 18
    /// assert_eq!(d2y.item(), 18.0);
    /// ```
    ///
    /// # Panics
    /// Where [`Var::try_backward_create_graph`] returns an error, with its message.
    #[track_caller]
    pub fn backward_create_graph(&self) -> VarGradients<'t, T> {
        or_panic(self.try_backward_create_graph())
    }

    /// [`Var::backward_create_graph`], as a `Result`: [`Error::NonScalarBackward`] unless
    /// the value is a scalar, and an [`Error::Anomaly`] found by anomaly mode.
    #[track_caller]
    pub fn try_backward_create_graph(&self) -> Result<VarGradients<'t, T>> {
        self.check_scalar()?;
        self.try_backward_create_graph_with(Tensor::ones(self.shape()))
    }

    /// [`Var::backward_create_graph`] with an explicit seed, as a `Result`.
    #[track_caller]
    pub fn try_backward_create_graph_with(&self, seed: Tensor<T>) -> Result<VarGradients<'t, T>> {
        self.check_seed(seed.shape())?;
        self.tape.check_forward_anomaly(self.id)?;
        let seed = self.tape.constant(seed);
        let extras = SweepExtras::recorded(self.tape);
        let sweep = Sweep::new(self.tape, Recorded(self.tape), self.id, seed, extras);
        let (grads, _) = sweep.run()?;
        Ok(VarGradients {
            tape: self.tape,
            grads,
        })
    }

    #[track_caller]
    fn check_scalar(&self) -> Result<()> {
        if self.value.numel() == 1 {
            Ok(())
        } else {
            Err(Error::NonScalarBackward {
                shape: self.shape().into(),
                at: Caller::here(),
            })
        }
    }

    #[track_caller]
    fn check_seed(&self, seed: &[usize]) -> Result<()> {
        if seed == self.shape() {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                op: "backward_with",
                expected: self.shape().into(),
                got: seed.into(),
                at: Caller::here(),
            })
        }
    }
}

impl<T: Element> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("id", &self.id)
            .field("value", &self.value)
            .finish()
    }
}

/// The gradient of one output with respect to every value on the tape, leaves and
/// intermediates alike (PyTorch's `retain_grad`, always on). Indexed by `Var`.
///
/// A value the output does not depend on has no gradient: [`Gradients::get`] says so with
/// `None`, while [`Gradients::wrt`] gives zeros of the value's shape (what PyTorch's
/// `torch.autograd.grad(…, allow_unused=True, materialize_grads=True)` gives). Use `get`
/// when the difference matters — a parameter left out of the loss by mistake, a branch
/// cut by `detach` — and `wrt` when zeros are the answer you want:
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::scalar(3.0));
/// let unused = tape.var(Tensor::ones(&[2]));
/// let grads = (&x * &x).backward();
/// assert_eq!(grads.get(&x).map(|g| g.item()), Some(6.0));
/// assert!(grads.get(&unused).is_none()); // the loss does not depend on it
/// assert_eq!(grads.wrt(&unused).to_vec(), vec![0.0, 0.0]); // zeros of its shape
/// ```
pub struct Gradients<T> {
    tape: u64,
    grads: Vec<Option<Tensor<T>>>,
    /// Contributions kept for the tracked nodes: (receiving node, contribution).
    contributions: Vec<(usize, Contribution<T>)>,
}

impl<T: Element> Gradients<T> {
    /// The gradient with respect to `v`, or `None` if `v` is untracked, the output does not
    /// depend on it, or (after [`Var::backward_leaves`]) it is an intermediate value.
    ///
    /// # Panics
    /// If `v` belongs to another tape.
    #[track_caller]
    pub fn get(&self, v: &Var<'_, T>) -> Option<&Tensor<T>> {
        assert!(
            v.tape.id == self.tape,
            "gradients: the Var belongs to a different tape than these gradients (at {})",
            Caller::here()
        );
        v.id.and_then(|id| self.grads.get(id))
            .and_then(Option::as_ref)
    }

    /// The gradient with respect to `v`; zeros of `v`'s shape wherever [`Gradients::get`]
    /// gives `None` — also when the output does not depend on `v` at all, which `get` tells
    /// apart (see the example on [`Gradients`]).
    ///
    /// # Panics
    /// If `v` belongs to another tape.
    #[track_caller]
    pub fn wrt(&self, v: &Var<'_, T>) -> Tensor<T> {
        self.get(v)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(v.shape()))
    }

    /// The gradient of the node with this id (see [`Var::node_id`]).
    pub fn by_id(&self, id: usize) -> Option<&Tensor<T>> {
        self.grads.get(id).and_then(Option::as_ref)
    }

    /// The separate contributions that arrived at `v` from each of its consumers, in the
    /// order the sweep produced them (latest consumer first). Empty unless `v` was tracked
    /// with [`Tape::track_contributions`] before backward. They sum to `v`'s gradient as
    /// accumulated, before any hook on `v` ran.
    ///
    /// # Panics
    /// If `v` belongs to another tape.
    #[track_caller]
    pub fn contributions(&self, v: &Var<'_, T>) -> Vec<&Contribution<T>> {
        assert!(
            v.tape.id == self.tape,
            "gradients: the Var belongs to a different tape than these gradients (at {})",
            Caller::here()
        );
        self.contributions
            .iter()
            .filter(|(to, _)| Some(*to) == v.id)
            .map(|(_, c)| c)
            .collect()
    }
}

impl<T> Drop for Gradients<T> {
    /// Keeps the gradient list's allocation for the next backward.
    fn drop(&mut self) {
        buffer_pool::keep_vec(std::mem::take(&mut self.grads));
    }
}

impl<T: Element> fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.grads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| g.as_ref().map(|g| (i, g))),
            )
            .finish()
    }
}

/// Gradients recorded on the tape as `Var`s (see [`Var::backward_create_graph`]).
pub struct VarGradients<'t, T: Element> {
    tape: &'t Tape<T>,
    grads: Vec<Option<Var<'t, T>>>,
}

impl<'t, T: Element> VarGradients<'t, T> {
    /// The gradient with respect to `v` as a differentiable `Var`, or `None`.
    #[track_caller]
    pub fn get(&self, v: &Var<'t, T>) -> Option<&Var<'t, T>> {
        assert!(
            std::ptr::eq(v.tape, self.tape),
            "gradients: the Var belongs to a different tape than these gradients (at {})",
            Caller::here()
        );
        v.id.and_then(|id| self.grads.get(id))
            .and_then(Option::as_ref)
    }

    /// The gradient with respect to `v`; an untracked zero `Var` of `v`'s shape when
    /// [`VarGradients::get`] gives `None` (the output does not depend on `v`).
    #[track_caller]
    pub fn wrt(&self, v: &Var<'t, T>) -> Var<'t, T> {
        self.get(v)
            .cloned()
            .unwrap_or_else(|| self.tape.constant(Tensor::zeros(v.shape())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program on 0-d values, with every op of the light path: its value and the
    /// gradients of its inputs.
    fn light_path_program(shape: &[usize], inputs: [f64; 3]) -> (f64, Vec<u64>) {
        let tape = Tape::<f64>::new();
        let [a, b, c] = inputs.map(|v| tape.var(Tensor::full(shape, v)));
        let k = tape.constant(Tensor::full(shape, 0.75));
        let h = &(&(&a * &b) + &(&c / &a)) - &(&b * &k);
        let h = &(&h.relu() * 2.5) + &(&(&h.tanh() - 0.5) / 3.0);
        let h = &(&(1.0 - &h.sigmoid()) * &(-&a).exp()) + &(&(2.0 / &b) * &c.abs().ln());
        let y = &(&h * &h) + &(&(&a - &c).relu() * &b);
        let grads = y.backward();
        let bits = [&a, &b, &c].map(|v| grads.wrt(v).item().to_bits());
        (y.item(), bits.to_vec())
    }

    /// The light path of scalar programs gives the bits the tensor path gives.
    #[test]
    fn scalar_programs_take_the_light_path_to_the_same_bits() {
        for inputs in [[0.7, -1.3, 2.1], [-0.4, 0.9, -1.7], [1.5, 0.2, -0.3]] {
            let (light, light_grads) = light_path_program(&[], inputs);
            let (tensor, tensor_grads) = light_path_program(&[1], inputs);
            assert_eq!(light.to_bits(), tensor.to_bits(), "value at {inputs:?}");
            assert_eq!(light_grads, tensor_grads, "gradients at {inputs:?}");
        }
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::scalar(2.0));
        let y = &(&x * &x) / &(&x + 1.0); // x²/(x+1): 8/9 at x = 2
        assert!((y.backward().wrt(&x).item() - 8.0 / 9.0).abs() < 1e-15);
    }

    /// The tape lets the light path's nodes go without dropping them one by one: only the
    /// nodes whose op owns memory are listed, and dropping the tape frees what they saved.
    #[test]
    fn dropping_a_tape_frees_what_its_ops_saved_and_skips_the_rest() {
        let mut x = Tensor::<f64>::ones(&[64]);
        {
            let tape = Tape::new();
            let v = tape.var(x.clone());
            let s = &tape.var(Tensor::scalar(2.0)) * &tape.var(Tensor::scalar(3.0));
            let y = &(&v * &v).sum() * &s.relu(); // the product saves `v` twice
            let _ = y.backward();
            let nodes = tape.nodes.borrow();
            let owning: Vec<usize> = (0..nodes.len())
                .filter(|&i| !nodes[i].op.owns_nothing())
                .collect();
            assert_eq!(
                nodes.owners, owning,
                "the owners are the nodes that own memory"
            );
            let light: Vec<&str> = (0..nodes.len())
                .filter(|i| !nodes.owners.contains(i))
                .map(|i| nodes[i].op.name())
                .collect();
            // `v·v` saved tensors and `sum` keeps boxed state; the last product is of two
            // 0-d values again.
            assert_eq!(light, ["leaf", "leaf", "leaf", "mul", "relu", "mul"]);
            assert_eq!(nodes.owners.len(), 2);
        }
        let before = x.data().as_ptr();
        x.data_mut()[0] = 5.0; // copy-on-write: copies only if a saved clone is still alive
        assert_eq!(
            x.data().as_ptr(),
            before,
            "a saved tensor outlived its tape"
        );
    }

    /// Every recorded node is pushed (and its op moved) by value: a node that grows
    /// makes every op of a long chain of tiny ops slower. On 64-bit targets: an op of at
    /// most 48 bytes (two 0-d saved values, or a box), the source line, two spans and the
    /// region.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn nodes_stay_small() {
        assert!(std::mem::size_of::<Op<f64>>() <= 48);
        assert!(std::mem::size_of::<Node<f64>>() <= 80);
        assert!(std::mem::size_of::<Node<f32>>() <= 72);
    }
}
