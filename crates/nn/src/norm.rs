//! Normalisation layers: batch norm (Ioffe & Szegedy 2015) and layer norm (Ba et al. 2016).
//!
//! Both are written as forward passes composed of tape ops (means, a subtraction, a power,
//! products), so their backward — the notoriously fiddly batch-norm gradient included —
//! comes from the tape and is checked against finite differences in the tests.

use crate::buffer::Buffer;
use crate::module::{Ctx, Module, or_panic};
use crate::param::Param;
use autograd::{Caller, Element, Error, Result, Tensor, Var};

/// PyTorch's default ε of batch and layer norm.
pub const DEFAULT_EPS: f64 = 1e-5;
/// PyTorch's default momentum of batch norm's running statistics.
pub const DEFAULT_MOMENTUM: f64 = 0.1;

/// Batch normalisation over every axis but the channel axis 1, for inputs with `D` spatial
/// axes: `[N, C]` or `[N, C, L]` for [`BatchNorm1d`] (`D = 1`), `[N, C, H, W]` for
/// [`BatchNorm2d`] (`D = 2`).
///
/// `y = (x − μ) / √(σ² + ε) · γ + β`, per channel. In training (a context made with
/// [`Ctx::train`]) μ and σ² are the batch's mean and biased variance, and the running
/// statistics move towards them: `running = (1 − momentum)·running + momentum·batch`, with
/// the batch variance made unbiased (× n/(n−1)) as in PyTorch, and `num_batches_tracked`
/// counts the step. In evaluation the running statistics are used, so the output of one
/// example does not depend on the others.
///
/// ```
/// use nn::{BatchNorm1d, Ctx, Module};
/// use autograd::{Tape, Tensor};
///
/// let bn = BatchNorm1d::<f64>::new(2);
/// let x = Tensor::from_vec(vec![1.0, 10.0, 3.0, 30.0], &[2, 2]).unwrap();
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let y = bn.forward(&cx, &cx.input(x));
/// // Each channel is normalised over the batch: −1 and +1 (up to ε).
/// assert!((y.value().get(&[0, 0]) + 1.0).abs() < 1e-4);
/// assert!((y.value().get(&[1, 1]) - 1.0).abs() < 1e-4);
/// // The running mean moved 10 % of the way towards the batch mean.
/// assert_eq!(bn.running_mean().to_vec(), vec![0.2, 2.0]);
/// ```
pub struct BatchNorm<T: Element, const D: usize> {
    /// γ, `[C]`, starts at 1 (PyTorch's name: `weight`).
    pub weight: Param<T>,
    /// β, `[C]`, starts at 0 (PyTorch's name: `bias`).
    pub bias: Param<T>,
    running_mean: Buffer<T>,
    running_var: Buffer<T>,
    num_batches_tracked: Buffer<T>,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// How far the running statistics move towards each batch's.
    pub momentum: f64,
}

/// Batch norm for `[N, C]` (or `[N, C, L]`) inputs, PyTorch's `nn.BatchNorm1d`.
pub type BatchNorm1d<T = f32> = BatchNorm<T, 1>;
/// Batch norm for `[N, C, H, W]` inputs, PyTorch's `nn.BatchNorm2d`.
pub type BatchNorm2d<T = f32> = BatchNorm<T, 2>;

impl<T: Element, const D: usize> BatchNorm<T, D> {
    /// A layer for `num_features` channels: γ = 1, β = 0, running mean 0, running variance
    /// 1, ε = 1e-5, momentum 0.1 (PyTorch's defaults).
    pub fn new(num_features: usize) -> Self {
        BatchNorm {
            weight: Param::new(Tensor::ones(&[num_features])),
            bias: Param::new(Tensor::zeros(&[num_features])),
            running_mean: Buffer::new(Tensor::zeros(&[num_features])),
            running_var: Buffer::new(Tensor::ones(&[num_features])),
            num_batches_tracked: Buffer::counter(0),
            eps: DEFAULT_EPS,
            momentum: DEFAULT_MOMENTUM,
        }
    }

    /// Number of channels.
    pub fn num_features(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The running mean, `[C]`.
    pub fn running_mean(&self) -> Tensor<T> {
        self.running_mean.value()
    }

    /// The running (unbiased) variance, `[C]`.
    pub fn running_var(&self) -> Tensor<T> {
        self.running_var.value()
    }

    /// How many training batches have updated the running statistics (PyTorch's
    /// `num_batches_tracked`, saved and loaded with them).
    pub fn num_batches_tracked(&self) -> i64 {
        self.num_batches_tracked.count().unwrap_or(0)
    }

    /// Replaces the running statistics (both `[C]`).
    ///
    /// # Panics
    /// If either shape is not `[C]`.
    #[track_caller]
    pub fn set_running_stats(&self, mean: Tensor<T>, var: Tensor<T>) {
        let c = [self.num_features()];
        for t in [&mean, &var] {
            assert!(
                t.shape() == c,
                "batch_norm: running statistics must have shape {c:?}, got {:?} (at {})",
                t.shape(),
                Caller::here()
            );
        }
        self.running_mean.set(mean);
        self.running_var.set(var);
    }

    /// Training mode: normalise with the batch's statistics (recorded, so the gradient
    /// flows through them) and move the running statistics towards them.
    #[track_caller]
    fn batch_statistics<'t>(&self, x: &Var<'t, T>) -> Result<(Var<'t, T>, Var<'t, T>)> {
        let axes: Vec<usize> = (0..x.shape().len()).filter(|&a| a != 1).collect();
        let n = x.value().numel() / self.num_features().max(1);
        if n < 2 {
            return Err(Error::InvalidArgument {
                op: "batch_norm",
                reason: format!(
                    "expected more than 1 value per channel when training, got input of shape {:?}",
                    x.shape()
                ),
                at: Caller::here(),
            });
        }
        let mean = x.mean_axes(&axes, true);
        let centered = x - &mean;
        let var = (&centered * &centered).mean_axes(&axes, true);
        let inv_std = (&var + T::of(self.eps)).powf(T::of(-0.5));
        self.update_running_stats(mean.value(), var.value(), n);
        Ok((centered, inv_std))
    }

    fn update_running_stats(&self, mean: &Tensor<T>, biased_var: &Tensor<T>, n: usize) {
        let c = [self.num_features()];
        let m = T::of(self.momentum);
        let keep = T::one() - m;
        let unbias = T::of(n as f64 / (n as f64 - 1.0));
        let blend = |running: &Tensor<T>, batch: &Tensor<T>, scale: T| {
            let data = running
                .data()
                .iter()
                .zip(batch.data())
                .map(|(&r, &b)| keep * r + m * scale * b)
                .collect();
            Tensor::from_vec(data, &c).unwrap_or_else(|_| running.clone())
        };
        self.running_mean
            .set(blend(&self.running_mean(), mean, T::one()));
        self.running_var
            .set(blend(&self.running_var(), biased_var, unbias));
        self.num_batches_tracked.add_to_count(1);
    }

    #[track_caller]
    fn check_input(&self, shape: &[usize]) -> Result<()> {
        let rank_ok = shape.len() == D + 2 || (D == 1 && shape.len() == 2);
        if !rank_ok {
            return Err(Error::Rank {
                op: "batch_norm",
                expected: if D == 1 {
                    "rank 2 [N, C] or rank 3 [N, C, L]"
                } else if D == 2 {
                    "rank 4 [N, C, H, W]"
                } else {
                    "rank D + 2 [N, C, …]"
                },
                got: shape.into(),
                at: Caller::here(),
            });
        }
        let c = self.num_features();
        if shape[1] != c {
            let mut expected = shape.to_vec();
            expected[1] = c;
            return Err(Error::ShapeMismatch {
                op: "batch_norm",
                expected: expected.as_slice().into(),
                got: shape.into(),
                at: Caller::here(),
            });
        }
        Ok(())
    }
}

impl<T: Element, const D: usize> Module<T> for BatchNorm<T, D> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with the same message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The forward pass, or an error if `x` is not `[N, C, …]` with `D` spatial axes and
    /// this layer's `C`, or (in training) if a channel has a single value.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.check_input(x.shape())?;
        let c = self.num_features();
        // Statistics have shape [1, C, 1, …] so that they broadcast against x.
        let mut stat_shape = vec![1; x.shape().len()];
        stat_shape[1] = c;
        let (centered, inv_std) = if cx.is_training() {
            self.batch_statistics(x)?
        } else {
            let mean = cx.input(self.running_mean().reshape(&stat_shape));
            let var = self.running_var().reshape(&stat_shape);
            let inv_std = var.map(|v| (v + T::of(self.eps)).sqrt().recip());
            (x - &mean, cx.input(inv_std))
        };
        let gamma = cx.param(&self.weight).reshape(&stat_shape);
        let beta = cx.param(&self.bias).reshape(&stat_shape);
        Ok(&(&(&centered * &inv_std) * &gamma) + &beta)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
            (
                "num_batches_tracked".to_string(),
                self.num_batches_tracked.clone(),
            ),
        ]
    }
}

/// Layer normalisation over the last axes (`normalized_shape`), PyTorch's `nn.LayerNorm`:
/// every example is normalised on its own, the same way in training and evaluation.
///
/// `y = (x − μ) / √(σ² + ε) · γ + β`, with μ and the biased σ² taken over the last
/// `normalized_shape.len()` axes, and γ, β of shape `normalized_shape`.
pub struct LayerNorm<T: Element = f32> {
    /// γ, of shape `normalized_shape`, starts at 1.
    pub weight: Param<T>,
    /// β, of shape `normalized_shape`, starts at 0.
    pub bias: Param<T>,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl<T: Element> LayerNorm<T> {
    /// Normalises over the last axis, of length `features`.
    pub fn new(features: usize) -> Self {
        Self::with_shape(&[features])
    }

    /// Normalises over the last `normalized_shape.len()` axes, which must equal
    /// `normalized_shape`.
    pub fn with_shape(normalized_shape: &[usize]) -> Self {
        LayerNorm {
            weight: Param::new(Tensor::ones(normalized_shape)),
            bias: Param::new(Tensor::zeros(normalized_shape)),
            eps: DEFAULT_EPS,
        }
    }
}

impl<T: Element> Module<T> for LayerNorm<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with the same message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The forward pass, or an error if the input's trailing axes are not
    /// `normalized_shape`.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let normalized = self.weight.shape();
        let shape = x.shape();
        let k = normalized.len();
        if shape.len() < k || shape[shape.len() - k..] != normalized[..] {
            return Err(Error::InvalidArgument {
                op: "layer_norm",
                reason: format!(
                    "input of shape {shape:?} does not end with the normalised shape {normalized:?}"
                ),
                at: Caller::here(),
            });
        }
        let axes: Vec<usize> = (shape.len() - k..shape.len()).collect();
        let mean = x.mean_axes(&axes, true);
        let centered = x - &mean;
        let var = (&centered * &centered).mean_axes(&axes, true);
        let inv_std = (&var + T::of(self.eps)).powf(T::of(-0.5));
        let gamma = cx.param(&self.weight);
        let beta = cx.param(&self.bias);
        Ok(&(&(&centered * &inv_std) * &gamma) + &beta)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }
}

/// Which normalisation a builder puts inside its layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Normalization {
    /// No normalisation.
    #[default]
    None,
    /// [`BatchNorm1d`]: statistics over the batch.
    Batch,
    /// [`LayerNorm`] over the features: statistics per example.
    Layer,
}

impl Normalization {
    /// A normalisation layer for `features` channels, or `None` for [`Normalization::None`].
    pub fn layer<T: Element>(self, features: usize) -> Option<NormLayer<T>> {
        match self {
            Normalization::None => None,
            Normalization::Batch => Some(NormLayer::Batch(BatchNorm1d::new(features))),
            Normalization::Layer => Some(NormLayer::Layer(LayerNorm::new(features))),
        }
    }
}

/// A normalisation layer chosen at run time (by a builder's [`Normalization`]).
pub enum NormLayer<T: Element = f32> {
    /// Batch norm over `[N, C]`.
    Batch(BatchNorm1d<T>),
    /// Layer norm over the last axis.
    Layer(LayerNorm<T>),
}

impl<T: Element> NormLayer<T> {
    /// γ, the learnable scale.
    pub fn weight(&self) -> &Param<T> {
        match self {
            NormLayer::Batch(b) => &b.weight,
            NormLayer::Layer(l) => &l.weight,
        }
    }
}

impl<T: Element> Module<T> for NormLayer<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with the same message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        match self {
            NormLayer::Batch(b) => b.try_forward(cx, x),
            NormLayer::Layer(l) => l.try_forward(cx, x),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        match self {
            NormLayer::Batch(b) => b.named_parameters(),
            NormLayer::Layer(l) => l.named_parameters(),
        }
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        match self {
            NormLayer::Batch(b) => b.named_buffers(),
            NormLayer::Layer(l) => l.named_buffers(),
        }
    }
}
