//! Weight initialisation: Xavier/Glorot and Kaiming/He, uniform and normal.
//!
//! How each layer starts, and where that differs from PyTorch:
//!
//! | constructor | weight | bias | PyTorch |
//! |---|---|---|---|
//! | [`Linear::new`](crate::Linear::new)`(in, out, bias, rng)` | U(±1/√in) | U(±1/√in) if `bias` | `nn.Linear(in, out, bias)`: the same |
//! | [`Conv2d::new`](crate::Conv2d::new)`(in, out, kernel, bias, rng)` | U(±1/√fan_in), fan_in = in·kh·kw | U(±1/√fan_in) if `bias` | `nn.Conv2d(in, out, kernel, bias=bias)`: the same |
//! | `Linear::with_init`, `Conv2d::with_init` (`…, bias, init, rng`) | `init` | zeros, or U(±1/√fan_in) for [`Init::PyTorchDefault`] | re-initialising the weight leaves PyTorch's bias at U(±1/√fan_in); ours starts at zero |
//! | [`Conv2d::conv3x3`](crate::Conv2d::conv3x3), [`Conv2d::conv1x1`](crate::Conv2d::conv1x1) | [`Init::resnet`]: N(0, 2/fan_out) | none | torchvision's ResNet: the same |
//! | [`BatchNorm1d`](crate::BatchNorm1d), [`BatchNorm2d`](crate::BatchNorm2d), [`LayerNorm`](crate::LayerNorm) | γ = 1 | β = 0 | the same (running mean 0, variance 1) |
//! | [`ResidualBlock`](crate::ResidualBlock), [`ProjectionBlock`](crate::ProjectionBlock), [`PreActBlock`](crate::PreActBlock) `(…, init, rng)` | `init` (every `Linear`) | as `Linear::with_init`; the projection has none | no PyTorch counterpart: the tutorial compares initialisations, so the blocks take one |
//! | [`BasicConvBlock`](crate::BasicConvBlock), [`ConvProjection`](crate::ConvProjection) | [`Init::resnet`] | none (a norm follows) | torchvision's `BasicBlock` in a ResNet: the same |

use autograd::rand::Rng;
use autograd::{Element, Tensor};

/// Which fan a Kaiming initialisation preserves the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    /// Preserve the forward pass' variance (PyTorch's default).
    In,
    /// Preserve the backward pass' variance.
    Out,
}

/// The gain PyTorch's `calculate_gain` gives an activation.
pub fn gain(activation: &str) -> f64 {
    match activation {
        "relu" => 2f64.sqrt(),
        "tanh" => 5.0 / 3.0,
        "leaky_relu" => (2.0 / (1.0 + 0.01f64 * 0.01)).sqrt(),
        "selu" => 0.75,
        _ => 1.0, // linear, sigmoid, identity
    }
}

/// How a layer's weight (and bias) start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default for `nn.Linear` and `nn.Conv2d`: W and b uniform in ±1/√fan_in.
    /// PyTorch states the weight's as `kaiming_uniform_(a=√5)`, whose bound
    /// gain·√(3/fan_in) with gain = √(2/(1 + 5)) is the same 1/√fan_in.
    PyTorchDefault,
    /// Glorot & Bengio 2010: uniform in ±gain·√(6/(fan_in+fan_out)).
    XavierUniform {
        /// Gain for the following activation ([`gain`]).
        gain: f64,
    },
    /// Glorot & Bengio 2010: normal with std gain·√(2/(fan_in+fan_out)).
    XavierNormal {
        /// Gain for the following activation ([`gain`]).
        gain: f64,
    },
    /// He et al. 2015: uniform in ±gain·√(3/fan).
    KaimingUniform {
        /// Gain for the following activation (√2 for ReLU).
        gain: f64,
        /// Which fan.
        fan: Fan,
    },
    /// He et al. 2015: normal with std gain/√fan.
    KaimingNormal {
        /// Gain for the following activation (√2 for ReLU).
        gain: f64,
        /// Which fan.
        fan: Fan,
    },
    /// Normal with a fixed std (the "naive" initialisation of the tutorial).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// All zeros (e.g. the last layer of a residual branch, so the block starts as identity).
    Zeros,
}

impl Init {
    /// He initialisation for ReLU networks (normal, fan-in).
    pub fn he() -> Self {
        Init::KaimingNormal {
            gain: 2f64.sqrt(),
            fan: Fan::In,
        }
    }

    /// The initialisation torchvision's ResNet gives its convolutions: Kaiming normal for
    /// ReLU over the fan-out, `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    pub fn resnet() -> Self {
        Init::KaimingNormal {
            gain: 2f64.sqrt(),
            fan: Fan::Out,
        }
    }

    /// Xavier initialisation (normal) for the given activation's gain.
    pub fn xavier(activation: &str) -> Self {
        Init::XavierNormal {
            gain: gain(activation),
        }
    }

    /// A weight tensor of `shape` with the given fans.
    pub fn weight<T: Element>(
        &self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        rng: &mut impl Rng,
    ) -> Tensor<T> {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let fan = |f: Fan| if f == Fan::In { fi } else { fo };
        let uniform =
            |bound: f64, rng: &mut _| Tensor::uniform(shape, T::of(-bound), T::of(bound), rng);
        let normal = |std: f64, rng: &mut _| Tensor::normal(shape, T::zero(), T::of(std), rng);
        match *self {
            Init::PyTorchDefault => uniform(1.0 / fi.sqrt(), rng),
            Init::XavierUniform { gain } => uniform(gain * (6.0 / (fi + fo)).sqrt(), rng),
            Init::XavierNormal { gain } => normal(gain * (2.0 / (fi + fo)).sqrt(), rng),
            Init::KaimingUniform { gain, fan: f } => uniform(gain * (3.0 / fan(f)).sqrt(), rng),
            Init::KaimingNormal { gain, fan: f } => normal(gain / fan(f).sqrt(), rng),
            Init::Normal { std } => normal(std, rng),
            Init::Zeros => Tensor::zeros(shape),
        }
    }

    /// A bias of length `n`: zeros, except PyTorch's default (uniform in ±1/√fan_in).
    pub fn bias<T: Element>(&self, n: usize, fan_in: usize, rng: &mut impl Rng) -> Tensor<T> {
        match self {
            Init::PyTorchDefault => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                Tensor::uniform(&[n], T::of(-bound), T::of(bound), rng)
            }
            _ => Tensor::zeros(&[n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::seeded_rng;

    fn std_of(t: &Tensor<f64>) -> f64 {
        let n = t.numel() as f64;
        let mean = t.data().iter().sum::<f64>() / n;
        (t.data().iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn variances_match_the_formulas() {
        let mut rng = seeded_rng(0);
        let (fi, fo) = (400, 100);
        let he = Init::he().weight::<f64>(&[fo, fi], fi, fo, &mut rng);
        assert!((std_of(&he) / (2.0 / fi as f64).sqrt() - 1.0).abs() < 0.03);
        let xu = Init::XavierUniform { gain: 1.0 }.weight::<f64>(&[fo, fi], fi, fo, &mut rng);
        let bound = (6.0 / (fi + fo) as f64).sqrt();
        assert!(xu.data().iter().all(|x| x.abs() <= bound));
        assert!((std_of(&xu) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.03);
        let ku = Init::KaimingUniform {
            gain: 1.0,
            fan: Fan::Out,
        }
        .weight::<f64>(&[fo, fi], fi, fo, &mut rng);
        assert!((std_of(&ku) / (1.0 / fo as f64).sqrt() - 1.0).abs() < 0.03);
        assert_eq!(
            Init::Zeros.weight::<f32>(&[2, 2], 2, 2, &mut rng).to_vec(),
            vec![0.0; 4]
        );
        assert!((gain("relu") - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn linear_starts_as_pytorchs_and_drops_its_bias_on_request() {
        let layer = crate::Linear::<f64>::new(50, 400, true, &mut seeded_rng(1));
        let bound = 1.0 / 50f64.sqrt();
        let (w, b) = (layer.weight.value(), layer.bias.as_ref().unwrap().value());
        assert!(w.data().iter().chain(b.data()).all(|v| v.abs() <= bound));
        assert!((std_of(&w) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.03);
        assert!((std_of(&b) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.15);
        assert!(layer.without_bias().bias.is_none());
    }
}
