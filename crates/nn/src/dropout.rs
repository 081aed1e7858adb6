//! Random regularisers that act only in training: dropout (Srivastava et al. 2014) and
//! stochastic depth (Huang et al. 2016).
//!
//! Both draw from the step's seeded random source ([`Ctx::rng`]), so a step is reproducible
//! from its seed, and both read the mode from the context: the same model trains with
//! [`Ctx::train`] and evaluates with [`Ctx::eval`].

use crate::activation::Activation;
use crate::buffer::Buffer;
use crate::module::{Ctx, Module, at_caller, or_panic};
use crate::param::Param;
use crate::residual::ResidualUnit;
use autograd::rand::Rng;
use autograd::{Caller, Element, Error, Result, Tensor, Var};
use std::marker::PhantomData;

#[track_caller]
fn check_probability(op: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            reason: format!("the drop probability must be in [0, 1], got {p}"),
            at: Caller::here(),
        })
    }
}

/// Inverted dropout: in training each element is zeroed with probability `p` and the
/// survivors are scaled by 1/(1 − p), so the expected output equals the input; in
/// evaluation the layer is the identity.
///
/// ```
/// use nn::{Ctx, Dropout, Module};
/// use autograd::{Tape, Tensor};
///
/// let dropout = Dropout::new(0.5);
/// let tape = Tape::<f64>::new();
/// let x = Tensor::ones(&[1000]);
/// let train = Ctx::train(&tape, 7);
/// let y = dropout.forward(&train, &train.input(x.clone()));
/// assert!(y.value().data().iter().all(|&v| v == 0.0 || v == 2.0));
/// let eval = Ctx::eval(&tape);
/// assert_eq!(dropout.forward(&eval, &eval.input(x.clone())).value(), &x);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f64,
}

impl Dropout {
    /// Dropout with drop probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    #[track_caller]
    pub fn new(p: f64) -> Self {
        Self::try_new(p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Dropout::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(p: f64) -> Result<Self> {
        check_probability("Dropout", p)?;
        Ok(Dropout { p })
    }

    /// The mask for one call: 0 with probability `p`, 1/(1 − p) otherwise (all zeros for
    /// `p = 1`).
    fn mask<T: Element>(&self, shape: &[usize], rng: &mut impl Rng) -> Tensor<T> {
        let keep = if self.p < 1.0 {
            T::of(1.0 / (1.0 - self.p))
        } else {
            T::zero()
        };
        Tensor::from_fn(shape, |_| {
            if rng.random::<f64>() < self.p {
                T::zero()
            } else {
                keep
            }
        })
    }
}

impl<T: Element> Module<T> for Dropout {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        if !cx.is_training() || self.p == 0.0 {
            return x.clone();
        }
        let mask = self.mask(x.shape(), &mut *cx.rng());
        x * &cx.input(mask)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}

/// Stochastic depth around a residual block: in training the block's branch is dropped
/// with probability `p` — the block becomes `σ(S(x))` — and otherwise the block runs as
/// usual; in evaluation the branch is scaled by its survival probability,
/// `σ(S(x) + (1 − p)·F(x))`, so each block contributes its expected value.
///
/// It is itself a [`ResidualUnit`] with the same shortcut and post-activation, whose branch
/// is the (scaled or sampled) branch above. Parameters keep the block's names (no prefix).
pub struct StochasticDepth<U, T: Element = f32> {
    /// The wrapped block.
    pub block: U,
    /// Probability of dropping the branch in a training step.
    pub p: f64,
    _element: PhantomData<T>,
}

impl<T: Element, U: ResidualUnit<T>> StochasticDepth<U, T> {
    /// Wraps `block`, dropping its branch with probability `p`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1]`.
    #[track_caller]
    pub fn new(block: U, p: f64) -> Self {
        Self::try_new(block, p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`StochasticDepth::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(block: U, p: f64) -> Result<Self> {
        check_probability("StochasticDepth", p)?;
        Ok(StochasticDepth {
            block,
            p,
            _element: PhantomData,
        })
    }

    /// Survival probability 1 − p.
    pub fn survival(&self) -> f64 {
        1.0 - self.p
    }

    /// Draws whether this training step drops the branch.
    fn drops_branch(&self, cx: &Ctx<'_, T>) -> bool {
        cx.rng().random::<f64>() < self.p
    }

    fn activate<'t>(&self, h: Var<'t, T>) -> Var<'t, T> {
        match self.block.post_activation() {
            Some(a) => a.apply(&h),
            None => h,
        }
    }
}

impl<T: Element, U: ResidualUnit<T>> Module<T> for StochasticDepth<U, T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// In training the block, or the block without its branch (one draw per call); in
    /// evaluation `σ(S(x) + (1 − p)·F(x))`. An error (naming the caller's line) where the
    /// block refuses `x`.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            if cx.is_training() {
                if self.drops_branch(cx) {
                    self.block.try_forward_without_branch(cx, x)
                } else {
                    self.block.try_forward(cx, x)
                }
            } else {
                let scaled = self.block.try_branch(cx, x)? * T::of(self.survival());
                Ok(self.activate(self.block.try_shortcut(cx, x)?.try_add(&scaled)?))
            }
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        self.block.named_parameters()
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        self.block.named_buffers()
    }
}

impl<T: Element, U: ResidualUnit<T>> ResidualUnit<T> for StochasticDepth<U, T> {
    /// In evaluation `(1 − p)·F(x)`; in training `F(x)` or `0·F(x)`, drawn afresh (a call
    /// to `branch` and a call to `forward` make independent draws).
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let f = self.block.try_branch(cx, x)?;
        Ok(if !cx.is_training() {
            f * T::of(self.survival())
        } else if self.drops_branch(cx) {
            f * T::zero()
        } else {
            f
        })
    }

    fn try_shortcut<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.block.try_shortcut(cx, x)
    }

    fn post_activation(&self) -> Option<Activation> {
        self.block.post_activation()
    }

    fn try_forward_without_branch<'t>(
        &self,
        cx: &Ctx<'t, T>,
        x: &Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        self.block.try_forward_without_branch(cx, x)
    }
}
