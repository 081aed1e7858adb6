//! The `Module` trait and the per-step context that binds parameters to a tape.

use crate::buffer::Buffer;
use crate::checkpoint::{self, SegmentScope};
use crate::param::{Param, ParamGrads};
use autograd::rand::rngs::StdRng;
use autograd::{Element, Gradients, Result, Tape, Tensor, Var, seeded_rng};
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
///
/// Modules are `Send + Sync` (a supertrait): parameters and buffers are shared handles
/// behind locks, so a model can move to a worker thread or sit behind an `Arc`, and a
/// `Box<dyn Module<T>>` is thread-safe too. A module that keeps mutable state of its own
/// uses a lock or an atomic for it, as [`Param`] and [`Buffer`] do.
pub trait Module<T: Element = f32>: Send + Sync {
    /// The forward pass, recorded on `cx`'s tape.
    ///
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T>;

    /// The forward pass, with a shape error (wrong rank, width or channels) returned rather
    /// than panicking. The layers, blocks and containers of this crate override it, naming
    /// the line that called them; the default runs [`Module::forward`], for a module that
    /// cannot fail.
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(self.forward(cx, x))
    }

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

    /// The module's type without module paths (`"Linear<f32>"`), as error messages of
    /// containers name a failing layer.
    fn type_name(&self) -> String {
        short_type_name(std::any::type_name::<Self>())
    }

    /// Inference without tape boilerplate: the output for input `x`, computed in evaluation
    /// mode (dropout off, batch norm on its running statistics) with nothing recorded
    /// ([`Ctx::inference`]).
    ///
    /// ```
    /// use autograd::{Tensor, seeded_rng};
    /// use nn::{Linear, Module};
    ///
    /// let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
    /// let y = layer.predict(&Tensor::ones(&[4, 3]));
    /// assert_eq!(y.shape(), &[4, 2]);
    /// ```
    ///
    /// # Panics
    /// Where [`Module::try_predict`] returns an error, with its message.
    #[track_caller]
    fn predict(&self, x: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_predict(x))
    }

    /// [`Module::predict`], with a shape error returned rather than panicking.
    #[track_caller]
    fn try_predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let tape = Tape::new();
        let cx = Ctx::inference(&tape);
        let y = self.try_forward(&cx, &cx.input(x.clone()))?;
        Ok(y.value().clone())
    }
}

/// A type's name without module paths: `nn::stack::Stack<dyn nn::module::Module<f32>>`
/// becomes `Stack<dyn Module<f32>>`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    // Where the path segment being copied started in `out`: a `::` drops it.
    let mut segment_start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            out.truncate(segment_start);
            rest = after;
            continue;
        }
        out.push(c);
        if !(c.is_alphanumeric() || c == '_') {
            segment_start = out.len();
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Runs a composite module's forward pass `body` and names the caller's line in its error.
///
/// `body` is a closure, not `#[track_caller]`: the nodes it records keep the module's own
/// source lines (the tape table shows `residual.rs` for a block's skip connection), while an
/// error — the user's input did not fit — names the line that called the module.
#[track_caller]
pub(crate) fn at_caller<V>(body: impl FnOnce() -> Result<V>) -> Result<V> {
    let at = autograd::Caller::here();
    body().map_err(|e| e.with_caller(at))
}

/// Unwraps the result of a `try_forward` (or another `try_*` form), panicking with the
/// error's message at the caller's line: the panicking forms of this crate say exactly what
/// their `try_*` forms return.
#[track_caller]
pub(crate) fn or_panic<V>(result: Result<V>) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
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
    use autograd::{Caller, Element, Error, Result, Var};

    /// Each layer applied to the previous one's output. An error names the container, the
    /// failing layer's index and type, and the line that called the container.
    #[track_caller]
    pub fn try_forward<'t, 'a, T: Element, M: Module<T> + ?Sized + 'a>(
        container: &'static str,
        layers: impl Iterator<Item = &'a M>,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let at = Caller::here();
        let mut h = x.clone();
        for (index, layer) in layers.enumerate() {
            h = layer.try_forward(cx, &h).map_err(|e| Error::InLayer {
                container,
                index,
                layer: layer.type_name(),
                error: Box::new(e.with_caller(at)),
            })?;
        }
        Ok(h)
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
    /// Whether parameters are bound as tracked leaves (false for [`Ctx::inference`]).
    track_params: bool,
    /// The parameters bound so far, in binding order, each with its leaf on the tape.
    bound: RefCell<Vec<(Param<T>, Var<'t, T>)>>,
    /// Position in `bound` of each parameter, by id.
    bound_index: RefCell<HashMap<u64, usize>>,
    rng: RefCell<StdRng>,
    /// Inside a checkpointed segment ([`crate::checkpoint`]): its parameters are bound
    /// already, and no other can be.
    segment: Option<SegmentScope>,
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

    /// An evaluation-mode context that binds parameters as constants: with untracked
    /// inputs nothing is recorded and no gradient is computed (PyTorch's `model.eval()`
    /// under `torch.no_grad()`). [`Module::predict`] runs on one.
    pub fn inference(tape: &'t Tape<T>) -> Self {
        Ctx {
            track_params: false,
            ..Self::new(tape, false, 0)
        }
    }

    fn new(tape: &'t Tape<T>, training: bool, seed: u64) -> Self {
        Ctx {
            tape,
            training,
            track_params: true,
            bound: RefCell::new(Vec::new()),
            bound_index: RefCell::new(HashMap::new()),
            rng: RefCell::new(seeded_rng(seed)),
            segment: None,
        }
    }

    /// The context of one run of a checkpointed segment on its tape: the mode and the
    /// random state of the context it was called from, its parameters bound to its inputs.
    pub(crate) fn for_segment(
        tape: &'t Tape<T>,
        training: bool,
        rng: StdRng,
        bound: Vec<(Param<T>, Var<'t, T>)>,
        scope: SegmentScope,
    ) -> Self {
        let index = bound.iter().enumerate().map(|(i, (p, _))| (p.id(), i));
        Ctx {
            tape,
            training,
            track_params: true,
            bound_index: RefCell::new(index.collect()),
            bound: RefCell::new(bound),
            rng: RefCell::new(rng),
            segment: Some(scope),
        }
    }

    /// Whether this forward pass is a checkpointed segment run again in backward (see
    /// [`crate::Checkpoint`]): a module with side effects (a counter, a log) skips them then,
    /// since the first run had them. Buffers such as batch norm's running statistics need
    /// nothing: the segment puts them back after a recomputation.
    pub fn is_recomputing(&self) -> bool {
        self.segment.is_some_and(|s| s.recomputing)
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

    /// `p` as a tracked leaf on the tape — bound once per step, sharing its buffer (as an
    /// untracked constant in an [`Ctx::inference`] context).
    ///
    /// # Panics
    /// Inside a checkpointed segment, if `p` is not one of the segment's parameters (the
    /// checkpointed module's `named_parameters` does not list it).
    #[track_caller]
    pub fn param(&self, p: &Param<T>) -> Var<'t, T> {
        if let Some(&i) = self.bound_index.borrow().get(&p.id()) {
            return self.bound.borrow()[i].1.clone();
        }
        if self.segment.is_some() {
            panic!("{}", checkpoint::unlisted_param(p));
        }
        let v = if self.track_params {
            self.tape.var(p.value())
        } else {
            self.tape.constant(p.value())
        };
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
