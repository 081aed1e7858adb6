//! Optimizers with PyTorch's exact update rules, and global gradient-norm clipping.
//!
//! An optimizer holds the [`Param`] handles it updates and its state per parameter, found
//! by the parameter's id — never by position — so a parameter that gets no gradient in a
//! step is skipped without shifting anyone's state (as PyTorch skips `grad is None`).
//!
//! ```
//! use nn::{Ctx, Linear, Module, Optimizer, Sgd};
//! use autograd::{Tape, Tensor, seeded_rng};
//!
//! let layer = Linear::<f64>::new(2, 1, true, &mut seeded_rng(0));
//! let mut opt = Sgd::new(layer.parameters(), 0.1);
//! let x = Tensor::from_vec(vec![1.0, 2.0], &[1, 2]).unwrap();
//! let mut losses = Vec::new();
//! for _ in 0..20 {
//!     let tape = Tape::new();
//!     let cx = Ctx::train(&tape, 0);
//!     let y = layer.forward(&cx, &cx.input(x.clone()));
//!     let loss = (&y * &y).sum();
//!     losses.push(loss.item());
//!     opt.step(&cx.param_grads(&loss.backward()));
//! }
//! assert!(losses[19] < 1e-6 * losses[0]);
//! ```

use crate::param::{Param, ParamGrads};
use autograd::{Caller, Element, Error, Result, Tensor};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Updates parameters from their gradients.
pub trait Optimizer<T: Element = f32> {
    /// One update of every parameter that has a gradient in `grads`.
    fn step(&mut self, grads: &ParamGrads<T>);

    /// The learning rate.
    fn lr(&self) -> f64;

    /// Changes the learning rate (for schedules).
    fn set_lr(&mut self, lr: f64);
}

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
pub struct Sgd<T: Element = f32> {
    params: Vec<Param<T>>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    buffers: HashMap<u64, Vec<T>>,
}

impl<T: Element> Sgd<T> {
    /// Plain SGD, `p ← p − lr·g`.
    ///
    /// # Panics
    /// If `lr` is negative or not finite.
    #[track_caller]
    pub fn new(params: Vec<Param<T>>, lr: f64) -> Self {
        Self::try_new(params, lr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Sgd::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(params: Vec<Param<T>>, lr: f64) -> Result<Self> {
        check_hyper("Sgd", "learning rate", lr, lr >= 0.0)?;
        Ok(Sgd {
            params,
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            buffers: HashMap::new(),
        })
    }

    /// With momentum μ ∈ [0, 1).
    ///
    /// # Panics
    /// If μ is outside [0, 1).
    #[track_caller]
    pub fn momentum(mut self, momentum: f64) -> Self {
        let ok = (0.0..1.0).contains(&momentum);
        check_hyper("Sgd", "momentum", momentum, ok).unwrap_or_else(|e| panic!("{e}"));
        self.momentum = momentum;
        self
    }

    /// With dampening τ ∈ [0, 1] of the momentum buffer's update.
    ///
    /// # Panics
    /// If τ is outside [0, 1].
    #[track_caller]
    pub fn dampening(mut self, dampening: f64) -> Self {
        let ok = (0.0..=1.0).contains(&dampening);
        check_hyper("Sgd", "dampening", dampening, ok).unwrap_or_else(|e| panic!("{e}"));
        self.dampening = dampening;
        self
    }

    /// With Nesterov momentum (needs momentum > 0 and no dampening, checked at the first
    /// step as PyTorch does at construction).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// With L2 weight decay λ ≥ 0 added to the gradient.
    ///
    /// # Panics
    /// If λ is negative.
    #[track_caller]
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        let ok = weight_decay >= 0.0;
        check_hyper("Sgd", "weight decay", weight_decay, ok).unwrap_or_else(|e| panic!("{e}"));
        self.weight_decay = weight_decay;
        self
    }

    fn update(&mut self, p: &Param<T>, grad: &Tensor<T>) {
        let (lr, mu, wd) = (
            T::of(self.lr),
            T::of(self.momentum),
            T::of(self.weight_decay),
        );
        let damp = T::one() - T::of(self.dampening);
        let value = p.value();
        let mut g: Vec<T> = grad
            .data()
            .iter()
            .zip(value.data())
            .map(|(&g, &w)| if wd != T::zero() { g + wd * w } else { g })
            .collect();
        if self.momentum != 0.0 {
            let buf = match self.buffers.entry(p.id()) {
                Entry::Vacant(slot) => slot.insert(g.clone()),
                Entry::Occupied(slot) => {
                    let buf = slot.into_mut();
                    for (b, &g) in buf.iter_mut().zip(&g) {
                        *b = mu * *b + damp * g;
                    }
                    buf
                }
            };
            for (g, &b) in g.iter_mut().zip(buf.iter()) {
                *g = if self.nesterov { *g + mu * b } else { b };
            }
        }
        p.update(|w| w.iter_mut().zip(&g).for_each(|(w, &g)| *w -= lr * g));
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    /// # Panics
    /// If Nesterov momentum is asked for with zero momentum or non-zero dampening.
    fn step(&mut self, grads: &ParamGrads<T>) {
        assert!(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "Sgd: Nesterov momentum requires a momentum and zero dampening (momentum {}, dampening {})",
            self.momentum,
            self.dampening
        );
        for p in self.params.clone() {
            if let Some(g) = grads.get(&p) {
                self.update(&p, g);
            }
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// Per-parameter state of Adam: step count and the two moment estimates.
struct AdamState<T> {
    step: i32,
    m: Vec<T>,
    v: Vec<T>,
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
    params: Vec<Param<T>>,
    s: AdamSettings,
    state: HashMap<u64, AdamState<T>>,
}

impl<T: Element> AdamCore<T> {
    #[track_caller]
    fn new(op: &'static str, params: Vec<Param<T>>, s: AdamSettings) -> Result<Self> {
        check_hyper(op, "learning rate", s.lr, s.lr >= 0.0)?;
        check_hyper(op, "beta1", s.beta1, (0.0..1.0).contains(&s.beta1))?;
        check_hyper(op, "beta2", s.beta2, (0.0..1.0).contains(&s.beta2))?;
        check_hyper(op, "eps", s.eps, s.eps >= 0.0)?;
        check_hyper(op, "weight decay", s.weight_decay, s.weight_decay >= 0.0)?;
        Ok(AdamCore {
            params,
            s,
            state: HashMap::new(),
        })
    }

    /// PyTorch's `_single_tensor_adam` / `adamw`:
    ///
    /// ```text
    /// AdamW: p ← p·(1 − lr·λ)        Adam: g ← g + λ·p
    /// m ← β₁·m + (1 − β₁)·g
    /// v ← β₂·v + (1 − β₂)·g²
    /// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
    /// ```
    fn step(&mut self, grads: &ParamGrads<T>) {
        let s = self.s;
        for p in &self.params {
            let Some(grad) = grads.get(p) else { continue };
            let n = grad.numel();
            let st = self.state.entry(p.id()).or_insert_with(|| AdamState {
                step: 0,
                m: vec![T::zero(); n],
                v: vec![T::zero(); n],
            });
            st.step += 1;
            let (b1, b2) = (T::of(s.beta1), T::of(s.beta2));
            let bc1 = T::one() - b1.powi(st.step);
            let bc2_sqrt = (T::one() - b2.powi(st.step)).sqrt();
            let step_size = T::of(s.lr) / bc1;
            let (eps, wd, lr) = (T::of(s.eps), T::of(s.weight_decay), T::of(s.lr));
            let (m, v) = (&mut st.m, &mut st.v);
            p.update(|w| {
                for (i, w) in w.iter_mut().enumerate() {
                    let mut g = grad.data()[i];
                    if s.decoupled {
                        *w *= T::one() - lr * wd;
                    } else if wd != T::zero() {
                        g += wd * *w;
                    }
                    m[i] = b1 * m[i] + (T::one() - b1) * g;
                    v[i] = b2 * v[i] + (T::one() - b2) * g * g;
                    let denom = v[i].sqrt() / bc2_sqrt + eps;
                    *w -= step_size * m[i] / denom;
                }
            });
        }
    }
}

/// Adam (Kingma & Ba 2015) with PyTorch's `torch.optim.Adam` rules: bias-corrected first
/// and second moments, L2 weight decay added to the gradient. Defaults β = (0.9, 0.999),
/// ε = 1e-8, no weight decay.
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
            /// The optimizer with learning rate `lr` and PyTorch's other defaults.
            ///
            /// # Panics
            /// If `lr` is negative or not finite.
            #[track_caller]
            pub fn new(params: Vec<Param<T>>, lr: f64) -> Self {
                Self::with(params, lr, (0.9, 0.999), 1e-8, $decay)
            }

            /// Every setting: `betas = (β₁, β₂)`, ε and weight decay λ.
            ///
            /// # Panics
            /// Where [`Self::try_with`] returns an error.
            #[track_caller]
            pub fn with(
                params: Vec<Param<T>>,
                lr: f64,
                betas: (f64, f64),
                eps: f64,
                weight_decay: f64,
            ) -> Self {
                Self::try_with(params, lr, betas, eps, weight_decay)
                    .unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`Self::with`], as a `Result`: an error if `lr`, ε or λ is negative or a β
            /// is outside [0, 1).
            #[track_caller]
            pub fn try_with(
                params: Vec<Param<T>>,
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
            fn step(&mut self, grads: &ParamGrads<T>) {
                self.core.step(grads);
            }

            fn lr(&self) -> f64 {
                self.core.s.lr
            }

            fn set_lr(&mut self, lr: f64) {
                self.core.s.lr = lr;
            }
        }
    };
}

adam_family!(Adam, "Adam", 0.0, false);
adam_family!(AdamW, "AdamW", 0.01, true);

/// Scales every gradient by `max_norm / total` when their global L2 norm `total` (all
/// gradients taken as one vector) exceeds `max_norm`, as PyTorch's `clip_grad_norm_`
/// (which divides by `total + 1e-6`). Returns `total`, measured before clipping.
///
/// ```
/// use nn::{Ctx, Param, clip_grad_norm};
/// use autograd::{Tape, Tensor};
///
/// let p = Param::new(Tensor::from_vec(vec![0.0f64, 0.0], &[2]).unwrap());
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let w = cx.param(&p);
/// let loss = (&w * &cx.input(Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap())).sum();
/// let mut grads = cx.param_grads(&loss.backward());
/// assert_eq!(clip_grad_norm(&mut grads, 1.0), 5.0);
/// assert!((grads.wrt(&p).norm() - 1.0).abs() < 1e-6);
/// ```
pub fn clip_grad_norm<T: Element>(grads: &mut ParamGrads<T>, max_norm: f64) -> T {
    let total = grads
        .iter_mut()
        .map(|g| g.data().iter().map(|&x| x * x).sum::<T>())
        .sum::<T>()
        .sqrt();
    let coef = T::of(max_norm) / (total + T::of(1e-6));
    if coef < T::one() {
        for g in grads.iter_mut() {
            g.data_mut().iter_mut().for_each(|x| *x *= coef);
        }
    }
    total
}
