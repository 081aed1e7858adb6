//! Residual variants beyond the notebook's block: a generic wrapper that makes any module a
//! residual branch, and the pre-activation block of He et al. 2016.

use crate::activation::Activation;
use crate::buffer::Buffer;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Ctx, Module, at_caller, or_panic, prefixed};
use crate::norm::{NormLayer, Normalization};
use crate::param::Param;
use crate::residual::ResidualUnit;
use autograd::rand::Rng;
use autograd::{Element, Result, Var};

/// Any module `M` made residual: `σ(S(x) + s·M(x))`, with the shortcut `S` the identity or
/// a projection (`Linear` without bias, when `M` changes the width), an optional activation
/// `σ` after the sum, and an optional branch scale `s` (e.g. 1/√L for L blocks, which
/// keeps the variance of a deep stack bounded at initialisation).
///
/// Parameters are named `branch.…` and `projection.…`.
///
/// ```
/// use nn::{Activation, Ctx, Init, Linear, Module, Residual, Sequential};
/// use autograd::{Tape, Tensor, seeded_rng};
///
/// let mut rng = seeded_rng(0);
/// let branch = Sequential::new()
///     .push(Linear::<f64>::with_init(4, 4, true, Init::he(), &mut rng))
///     .push(Activation::Relu)
///     .push(Linear::with_init(4, 4, true, Init::he(), &mut rng));
/// let block = Residual::new(branch)
///     .with_activation(Activation::Relu)
///     .with_scale(0.5);
/// let tape = Tape::new();
/// let cx = Ctx::eval(&tape);
/// let y = block.forward(&cx, &cx.input(Tensor::ones(&[2, 4])));
/// assert_eq!(y.shape(), &[2, 4]);
/// assert_eq!(block.named_parameters()[0].0, "branch.0.weight");
/// ```
pub struct Residual<M, T: Element = f32> {
    /// The residual branch F.
    pub branch: M,
    /// The shortcut's projection, if the branch changes the width.
    pub projection: Option<Linear<T>>,
    /// The activation after the addition, if any.
    pub activation: Option<Activation>,
    /// The factor the branch is multiplied by, if any.
    pub scale: Option<f64>,
}

impl<T: Element, M: Module<T>> Residual<M, T> {
    /// `x + M(x)`: identity shortcut, no activation, no scale.
    pub fn new(branch: M) -> Self {
        Residual {
            branch,
            projection: None,
            activation: None,
            scale: None,
        }
    }

    /// With a projection shortcut `S(x) = P·x`.
    pub fn with_projection(mut self, projection: Linear<T>) -> Self {
        self.projection = Some(projection);
        self
    }

    /// With an activation after the addition.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = Some(activation);
        self
    }

    /// With the branch multiplied by `scale`.
    pub fn with_scale(mut self, scale: f64) -> Self {
        self.scale = Some(scale);
        self
    }
}

impl<T: Element, M: Module<T>> Module<T> for Residual<M, T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// `σ(S(x) + s·M(x))`; an error (naming the caller's line) if the branch or the
    /// projection refuses `x`, or if their outputs cannot be added.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let out = self
                .try_branch(cx, x)?
                .try_add(&self.try_shortcut(cx, x)?)?;
            Ok(match self.activation {
                Some(a) => a.apply(&out),
                None => out,
            })
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("branch", self.branch.named_parameters());
        if let Some(p) = &self.projection {
            v.extend(prefixed("projection", p.named_parameters()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        prefixed("branch", self.branch.named_buffers())
    }
}

impl<T: Element, M: Module<T>> ResidualUnit<T> for Residual<M, T> {
    /// `s·M(x)` (the scale belongs to the branch, so a lesion removes it all).
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let f = self.branch.try_forward(cx, x)?;
        Ok(match self.scale {
            Some(s) => f * T::of(s),
            None => f,
        })
    }

    /// `S(x)`: the identity, or the projection.
    fn try_shortcut<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        match &self.projection {
            Some(p) => p.try_forward(cx, x),
            None => Ok(x.clone()),
        }
    }

    fn post_activation(&self) -> Option<Activation> {
        self.activation
    }
}

/// The pre-activation block of He et al. 2016 ("Identity Mappings in Deep Residual
/// Networks"): `x + F(x)` with `F = norm → ReLU → Linear → norm → ReLU → Linear` and
/// nothing after the addition, so the shortcut path from input to output is a pure
/// identity through every block.
///
/// Parameters are named `norm1.…`, `linear1.…`, `norm2.…`, `linear2.…`.
pub struct PreActBlock<T: Element = f32> {
    /// Normalisation before the first activation, if any.
    pub norm1: Option<NormLayer<T>>,
    /// First layer of the branch.
    pub linear1: Linear<T>,
    /// Normalisation before the second activation, if any.
    pub norm2: Option<NormLayer<T>>,
    /// Second layer of the branch.
    pub linear2: Linear<T>,
}

impl<T: Element> PreActBlock<T> {
    /// A block of width `features` with the given normalisation and weight initialisation.
    pub fn new(features: usize, norm: Normalization, init: Init, rng: &mut impl Rng) -> Self {
        PreActBlock {
            norm1: norm.layer(features),
            linear1: Linear::with_init(features, features, true, init, rng),
            norm2: norm.layer(features),
            linear2: Linear::with_init(features, features, true, init, rng),
        }
    }
}

/// `norm(x)`, or `x` without a normalisation.
pub(crate) fn maybe_norm<'t, T: Element>(
    norm: &Option<NormLayer<T>>,
    cx: &Ctx<'t, T>,
    x: &Var<'t, T>,
) -> Result<Var<'t, T>> {
    match norm {
        Some(n) => n.try_forward(cx, x),
        None => Ok(x.clone()),
    }
}

impl<T: Element> Module<T> for PreActBlock<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// `x + F(x)`; an error (naming the caller's line) if `x` does not fit the block.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        // No activation after the addition: the identity path stays clean.
        at_caller(|| Ok(&self.try_branch(cx, x)? + x))
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = Vec::new();
        if let Some(n) = &self.norm1 {
            v.extend(prefixed("norm1", n.named_parameters()));
        }
        v.extend(prefixed("linear1", self.linear1.named_parameters()));
        if let Some(n) = &self.norm2 {
            v.extend(prefixed("norm2", n.named_parameters()));
        }
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
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

impl<T: Element> ResidualUnit<T> for PreActBlock<T> {
    /// The branch `norm → ReLU → Linear → norm → ReLU → Linear`.
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let out = maybe_norm(&self.norm1, cx, x)?.relu();
        let out = self.linear1.try_forward(cx, &out)?;
        let out = maybe_norm(&self.norm2, cx, &out)?.relu();
        self.linear2.try_forward(cx, &out)
    }

    fn post_activation(&self) -> Option<Activation> {
        None
    }
}
