//! The `Module` trait and the per-step context that binds parameters to a tape.

use crate::buffer::Buffer;
use crate::param::{Param, ParamGrads};
use autograd::rand::rngs::StdRng;
use autograd::{Element, Gradients, Tape, Tensor, Var, seeded_rng};
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;

/// A layer or network, defined by its forward pass alone: its backward comes from the tape.
///
/// ```
/// use nn::{Ctx, Linear, Module};
/// use autograd::{Tape, Tensor, seeded_rng};
///
/// let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let x = cx.input(Tensor::ones(&[4, 3]));
/// let loss = layer.forward(&cx, &x).relu().sum();
/// let grads = cx.param_grads(&loss.backward());
/// assert_eq!(grads.wrt(&layer.weight).shape(), &[2, 3]);
/// ```
pub trait Module<T: Element = f32> {
    /// The forward pass, recorded on `cx`'s tape.
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T>;

    /// Every parameter with a stable, dotted name (`"block0.linear1.weight"`), in a fixed
    /// order.
    fn named_parameters(&self) -> Vec<(String, Param<T>)>;

    /// Every buffer (state that is saved but not learned, e.g. batch norm's running
    /// statistics) with a dotted name like the parameters'. None by default; containers
    /// prefix and forward their children's.
    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        Vec::new()
    }

    /// Every parameter, in the order of [`Module::named_parameters`].
    fn parameters(&self) -> Vec<Param<T>> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Total number of learnable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .map(|p| p.shape().iter().product::<usize>())
            .sum()
    }
}

/// Prefixes a child's parameter (or buffer) names with `"{prefix}."`.
pub fn prefixed<P>(prefix: &str, params: Vec<(String, P)>) -> Vec<(String, P)> {
    params
        .into_iter()
        .map(|(n, p)| (format!("{prefix}.{n}"), p))
        .collect()
}

/// A chain of layers, shared by [`Sequential`](crate::Sequential) and
/// [`Stack`](crate::Stack): each layer applied to the previous one's output, and each
/// layer's parameter and buffer names prefixed with its index (`"0.weight"`, as PyTorch).
pub(crate) mod chain {
    use super::{Ctx, Module, prefixed};
    use crate::buffer::Buffer;
    use crate::param::Param;
    use autograd::{Element, Var};

    pub fn forward<'t, 'a, T: Element, M: Module<T> + ?Sized + 'a>(
        layers: impl Iterator<Item = &'a M>,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
    ) -> Var<'t, T> {
        layers.fold(x.clone(), |h, layer| layer.forward(cx, &h))
    }

    pub fn named_parameters<'a, T: Element, M: Module<T> + ?Sized + 'a>(
        layers: impl Iterator<Item = &'a M>,
    ) -> Vec<(String, Param<T>)> {
        layers
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_parameters()))
            .collect()
    }

    pub fn named_buffers<'a, T: Element, M: Module<T> + ?Sized + 'a>(
        layers: impl Iterator<Item = &'a M>,
    ) -> Vec<(String, Buffer<T>)> {
        layers
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_buffers()))
            .collect()
    }
}

/// One step's context: the tape, the mode (training or evaluation), the parameters bound so
/// far, and a seeded random source for dropout-like layers.
///
/// Layers that behave differently in training and evaluation (dropout, batch norm,
/// stochastic depth) read the mode from here, so one model serves both without a switch of
/// its own: make the context with [`Ctx::train`] or [`Ctx::eval`].
///
/// A training step does not need one by hand: [`value_and_grad`](crate::value_and_grad)
/// makes the tape and the context, runs the loss, and returns the gradients with the tape
/// already gone. Make them yourself when you need the tape during the step — hooks,
/// contributions, the table, second-order gradients — and let the tape go before the
/// optimizer's step (end its scope), or the step copies every parameter the tape still
/// holds (copy-on-write: right, but slower):
///
/// ```
/// use nn::{Ctx, Linear, Module, Optimizer, Sgd};
/// use autograd::{Tape, Tensor, seeded_rng};
///
/// let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
/// let mut opt = Sgd::new(layer.parameters(), 0.1);
/// let grads = {
///     let tape = Tape::new();
///     let cx = Ctx::train(&tape, 0);
///     let loss = layer.forward(&cx, &cx.input(Tensor::ones(&[4, 3]))).relu().sum();
///     println!("{tape}"); // the Wengert list of this step
///     cx.param_grads(&loss.backward_leaves())
/// }; // the tape is gone here
/// opt.step(&grads);
/// ```
pub struct Ctx<'t, T: Element = f32> {
    tape: &'t Tape<T>,
    training: bool,
    /// The parameters bound so far, in binding order, each with its leaf on the tape.
    bound: RefCell<Vec<(Param<T>, Var<'t, T>)>>,
    /// Position in `bound` of each parameter, by id.
    bound_index: RefCell<HashMap<u64, usize>>,
    rng: RefCell<StdRng>,
}

impl<'t, T: Element> Ctx<'t, T> {
    /// A training-mode context; `seed` drives dropout and stochastic depth.
    pub fn train(tape: &'t Tape<T>, seed: u64) -> Self {
        Self::new(tape, true, seed)
    }

    /// An evaluation-mode context.
    pub fn eval(tape: &'t Tape<T>) -> Self {
        Self::new(tape, false, 0)
    }

    fn new(tape: &'t Tape<T>, training: bool, seed: u64) -> Self {
        Ctx {
            tape,
            training,
            bound: RefCell::new(Vec::new()),
            bound_index: RefCell::new(HashMap::new()),
            rng: RefCell::new(seeded_rng(seed)),
        }
    }

    /// The tape.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Whether this is a training step.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// The step's random source.
    pub fn rng(&self) -> RefMut<'_, StdRng> {
        self.rng.borrow_mut()
    }

    /// `p` as a tracked leaf on the tape — bound once per step, sharing its buffer.
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'t, T> {
        if let Some(&i) = self.bound_index.borrow().get(&p.id()) {
            return self.bound.borrow()[i].1.clone();
        }
        let v = self.tape.var(p.value());
        let mut bound = self.bound.borrow_mut();
        self.bound_index.borrow_mut().insert(p.id(), bound.len());
        bound.push((p.clone(), v.clone()));
        v
    }

    /// Data as an untracked input (no gradient, no node).
    pub fn input(&self, x: Tensor<T>) -> Var<'t, T> {
        self.tape.constant(x)
    }

    /// Data as a tracked input, so that ∂loss/∂input is computed too.
    #[track_caller]
    pub fn tracked_input(&self, x: Tensor<T>) -> Var<'t, T> {
        self.tape.var(x)
    }

    /// The gradient of each parameter bound in this step, as pairs (parameter, gradient)
    /// in binding order. The gradients share their buffers with `grads` (no copy).
    pub fn param_grads(&self, grads: &Gradients<T>) -> ParamGrads<T> {
        self.bound
            .borrow()
            .iter()
            .filter_map(|(p, v)| grads.get(v).map(|g| (p.clone(), g.clone())))
            .collect()
    }
}
