//! One call builds each MLP the tutorial compares: plain or residual, any depth, width,
//! activation, initialisation and normalisation, with or without a branch scale and
//! zero-initialised branches.
//!
//! Both kinds have the same outer shape, so that they differ only in their hidden units:
//!
//! ```text
//! plain:     x → input Linear → [Linear → (norm) → σ] × depth → output Linear
//! residual:  x → input Linear → [σ(s·F(h) + h)]     × depth → output Linear
//!            F = Linear → (norm) → σ → Linear → (norm)
//! ```
//!
//! With s = 1, no norm and ReLU, a residual unit is exactly the notebook's `ResidualBlock`.
//! The hidden units are kept individually ([`Mlp::hidden`]) because the tutorial measures
//! each one's gradient norm ‖∂L/∂θᵢ‖ ([`Mlp::hidden_parameters`]) and lesions single units
//! ([`Mlp::forward_with_lesions`]).
//!
//! ```
//! use nn::{Activation, Ctx, Init, MlpConfig, Module};
//! use autograd::{Tape, Tensor, seeded_rng};
//!
//! let net = MlpConfig::residual(2, 16, 3, 8)
//!     .activation(Activation::Relu)
//!     .init(Init::he())
//!     .branch_scale(Some(1.0 / 8f64.sqrt()))
//!     .build::<f64>(&mut seeded_rng(0));
//! assert_eq!(net.depth(), 8);
//! let tape = Tape::new();
//! let cx = Ctx::eval(&tape);
//! let x = cx.input(Tensor::ones(&[5, 2]));
//! assert_eq!(net.forward(&cx, &x).shape(), &[5, 3]);
//! // Block 3 without its branch: the rest of the network is unchanged.
//! let lesioned = net.forward_with_lesions(&cx, &x, &[3]);
//! assert_eq!(lesioned.shape(), &[5, 3]);
//! ```

use crate::activation::Activation;
use crate::buffer::Buffer;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Ctx, Module, at_caller, or_panic, prefixed};
use crate::norm::{NormLayer, Normalization};
use crate::param::Param;
use crate::residual::ResidualUnit;
use crate::residual_variants::Residual;
use crate::residual_variants::maybe_norm;
use autograd::rand::Rng;
use autograd::{Element, Result, Tensor, Var};

/// Whether the hidden units have skip connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Hidden layers `Linear → (norm) → σ`, one after another.
    Plain,
    /// Hidden blocks `σ(s·F(h) + h)`.
    Residual,
}

/// The recipe of an [`Mlp`]; see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Plain or residual.
    pub architecture: Architecture,
    /// Input width.
    pub in_dim: usize,
    /// Width of every hidden unit.
    pub width: usize,
    /// Output width.
    pub out_dim: usize,
    /// Number of hidden layers (plain) or blocks (residual).
    pub depth: usize,
    /// The nonlinearity σ.
    pub activation: Activation,
    /// Initialisation of every `Linear` (the input and output layers included).
    pub init: Init,
    /// Normalisation inside each hidden unit.
    pub norm: Normalization,
    /// Residual only: the branch scale s (`None` for 1), e.g. `Some(1/√depth)`.
    pub branch_scale: Option<f64>,
    /// Residual only: whether the last layer of every branch starts at zero, so every
    /// block starts as `σ(h)`. The last layer is the branch's second `Linear`, or the
    /// normalisation after it (γ = 0, as Goyal et al. 2017) when there is one.
    pub zero_init_last: bool,
}

impl MlpConfig {
    fn new(architecture: Architecture, in_dim: usize, width: usize, out_dim: usize) -> Self {
        MlpConfig {
            architecture,
            in_dim,
            width,
            out_dim,
            depth: 1,
            activation: Activation::Relu,
            init: Init::PyTorchDefault,
            norm: Normalization::None,
            branch_scale: None,
            zero_init_last: false,
        }
    }

    /// A plain MLP `in_dim → width → … → out_dim` with `depth` hidden layers, ReLU,
    /// PyTorch's default initialisation and no normalisation.
    pub fn plain(in_dim: usize, width: usize, out_dim: usize, depth: usize) -> Self {
        MlpConfig {
            depth,
            ..Self::new(Architecture::Plain, in_dim, width, out_dim)
        }
    }

    /// A residual MLP with `depth` blocks of width `width`, ReLU, PyTorch's default
    /// initialisation, no normalisation, no branch scale.
    pub fn residual(in_dim: usize, width: usize, out_dim: usize, depth: usize) -> Self {
        MlpConfig {
            depth,
            ..Self::new(Architecture::Residual, in_dim, width, out_dim)
        }
    }

    /// With this activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// With this initialisation.
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// With this normalisation inside every hidden unit.
    pub fn norm(mut self, norm: Normalization) -> Self {
        self.norm = norm;
        self
    }

    /// With this branch scale (residual only).
    pub fn branch_scale(mut self, scale: Option<f64>) -> Self {
        self.branch_scale = scale;
        self
    }

    /// With (or without) zero-initialised last layers of the branches (residual only).
    pub fn zero_init_last(mut self, zero: bool) -> Self {
        self.zero_init_last = zero;
        self
    }

    /// Draws the network's weights from `rng`.
    pub fn build<T: Element>(&self, rng: &mut impl Rng) -> Mlp<T> {
        let linear = |i, o, rng: &mut _| Linear::with_init(i, o, true, self.init, rng);
        let input = linear(self.in_dim, self.width, rng);
        let hidden = (0..self.depth)
            .map(|_| match self.architecture {
                Architecture::Plain => HiddenUnit::Plain(PlainLayer {
                    linear: linear(self.width, self.width, rng),
                    norm: self.norm.layer(self.width),
                    activation: self.activation,
                }),
                Architecture::Residual => HiddenUnit::Residual(self.residual_block(rng)),
            })
            .collect();
        let output = linear(self.width, self.out_dim, rng);
        Mlp {
            input,
            hidden,
            output,
        }
    }

    fn residual_block<T: Element>(&self, rng: &mut impl Rng) -> Residual<Branch<T>, T> {
        let w = self.width;
        let branch = Branch {
            linear1: Linear::with_init(w, w, true, self.init, rng),
            norm1: self.norm.layer(w),
            activation: self.activation,
            linear2: Linear::with_init(w, w, true, self.init, rng),
            norm2: self.norm.layer(w),
        };
        if self.zero_init_last {
            match &branch.norm2 {
                Some(norm) => norm.weight().set(Tensor::zeros(&[w])),
                None => {
                    branch.linear2.weight.set(Tensor::zeros(&[w, w]));
                    if let Some(b) = &branch.linear2.bias {
                        b.set(Tensor::zeros(&[w]));
                    }
                }
            }
        }
        let block = Residual::new(branch).with_activation(self.activation);
        match self.branch_scale {
            Some(s) => block.with_scale(s),
            None => block,
        }
    }
}

/// A plain hidden layer: `σ(norm(Linear(h)))`.
pub struct PlainLayer<T: Element = f32> {
    /// The layer's weights.
    pub linear: Linear<T>,
    /// Normalisation before the activation, if any.
    pub norm: Option<NormLayer<T>>,
    /// The activation.
    pub activation: Activation,
}

impl<T: Element> Module<T> for PlainLayer<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let out = self.linear.try_forward(cx, x)?;
            let out = maybe_norm(&self.norm, cx, &out)?;
            Ok(self.activation.apply(&out))
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("linear", self.linear.named_parameters());
        if let Some(n) = &self.norm {
            v.extend(prefixed("norm", n.named_parameters()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        self.norm
            .as_ref()
            .map(|n| prefixed("norm", n.named_buffers()))
            .unwrap_or_default()
    }
}

/// The residual branch F of the builder's blocks: `Linear → (norm) → σ → Linear → (norm)`.
pub struct Branch<T: Element = f32> {
    /// First layer.
    pub linear1: Linear<T>,
    /// Normalisation after the first layer, if any.
    pub norm1: Option<NormLayer<T>>,
    /// The activation inside the branch.
    pub activation: Activation,
    /// Second layer.
    pub linear2: Linear<T>,
    /// Normalisation after the second layer, if any.
    pub norm2: Option<NormLayer<T>>,
}

impl<T: Element> Module<T> for Branch<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let out = maybe_norm(&self.norm1, cx, &self.linear1.try_forward(cx, x)?)?;
            let out = self.activation.apply(&out);
            maybe_norm(&self.norm2, cx, &self.linear2.try_forward(cx, &out)?)
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        if let Some(n) = &self.norm1 {
            v.extend(prefixed("norm1", n.named_parameters()));
        }
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        if let Some(n) = &self.norm2 {
            v.extend(prefixed("norm2", n.named_parameters()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        let mut v = Vec::new();
        if let Some(n) = &self.norm1 {
            v.extend(prefixed("norm1", n.named_buffers()));
        }
        if let Some(n) = &self.norm2 {
            v.extend(prefixed("norm2", n.named_buffers()));
        }
        v
    }
}

/// One hidden unit of an [`Mlp`].
pub enum HiddenUnit<T: Element = f32> {
    /// A plain layer.
    Plain(PlainLayer<T>),
    /// A residual block.
    Residual(Residual<Branch<T>, T>),
}

impl<T: Element> HiddenUnit<T> {
    /// The unit as a residual block, if it is one (for analyses that take blocks apart).
    pub fn as_residual_unit(&self) -> Option<&dyn ResidualUnit<T>> {
        match self {
            HiddenUnit::Plain(_) => None,
            HiddenUnit::Residual(r) => Some(r),
        }
    }

    /// The unit lesioned: a plain layer becomes the identity, a residual block loses its
    /// branch (`σ(h)`).
    pub fn forward_lesioned<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        match self {
            HiddenUnit::Plain(_) => x.clone(),
            HiddenUnit::Residual(r) => r.forward_without_branch(cx, x),
        }
    }
}

impl<T: Element> Module<T> for HiddenUnit<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        match self {
            HiddenUnit::Plain(l) => l.try_forward(cx, x),
            HiddenUnit::Residual(r) => r.try_forward(cx, x),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        match self {
            HiddenUnit::Plain(l) => l.named_parameters(),
            HiddenUnit::Residual(r) => r.named_parameters(),
        }
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        match self {
            HiddenUnit::Plain(l) => l.named_buffers(),
            HiddenUnit::Residual(r) => r.named_buffers(),
        }
    }
}

/// A network built by [`MlpConfig::build`]: input layer, hidden units, output layer.
///
/// Parameter names: `input.weight`, `hidden.{i}.…`, `output.weight`, as a PyTorch module
/// with `input`, `hidden` (a `ModuleList`) and `output` would name them.
pub struct Mlp<T: Element = f32> {
    /// `in_dim → width`, no activation after it.
    pub input: Linear<T>,
    /// The hidden layers or blocks, first applied first.
    pub hidden: Vec<HiddenUnit<T>>,
    /// `width → out_dim`, no activation after it (logits or a regression output).
    pub output: Linear<T>,
}

impl<T: Element> Mlp<T> {
    /// Number of hidden units.
    pub fn depth(&self) -> usize {
        self.hidden.len()
    }

    /// The parameters of hidden unit `i` (θᵢ), named within the unit.
    ///
    /// # Panics
    /// If `i ≥ depth`.
    #[track_caller]
    pub fn hidden_parameters(&self, i: usize) -> Vec<(String, Param<T>)> {
        self.hidden[i].named_parameters()
    }

    /// The forward pass with the hidden units listed in `lesioned` removed: a plain layer
    /// is replaced by the identity, a residual block by `σ(h)` (its branch dropped).
    /// Indices beyond the depth are ignored.
    pub fn forward_with_lesions<'t>(
        &self,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
        lesioned: &[usize],
    ) -> Var<'t, T> {
        let mut h = self.input.forward(cx, x);
        for (i, unit) in self.hidden.iter().enumerate() {
            h = if lesioned.contains(&i) {
                unit.forward_lesioned(cx, &h)
            } else {
                unit.forward(cx, &h)
            };
        }
        self.output.forward(cx, &h)
    }

    /// The forward pass, also returning the representation after the input layer and after
    /// every hidden unit (`depth + 1` values `h₀ … h_depth`), e.g. to measure how the
    /// signal's scale evolves with depth.
    pub fn forward_with_states<'t>(
        &self,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
    ) -> (Var<'t, T>, Vec<Var<'t, T>>) {
        let mut states = vec![self.input.forward(cx, x)];
        for unit in &self.hidden {
            let next = unit.forward(cx, &states[states.len() - 1]);
            states.push(next);
        }
        let out = self.output.forward(cx, &states[states.len() - 1]);
        (out, states)
    }
}

impl<T: Element> Module<T> for Mlp<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The network; an error (naming the caller's line) if `x` is not `[N, in_dim]`.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let mut h = self.input.try_forward(cx, x)?;
            for unit in &self.hidden {
                h = unit.try_forward(cx, &h)?;
            }
            self.output.try_forward(cx, &h)
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("input", self.input.named_parameters());
        for (i, unit) in self.hidden.iter().enumerate() {
            v.extend(prefixed(&format!("hidden.{i}"), unit.named_parameters()));
        }
        v.extend(prefixed("output", self.output.named_parameters()));
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        self.hidden
            .iter()
            .enumerate()
            .flat_map(|(i, unit)| prefixed(&format!("hidden.{i}"), unit.named_buffers()))
            .collect()
    }
}
