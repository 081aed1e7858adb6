//! Residual blocks, written as forward passes only.

use crate::activation::{Activation, Relu};
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Ctx, Module, at_caller, or_panic, prefixed};
use crate::param::Param;
use autograd::rand::Rng;
use autograd::{Element, Result, Var};

/// A block of the form `σ(F(x) + S(x))`: a branch `F`, a shortcut `S` (the identity, or a
/// learnable projection when widths differ) and an optional activation `σ` after the sum.
///
/// Every residual block implements it, which lets analyses take a block apart: the
/// unraveled view (gradient per path length) needs the branch alone, lesioning replaces
/// `F(x)` by 0.
pub trait ResidualUnit<T: Element = f32>: Module<T> {
    /// The residual branch F(x), or an error (a shape the branch's layers refuse).
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>>;

    /// The residual branch F(x).
    ///
    /// # Panics
    /// Where [`ResidualUnit::try_branch`] returns an error, with its message.
    #[track_caller]
    fn branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_branch(cx, x))
    }

    /// The shortcut S(x): the identity unless the block projects (an error if the
    /// projection refuses `x`).
    fn try_shortcut<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        Ok(x.clone())
    }

    /// The shortcut S(x).
    ///
    /// # Panics
    /// Where [`ResidualUnit::try_shortcut`] returns an error, with its message.
    #[track_caller]
    fn shortcut<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_shortcut(cx, x))
    }

    /// The activation applied after the addition, if any.
    fn post_activation(&self) -> Option<Activation>;

    /// The block with its branch removed (a lesion): `σ(S(x))`, or the shortcut's error.
    fn try_forward_without_branch<'t>(
        &self,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        let s = self.try_shortcut(cx, x)?;
        Ok(match self.post_activation() {
            Some(a) => a.apply(&s),
            None => s,
        })
    }

    /// The block with its branch removed (a lesion): `σ(S(x))`.
    ///
    /// # Panics
    /// Where [`ResidualUnit::try_forward_without_branch`] returns an error, with its
    /// message.
    #[track_caller]
    fn forward_without_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward_without_branch(cx, x))
    }
}

/// The notebook's residual block: H(x) = σ(F(x) + x), with F = Linear → ReLU → Linear and
/// the final ReLU applied after the addition.
///
/// Its backward is not written anywhere: the `+ x` in `forward` records an add node whose
/// gradient flows to both the branch and the skip, and the tape sums them at `x`.
pub struct ResidualBlock<T: Element = f32> {
    /// First layer of the branch F.
    pub linear1: Linear<T>,
    /// Activation inside the branch.
    pub relu1: Relu,
    /// Second layer of the branch F.
    pub linear2: Linear<T>,
    /// Activation after the addition.
    pub relu2: Relu,
}

impl<T: Element> ResidualBlock<T> {
    /// A block of width `n_features` (both layers `n_features → n_features`).
    pub fn new(n_features: usize, init: Init, rng: &mut impl Rng) -> Self {
        ResidualBlock {
            linear1: Linear::with_init(n_features, n_features, true, init, rng),
            relu1: Relu,
            linear2: Linear::with_init(n_features, n_features, true, init, rng),
            relu2: Relu,
        }
    }

    /// A block from two existing layers.
    pub fn from_layers(linear1: Linear<T>, linear2: Linear<T>) -> Self {
        ResidualBlock {
            linear1,
            relu1: Relu,
            linear2,
            relu2: Relu,
        }
    }
}

impl<T: Element> Module<T> for ResidualBlock<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The notebook's `forward`; an error (naming the caller's line) if `x` is not
    /// `[…, n_features]`.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            // Pass the input through all layers of the branch …
            let out = self.linear1.try_forward(cx, x)?;
            let out = self.relu1.forward(cx, &out);
            let out = self.linear2.try_forward(cx, &out)?;
            // … combine with the input (the skip connection) …
            let out = &out + x;
            // … and apply the final activation after the addition.
            Ok(self.relu2.forward(cx, &out))
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        v
    }
}

impl<T: Element> ResidualUnit<T> for ResidualBlock<T> {
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let out = self.linear1.try_forward(cx, x)?;
        let out = self.relu1.forward(cx, &out);
        self.linear2.try_forward(cx, &out)
    }

    fn post_activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}

/// The notebook's block when input and output widths differ: the shortcut is a learnable
/// `Linear` (no bias) that maps `x` to the branch's width, H(x) = ReLU(F(x) + P·x).
pub struct ProjectionBlock<T: Element = f32> {
    /// Branch layer `in → out`.
    pub linear1: Linear<T>,
    /// Activation inside the branch.
    pub relu1: Relu,
    /// Branch layer `out → out`.
    pub linear2: Linear<T>,
    /// The shortcut's projection `in → out`, without bias.
    pub projection: Linear<T>,
    /// Activation after the addition.
    pub relu2: Relu,
}

impl<T: Element> ProjectionBlock<T> {
    /// A block mapping width `in_features` to `out_features`.
    pub fn new(in_features: usize, out_features: usize, init: Init, rng: &mut impl Rng) -> Self {
        ProjectionBlock {
            linear1: Linear::with_init(in_features, out_features, true, init, rng),
            relu1: Relu,
            linear2: Linear::with_init(out_features, out_features, true, init, rng),
            projection: Linear::with_init(in_features, out_features, false, init, rng),
            relu2: Relu,
        }
    }
}

impl<T: Element> Module<T> for ProjectionBlock<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// `ReLU(F(x) + P·x)`; an error (naming the caller's line) if `x` is not
    /// `[…, in_features]`.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let out = &self.try_branch(cx, x)? + &self.projection.try_forward(cx, x)?;
            Ok(self.relu2.forward(cx, &out))
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        v.extend(prefixed("projection", self.projection.named_parameters()));
        v
    }
}

impl<T: Element> ResidualUnit<T> for ProjectionBlock<T> {
    /// The branch F(x) = Linear → ReLU → Linear.
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let out = self.linear1.try_forward(cx, x)?;
        let out = self.relu1.forward(cx, &out);
        self.linear2.try_forward(cx, &out)
    }

    fn try_shortcut<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.projection.try_forward(cx, x)
    }

    fn post_activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}
