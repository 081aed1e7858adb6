//! Activation functions as modules (no parameters).

use crate::module::{Ctx, Module};
use crate::param::Param;
use autograd::{Element, GeluApproximation, Var};

/// An activation function, for builders and layers that take one as a setting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// f(x) = x.
    Identity,
    /// max(x, 0).
    Relu,
    /// x or `slope`·x.
    LeakyRelu(f64),
    /// 1/(1+e⁻ˣ).
    Sigmoid,
    /// tanh x.
    Tanh,
    /// GELU, exact (`GeluApproximation::None`, PyTorch's default) or with the tanh
    /// approximation.
    Gelu(GeluApproximation),
}

impl Activation {
    /// Applies the function to a value on the tape.
    pub fn apply<'t, T: Element>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        match *self {
            Activation::Identity => x.clone(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(s) => x.leaky_relu(T::of(s)),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Gelu(approximate) => x.gelu(approximate),
        }
    }

    /// The name PyTorch's `calculate_gain` knows it by.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Identity => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu(_) => "gelu",
        }
    }
}

impl<T: Element> Module<T> for Activation {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        self.apply(x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}

macro_rules! activation_module {
    ($(#[$doc:meta])* $name:ident, $act:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl<T: Element> Module<T> for $name {
            fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
                $act.apply(x)
            }
            fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                Vec::new()
            }
        }
    };
}

activation_module!(
    /// ReLU as a module: max(x, 0).
    Relu, Activation::Relu
);
activation_module!(
    /// The logistic sigmoid as a module.
    Sigmoid, Activation::Sigmoid
);
activation_module!(
    /// tanh as a module.
    Tanh, Activation::Tanh
);

/// GELU as a module, PyTorch's `nn.GELU(approximate=…)`: exact by default
/// (`Gelu::default()`, x·Φ(x)), or with the tanh approximation.
///
/// ```
/// use autograd::{GeluApproximation, Tensor};
/// use nn::{Gelu, Module};
/// let exact = Gelu::default();
/// assert_eq!(exact.approximate, GeluApproximation::None);
/// let tanh = Gelu::new(GeluApproximation::Tanh);
/// let x = Tensor::from_vec(vec![-1.0f64, 0.5, 2.0], &[3]).unwrap();
/// let (ye, yt) = (exact.predict(&x), tanh.predict(&x));
/// assert!(ye.max_abs_diff(&yt) < 5e-4 && ye != yt);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Exact (`GeluApproximation::None`, the default) or the tanh approximation.
    pub approximate: GeluApproximation,
}

impl Gelu {
    /// GELU with this approximation (`GeluApproximation::None`: exact).
    pub fn new(approximate: GeluApproximation) -> Self {
        Gelu { approximate }
    }
}

impl<T: Element> Module<T> for Gelu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        Activation::Gelu(self.approximate).apply(x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}

/// Leaky ReLU as a module: x for x > 0, `slope`·x otherwise.
#[derive(Clone, Copy, Debug)]
pub struct LeakyRelu {
    /// The slope for negative inputs.
    pub slope: f64,
}

impl<T: Element> Module<T> for LeakyRelu {
    fn forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        Activation::LeakyRelu(self.slope).apply(x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{GradcheckOptions, Tensor, gradcheck, seeded_rng};

    #[test]
    fn gelu_is_exact_by_default_and_has_its_gradient_either_way() {
        let x = Tensor::uniform(&[3, 4], -3.0, 3.0, &mut seeded_rng(5));
        assert_eq!(Gelu::default().approximate, GeluApproximation::None);
        for approximate in [GeluApproximation::None, GeluApproximation::Tanh] {
            let module = Gelu::new(approximate);
            assert_eq!(module.predict(&x), x.gelu(approximate));
            assert_eq!(
                Activation::Gelu(approximate).predict(&x),
                x.gelu(approximate)
            );
            let report = gradcheck(
                |v| {
                    let cx = Ctx::eval(v[0].tape());
                    module.forward(&cx, &v[0]).tanh()
                },
                std::slice::from_ref(&x),
                &GradcheckOptions::default(),
            );
            assert!(report.passed(), "{approximate:?}: {report}");
        }
        assert_eq!(Activation::Gelu(GeluApproximation::Tanh).name(), "gelu");
    }
}
