//! The manual-backward reference: the notebook's layers with their backward passes written
//! out by hand.
//!
//! Each layer has an explicit `forward` that caches what its backward needs, and an explicit
//! `backward` that takes the upstream gradient `d_out = ∂L/∂output`, stores the gradients of
//! its parameters in the layer, and returns `d_in = ∂L/∂input` — exactly the structure of
//! the notebook's Python classes. Nothing here touches the tape: no [`Var`](autograd::Var),
//! no [`Tape`](autograd::Tape), only the plain [`Tensor`] kernels. That is what makes it a
//! reference for the tape's gradients (see [`crate::crosscheck`]) and a baseline for its
//! speed.
//!
//! | layer | forward | backward | caches |
//! |-------|---------|----------|--------|
//! | [`Linear`] | y = x·Wᵀ + b | dx = dY·W, dW = dYᵀ·x, db = Σ_rows dY | x |
//! | [`ReLU`] | max(x, 0) | dY·𝟙(y > 0) | y |
//! | [`Sigmoid`] | 1/(1+e⁻ˣ) | dY·y(1−y) | y |
//! | [`Tanh`] | tanh x | dY·(1−y²) | y |
//! | [`MSELoss`] | mean((ŷ−y)²) | 2(ŷ−y)/n | ŷ−y |
//! | [`ResidualBlock`] | ReLU(F(x) + x) | the notebook's, `dR + d` | (its layers') |
//! | [`ProjectionBlock`] | ReLU(F(x) + P·x) | `dR + Pᵀ·d` | (its layers') |
//!
//! Gradients are *stored*, not accumulated: each `backward` overwrites the gradients of the
//! previous one. [`Layer::sgd_step`] updates every parameter in place, `p ← p − lr·grad`.
//!
//! ```
//! use autograd::{Tensor, seeded_rng};
//! use nn::manual::{Layer, MSELoss, ResidualBlock};
//!
//! let mut rng = seeded_rng(0);
//! let mut block = ResidualBlock::<f64>::from_autograd(&nn::ResidualBlock::new(4, nn::Init::he(), &mut rng));
//! let x = Tensor::uniform(&[8, 4], -1.0, 1.0, &mut rng);
//! let y = Tensor::zeros(&[8, 4]);
//! let mut mse = MSELoss::new();
//! let before = mse.forward(&block.forward(&x), &y);
//! let d_in = block.backward(&mse.backward());
//! assert_eq!(d_in.shape(), &[8, 4]);
//! block.sgd_step(0.1);
//! assert!(mse.forward(&block.forward(&x), &y) < before);
//! ```

use crate::param::Param;
use autograd::{Caller, Element, Error, Result, Tensor};

/// A learnable tensor of a manual layer, with the gradient its last backward stored.
#[derive(Clone, Debug)]
pub struct Parameter<T: Element> {
    /// The current value.
    pub value: Tensor<T>,
    /// ∂L/∂value from the last backward (`None` before the first).
    pub grad: Option<Tensor<T>>,
}

impl<T: Element> Parameter<T> {
    /// A parameter holding `value`, without a gradient yet.
    pub fn new(value: Tensor<T>) -> Self {
        Parameter { value, grad: None }
    }

    /// A snapshot of an autograd parameter: shares its buffer until either side writes
    /// (copy-on-write), so the two start from exactly the same numbers.
    pub fn from_param(p: &Param<T>) -> Self {
        Self::new(p.value())
    }

    /// The stored gradient, zeros of the value's shape before the first backward.
    pub fn grad_or_zeros(&self) -> Tensor<T> {
        self.grad
            .clone()
            .unwrap_or_else(|| Tensor::zeros(self.value.shape()))
    }

    /// Plain SGD in place: `value ← value − lr·grad` (nothing happens without a gradient).
    /// Copies the value's buffer only if something else still shares it.
    pub fn sgd_step(&mut self, lr: T) {
        if let Some(g) = &self.grad {
            for (p, &g) in self.value.data_mut().iter_mut().zip(g.data()) {
                *p -= lr * g;
            }
        }
    }
}

/// A layer with a hand-written backward pass.
pub trait Layer<T: Element> {
    /// The layer's kind, as printed in reports ("Linear", "ResidualBlock", …).
    fn name(&self) -> &'static str;

    /// The forward pass; caches what [`Layer::backward`] needs.
    fn forward(&mut self, x: &Tensor<T>) -> Tensor<T>;

    /// The backward pass for the last forward: takes `d_out = ∂L/∂output`, stores the
    /// parameters' gradients in the layer and returns `d_in = ∂L/∂input`.
    ///
    /// # Panics
    /// If called before [`Layer::forward`], or if `d_out`'s shape is not the output's.
    fn backward(&mut self, d_out: &Tensor<T>) -> Tensor<T>;

    /// Every parameter with its dotted name — the same names as the autograd layer's
    /// [`Module::named_parameters`](crate::Module::named_parameters).
    fn named_parameters(&self) -> Vec<(String, &Parameter<T>)> {
        Vec::new()
    }

    /// Every parameter, mutably, in the order of [`Layer::named_parameters`].
    fn parameters_mut(&mut self) -> Vec<&mut Parameter<T>> {
        Vec::new()
    }

    /// Plain SGD on every parameter, in place: `p ← p − lr·grad`.
    fn sgd_step(&mut self, lr: T) {
        for p in self.parameters_mut() {
            p.sgd_step(lr);
        }
    }
}

/// Panics with a shape-mismatch message naming `op`, both shapes and the caller's line.
#[track_caller]
fn expect_shape(op: &'static str, expected: &[usize], got: &[usize]) {
    if expected != got {
        panic!(
            "{}",
            Error::ShapeMismatch {
                op,
                expected: expected.into(),
                got: got.into(),
                at: Caller::here(),
            }
        );
    }
}

/// The tensor cached by the last forward, or a panic naming the layer.
#[track_caller]
fn cached<'a, T>(cache: &'a Option<Tensor<T>>, op: &'static str) -> &'a Tensor<T> {
    match cache {
        Some(t) => t,
        None => panic!(
            "{op}: backward called before forward (at {})",
            Caller::here()
        ),
    }
}

/// The value of a `Result` whose shapes were already checked; panics with its message.
#[track_caller]
fn checked<R>(r: Result<R>) -> R {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `a + b` written into `a`'s buffer (copied first only if shared); same shapes.
#[track_caller]
fn add_in_place<T: Element>(mut a: Tensor<T>, b: &Tensor<T>, op: &'static str) -> Tensor<T> {
    expect_shape(op, a.shape(), b.shape());
    for (x, &y) in a.data_mut().iter_mut().zip(b.data()) {
        *x += y;
    }
    a
}

/// `d_out ⊙ f(y)` elementwise, `y` a cached output of the same shape.
#[track_caller]
fn times_derivative<T: Element>(
    d_out: &Tensor<T>,
    y: &Tensor<T>,
    op: &'static str,
    f: impl Fn(T) -> T,
) -> Tensor<T> {
    expect_shape(op, y.shape(), d_out.shape());
    let mut d_in = d_out.clone();
    for (g, &y) in d_in.data_mut().iter_mut().zip(y.data()) {
        *g *= f(y);
    }
    d_in
}

/// Prefixes parameter names with `"{prefix}."`.
fn prefixed<'a, T: Element>(
    prefix: &str,
    params: Vec<(String, &'a Parameter<T>)>,
) -> Vec<(String, &'a Parameter<T>)> {
    params
        .into_iter()
        .map(|(n, p)| (format!("{prefix}.{n}"), p))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------------------

/// `y = x·Wᵀ + b`, `W` of shape `[out, in]`; backward `dx = dY·W`, `dW = dYᵀ·x`,
/// `db = Σ_rows dY`. Inputs may have leading batch axes (`[…, in]`).
#[derive(Clone, Debug)]
pub struct Linear<T: Element> {
    /// `[out_features, in_features]`.
    pub weight: Parameter<T>,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Parameter<T>>,
    input: Option<Tensor<T>>,
}

impl<T: Element> Linear<T> {
    /// A layer with weight `[out, in]` and optional bias `[out]`.
    ///
    /// # Panics
    /// If the weight is not a matrix or the bias does not have `out` elements.
    #[track_caller]
    pub fn new(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Self {
        checked(Self::try_new(weight, bias))
    }

    /// [`Linear::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Result<Self> {
        if weight.rank() != 2 {
            return Err(Error::Rank {
                op: "manual::Linear::new",
                expected: "a rank-2 weight [out, in]",
                got: weight.shape().into(),
                at: Caller::here(),
            });
        }
        if let Some(b) = bias.as_ref().filter(|b| b.shape() != [weight.shape()[0]]) {
            return Err(Error::ShapeMismatch {
                op: "manual::Linear::new",
                expected: [weight.shape()[0]].as_slice().into(),
                got: b.shape().into(),
                at: Caller::here(),
            });
        }
        Ok(Linear {
            weight: Parameter::new(weight),
            bias: bias.map(Parameter::new),
            input: None,
        })
    }

    /// The same parameters as an autograd [`crate::Linear`] (shared until either side
    /// writes).
    pub fn from_autograd(layer: &crate::Linear<T>) -> Self {
        Linear {
            weight: Parameter::from_param(&layer.weight),
            bias: layer.bias.as_ref().map(Parameter::from_param),
            input: None,
        }
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.weight.value.shape()[1]
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.weight.value.shape()[0]
    }
}

impl<T: Element> Layer<T> for Linear<T> {
    fn name(&self) -> &'static str {
        "Linear"
    }

    #[track_caller]
    fn forward(&mut self, x: &Tensor<T>) -> Tensor<T> {
        let y = x.linear(&self.weight.value, self.bias.as_ref().map(|b| &b.value));
        self.input = Some(x.clone()); // shares x's buffer: no copy
        y
    }

    #[track_caller]
    fn backward(&mut self, d_out: &Tensor<T>) -> Tensor<T> {
        const OP: &str = "manual::Linear::backward";
        let x = cached(&self.input, OP);
        let (out_f, in_f) = (self.out_features(), self.in_features());
        let mut y_shape = x.shape().to_vec();
        if let Some(last) = y_shape.last_mut() {
            *last = out_f;
        }
        expect_shape(OP, &y_shape, d_out.shape());
        // Leading axes are just more rows.
        let rows = x.numel() / in_f.max(1);
        let d_y = d_out.reshape(&[rows, out_f]);
        let x2 = x.reshape(&[rows, in_f]);
        // dW = dYᵀ·x (the transpose is a stride, not a copy)
        self.weight.grad = Some(checked(d_y.try_matmul_t(true, &x2, false)));
        // db = Σ_rows dY
        if let Some(b) = &mut self.bias {
            b.grad = Some(d_y.sum_axes(&[0], false));
        }
        // dx = dY·W
        let d_x = checked(d_y.try_matmul_t(false, &self.weight.value, false));
        d_x.reshape(x.shape())
    }

    fn named_parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let mut v = vec![("weight".to_string(), &self.weight)];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b)));
        v
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter<T>> {
        let mut v = vec![&mut self.weight];
        v.extend(self.bias.as_mut());
        v
    }
}

// ---------------------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------------------

macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, $label:literal, forward: $f:expr, derivative_from_output: $df:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default)]
        pub struct $name<T: Element> {
            output: Option<Tensor<T>>,
        }

        impl<T: Element> $name<T> {
            /// A new layer (it has no parameters).
            pub fn new() -> Self {
                $name { output: None }
            }
        }

        impl<T: Element> Layer<T> for $name<T> {
            fn name(&self) -> &'static str {
                $label
            }

            fn forward(&mut self, x: &Tensor<T>) -> Tensor<T> {
                let f: fn(&Tensor<T>) -> Tensor<T> = $f;
                let y = f(x);
                self.output = Some(y.clone()); // shares y's buffer
                y
            }

            #[track_caller]
            fn backward(&mut self, d_out: &Tensor<T>) -> Tensor<T> {
                const OP: &str = concat!("manual::", $label, "::backward");
                let y = cached(&self.output, OP);
                let df: fn(T) -> T = $df;
                times_derivative(d_out, y, OP, df)
            }
        }
    };
}

activation_layer!(
    /// `max(x, 0)`; backward `dY·[y > 0]` (the output's sign is the input's).
    ReLU, "ReLU",
    forward: |x| x.relu(),
    derivative_from_output: |y| if y > T::zero() { T::one() } else { T::zero() }
);
activation_layer!(
    /// The logistic sigmoid `1/(1+e⁻ˣ)`; backward `dY·y(1−y)`.
    Sigmoid, "Sigmoid",
    forward: |x| x.sigmoid(),
    derivative_from_output: |y| y * (T::one() - y)
);
activation_layer!(
    /// `tanh x`; backward `dY·(1−y²)`.
    Tanh, "Tanh",
    forward: |x| x.tanh(),
    derivative_from_output: |y| T::one() - y * y
);

// ---------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------

/// Mean squared error `L = mean((ŷ − y)²)` over all entries; `backward` returns
/// `∂L/∂ŷ = 2(ŷ − y)/n`.
#[derive(Clone, Debug, Default)]
pub struct MSELoss<T: Element> {
    diff: Option<Tensor<T>>,
}

impl<T: Element> MSELoss<T> {
    /// A new loss.
    pub fn new() -> Self {
        MSELoss { diff: None }
    }

    /// The loss of prediction `pred` against `target` (same shapes).
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn forward(&mut self, pred: &Tensor<T>, target: &Tensor<T>) -> T {
        checked(self.try_forward(pred, target))
    }

    /// [`MSELoss::forward`], as a `Result`.
    #[track_caller]
    pub fn try_forward(&mut self, pred: &Tensor<T>, target: &Tensor<T>) -> Result<T> {
        if pred.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                op: "manual::MSELoss::forward",
                expected: pred.shape().into(),
                got: target.shape().into(),
                at: Caller::here(),
            });
        }
        let diff = pred - target;
        // The tape's mean, kernel for kernel: the squares summed over every axis (pairwise
        // summation), then divided by n. A loop of `+=` here drifts from the tape by 4e-5
        // in f32 at 262,144 elements.
        let every_axis: Vec<usize> = (0..diff.rank()).collect();
        let sum_sq = (&diff * &diff).try_sum_axes(&every_axis, false)?.item();
        self.diff = Some(diff);
        Ok(sum_sq / T::of(pred.numel() as f64))
    }

    /// `∂L/∂pred = 2(pred − target)/n` for the last forward.
    ///
    /// # Panics
    /// If called before [`MSELoss::forward`].
    #[track_caller]
    pub fn backward(&mut self) -> Tensor<T> {
        let diff = cached(&self.diff, "manual::MSELoss::backward");
        let scale = T::of(2.0) / T::of(diff.numel().max(1) as f64);
        diff * scale
    }
}

// ---------------------------------------------------------------------------------------
// Residual blocks
// ---------------------------------------------------------------------------------------

/// The notebook's residual block, `ReLU(F(x) + x)` with `F = Linear → ReLU → Linear`, and
/// the notebook's backward, line for line.
#[derive(Clone, Debug)]
pub struct ResidualBlock<T: Element> {
    /// First layer of the branch F.
    pub linear1: Linear<T>,
    /// Activation inside the branch.
    pub relu1: ReLU<T>,
    /// Second layer of the branch F.
    pub linear2: Linear<T>,
    /// Activation after the addition.
    pub relu2: ReLU<T>,
}

impl<T: Element> ResidualBlock<T> {
    /// A block from its two layers; both must map width `n → n`.
    ///
    /// # Panics
    /// If a layer is not square or the widths differ.
    #[track_caller]
    pub fn new(linear1: Linear<T>, linear2: Linear<T>) -> Self {
        checked(Self::try_new(linear1, linear2))
    }

    /// [`ResidualBlock::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(linear1: Linear<T>, linear2: Linear<T>) -> Result<Self> {
        let n = linear1.in_features();
        for l in [&linear1, &linear2] {
            if l.weight.value.shape() != [n, n] {
                return Err(Error::ShapeMismatch {
                    op: "manual::ResidualBlock::new (the skip needs n → n layers)",
                    expected: [n, n].as_slice().into(),
                    got: l.weight.value.shape().into(),
                    at: Caller::here(),
                });
            }
        }
        Ok(Self::from_layers(linear1, linear2))
    }

    /// The same parameters as an autograd [`crate::ResidualBlock`].
    pub fn from_autograd(block: &crate::ResidualBlock<T>) -> Self {
        Self::from_layers(
            Linear::from_autograd(&block.linear1),
            Linear::from_autograd(&block.linear2),
        )
    }

    /// The block around its layers (widths not checked), with fresh ReLUs.
    fn from_layers(linear1: Linear<T>, linear2: Linear<T>) -> Self {
        ResidualBlock {
            linear1,
            relu1: ReLU::new(),
            linear2,
            relu2: ReLU::new(),
        }
    }
}

impl<T: Element> Layer<T> for ResidualBlock<T> {
    fn name(&self) -> &'static str {
        "ResidualBlock"
    }

    #[track_caller]
    fn forward(&mut self, x: &Tensor<T>) -> Tensor<T> {
        // Pass input through all layers in block
        let out = self.linear1.forward(x);
        let out = self.relu1.forward(&out);
        let out = self.linear2.forward(&out);
        // Combine layer output with initial input: out + x (in place)
        let out = add_in_place(out, x, "manual::ResidualBlock::forward (out + x)");
        // Pass combined output through final activation function
        self.relu2.forward(&out)
    }

    #[track_caller]
    fn backward(&mut self, d_y: &Tensor<T>) -> Tensor<T> {
        // Gradient through final ReLU
        let d = self.relu2.backward(d_y);
        // residual branch backward
        let d_r = self.linear2.backward(&d);
        let d_r = self.relu1.backward(&d_r);
        let d_r = self.linear1.backward(&d_r);
        // Combine gradients from skip and residual paths: dR + d (in place)
        add_in_place(d_r, &d, "manual::ResidualBlock::backward (dR + d)")
    }

    fn named_parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        v
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter<T>> {
        let mut v = self.linear1.parameters_mut();
        v.extend(self.linear2.parameters_mut());
        v
    }
}

/// The residual block whose shortcut is a projection: `ReLU(F(x) + P·x)`, with
/// `F = Linear(in → out) → ReLU → Linear(out → out)` and `P` a bias-free `Linear(in → out)`.
///
/// Its backward is the notebook's with the skip term sent back through the projection:
/// `dR + Pᵀ·d` instead of `dR + d`.
#[derive(Clone, Debug)]
pub struct ProjectionBlock<T: Element> {
    /// Branch layer `in → out`.
    pub linear1: Linear<T>,
    /// Activation inside the branch.
    pub relu1: ReLU<T>,
    /// Branch layer `out → out`.
    pub linear2: Linear<T>,
    /// The shortcut's projection `in → out`, without bias.
    pub projection: Linear<T>,
    /// Activation after the addition.
    pub relu2: ReLU<T>,
}

impl<T: Element> ProjectionBlock<T> {
    /// A block from its layers: `linear1` `in → out`, `linear2` `out → out`, `projection`
    /// `in → out`.
    ///
    /// # Panics
    /// If the widths do not chain.
    #[track_caller]
    pub fn new(linear1: Linear<T>, linear2: Linear<T>, projection: Linear<T>) -> Self {
        checked(Self::try_new(linear1, linear2, projection))
    }

    /// [`ProjectionBlock::new`], as a `Result`.
    #[track_caller]
    pub fn try_new(linear1: Linear<T>, linear2: Linear<T>, projection: Linear<T>) -> Result<Self> {
        let (n_in, n_out) = (linear1.in_features(), linear1.out_features());
        for (l, want) in [(&linear2, [n_out, n_out]), (&projection, [n_out, n_in])] {
            if l.weight.value.shape() != want {
                return Err(Error::ShapeMismatch {
                    op: "manual::ProjectionBlock::new",
                    expected: want.as_slice().into(),
                    got: l.weight.value.shape().into(),
                    at: Caller::here(),
                });
            }
        }
        Ok(Self::from_layers(linear1, linear2, projection))
    }

    /// The same parameters as an autograd [`crate::ProjectionBlock`].
    pub fn from_autograd(block: &crate::ProjectionBlock<T>) -> Self {
        Self::from_layers(
            Linear::from_autograd(&block.linear1),
            Linear::from_autograd(&block.linear2),
            Linear::from_autograd(&block.projection),
        )
    }

    /// The block around its layers (widths not checked), with fresh ReLUs.
    fn from_layers(linear1: Linear<T>, linear2: Linear<T>, projection: Linear<T>) -> Self {
        ProjectionBlock {
            linear1,
            relu1: ReLU::new(),
            linear2,
            projection,
            relu2: ReLU::new(),
        }
    }
}

impl<T: Element> Layer<T> for ProjectionBlock<T> {
    fn name(&self) -> &'static str {
        "ProjectionBlock"
    }

    #[track_caller]
    fn forward(&mut self, x: &Tensor<T>) -> Tensor<T> {
        let out = self.linear1.forward(x);
        let out = self.relu1.forward(&out);
        let out = self.linear2.forward(&out);
        // The shortcut projects x to the branch's width: out + P·x
        let shortcut = self.projection.forward(x);
        let out = add_in_place(out, &shortcut, "manual::ProjectionBlock::forward");
        self.relu2.forward(&out)
    }

    #[track_caller]
    fn backward(&mut self, d_y: &Tensor<T>) -> Tensor<T> {
        let d = self.relu2.backward(d_y);
        let d_r = self.linear2.backward(&d);
        let d_r = self.relu1.backward(&d_r);
        let d_r = self.linear1.backward(&d_r);
        // The skip path goes back through the projection: Pᵀ·d
        let d_s = self.projection.backward(&d);
        add_in_place(d_r, &d_s, "manual::ProjectionBlock::backward (dR + dS)")
    }

    fn named_parameters(&self) -> Vec<(String, &Parameter<T>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        v.extend(prefixed("projection", self.projection.named_parameters()));
        v
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter<T>> {
        let mut v = self.linear1.parameters_mut();
        v.extend(self.linear2.parameters_mut());
        v.extend(self.projection.parameters_mut());
        v
    }
}

// ---------------------------------------------------------------------------------------
// Sequential
// ---------------------------------------------------------------------------------------

/// Layers applied one after another; backward runs them in reverse. Parameter names are
/// prefixed with each layer's index, as in [`crate::Sequential`].
#[derive(Default)]
pub struct Sequential<T: Element> {
    /// The layers, first applied first.
    pub layers: Vec<Box<dyn Layer<T>>>,
}

impl<T: Element> Sequential<T> {
    /// An empty sequence.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer (builder style).
    pub fn push(mut self, layer: impl Layer<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<T: Element> Layer<T> for Sequential<T> {
    fn name(&self) -> &'static str {
        "Sequential"
    }

    #[track_caller]
    fn forward(&mut self, x: &Tensor<T>) -> Tensor<T> {
        let mut h = x.clone();
        for layer in &mut self.layers {
            h = layer.forward(&h);
        }
        h
    }

    #[track_caller]
    fn backward(&mut self, d_out: &Tensor<T>) -> Tensor<T> {
        let mut d = d_out.clone();
        for layer in self.layers.iter_mut().rev() {
            d = layer.backward(&d);
        }
        d
    }

    fn named_parameters(&self) -> Vec<(String, &Parameter<T>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.named_parameters()))
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<&mut Parameter<T>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.parameters_mut())
            .collect()
    }

    fn sgd_step(&mut self, lr: T) {
        for layer in &mut self.layers {
            layer.sgd_step(lr);
        }
    }
}
