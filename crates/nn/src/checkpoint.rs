//! Activation checkpointing for modules: train a deep network in O(√N) memory instead of
//! O(N), for one extra forward pass.
//!
//! A training step keeps, for backward, every block's activations. A [checkpointed
//! segment](autograd::Tape::checkpoint) keeps only its input and recomputes the rest when
//! backward reaches it. Here it is as modules:
//!
//! - [`Checkpoint`] runs one module (a block, a stage) as a segment;
//! - [`Segmented`] runs a [`Stack`] or a [`Sequential`] in segments of k layers:
//!   [`Stack::checkpoint_every`], or [`Stack::checkpoint_sqrt`] for the classic √N
//!   (N blocks in √N segments keep √N segment inputs plus, while one segment is
//!   recomputed, √N blocks' activations).
//!
//! Both keep the wrapped module's parameter and buffer names, so a model trains,
//! saves and loads the same with or without them — and its gradients are **bit-identical**:
//!
//! ```
//! use autograd::{Tape, Tensor, seeded_rng};
//! use nn::{Ctx, Init, Module, ResidualBlock, Stack};
//!
//! let mut rng = seeded_rng(0);
//! let blocks = || -> Stack<ResidualBlock<f32>> {
//!     let mut rng = seeded_rng(0);
//!     (0..16).map(|_| Box::new(ResidualBlock::new(8, Init::he(), &mut rng))).collect()
//! };
//! let (plain, checkpointed) = (blocks(), blocks().checkpoint_sqrt()); // 4 segments of 4
//! let x = Tensor::uniform(&[32, 8], -1.0, 1.0, &mut rng);
//! let grads = |model: &dyn Module<f32>| {
//!     let tape = Tape::new();
//!     let cx = Ctx::train(&tape, 0);
//!     let loss = model.forward(&cx, &cx.input(x.clone())).sum();
//!     let grads = cx.param_grads(&loss.backward_leaves());
//!     let report = tape.memory_report();
//!     let flat: Vec<f32> = model.parameters().iter().flat_map(|p| grads.wrt(p).to_vec()).collect();
//!     (flat, report.total_bytes)
//! };
//! let ((g_plain, kept_plain), (g_checkpointed, kept)) = (grads(&plain), grads(&checkpointed));
//! assert_eq!(g_checkpointed, g_plain);
//! assert!(kept < kept_plain / 2);
//! ```
//!
//! **Parameters** are found, not passed: a segment's are its module's `parameters()`,
//! bound on the step's tape and given to the segment as inputs, so they receive their
//! gradients exactly as without checkpointing. A module whose `forward` binds a parameter
//! its `named_parameters` does not list is an error at that `cx.param` call.
//!
//! **Randomness** ([`Dropout`](crate::Dropout), [`StochasticDepth`](crate::StochasticDepth))
//! draws from the step's generator ([`Ctx::rng`]) as without checkpointing: a segment
//! starts from a copy of its state, and the step's generator continues from where the
//! segment left it. The recomputation starts from the same copy, so it draws the same
//! masks.
//!
//! **Buffers** (batch norm's running statistics) are updated once, by the first run: a
//! recomputation puts them back as it found them. A module with other side effects reads
//! [`Ctx::is_recomputing`].
//!
//! The segment's closure must be `Send + Sync + 'static` (the tape keeps it until
//! backward): [`Checkpoint`] and [`Segmented`] hold their module behind an `Arc`, and
//! require it to be `Send + Sync`.

use crate::buffer::Buffer;
use crate::module::{Ctx, Module, chain, or_panic};
use crate::param::Param;
use crate::sequential::Sequential;
use crate::stack::Stack;
use autograd::rand::rngs::StdRng;
use autograd::{Caller, Element, Error, Result, Var};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How a [`Ctx`] runs inside a checkpointed segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentScope {
    /// Whether this run is a recomputation (in backward, or inside one).
    pub recomputing: bool,
}

/// Runs one module as a checkpointed segment: its activations are recomputed in backward
/// instead of kept. Parameters and buffers keep the module's names (no prefix).
///
/// ```
/// use autograd::{Tape, Tensor, seeded_rng};
/// use nn::{Checkpoint, Ctx, Init, Module, ResidualBlock};
///
/// let block = Checkpoint::new(ResidualBlock::<f64>::new(4, Init::he(), &mut seeded_rng(0)));
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let y = block.forward(&cx, &cx.input(Tensor::ones(&[2, 4])));
/// // One node for the block (and its four parameters, bound as its inputs).
/// assert_eq!(tape.op_names(), ["leaf", "leaf", "leaf", "leaf", "checkpoint"]);
/// let grads = cx.param_grads(&y.sum().backward());
/// assert_eq!(grads.len(), 4);
/// assert_eq!(block.named_parameters()[0].0, "linear1.weight");
/// ```
pub struct Checkpoint<M> {
    inner: Arc<M>,
}

impl<M> Checkpoint<M> {
    /// Wraps `module`.
    pub fn new(module: M) -> Self {
        Checkpoint {
            inner: Arc::new(module),
        }
    }

    /// The wrapped module.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<T: Element, M: Module<T> + 'static> Module<T> for Checkpoint<M> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The module's forward pass as a checkpointed segment; its error (found when the
    /// segment first runs) names the line that called this method.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let at = Caller::here();
        let module = Arc::clone(&self.inner);
        let buffers = self.inner.named_buffers().into_iter().map(|(_, b)| b);
        run_segment(cx, x, &self.inner.parameters(), buffers.collect(), {
            move |cx, x| module.try_forward(cx, x)
        })
        .map_err(|e| e.with_caller(at))
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        self.inner.named_parameters()
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        self.inner.named_buffers()
    }
}

/// A [`Stack`] (or a [`Sequential`]) run in checkpointed segments of `layers_per_segment`
/// consecutive layers (the last one may be shorter): "checkpoint every k blocks". As a
/// module it has the stack's parameter names and computes the same values and gradients.
///
/// Make one with [`Stack::checkpoint_every`] or [`Stack::checkpoint_sqrt`] (and the same
/// methods of [`Sequential`]).
pub struct Segmented<L: ?Sized> {
    stack: Arc<Stack<L>>,
    layers_per_segment: usize,
    /// The container its errors name: `"Stack"` or `"Sequential"`.
    container: &'static str,
}

impl<L: ?Sized> Segmented<L> {
    /// `stack` in segments of `layers_per_segment` layers.
    ///
    /// # Panics
    /// If `layers_per_segment` is 0; see [`Segmented::try_new`].
    #[track_caller]
    pub fn new(stack: Stack<L>, layers_per_segment: usize) -> Self {
        Self::try_new(stack, layers_per_segment).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Segmented::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(stack: Stack<L>, layers_per_segment: usize) -> Result<Self> {
        if layers_per_segment == 0 {
            return Err(Error::InvalidArgument {
                op: "checkpoint_every",
                reason: "a segment holds at least one layer, got 0".into(),
                at: Caller::here(),
            });
        }
        Ok(Segmented {
            stack: Arc::new(stack),
            layers_per_segment,
            container: "Stack",
        })
    }

    /// The stack.
    pub fn stack(&self) -> &Stack<L> {
        &self.stack
    }

    /// Layers per segment.
    pub fn layers_per_segment(&self) -> usize {
        self.layers_per_segment
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.stack.len().div_ceil(self.layers_per_segment)
    }
}

impl<L: ?Sized> Stack<L> {
    /// This stack in checkpointed segments of `k` layers (see [`Segmented`]); `k = 1`
    /// checkpoints every layer.
    ///
    /// # Panics
    /// If `k` is 0.
    #[track_caller]
    pub fn checkpoint_every(self, k: usize) -> Segmented<L> {
        Segmented::new(self, k)
    }

    /// This stack in ⌈√N⌉-layer segments: the memory of a training step grows as √N.
    ///
    /// ```
    /// use autograd::seeded_rng;
    /// use nn::{Init, ResidualBlock, Stack};
    /// let mut rng = seeded_rng(0);
    /// let stack: Stack<ResidualBlock<f32>> =
    ///     (0..64).map(|_| Box::new(ResidualBlock::new(4, Init::he(), &mut rng))).collect();
    /// let segmented = stack.checkpoint_sqrt();
    /// assert_eq!((segmented.layers_per_segment(), segmented.segments()), (8, 8));
    /// ```
    pub fn checkpoint_sqrt(self) -> Segmented<L> {
        let k = sqrt_segment(self.len());
        Segmented::new(self, k)
    }
}

impl<T: Element> Sequential<T> {
    /// These modules in checkpointed segments of `k` (see [`Segmented`]; parameter names
    /// and errors stay the `Sequential`'s).
    ///
    /// # Panics
    /// If `k` is 0.
    #[track_caller]
    pub fn checkpoint_every(self, k: usize) -> Segmented<dyn Module<T>> {
        let stack = Stack {
            layers: self.layers,
        };
        Segmented {
            container: "Sequential",
            ..Segmented::new(stack, k)
        }
    }

    /// These modules in ⌈√N⌉-module segments (see [`Stack::checkpoint_sqrt`]).
    pub fn checkpoint_sqrt(self) -> Segmented<dyn Module<T>> {
        let k = sqrt_segment(self.len());
        self.checkpoint_every(k)
    }
}

/// ⌈√n⌉, at least 1: the segment length that balances the segments' inputs kept against
/// one segment's activations during its recomputation.
pub fn sqrt_segment(n: usize) -> usize {
    let mut k = (n as f64).sqrt() as usize;
    while k * k < n {
        k += 1;
    }
    k.max(1)
}

impl<T: Element, L: Module<T> + ?Sized + 'static> Module<T> for Segmented<L> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The layers, segment by segment. A layer's error is the container's
    /// ([`Error::InLayer`]: `"Stack layer 5 (…): …"`), naming the line that called this
    /// method.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let at = Caller::here();
        let n = self.stack.len();
        let mut h = x.clone();
        for start in (0..n).step_by(self.layers_per_segment) {
            let range = start..(start + self.layers_per_segment).min(n);
            let layers = || self.stack.layers[range.clone()].iter().map(|l| l.as_ref());
            let params: Vec<Param<T>> = layers().flat_map(|l| l.parameters()).collect();
            let buffers = layers().flat_map(|l| l.named_buffers().into_iter().map(|(_, b)| b));
            let (stack, container) = (Arc::clone(&self.stack), self.container);
            let result = run_segment(cx, &h, &params, buffers.collect(), move |cx, x| {
                let layers = stack.layers[range.clone()].iter().map(|l| l.as_ref());
                chain::try_forward(container, layers, cx, x)
            });
            h = result.map_err(|e| layer_of_stack(e, start).with_caller(at))?;
        }
        Ok(h)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        self.stack.named_parameters()
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        self.stack.named_buffers()
    }
}

/// A segment's layer error, with the layer's index in the whole stack (the segment's
/// first layer is layer `start`).
fn layer_of_stack(e: Error, start: usize) -> Error {
    match e {
        Error::InLayer {
            container,
            index,
            layer,
            error,
        } => Error::InLayer {
            container,
            index: start + index,
            layer,
            error,
        },
        e => e,
    }
}

/// What the runs of one segment share.
struct Runs {
    /// Runs so far (the first is the forward pass; the others recompute it).
    count: usize,
    /// The step's generator where the segment starts, for the recomputations; `None` once
    /// the first run showed that the segment draws nothing (then any generator will do).
    /// Boxed, as is `rng_after`: a segment that draws nothing keeps no generator.
    rng_at_entry: Option<Box<StdRng>>,
    /// Where the first run left the generator, until the step's context takes it back.
    rng_after: Option<Box<StdRng>>,
    /// The error of the first run, until the step's context takes it back.
    error: Option<Error>,
}

/// Runs `body` on `x` as a checkpointed segment of `cx`'s tape, with `params` bound as its
/// inputs, the step's random state carried through, and `buffers` put back after a
/// recomputation. An error of `body` is found in the forward pass, when the segment first
/// runs, and returned.
fn run_segment<'t, T, F>(
    cx: &Ctx<'t, T>,
    x: &Var<'t, T>,
    params: &[Param<T>],
    buffers: Vec<Buffer<T>>,
    body: F,
) -> Result<Var<'t, T>>
where
    T: Element,
    F: for<'s> Fn(&Ctx<'s, T>, &Var<'s, T>) -> Result<Var<'s, T>> + Send + Sync + 'static,
{
    let bound: Vec<Var<'t, T>> = params.iter().map(|p| cx.param(p)).collect();
    let inputs: Vec<&Var<'t, T>> = std::iter::once(x).chain(&bound).collect();
    let handles: Vec<Param<T>> = params.to_vec();
    let (training, recomputing) = (cx.is_training(), cx.is_recomputing());
    let runs = Arc::new(Mutex::new(Runs {
        count: 0,
        rng_at_entry: Some(Box::new(cx.rng().clone())),
        rng_after: None,
        error: None,
    }));
    let shared = Arc::clone(&runs);
    let y = cx.tape().checkpoint_slice(&inputs, move |given| {
        let (x, params) = given
            .split_first()
            .expect("the segment's input comes first");
        let (first, rng) = {
            let runs = lock(&shared);
            let rng = runs.rng_at_entry.as_deref().cloned();
            (
                runs.count == 0,
                rng.unwrap_or_else(|| autograd::seeded_rng(0)),
            )
        };
        let recomputing = recomputing || !first;
        let kept = recomputing.then(|| buffers.iter().map(Buffer::snapshot).collect::<Vec<_>>());
        let bound: Vec<(Param<T>, Var<'_, T>)> = handles
            .iter()
            .cloned()
            .zip(params.iter().cloned())
            .collect();
        let scope = SegmentScope { recomputing };
        let scx = Ctx::for_segment(x.tape(), training, rng, bound, scope);
        let y = body(&scx, x);
        for (buffer, snapshot) in buffers.iter().zip(kept.iter().flatten()) {
            buffer.restore(snapshot);
        }
        let mut runs = lock(&shared);
        runs.count += 1;
        if !first {
            // The first run succeeded, and a recomputation computes the same.
            return or_panic(y);
        }
        let after = scx.rng().clone();
        if runs.rng_at_entry.as_deref() == Some(&after) {
            runs.rng_at_entry = None;
        } else {
            runs.rng_after = Some(Box::new(after));
        }
        y.unwrap_or_else(|e| {
            runs.error = Some(e);
            x.clone() // a stand-in: the caller returns the error, not this value
        })
    });
    let mut runs = lock(&runs);
    if let Some(rng) = runs.rng_after.take() {
        *cx.rng() = *rng;
    }
    match runs.error.take() {
        Some(e) => Err(e),
        None => Ok(y),
    }
}

/// The runs of a segment. A panic inside a run leaves nothing half-updated in them, so a
/// poisoned lock is used as it is.
fn lock(runs: &Mutex<Runs>) -> MutexGuard<'_, Runs> {
    runs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The message of a parameter bound inside a segment that is not one of its parameters.
#[track_caller]
pub(crate) fn unlisted_param<T: Element>(p: &Param<T>) -> String {
    format!(
        "Ctx::param: {p:?} is used inside a checkpointed segment but is not one of its \
         parameters: the checkpointed module's named_parameters() must list every parameter \
         its forward pass binds (at {})",
        Caller::here()
    )
}
