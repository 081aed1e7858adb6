//! `Linear`: y = x·Wᵀ + b, one fused node on the tape.

use crate::init::Init;
use crate::module::{Ctx, Module, or_panic};
use crate::param::Param;
use autograd::rand::Rng;
use autograd::{Element, Result, Tensor, Var};

/// A fully connected layer: `y = x·Wᵀ + b`, `W` of shape `[out, in]` (PyTorch's layout).
pub struct Linear<T: Element = f32> {
    /// `[out_features, in_features]`.
    pub weight: Param<T>,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
}

impl<T: Element> Linear<T> {
    /// PyTorch's default initialisation (`nn.Linear(in, out, bias)`): W and b uniform in
    /// ±1/√in ([`Init::PyTorchDefault`]).
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut impl Rng) -> Self {
        Self::with_init(in_features, out_features, bias, Init::PyTorchDefault, rng)
    }

    /// A layer whose weight is drawn with `init` (the bias starts at zero, except for
    /// `Init::PyTorchDefault`).
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        let weight = init.weight::<T>(&[out_features, in_features], in_features, out_features, rng);
        let bias = bias.then(|| Param::new(init.bias::<T>(out_features, in_features, rng)));
        Linear {
            weight: Param::new(weight),
            bias,
        }
    }

    /// A layer with the given weight `[out, in]` and optional bias `[out]`.
    pub fn from_tensors(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Self {
        Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
        }
    }

    /// The same layer without its bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl<T: Element> Module<T> for Linear<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// `x·Wᵀ + b` for `x` of shape `[…, in_features]`; an error naming the caller's line
    /// when the input's last axis is not `in_features`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor, seeded_rng};
    /// use nn::{Ctx, Linear, Module};
    ///
    /// let layer = Linear::<f32>::new(3, 2, true, &mut seeded_rng(0));
    /// let tape = Tape::new();
    /// let cx = Ctx::eval(&tape);
    /// let err = layer.try_forward(&cx, &cx.input(Tensor::ones(&[4, 5]))).unwrap_err();
    /// assert!(err.to_string().contains("[4, 5]"));
    /// ```
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let w = cx.param(&self.weight);
        let b = self.bias.as_ref().map(|b| cx.param(b));
        x.try_linear(&w, b.as_ref())
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
