//! The tape core: the Wengert list, `Var`, and the reverse sweep.
//!
//! A [`Tape`] is a flat `Vec` of [`Node`]s in execution order. Every operation on a tracked
//! [`Var`] appends one node: its op (with exactly the tensors its backward needs), the ids
//! of its inputs, its output shape and the source line that recorded it. Backward is one
//! loop over that list in reverse, accumulating adjoints: no recursion, no topological
//! sort, no reference-counted graph. A value used by several nodes simply receives several
//! contributions, which are summed in place.

use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::ops::{Algebra, Op};
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The ids of a node's inputs; `None` marks an untracked input (a constant), which
/// receives no gradient.
pub(crate) type Inputs = SmallVec<[Option<usize>; 2]>;

/// One entry of the Wengert list.
pub(crate) struct Node<T> {
    /// What was computed, with the tensors its backward needs.
    pub op: Op<T>,
    /// Ids of the inputs, in the op's argument order.
    pub inputs: Inputs,
    /// Shape of the node's value.
    pub shape: Shape,
    /// The user's source line that recorded the node.
    pub at: Caller,
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
pub struct Tape<T: Element = f32> {
    id: u64,
    pub(crate) nodes: RefCell<Vec<Node<T>>>,
    recording: Cell<bool>,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(0);

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Vec::new()),
            recording: Cell::new(true),
        }
    }

    /// A tracked leaf: gradients flow to it. The tensor's data is shared, not copied.
    #[track_caller]
    pub fn var(&self, value: Tensor<T>) -> Var<'_, T> {
        let id = self.push(
            Op::Leaf,
            Inputs::new(),
            value.shape().into(),
            Caller::here(),
        );
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
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.recording, self.recording.replace(false));
        f()
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
    /// nodes counts twice, once for each).
    pub fn saved_bytes(&self) -> usize {
        self.nodes.borrow().iter().map(|n| n.op.saved_bytes()).sum()
    }

    fn push(&self, op: Op<T>, inputs: Inputs, shape: Shape, at: Caller) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            op,
            inputs,
            shape,
            at,
        });
        nodes.len() - 1
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
        let ids: Inputs = inputs.iter().map(|v| v.id).collect();
        let id = if self.recording.get() && ids.iter().any(Option::is_some) {
            Some(self.push(op(), ids, value.shape().into(), Caller::here()))
        } else {
            None
        };
        Var {
            tape: self,
            id,
            value,
        }
    }

    /// The reverse sweep shared by first-order and recorded backward: one loop over the
    /// nodes from `output` down to 0. The adjoint of a node is final when the loop reaches
    /// it (all its consumers come later in the list); its op's vector–Jacobian product
    /// sends one contribution to each tracked input, and contributions are accumulated.
    pub(crate) fn sweep<L: Lift<T>>(
        &self,
        lift: &L,
        output: usize,
        seed: L::V,
    ) -> Vec<Option<L::V>> {
        let mut adjoints: Vec<Option<L::V>> = vec![None; output + 1];
        adjoints[output] = Some(seed);
        for i in (0..=output).rev() {
            let Some(g) = adjoints[i].clone() else {
                continue;
            };
            let sends = lift.with_node(self, i, |op, inputs| {
                let mut cx = Vjp {
                    lift,
                    id: i,
                    inputs,
                    sends: SmallVec::new(),
                };
                op.vjp(&g, &mut cx);
                cx.sends
                    .into_iter()
                    .filter_map(|(k, v)| inputs[k].map(|id| (id, v)))
                    .collect::<SmallVec<[(usize, L::V); 2]>>()
            });
            for (id, contribution) in sends {
                match &mut adjoints[id] {
                    // The first contribution is stored as is: no zero-fill, no add.
                    slot @ None => *slot = Some(contribution),
                    Some(sum) => sum.accumulate(contribution),
                }
            }
        }
        adjoints
    }
}

/// How the reverse sweep sees saved tensors: as plain tensors (first-order backward,
/// straight to the kernels) or as `Var`s on the tape (recorded backward, for gradients of
/// gradients). Each op's backward rule is written once, generic over this.
pub(crate) trait Lift<T: Element> {
    /// The values the backward rules compute with.
    type V: Algebra<T>;
    /// A saved tensor that is the value of node `id` (or a constant when `None`).
    fn lift(&self, id: Option<usize>, value: &Tensor<T>) -> Self::V;
    /// Gives `f` node `i`'s op and inputs.
    fn with_node<R>(
        &self,
        tape: &Tape<T>,
        i: usize,
        f: impl FnOnce(&Op<T>, &[Option<usize>]) -> R,
    ) -> R;
}

/// First-order backward: saved tensors are used as they are.
pub(crate) struct Plain;

impl<T: Element> Lift<T> for Plain {
    type V = Tensor<T>;
    fn lift(&self, _: Option<usize>, value: &Tensor<T>) -> Tensor<T> {
        value.clone()
    }
    fn with_node<R>(
        &self,
        tape: &Tape<T>,
        i: usize,
        f: impl FnOnce(&Op<T>, &[Option<usize>]) -> R,
    ) -> R {
        let nodes = tape.nodes.borrow();
        f(&nodes[i].op, &nodes[i].inputs)
    }
}

/// Recorded backward: every backward computation is itself recorded on the tape.
pub(crate) struct Recorded<'t, T: Element>(&'t Tape<T>);

impl<'t, T: Element> Lift<T> for Recorded<'t, T> {
    type V = Var<'t, T>;
    fn lift(&self, id: Option<usize>, value: &Tensor<T>) -> Var<'t, T> {
        Var {
            tape: self.0,
            id,
            value: value.clone(),
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
            (nodes[i].op.clone(), nodes[i].inputs.clone())
        };
        f(&op, &inputs)
    }
}

/// What a backward rule sees of its node: the saved tensors lifted to the sweep's value
/// type, which inputs need a gradient, and where to send the contributions.
pub(crate) struct Vjp<'a, T: Element, L: Lift<T>> {
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
    pub fn input(&self, k: usize, value: &Tensor<T>) -> L::V {
        self.lift.lift(self.inputs[k], value)
    }
    /// A saved tensor that is the node's own output.
    pub fn output(&self, value: &Tensor<T>) -> L::V {
        self.lift.lift(Some(self.id), value)
    }
    /// Sends input `k` its contribution ∂L/∂input (its shape).
    pub fn send(&mut self, k: usize, contribution: L::V) {
        if self.needs(k) {
            self.sends.push((k, contribution));
        }
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
    pub(crate) fn same_tape(&self, op: &'static str, others: &[&Var<'_, T>]) -> Result<()> {
        if others.iter().all(|o| std::ptr::eq(self.tape, o.tape)) {
            Ok(())
        } else {
            Err(Error::ForeignTape {
                op,
                at: Caller::here(),
            })
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
        self.check_seed(seed.shape())?;
        let grads = match self.id {
            Some(id) => self.tape.sweep(&Plain, id, seed),
            None => Vec::new(),
        };
        Ok(Gradients {
            tape: self.tape.id,
            grads,
        })
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
    #[track_caller]
    pub fn backward_create_graph(&self) -> VarGradients<'t, T> {
        or_panic(
            self.check_scalar()
                .and_then(|()| self.try_backward_create_graph_with(Tensor::ones(self.shape()))),
        )
    }

    /// [`Var::backward_create_graph`] with an explicit seed, as a `Result`.
    #[track_caller]
    pub fn try_backward_create_graph_with(&self, seed: Tensor<T>) -> Result<VarGradients<'t, T>> {
        self.check_seed(seed.shape())?;
        let grads = match self.id {
            Some(id) => {
                let seed = self.tape.constant(seed);
                self.tape.sweep(&Recorded(self.tape), id, seed)
            }
            None => Vec::new(),
        };
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

/// The Wengert list as a table: index, op, input ids, shape, bytes saved for backward,
/// and the source line that recorded each node.
impl<T: Element> fmt::Display for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>5}  {:<13} {:<14} {:<16} {:>10}  recorded at",
            "node", "op", "inputs", "shape", "saved B"
        )?;
        for (i, n) in self.nodes.borrow().iter().enumerate() {
            let inputs: Vec<String> = n
                .inputs
                .iter()
                .map(|id| id.map_or_else(|| "const".to_string(), |id| format!("%{id}")))
                .collect();
            writeln!(
                f,
                "{:>5}  {:<13} {:<14} {:<16} {:>10}  {}",
                format!("%{i}"),
                n.op.name(),
                inputs.join(", "),
                format!("{:?}", n.shape.as_slice()),
                n.op.saved_bytes(),
                n.at
            )?;
        }
        Ok(())
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
pub struct Gradients<T> {
    tape: u64,
    grads: Vec<Option<Tensor<T>>>,
}

impl<T: Element> Gradients<T> {
    /// The gradient with respect to `v`, or `None` if `v` is untracked or the output does
    /// not depend on it.
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

    /// The gradient with respect to `v`, zeros of `v`'s shape when the output does not
    /// depend on it.
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

    /// The gradient with respect to `v` (an untracked zero `Var` when there is none).
    #[track_caller]
    pub fn wrt(&self, v: &Var<'t, T>) -> Var<'t, T> {
        self.get(v)
            .cloned()
            .unwrap_or_else(|| self.tape.constant(Tensor::zeros(v.shape())))
    }
}
