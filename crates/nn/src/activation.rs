//! Activation functions as modules (no parameters).

use crate::module::{Ctx, Module};
use crate::param::Param;
use autograd::{Element, Var};

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
    /// GELU (tanh approximation).
    Gelu,
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
            Activation::Gelu => x.gelu(),
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
            Activation::Gelu => "gelu",
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
activation_module!(
    /// GELU (tanh approximation) as a module.
    Gelu, Activation::Gelu
);

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
