//! Optimizers with PyTorch's exact update rules, and global gradient-norm clipping.
//!
//! An optimizer holds the [`Param`] handles it updates and its state per parameter (a
//! momentum buffer, Adam's moments), found by the parameter — never by the position of its
//! gradient — so a parameter that gets no gradient in a step is skipped without shifting
//! anyone's state (as PyTorch skips `grad is None`). A step updates each parameter's buffer
//! in place, in one pass over its elements, and allocates nothing after the first step
//! (which makes the state). The training loop:
//!
//! ```
//! use nn::{Init, Module, Optimizer, ResidualBlock, Sgd, loss};
//! use autograd::{Tensor, seeded_rng};
//!
//! let model = ResidualBlock::<f32>::new(8, Init::he(), &mut seeded_rng(0));
//! let mut opt = Sgd::new(model.parameters(), 0.05);
//! let (x, y) = (Tensor::ones(&[4, 8]), Tensor::zeros(&[4, 8]));
//! for step in 0..10 {
//!     let (loss, grads) = nn::value_and_grad(step, |cx| {
//!         let out = model.forward(cx, &cx.input(x.clone()));
//!         loss::mse(&out, &cx.input(y.clone()))
//!     });
//!     opt.step(&grads);
//!     println!("step {step}: loss {loss:.4}");
//! }
//! ```
//!
//! [`value_and_grad`](crate::value_and_grad) returns once the step's tape is gone, so no
//! tape shares a parameter's buffer when the step writes it. A step taken while a tape
//! still holds the parameters (a [`Ctx`](crate::Ctx) made by hand and still alive) is just
//! as right, but first copies each parameter the tape holds (copy-on-write).
//!
//! Bad settings are errors, never silent: a learning rate or hyperparameter that is NaN,
//! infinite or out of its range is refused by the constructors, the builders and
//! [`Optimizer::try_set_lr`]; a gradient whose shape is not its parameter's, or a parameter
//! whose shape changed since the optimizer made state for it, is refused by
//! [`Optimizer::try_step`] before anything is updated. Give the optimizer
//! `model.named_parameters()` instead of `model.parameters()` and those errors name the
//! parameter (`0.linear1.weight`) rather than its position.

use crate::param::{Param, ParamGrads};
use autograd::{Caller, Element, Error, Result, Tensor};
use std::collections::HashSet;

/// Updates parameters from their gradients.
pub trait Optimizer<T: Element = f32> {
    /// One update, in place, of every parameter of this optimizer that has a gradient in
    /// `grads` (the others are left alone).
    ///
    /// An error, with no parameter updated, if a gradient's shape is not its parameter's,
    /// if a parameter's shape changed since the optimizer made state for it (a momentum
    /// buffer, Adam's moments: make a new optimizer after reshaping), or if the settings
    /// contradict each other (Nesterov momentum without momentum).
    #[track_caller]
    fn try_step(&mut self, grads: &ParamGrads<T>) -> Result<()>;

    /// [`Optimizer::try_step`], panicking on its errors.
    ///
    /// # Panics
    /// Where [`Optimizer::try_step`] returns an error, with the same message.
    #[track_caller]
    fn step(&mut self, grads: &ParamGrads<T>) {
        self.try_step(grads).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The learning rate.
    fn lr(&self) -> f64;

    /// Changes the learning rate (for schedules): an error, leaving the rate unchanged, if
    /// it is negative, NaN or infinite.
    #[track_caller]
    fn try_set_lr(&mut self, lr: f64) -> Result<()>;

    /// [`Optimizer::try_set_lr`], panicking on its error.
    ///
    /// # Panics
    /// If `lr` is negative, NaN or infinite.
    #[track_caller]
    fn set_lr(&mut self, lr: f64) {
        self.try_set_lr(lr).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The parameters given to an optimizer: `model.parameters()` (a `Vec<Param>`) or
/// `model.named_parameters()` (a `Vec<(String, Param)>`), whose names the optimizer's
/// errors then use.
///
/// ```
/// use nn::{Linear, Module, Param, Sgd};
/// use autograd::{Error, Tensor, seeded_rng};
///
/// let layer = Linear::<f64>::new(2, 2, false, &mut seeded_rng(0));
/// let mut sgd = Sgd::new(layer.named_parameters(), 0.1).momentum(0.9);
/// let step = |sgd: &mut Sgd<f64>| {
///     let (_, grads) = nn::value_and_grad(0, |cx| {
///         layer.forward(cx, &cx.input(Tensor::ones(&[1, 2]))).sum()
///     });
///     nn::Optimizer::try_step(sgd, &grads)
/// };
/// step(&mut sgd).unwrap(); // makes the momentum buffer
/// layer.weight.set(Tensor::zeros(&[3, 2])); // a new shape under the optimizer
/// let e = step(&mut sgd).unwrap_err().to_string();
/// assert!(e.contains("`weight`") && e.contains("[2, 2]") && e.contains("[3, 2]"), "{e}");
/// ```
pub trait IntoParams<T: Element> {
    /// The parameters, each with its name when known.
    fn into_params(self) -> Vec<(Option<String>, Param<T>)>;
}

impl<T: Element> IntoParams<T> for Vec<Param<T>> {
    fn into_params(self) -> Vec<(Option<String>, Param<T>)> {
        self.into_iter().map(|p| (None, p)).collect()
    }
}

impl<T: Element> IntoParams<T> for Vec<(String, Param<T>)> {
    fn into_params(self) -> Vec<(Option<String>, Param<T>)> {
        self.into_iter().map(|(n, p)| (Some(n), p)).collect()
    }
}

/// `Ok` when `ok` holds and `value` is finite; otherwise an error naming the optimizer,
/// the setting and its value.
#[track_caller]
fn check_hyper(op: &'static str, name: &str, value: f64, ok: bool) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            reason: format!("invalid {name}: {value}"),
            at: Caller::here(),
        })
    }
}

/// A learning rate: finite and not negative.
#[track_caller]
fn check_lr(op: &'static str, lr: f64) -> Result<()> {
    check_hyper(op, "learning rate", lr, lr >= 0.0)
}

/// What an optimizer keeps for one parameter between steps; made at its first step.
trait SlotState {
    /// The parameter's shape when the state was made.
    fn shape(&self) -> &[usize];
}

/// One parameter of an optimizer, its name if given, and its state once made.
struct Slot<T: Element, S> {
    param: Param<T>,
    name: Option<String>,
    state: Option<S>,
}

/// A parameter as errors name it: by its name when it has one, else by its position in the
/// optimizer's list.
fn label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) => format!("parameter `{name}`"),
        None => format!("parameter #{index} of the optimizer's list"),
    }
}

/// The parameters of one optimizer, in the order given, with their state.
struct Slots<T: Element, S> {
    slots: Vec<Slot<T, S>>,
}

impl<T: Element, S: SlotState> Slots<T, S> {
    /// The slots of `params`; an error if a parameter appears twice (it would be updated
    /// twice per step).
    #[track_caller]
    fn new(op: &'static str, params: impl IntoParams<T>) -> Result<Self> {
        let params = params.into_params();
        let mut seen = HashSet::with_capacity(params.len());
        for (i, (name, p)) in params.iter().enumerate() {
            if !seen.insert(p.id()) {
                return Err(Error::InvalidArgument {
                    op,
                    reason: format!(
                        "{} appears more than once in the parameter list",
                        label(name.as_deref(), i)
                    ),
                    at: Caller::here(),
                });
            }
        }
        Ok(Slots {
            slots: params
                .into_iter()
                .map(|(name, param)| Slot {
                    param,
                    name,
                    state: None,
                })
                .collect(),
        })
    }

    /// Checks every parameter that has a gradient in `grads` before anything is updated:
    /// the gradient has the parameter's shape, and so does the state, if made.
    #[track_caller]
    fn check(&self, op: &'static str, grads: &ParamGrads<T>) -> Result<()> {
        let at = Caller::here();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(grad) = grads.get(&slot.param) {
                let state = slot.state.as_ref();
                let name = slot.name.as_deref();
                slot.param
                    .with_value(|value| check_shapes(op, name, i, state, value, grad, at))?;
            }
        }
        Ok(())
    }

    /// Runs `update(elements, gradient, state)` on every parameter that has a gradient in
    /// `grads`, with write access to the parameter (checked again under its lock).
    #[track_caller]
    fn update(
        &mut self,
        op: &'static str,
        grads: &ParamGrads<T>,
        mut update: impl FnMut(&mut [T], &Tensor<T>, &mut Option<S>),
    ) -> Result<()> {
        let at = Caller::here();
        for (i, Slot { param, name, state }) in self.slots.iter_mut().enumerate() {
            let Some(grad) = grads.get(param) else {
                continue;
            };
            param.with_value_mut(|value| {
                check_shapes(op, name.as_deref(), i, state.as_ref(), value, grad, at)?;
                update(value.data_mut(), grad, state);
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// The gradient has the parameter's shape, and so does the state made at an earlier step.
fn check_shapes<T: Element, S: SlotState>(
    op: &'static str,
    name: Option<&str>,
    index: usize,
    state: Option<&S>,
    value: &Tensor<T>,
    grad: &Tensor<T>,
    at: Caller,
) -> Result<()> {
    let made = state.map(S::shape).filter(|&made| made != value.shape());
    let reason = if let Some(made) = made {
        format!(
            "{} changed shape from {made:?} to {:?} since the optimizer's state for it was \
             made; make a new optimizer after changing a parameter's shape",
            label(name, index),
            value.shape()
        )
    } else if grad.shape() != value.shape() {
        format!(
            "the gradient of {} has shape {:?}, but the parameter has shape {:?}",
            label(name, index),
            grad.shape(),
            value.shape()
        )
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument { op, reason, at })
}

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` rules. With weight decay
/// λ, momentum μ, dampening τ and gradient g:
///
/// ```text
/// g ← g + λ·p
/// b ← g                       (first step)
/// b ← μ·b + (1 − τ)·g         (later steps)
/// g ← g + μ·b  (Nesterov)  or  g ← b
/// p ← p − lr·g
/// ```
///
/// Each parameter is updated in one pass over its elements, in place; the momentum buffer
/// is made at a parameter's first step and reused after.
pub struct Sgd<T: Element = f32> {
    slots: Slots<T, MomentumBuffer<T>>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
}

/// SGD's state for one parameter: its momentum buffer `b`.
struct MomentumBuffer<T> {
    shape: Vec<usize>,
    b: Vec<T>,
}

impl<T> SlotState for MomentumBuffer<T> {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// SGD's settings as numbers of the parameters' type, and its update of one parameter.
/// `DECAY` (λ ≠ 0) and `NESTEROV` are constants, so that each combination is a loop
/// without branches.
#[derive(Clone, Copy)]
struct SgdRule<T> {
    lr: T,
    mu: T,
    /// 1 − τ.
    damp: T,
    wd: T,
}

impl<T: Element> SgdRule<T> {
    /// `g + λ·p` with weight decay, else `g`.
    #[inline(always)]
    fn decayed<const DECAY: bool>(self, g: T, w: T) -> T {
        if DECAY { g + self.wd * w } else { g }
    }

    /// Without momentum: `p ← p − lr·g`.
    fn plain<const DECAY: bool>(self, w: &mut [T], g: &[T]) {
        for (w, &g) in w.iter_mut().zip(g) {
            *w -= self.lr * self.decayed::<DECAY>(g, *w);
        }
    }

    /// The first step with momentum: `b ← g`, then `p ← p − lr·(g + μ·b)` (Nesterov) or
    /// `p ← p − lr·b`. Returns the new momentum buffer.
    fn first<const DECAY: bool>(self, w: &mut [T], g: &[T], nesterov: bool) -> Vec<T> {
        let mut b = Vec::with_capacity(w.len());
        for (w, &g) in w.iter_mut().zip(g) {
            let g = self.decayed::<DECAY>(g, *w);
            b.push(g);
            *w -= self.lr * if nesterov { g + self.mu * g } else { g };
        }
        b
    }

    /// A later step with momentum: `b ← μ·b + (1 − τ)·g`, then `p ← p − lr·(g + μ·b)`
    /// (Nesterov) or `p ← p − lr·b`.
    fn momentum<const DECAY: bool, const NESTEROV: bool>(self, w: &mut [T], g: &[T], b: &mut [T]) {
        for ((w, &g), b) in w.iter_mut().zip(g).zip(b) {
            let g = self.decayed::<DECAY>(g, *w);
            *b = self.mu * *b + self.damp * g;
            *w -= self.lr * if NESTEROV { g + self.mu * *b } else { *b };
        }
    }
}

impl<T: Element> Sgd<T> {
    /// Plain SGD, `p ← p − lr·g`, on `params` (`model.parameters()`, or
    /// `model.named_parameters()` for errors that name them).
    ///
    /// # Panics
    /// Where [`Sgd::try_new`] returns an error.
    #[track_caller]
    pub fn new(params: impl IntoParams<T>, lr: f64) -> Self {
        Self::try_new(params, lr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Sgd::new`], as a `Result`: an error if `lr` is negative, NaN or infinite, or if a
    /// parameter appears twice in `params`.
    #[track_caller]
    pub fn try_new(params: impl IntoParams<T>, lr: f64) -> Result<Self> {
        check_lr("Sgd", lr)?;
        Ok(Sgd {
            slots: Slots::new("Sgd", params)?,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        })
    }

    /// With momentum μ ∈ [0, 1).
    ///
    /// # Panics
    /// If μ is outside [0, 1) (NaN included).
    #[track_caller]
    pub fn momentum(self, momentum: f64) -> Self {
        self.try_momentum(momentum)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Sgd::momentum`], as a `Result`.
    #[track_caller]
    pub fn try_momentum(mut self, momentum: f64) -> Result<Self> {
        let ok = (0.0..1.0).contains(&momentum);
        check_hyper("Sgd", "momentum", momentum, ok)?;
        self.momentum = momentum;
        Ok(self)
    }

    /// With dampening τ ∈ [0, 1] of the momentum buffer's update.
    ///
    /// # Panics
    /// If τ is outside [0, 1] (NaN included).
    #[track_caller]
    pub fn dampening(self, dampening: f64) -> Self {
        self.try_dampening(dampening)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Sgd::dampening`], as a `Result`.
    #[track_caller]
    pub fn try_dampening(mut self, dampening: f64) -> Result<Self> {
        let ok = (0.0..=1.0).contains(&dampening);
        check_hyper("Sgd", "dampening", dampening, ok)?;
        self.dampening = dampening;
        Ok(self)
    }

    /// With Nesterov momentum (needs momentum > 0 and no dampening, checked at each step
    /// as PyTorch checks at construction).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// With L2 weight decay λ ≥ 0 added to the gradient.
    ///
    /// # Panics
    /// If λ is negative, NaN or infinite.
    #[track_caller]
    pub fn weight_decay(self, weight_decay: f64) -> Self {
        self.try_weight_decay(weight_decay)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Sgd::weight_decay`], as a `Result`.
    #[track_caller]
    pub fn try_weight_decay(mut self, weight_decay: f64) -> Result<Self> {
        let ok = weight_decay >= 0.0;
        check_hyper("Sgd", "weight decay", weight_decay, ok)?;
        self.weight_decay = weight_decay;
        Ok(self)
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    #[track_caller]
    fn try_step(&mut self, grads: &ParamGrads<T>) -> Result<()> {
        if self.nesterov && !(self.momentum > 0.0 && self.dampening == 0.0) {
            return Err(Error::InvalidArgument {
                op: "Sgd",
                reason: format!(
                    "Nesterov momentum requires a momentum and zero dampening (momentum {}, \
                     dampening {})",
                    self.momentum, self.dampening
                ),
                at: Caller::here(),
            });
        }
        self.slots.check("Sgd", grads)?;
        let rule = SgdRule {
            lr: T::of(self.lr),
            mu: T::of(self.momentum),
            damp: T::one() - T::of(self.dampening),
            wd: T::of(self.weight_decay),
        };
        // Each combination of settings is its own loop without branches (which the
        // compiler vectorises); λ·p is added only when λ ≠ 0, as PyTorch (0·∞ is NaN).
        let (decay, nesterov) = (self.weight_decay != 0.0, self.nesterov);
        let momentum = self.momentum != 0.0;
        self.slots.update("Sgd", grads, |w, grad, state| {
            let g = grad.data();
            match state {
                _ if !momentum => match decay {
                    false => rule.plain::<false>(w, g),
                    true => rule.plain::<true>(w, g),
                },
                None => {
                    let b = match decay {
                        false => rule.first::<false>(w, g, nesterov),
                        true => rule.first::<true>(w, g, nesterov),
                    };
                    let shape = grad.shape().to_vec();
                    *state = Some(MomentumBuffer { shape, b });
                }
                Some(buffer) => {
                    let b = &mut buffer.b;
                    match (decay, nesterov) {
                        (false, false) => rule.momentum::<false, false>(w, g, b),
                        (false, true) => rule.momentum::<false, true>(w, g, b),
                        (true, false) => rule.momentum::<true, false>(w, g, b),
                        (true, true) => rule.momentum::<true, true>(w, g, b),
                    }
                }
            }
        })
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    #[track_caller]
    fn try_set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr("Sgd", lr)?;
        self.lr = lr;
        Ok(())
    }
}

/// Adam's state for one parameter: its step count and the two moment estimates.
struct Moments<T> {
    shape: Vec<usize>,
    step: i32,
    m: Vec<T>,
    v: Vec<T>,
}

impl<T> SlotState for Moments<T> {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// Adam's numbers for one parameter's step, and the update. `DECOUPLED` (AdamW) and `L2`
/// (Adam with λ ≠ 0) are constants, so that each kind of weight decay is a loop without
/// branches.
#[derive(Clone, Copy)]
struct AdamRule<T> {
    b1: T,
    b2: T,
    eps: T,
    lr: T,
    wd: T,
    /// √(1 − β₂ᵗ).
    bc2_sqrt: T,
    /// lr / (1 − β₁ᵗ).
    step_size: T,
}

impl<T: Element> AdamRule<T> {
    /// One pass over the parameter `w`, its gradient `g` and its moments `m`, `v`.
    fn pass<const DECOUPLED: bool, const L2: bool>(
        self,
        w: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
    ) {
        let one = T::one();
        for ((w, &g), (m, v)) in w.iter_mut().zip(g).zip(m.iter_mut().zip(v)) {
            let mut g = g;
            if DECOUPLED {
                *w *= one - self.lr * self.wd;
            } else if L2 {
                g += self.wd * *w;
            }
            *m = self.b1 * *m + (one - self.b1) * g;
            *v = self.b2 * *v + (one - self.b2) * g * g;
            let denom = v.sqrt() / self.bc2_sqrt + self.eps;
            *w -= self.step_size * *m / denom;
        }
    }
}

/// The settings shared by [`Adam`] and [`AdamW`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct AdamSettings {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
}

/// The Adam family's shared engine: `decoupled` selects AdamW's weight decay.
struct AdamCore<T: Element> {
    op: &'static str,
    slots: Slots<T, Moments<T>>,
    s: AdamSettings,
}

impl<T: Element> AdamCore<T> {
    #[track_caller]
    fn new(op: &'static str, params: impl IntoParams<T>, s: AdamSettings) -> Result<Self> {
        check_lr(op, s.lr)?;
        check_hyper(op, "beta1", s.beta1, (0.0..1.0).contains(&s.beta1))?;
        check_hyper(op, "beta2", s.beta2, (0.0..1.0).contains(&s.beta2))?;
        check_hyper(op, "eps", s.eps, s.eps >= 0.0)?;
        check_hyper(op, "weight decay", s.weight_decay, s.weight_decay >= 0.0)?;
        Ok(AdamCore {
            op,
            slots: Slots::new(op, params)?,
            s,
        })
    }

    /// PyTorch's `_single_tensor_adam` / `adamw`, one pass over each parameter:
    ///
    /// ```text
    /// AdamW: p ← p·(1 − lr·λ)        Adam: g ← g + λ·p
    /// m ← β₁·m + (1 − β₁)·g
    /// v ← β₂·v + (1 − β₂)·g²
    /// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
    /// ```
    #[track_caller]
    fn try_step(&mut self, grads: &ParamGrads<T>) -> Result<()> {
        self.slots.check(self.op, grads)?;
        let s = self.s;
        let (b1, b2) = (T::of(s.beta1), T::of(s.beta2));
        let (eps, wd, lr) = (T::of(s.eps), T::of(s.weight_decay), T::of(s.lr));
        let (decoupled, l2) = (s.decoupled, !s.decoupled && s.weight_decay != 0.0);
        self.slots.update(self.op, grads, |w, grad, state| {
            let st = state.get_or_insert_with(|| Moments {
                shape: grad.shape().to_vec(),
                step: 0,
                m: vec![T::zero(); grad.numel()],
                v: vec![T::zero(); grad.numel()],
            });
            st.step = st.step.saturating_add(1);
            let bc1 = T::one() - b1.powi(st.step);
            let rule = AdamRule {
                b1,
                b2,
                eps,
                lr,
                wd,
                bc2_sqrt: (T::one() - b2.powi(st.step)).sqrt(),
                step_size: lr / bc1,
            };
            let g = grad.data();
            match (decoupled, l2) {
                (true, _) => rule.pass::<true, false>(w, g, &mut st.m, &mut st.v),
                (false, true) => rule.pass::<false, true>(w, g, &mut st.m, &mut st.v),
                (false, false) => rule.pass::<false, false>(w, g, &mut st.m, &mut st.v),
            }
        })
    }

    #[track_caller]
    fn try_set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(self.op, lr)?;
        self.s.lr = lr;
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's `torch.optim.Adam` rules: bias-corrected first
/// and second moments, L2 weight decay added to the gradient. Defaults β = (0.9, 0.999),
/// ε = 1e-8, no weight decay. The moments are made at a parameter's first step; each step
/// then updates the parameter and its moments in one pass, in place.
pub struct Adam<T: Element = f32> {
    core: AdamCore<T>,
}

/// AdamW (Loshchilov & Hutter 2019) with PyTorch's `torch.optim.AdamW` rules: Adam with the
/// weight decay decoupled from the gradient, `p ← p·(1 − lr·λ)` before the Adam update.
/// Defaults β = (0.9, 0.999), ε = 1e-8, λ = 0.01.
pub struct AdamW<T: Element = f32> {
    core: AdamCore<T>,
}

macro_rules! adam_family {
    ($name:ident, $op:literal, $decay:expr, $decoupled:expr) => {
        impl<T: Element> $name<T> {
            /// The optimizer on `params` (`model.parameters()`, or
            /// `model.named_parameters()` for errors that name them) with learning rate
            /// `lr` and PyTorch's other defaults.
            ///
            /// # Panics
            /// Where [`Self::try_new`] returns an error.
            #[track_caller]
            pub fn new(params: impl IntoParams<T>, lr: f64) -> Self {
                Self::try_new(params, lr).unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`Self::new`], as a `Result`: an error if `lr` is negative, NaN or infinite,
            /// or if a parameter appears twice in `params`.
            #[track_caller]
            pub fn try_new(params: impl IntoParams<T>, lr: f64) -> Result<Self> {
                Self::try_with(params, lr, (0.9, 0.999), 1e-8, $decay)
            }

            /// Every setting: `betas = (β₁, β₂)`, ε and weight decay λ.
            ///
            /// # Panics
            /// Where [`Self::try_with`] returns an error.
            #[track_caller]
            pub fn with(
                params: impl IntoParams<T>,
                lr: f64,
                betas: (f64, f64),
                eps: f64,
                weight_decay: f64,
            ) -> Self {
                Self::try_with(params, lr, betas, eps, weight_decay)
                    .unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`Self::with`], as a `Result`: an error if `lr`, ε or λ is negative, NaN or
            /// infinite, if a β is outside [0, 1), or if a parameter appears twice.
            #[track_caller]
            pub fn try_with(
                params: impl IntoParams<T>,
                lr: f64,
                betas: (f64, f64),
                eps: f64,
                weight_decay: f64,
            ) -> Result<Self> {
                let s = AdamSettings {
                    lr,
                    beta1: betas.0,
                    beta2: betas.1,
                    eps,
                    weight_decay,
                    decoupled: $decoupled,
                };
                Ok($name {
                    core: AdamCore::new($op, params, s)?,
                })
            }
        }

        impl<T: Element> Optimizer<T> for $name<T> {
            #[track_caller]
            fn try_step(&mut self, grads: &ParamGrads<T>) -> Result<()> {
                self.core.try_step(grads)
            }

            fn lr(&self) -> f64 {
                self.core.s.lr
            }

            #[track_caller]
            fn try_set_lr(&mut self, lr: f64) -> Result<()> {
                self.core.try_set_lr(lr)
            }
        }
    };
}

adam_family!(Adam, "Adam", 0.0, false);
adam_family!(AdamW, "AdamW", 0.01, true);

/// Scales every gradient by `max_norm / total` when their global L2 norm `total` (all
/// gradients taken as one vector) exceeds `max_norm`, as PyTorch's `clip_grad_norm_`
/// (which divides by `total + 1e-6`). Returns `total`, measured before clipping; a
/// `max_norm` of infinity only measures. A NaN or infinite gradient makes `total` NaN or
/// infinite and leaves the gradients unscaled (PyTorch's default,
/// `error_if_nonfinite=False`).
///
/// ```
/// use nn::{Param, clip_grad_norm};
/// use autograd::Tensor;
///
/// let p = Param::new(Tensor::from_vec(vec![0.0f64, 0.0], &[2]).unwrap());
/// let (_, mut grads) = nn::value_and_grad(0, |cx| {
///     (&cx.param(&p) * &cx.input(Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap())).sum()
/// });
/// assert_eq!(clip_grad_norm(&mut grads, 1.0), 5.0);
/// assert!((grads.wrt(&p).norm() - 1.0).abs() < 1e-6);
/// ```
///
/// # Panics
/// If `max_norm` is negative or NaN; see [`try_clip_grad_norm`].
#[track_caller]
pub fn clip_grad_norm<T: Element>(grads: &mut ParamGrads<T>, max_norm: f64) -> T {
    try_clip_grad_norm(grads, max_norm).unwrap_or_else(|e| panic!("{e}"))
}

/// [`clip_grad_norm`], as a `Result`: an error, with the gradients untouched, if
/// `max_norm` is negative or NaN.
#[track_caller]
pub fn try_clip_grad_norm<T: Element>(grads: &mut ParamGrads<T>, max_norm: f64) -> Result<T> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(Error::InvalidArgument {
            op: "clip_grad_norm",
            reason: format!("invalid max_norm: {max_norm}"),
            at: Caller::here(),
        });
    }
    let total = grads
        .iter()
        .map(|(_, g)| g.data().iter().map(|&x| x * x).sum::<T>())
        .sum::<T>()
        .sqrt();
    let coef = T::of(max_norm) / (total + T::of(1e-6));
    if coef < T::one() {
        for (_, g) in grads.iter_mut() {
            g.data_mut().iter_mut().for_each(|x| *x *= coef);
        }
    }
    Ok(total)
}
