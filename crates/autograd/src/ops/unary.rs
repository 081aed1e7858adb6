//! Elementwise functions and arithmetic with a scalar.
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | scalar `x+c`, `x·c`, `x/c`, `c−x`, `−x` | | g, g·c, g/c, −g, −g | nothing |
//! | scalar `c/x` | c/x | −g·c/x² | x |
//! | exp | eˣ | g·y | y |
//! | ln | ln x | g/x | x |
//! | sqrt | √x | g/(2y) | y |
//! | powf | xᵖ | g·p·xᵖ⁻¹ | x |
//! | abs | \|x\| | g·sign x | x |
//! | relu | max(x, 0), NaN for NaN | g·[y>0] (g passes at NaN) | y |
//! | leaky_relu | x or αx | g·(1 or α) | x |
//! | sigmoid | 1/(1+e⁻ˣ), stable | g·y(1−y) | y |
//! | tanh | tanh x | g·(1−y²) | y |
//! | softplus | ln(1+eˣ), stable | g·σ(x) | x |
//! | clamp | min(max(x, lo), hi), NaN for NaN | g·[lo ≤ x ≤ hi] (0 at NaN) | x |
//! | erf | 2/√π ∫₀ˣ e^(−t²) dt | g·2/√π·e^(−x²), composed of recorded ops | x |
//! | gelu (exact) | ½x(1+erf(x/√2)) | composed of the ops above | — |
//! | gelu (tanh) | ½x(1+tanh(√(2/π)(x+0.044715x³))) | composed of the ops above (cubic clamped at \|x\| ≤ 10, where tanh is saturated) | — |
//!
//! Masks such as ReLU's step are constants in the backward pass (their derivative is 0
//! almost everywhere), which is also what recorded backward records.
//!
//! NaN propagates as in PyTorch: every op here maps NaN to NaN (`relu` and `clamp`
//! included), and the gradient masks at NaN are PyTorch's (relu passes `g`, clamp and abs
//! send 0, leaky_relu sends `α·g`).

use super::{Algebra, Op, Saved, SavedTensor};
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::shape;
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, nan_max, nan_min, output_buffer};

/// Arithmetic between a tensor and a scalar `c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ScalarOp<T> {
    /// `x + c` (and `x − c` as `x + (−c)`, which IEEE arithmetic makes identical).
    Add(T),
    /// `x · c`.
    Mul(T),
    /// `x / c`.
    Div(T),
    /// `c − x`.
    RSub(T),
    /// `c / x`.
    RDiv(T),
    /// `−x`.
    Neg,
}

impl<T: Element> ScalarOp<T> {
    #[track_caller]
    fn apply(self, x: &Tensor<T>) -> Tensor<T> {
        let op = self.name();
        match self {
            ScalarOp::Add(c) => x.map_as(op, |v| v + c),
            ScalarOp::Mul(c) => x.map_as(op, |v| v * c),
            ScalarOp::Div(c) => x.map_as(op, |v| v / c),
            ScalarOp::RSub(c) => x.map_as(op, |v| c - v),
            ScalarOp::RDiv(c) => x.map_as(op, |v| c / v),
            ScalarOp::Neg => x.map_as(op, |v| -v),
        }
    }

    /// The op's name, as printed in tape tables.
    fn name(self) -> &'static str {
        match self {
            ScalarOp::Add(_) => "add_scalar",
            ScalarOp::Mul(_) => "mul_scalar",
            ScalarOp::Div(_) => "div_scalar",
            ScalarOp::RSub(_) => "scalar_sub",
            ScalarOp::RDiv(_) => "scalar_div",
            ScalarOp::Neg => "neg",
        }
    }
}

/// A recorded elementwise op, with what its backward needs: `x` (the input) or `out` (the
/// output), whichever gives the cheaper derivative.
#[derive(Clone)]
pub(crate) enum UnaryOp<T> {
    /// Saves `x` only for `c / x`.
    Scalar {
        op: ScalarOp<T>,
        x: Option<Saved<T>>,
    },
    Exp {
        out: Saved<T>,
    },
    Ln {
        x: Saved<T>,
    },
    Sqrt {
        out: Saved<T>,
    },
    Powf {
        x: Saved<T>,
        p: T,
    },
    Abs {
        x: Saved<T>,
    },
    /// Saves its output: [y > 0] = [x > 0], and the output is usually what the next layer
    /// saves anyway, so the two share one buffer.
    Relu {
        out: Saved<T>,
    },
    LeakyRelu {
        x: Saved<T>,
        slope: T,
    },
    Sigmoid {
        out: Saved<T>,
    },
    Tanh {
        out: Saved<T>,
    },
    Softplus {
        x: Saved<T>,
    },
    Clamp {
        x: Saved<T>,
        lo: T,
        hi: T,
    },
    Erf {
        x: Saved<T>,
    },
}

impl<T> UnaryOp<T> {
    /// The tensor it keeps for backward (every unary op keeps at most one).
    pub fn saved(&self) -> Option<&Saved<T>> {
        match self {
            UnaryOp::Scalar { x, .. } => x.as_ref(),
            UnaryOp::Exp { out }
            | UnaryOp::Sqrt { out }
            | UnaryOp::Relu { out }
            | UnaryOp::Sigmoid { out }
            | UnaryOp::Tanh { out } => Some(out),
            UnaryOp::Ln { x }
            | UnaryOp::Powf { x, .. }
            | UnaryOp::Abs { x }
            | UnaryOp::LeakyRelu { x, .. }
            | UnaryOp::Softplus { x }
            | UnaryOp::Clamp { x, .. }
            | UnaryOp::Erf { x } => Some(x),
        }
    }

    /// Whether it holds no saved tensor (see [`Op::owns_nothing`]).
    pub fn owns_nothing(&self) -> bool {
        self.saved().is_none_or(Saved::is_number)
    }
}

impl<T: Element> UnaryOp<T> {
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Scalar { op, .. } => op.name(),
            UnaryOp::Exp { .. } => "exp",
            UnaryOp::Ln { .. } => "ln",
            UnaryOp::Sqrt { .. } => "sqrt",
            UnaryOp::Powf { .. } => "powf",
            UnaryOp::Abs { .. } => "abs",
            UnaryOp::Relu { .. } => "relu",
            UnaryOp::LeakyRelu { .. } => "leaky_relu",
            UnaryOp::Sigmoid { .. } => "sigmoid",
            UnaryOp::Tanh { .. } => "tanh",
            UnaryOp::Softplus { .. } => "softplus",
            UnaryOp::Clamp { .. } => "clamp",
            UnaryOp::Erf { .. } => "erf",
        }
    }

    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        let two = T::of(2.0);
        let dx = match self {
            UnaryOp::Scalar { op, x } => match (op, x) {
                (ScalarOp::Add(_), _) => g.clone(),
                (ScalarOp::Mul(c), _) => g.mul_scalar(*c),
                (ScalarOp::Div(c), _) => g.div_scalar(*c),
                (ScalarOp::RSub(_) | ScalarOp::Neg, _) => g.neg(),
                (ScalarOp::RDiv(c), Some(x)) => {
                    let x = cx.input(0, x);
                    g.div(&x.mul(&x)).mul_scalar(-*c)
                }
                (ScalarOp::RDiv(_), None) => unreachable!("c / x always saves x"),
            },
            UnaryOp::Exp { out } => g.mul(&cx.output(out)),
            UnaryOp::Ln { x } => g.div(&cx.input(0, x)),
            UnaryOp::Sqrt { out } => g.div(&cx.output(out).mul_scalar(two)),
            UnaryOp::Powf { x, p } => g.mul(&cx.input(0, x).powf(*p - T::one()).mul_scalar(*p)),
            UnaryOp::Abs { x } => g.mul_fn_of(&x.to_tensor(), |v| {
                if v > T::zero() {
                    T::one()
                } else if v < T::zero() {
                    -T::one()
                } else {
                    T::zero()
                }
            }),
            UnaryOp::Relu { out } => g.mul_fn_of(&out.to_tensor(), relu_step),
            UnaryOp::LeakyRelu { x, slope } => g.mul_fn_of(&x.to_tensor(), |v| {
                if v > T::zero() { T::one() } else { *slope }
            }),
            UnaryOp::Sigmoid { out } => {
                let y = cx.output(out);
                g.mul(&y.mul(&y.rsub_scalar(T::one())))
            }
            UnaryOp::Tanh { out } => {
                let y = cx.output(out);
                g.mul(&y.mul(&y).rsub_scalar(T::one()))
            }
            UnaryOp::Softplus { x } => g.mul(&cx.input(0, x).sigmoid()),
            UnaryOp::Clamp { x, lo, hi } => g.mul_fn_of(&x.to_tensor(), |v| {
                if *lo <= v && v <= *hi {
                    T::one()
                } else {
                    T::zero()
                }
            }),
            // 2/√π·e^(−x²), from recorded ops: differentiable again, to any order.
            UnaryOp::Erf { x } => {
                let x = cx.input(0, x);
                let two_over_sqrt_pi = T::of(std::f64::consts::FRAC_2_SQRT_PI);
                g.mul(&x.mul(&x).neg().exp().mul_scalar(two_over_sqrt_pi))
            }
        };
        cx.send(0, dx);
    }
}

impl<T: Element> UnaryOp<T> {
    /// [`UnaryOp::vjp`] on plain numbers, for a 0-d value whose saved tensor is 0-d (the
    /// light path of scalar programs): the contribution to the input, computed with the
    /// same operations in the same order as `vjp`, so the same bits. `None` for the ops
    /// left to `vjp`.
    #[inline]
    pub fn scalar_vjp(&self, g: T) -> Option<T> {
        let one = T::one();
        Some(match self {
            UnaryOp::Scalar { op, x } => match (op, x) {
                (ScalarOp::Add(_), _) => g,
                (ScalarOp::Mul(c), _) => g * *c,
                (ScalarOp::Div(c), _) => g / *c,
                (ScalarOp::RSub(_) | ScalarOp::Neg, _) => -g,
                (ScalarOp::RDiv(c), Some(Saved::Scalar(x))) => (g / (*x * *x)) * -*c,
                (ScalarOp::RDiv(_), _) => return None,
            },
            UnaryOp::Exp {
                out: Saved::Scalar(y),
            } => g * *y,
            UnaryOp::Ln {
                x: Saved::Scalar(x),
            } => g / *x,
            UnaryOp::Relu {
                out: Saved::Scalar(y),
            } => g * relu_step(*y),
            UnaryOp::Sigmoid {
                out: Saved::Scalar(y),
            } => g * (*y * (one - *y)),
            UnaryOp::Tanh {
                out: Saved::Scalar(y),
            } => g * (one - *y * *y),
            _ => return None,
        })
    }
}

/// ReLU's derivative from its output: [y > 0], except that NaN passes the gradient on
/// (PyTorch's rule: the mask is `y <= 0 ? 0 : 1`).
fn relu_step<T: Element>(y: T) -> T {
    if y <= T::zero() { T::zero() } else { T::one() }
}

fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

fn softplus<T: Element>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// Which GELU: the exact one, x·Φ(x) with Φ the standard normal distribution function, or
/// its tanh approximation — PyTorch's `approximate="none"` and `approximate="tanh"`. The
/// default is exact, as in PyTorch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GeluApproximation {
    /// Exact: ½x(1 + erf(x/√2)) (PyTorch's `approximate="none"`, its default).
    #[default]
    None,
    /// The tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (PyTorch's
    /// `approximate="tanh"`, GPT-2's GELU); within 5e-4 of the exact one.
    Tanh,
}

/// Beyond |x| = 10 the tanh in GELU is saturated to every digit of f64 (its argument
/// exceeds 43), so the cubic term is taken at the clamped value: the same function to the
/// last bit in range, and no ∞·0 = NaN in the gradient at huge inputs.
const GELU_CUBIC_LIMIT: f64 = 10.0;

/// √(2/π), the scale inside the tanh approximation.
const SQRT_2_OVER_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;

/// GELU of one value, computed as the recorded form composes it (the same operations in the
/// same order, so the two agree to the last bit).
fn gelu<T: Element>(x: T, approximate: GeluApproximation) -> T {
    let half_x = x * T::of(0.5);
    match approximate {
        GeluApproximation::None => {
            half_x * ((x * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf() + T::one())
        }
        GeluApproximation::Tanh => {
            let c = nan_min(
                nan_max(x, T::of(-GELU_CUBIC_LIMIT)),
                T::of(GELU_CUBIC_LIMIT),
            );
            let inner = (x + c * c * c * T::of(0.044715)) * T::of(SQRT_2_OVER_PI);
            half_x * (inner.tanh() + T::one())
        }
    }
}

impl<T: Element> Tensor<T> {
    /// `f` applied to every element.
    ///
    /// # Panics
    /// When the memory for the result cannot be allocated (with [`Error::Alloc`]'s
    /// message); the same holds for every elementwise op below.
    #[track_caller]
    pub fn map(&self, f: impl Fn(T) -> T) -> Tensor<T> {
        self.map_as("map", f)
    }
    /// `f` applied to every element, as op `op` (named in an allocation failure).
    #[track_caller]
    pub(crate) fn map_as(&self, op: &'static str, f: impl Fn(T) -> T) -> Tensor<T> {
        match self.as_one() {
            Some(x) => Tensor::one(f(x), shape::copy(self.shape())),
            None => {
                let mut out = or_panic(output_buffer(op, self.shape()));
                out.extend(self.data().iter().map(|&x| f(x)));
                Tensor::from_parts(out, shape::copy(self.shape()))
            }
        }
    }
    /// eˣ elementwise.
    #[track_caller]
    pub fn exp(&self) -> Tensor<T> {
        self.map_as("exp", T::exp)
    }
    /// Natural logarithm elementwise.
    #[track_caller]
    pub fn ln(&self) -> Tensor<T> {
        self.map_as("ln", T::ln)
    }
    /// Square root elementwise.
    #[track_caller]
    pub fn sqrt(&self) -> Tensor<T> {
        self.map_as("sqrt", T::sqrt)
    }
    /// xᵖ elementwise.
    #[track_caller]
    pub fn powf(&self, p: T) -> Tensor<T> {
        self.map_as("powf", |x| x.powf(p))
    }
    /// |x| elementwise.
    #[track_caller]
    pub fn abs(&self) -> Tensor<T> {
        self.map_as("abs", T::abs)
    }
    /// max(x, 0) elementwise; NaN stays NaN (as in PyTorch).
    #[track_caller]
    pub fn relu(&self) -> Tensor<T> {
        self.map_as("relu", relu)
    }
    /// x for x > 0, `slope`·x otherwise (NaN stays NaN).
    #[track_caller]
    pub fn leaky_relu(&self, slope: T) -> Tensor<T> {
        self.map_as("leaky_relu", |x| if x > T::zero() { x } else { slope * x })
    }
    /// The logistic function, computed without overflow for any input.
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor<T> {
        self.map_as("sigmoid", sigmoid)
    }
    /// Hyperbolic tangent elementwise.
    #[track_caller]
    pub fn tanh(&self) -> Tensor<T> {
        self.map_as("tanh", T::tanh)
    }
    /// ln(1 + eˣ), computed without overflow for any input.
    #[track_caller]
    pub fn softplus(&self) -> Tensor<T> {
        self.map_as("softplus", softplus)
    }
    /// The error function erf x = 2/√π ∫₀ˣ e^(−t²) dt elementwise, accurate to within 1 ulp
    /// (`libm`'s; checked against 50-digit values in the tests).
    #[track_caller]
    pub fn erf(&self) -> Tensor<T> {
        self.map_as("erf", T::erf)
    }
    /// GELU elementwise, exact (`GeluApproximation::None`, PyTorch's default) or with the
    /// tanh approximation (`GeluApproximation::Tanh`); see [`GeluApproximation`].
    ///
    /// ```
    /// use autograd::{GeluApproximation, Tensor};
    /// let x = Tensor::from_vec(vec![-1.0f64, 0.0, 1.0], &[3]).unwrap();
    /// let exact = x.gelu(GeluApproximation::None);
    /// assert!((exact.get(&[2]) - 0.8413447460685429).abs() < 1e-15); // Φ(1)
    /// let tanh = x.gelu(GeluApproximation::Tanh);
    /// assert!(tanh.max_abs_diff(&exact) < 5e-4);
    /// ```
    #[track_caller]
    pub fn gelu(&self, approximate: GeluApproximation) -> Tensor<T> {
        self.map_as("gelu", |x| gelu(x, approximate))
    }
    /// Each element limited to `[lo, hi]`; NaN stays NaN (as in PyTorch). An error if
    /// `lo > hi` or a bound is NaN.
    #[track_caller]
    pub fn try_clamp(&self, lo: T, hi: T) -> Result<Tensor<T>> {
        check_clamp(lo, hi)?;
        Ok(self.map_as("clamp", |x| nan_min(nan_max(x, lo), hi)))
    }
    /// [`Tensor::try_clamp`]; panics with its error.
    #[track_caller]
    pub fn clamp(&self, lo: T, hi: T) -> Tensor<T> {
        or_panic(self.try_clamp(lo, hi))
    }
    #[track_caller]
    pub(crate) fn scalar_op(&self, op: ScalarOp<T>) -> Tensor<T> {
        op.apply(self)
    }
}

/// max(x, 0), NaN for NaN.
fn relu<T: Element>(x: T) -> T {
    if x <= T::zero() { T::zero() } else { x }
}

#[track_caller]
fn check_clamp<T: Element>(lo: T, hi: T) -> Result<()> {
    let reason = if lo.is_nan() || hi.is_nan() {
        format!("a bound is NaN (lower {lo}, upper {hi})")
    } else if lo > hi {
        format!("lower bound {lo} is above upper bound {hi}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument {
        op: "clamp",
        reason,
        at: Caller::here(),
    })
}

impl<'t, T: Element> Var<'t, T> {
    #[track_caller]
    fn unary(&self, value: Tensor<T>, op: impl FnOnce() -> UnaryOp<T>) -> Var<'t, T> {
        if let (Some(y), Some(_)) = (value.as_scalar(), self.value.as_scalar()) {
            // 0-d in and out (scalar programs): the light path; what the op saves of its
            // input is a number.
            return self.tape.record_number([self], y, || Op::Unary(op()));
        }
        self.tape.record(&[self], value, || Op::Unary(op()))
    }

    /// Records an op that saves its output `out`.
    #[track_caller]
    fn unary_saving_output(
        &self,
        out: Tensor<T>,
        op: impl FnOnce(Saved<T>) -> UnaryOp<T>,
    ) -> Var<'t, T> {
        if let Some(y) = out.as_scalar() {
            // A 0-d value (scalar programs): the light path, saving the number.
            return (self.tape).record_number([self], y, || Op::Unary(op(Saved::Scalar(y))));
        }
        self.tape
            .record_with_output(&[self], out, |out| Op::Unary(op(Saved::new(out))))
    }

    #[track_caller]
    pub(crate) fn scalar_op(&self, op: ScalarOp<T>) -> Var<'t, T> {
        self.unary(op.apply(&self.value), || UnaryOp::Scalar {
            op,
            x: matches!(op, ScalarOp::RDiv(_)).then(|| Saved::new(&self.value)),
        })
    }

    /// eˣ elementwise.
    #[track_caller]
    pub fn exp(&self) -> Var<'t, T> {
        self.unary_saving_output(self.value.exp(), |out| UnaryOp::Exp { out })
    }
    /// Natural logarithm elementwise.
    #[track_caller]
    pub fn ln(&self) -> Var<'t, T> {
        self.unary(self.value.ln(), || UnaryOp::Ln {
            x: Saved::new(&self.value),
        })
    }
    /// Square root elementwise.
    #[track_caller]
    pub fn sqrt(&self) -> Var<'t, T> {
        self.unary_saving_output(self.value.sqrt(), |out| UnaryOp::Sqrt { out })
    }
    /// xᵖ elementwise.
    #[track_caller]
    pub fn powf(&self, p: T) -> Var<'t, T> {
        self.unary(self.value.powf(p), || UnaryOp::Powf {
            x: Saved::new(&self.value),
            p,
        })
    }
    /// |x| elementwise (gradient 0 at 0).
    #[track_caller]
    pub fn abs(&self) -> Var<'t, T> {
        self.unary(self.value.abs(), || UnaryOp::Abs {
            x: Saved::new(&self.value),
        })
    }
    /// max(x, 0) elementwise (gradient 0 at 0); NaN stays NaN and passes the gradient on,
    /// as in PyTorch.
    #[track_caller]
    pub fn relu(&self) -> Var<'t, T> {
        self.unary_saving_output(self.value.relu(), |out| UnaryOp::Relu { out })
    }
    /// x for x > 0, `slope`·x otherwise.
    #[track_caller]
    pub fn leaky_relu(&self, slope: T) -> Var<'t, T> {
        self.unary(self.value.leaky_relu(slope), || UnaryOp::LeakyRelu {
            x: Saved::new(&self.value),
            slope,
        })
    }
    /// The logistic function 1/(1+e⁻ˣ), stable for any input.
    #[track_caller]
    pub fn sigmoid(&self) -> Var<'t, T> {
        self.unary_saving_output(self.value.sigmoid(), |out| UnaryOp::Sigmoid { out })
    }
    /// Hyperbolic tangent elementwise.
    #[track_caller]
    pub fn tanh(&self) -> Var<'t, T> {
        self.unary_saving_output(self.value.tanh(), |out| UnaryOp::Tanh { out })
    }
    /// ln(1 + eˣ), stable for any input.
    #[track_caller]
    pub fn softplus(&self) -> Var<'t, T> {
        self.unary(self.value.softplus(), || UnaryOp::Softplus {
            x: Saved::new(&self.value),
        })
    }
    /// Each element limited to `[lo, hi]` (gradient 1 inside, boundaries included); NaN
    /// stays NaN, with gradient 0 (as in PyTorch). An error if `lo > hi` or a bound is NaN.
    #[track_caller]
    pub fn try_clamp(&self, lo: T, hi: T) -> Result<Var<'t, T>> {
        check_clamp(lo, hi)?;
        Ok(self.unary(self.value.clamp(lo, hi), || UnaryOp::Clamp {
            x: Saved::new(&self.value),
            lo,
            hi,
        }))
    }
    /// [`Var::try_clamp`]; panics if `lo > hi`.
    #[track_caller]
    pub fn clamp(&self, lo: T, hi: T) -> Var<'t, T> {
        or_panic(self.try_clamp(lo, hi))
    }
    /// The error function elementwise (see [`Tensor::erf`]). Its derivative
    /// 2/√π·e^(−x²) is computed with recorded ops, so gradients of any order exist.
    #[track_caller]
    pub fn erf(&self) -> Var<'t, T> {
        self.unary(self.value.erf(), || UnaryOp::Erf {
            x: Saved::new(&self.value),
        })
    }
    /// GELU, exact or tanh-approximated (PyTorch's `F.gelu(x, approximate=…)`; see
    /// [`GeluApproximation`]), composed of primitive ops so that it is differentiable to
    /// any order: ½x·(1 + erf(x/√2)), or ½x·(1 + tanh(√(2/π)(x + 0.044715x³))).
    ///
    /// ```
    /// use autograd::{GeluApproximation, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::scalar(0.0));
    /// let y = x.gelu(GeluApproximation::None);
    /// assert_eq!(y.backward().wrt(&x).item(), 0.5); // Φ(0) + 0·φ(0)
    /// ```
    #[track_caller]
    pub fn gelu(&self, approximate: GeluApproximation) -> Var<'t, T> {
        let half_x = self * T::of(0.5);
        match approximate {
            GeluApproximation::None => {
                let phi = (self * T::of(std::f64::consts::FRAC_1_SQRT_2)).erf() + T::one();
                &half_x * &phi
            }
            GeluApproximation::Tanh => {
                let c = self.clamp(T::of(-GELU_CUBIC_LIMIT), T::of(GELU_CUBIC_LIMIT));
                let cube = &(&c * &c) * &c;
                let inner = (self + &(cube * T::of(0.044715))) * T::of(SQRT_2_OVER_PI);
                &half_x * &(inner.tanh() + T::one())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{GeluApproximation, Tape, Tensor, seeded_rng};

    fn rand(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, lo, hi, &mut seeded_rng(seed))
    }

    const EXACT: GeluApproximation = GeluApproximation::None;
    const TANH: GeluApproximation = GeluApproximation::Tanh;

    /// Rows of numbers from a fixture written by tests/fixtures/erf.py.
    fn fixture(text: &str) -> Vec<Vec<f64>> {
        text.lines()
            .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
            .collect()
    }

    /// How many representable values lie between `a` and `b` (of one sign, or zeros).
    fn ulps_f64(a: f64, b: f64) -> u64 {
        assert!(
            a.signum() == b.signum() || a == 0.0 || b == 0.0,
            "{a} vs {b}"
        );
        (a.abs().to_bits() as i64 - b.abs().to_bits() as i64).unsigned_abs()
    }

    fn ulps_f32(a: f32, b: f32) -> u32 {
        assert!(
            a.signum() == b.signum() || a == 0.0 || b == 0.0,
            "{a} vs {b}"
        );
        (a.abs().to_bits() as i32 - b.abs().to_bits() as i32).unsigned_abs()
    }

    #[test]
    fn erf_is_accurate_to_one_ulp_in_f64_and_f32() {
        // 40-digit values from mpmath, rounded to the nearest f64 and f32.
        let rows = fixture(include_str!("../../tests/fixtures/erf.txt"));
        assert!(rows.len() > 200);
        let x: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        let got = Tensor::from_vec(x.clone(), &[x.len()]).unwrap().erf();
        let got32 = Tensor::from_vec(x.iter().map(|&v| v as f32).collect(), &[x.len()])
            .unwrap()
            .erf();
        for (i, r) in rows.iter().enumerate() {
            let (v, v32) = (got.data()[i], got32.data()[i]);
            assert!(
                ulps_f64(v, r[1]) <= 1,
                "erf({}) = {v:e}, not {:e}",
                r[0],
                r[1]
            );
            assert!(
                ulps_f32(v32, r[2] as f32) <= 1,
                "erf({}) = {v32:e} in f32",
                r[0]
            );
        }
        let specials = Tensor::from_vec(vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN], &[3]);
        let e = specials.unwrap().erf();
        assert_eq!(&e.data()[..2], &[1.0, -1.0]);
        assert!(e.data()[2].is_nan());
    }

    #[test]
    fn gelu_matches_its_definitions_exact_and_tanh() {
        // x·Φ(x) and the tanh formula evaluated with 30 digits (mpmath), rounded to f64.
        // The exact form is ½x(1 + erf(x/√2)) in floating point, as PyTorch computes it: for
        // very negative x, 1 + erf cancels, so the error is absolute, about 1e-16·|x|.
        let rows = fixture(include_str!("../../tests/fixtures/gelu.txt"));
        let x: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        let x = Tensor::from_vec(x.clone(), &[x.len()]).unwrap();
        let (exact, tanh) = (x.gelu(EXACT), x.gelu(TANH));
        for (i, r) in rows.iter().enumerate() {
            let tolerance = 4e-16 * (1.0 + r[0].abs());
            assert!(
                (exact.data()[i] - r[1]).abs() <= tolerance,
                "exact gelu({})",
                r[0]
            );
            assert!(
                (tanh.data()[i] - r[2]).abs() <= tolerance,
                "tanh gelu({})",
                r[0]
            );
            assert!((exact.data()[i] - tanh.data()[i]).abs() < 5e-4);
        }
        // f32, and the recorded form: the same operations, the same bits.
        let x32 = x.cast::<f32>();
        let tape = Tape::<f32>::new();
        let v = tape.var(x32.clone());
        for approximate in [EXACT, TANH] {
            assert_eq!(v.gelu(approximate).value(), &x32.gelu(approximate));
            let want = x.gelu(approximate).cast::<f32>();
            assert!(x32.gelu(approximate).max_abs_diff(&want) < 1e-4);
        }
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        assert_eq!(v.gelu(EXACT).value(), &exact);
        assert_eq!(v.gelu(TANH).value(), &tanh);
        assert_eq!(GeluApproximation::default(), EXACT); // PyTorch's default
    }

    #[test]
    fn erf_and_gelu_have_gradients_of_every_order() {
        let x = rand(&[2, 3], -2.5, 2.5, 11);
        check(|v| v[0].erf().tanh(), [x.clone()]);
        check(|v| v[0].gelu(EXACT).tanh(), [x.clone()]);
        check_second_order(|v| v[0].erf(), [x.clone()]);
        check_second_order(|v| v[0].gelu(EXACT), [x.clone()]);
        // Third order of erf: d³/dx³ erf x = 2/√π·(4x² − 2)·e^(−x²).
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let d1 = v.erf().sum().backward_create_graph().wrt(&v);
        let d2 = d1.sum().backward_create_graph().wrt(&v);
        let d3 = d2.sum().backward().wrt(&v);
        let want =
            x.map(|x| std::f64::consts::FRAC_2_SQRT_PI * (4.0 * x * x - 2.0) * (-x * x).exp());
        assert!(d3.max_abs_diff(&want) < 1e-14, "{d3} vs {want}");
    }

    #[test]
    fn forward_values_f32_and_f64() {
        let x = Tensor::from_vec(vec![-2.0f32, 0.0, 1.5], &[3]).unwrap();
        assert_eq!(x.relu().to_vec(), vec![0.0, 0.0, 1.5]);
        assert_eq!(x.leaky_relu(0.1).to_vec(), vec![-0.2, 0.0, 1.5]);
        assert_eq!(x.abs().to_vec(), vec![2.0, 0.0, 1.5]);
        assert_eq!(x.clamp(-1.0, 1.0).to_vec(), vec![-1.0, 0.0, 1.0]);
        assert_eq!(x.sigmoid().get(&[1]), 0.5);
        let y = x.cast::<f64>();
        assert_eq!(y.exp().to_vec(), vec![(-2.0f64).exp(), 1.0, 1.5f64.exp()]);
        assert_eq!(y.tanh().get(&[2]), 1.5f64.tanh());
        assert!((y.softplus().get(&[1]) - 2f64.ln()).abs() < 1e-15);
        assert!((y.gelu(TANH).get(&[2]) - 1.3995715).abs() < 1e-6);
        let p = Tensor::from_vec(vec![4.0f64, 9.0], &[2]).unwrap();
        assert_eq!(p.sqrt().to_vec(), vec![2.0, 3.0]);
        assert_eq!(p.ln().get(&[0]), 4f64.ln());
        assert_eq!(p.powf(1.5).to_vec(), vec![8.0, 27.0]);
    }

    #[test]
    fn gradients_of_each_unary_op() {
        let x = rand(&[2, 3], -2.0, 2.0, 1);
        let pos = rand(&[2, 3], 0.2, 2.0, 2);
        check(|v| v[0].exp(), [x.clone()]);
        check(|v| v[0].ln().tanh(), [pos.clone()]);
        check(|v| v[0].sqrt().tanh(), [pos.clone()]);
        check(|v| v[0].powf(2.5).tanh(), [pos.clone()]);
        check(|v| v[0].abs().tanh(), [x.clone()]);
        check(|v| v[0].relu().tanh(), [x.clone()]);
        check(|v| v[0].leaky_relu(0.1).tanh(), [x.clone()]);
        check(|v| v[0].sigmoid().tanh(), [x.clone()]);
        check(|v| v[0].tanh().exp(), [x.clone()]);
        check(|v| v[0].softplus().tanh(), [x.clone()]);
        check(|v| v[0].clamp(-1.0, 1.0).tanh(), [x.clone()]);
        check(|v| v[0].gelu(TANH).tanh(), [x.clone()]);
    }

    #[test]
    fn second_order_of_smooth_ops() {
        let x = rand(&[4], -1.5, 1.5, 3);
        let pos = rand(&[4], 0.2, 2.0, 4);
        check_second_order(|v| v[0].exp(), [x.clone()]);
        check_second_order(|v| v[0].ln(), [pos.clone()]);
        check_second_order(|v| v[0].sqrt(), [pos.clone()]);
        check_second_order(|v| v[0].powf(3.5), [pos.clone()]);
        check_second_order(|v| v[0].sigmoid(), [x.clone()]);
        check_second_order(|v| v[0].tanh(), [x.clone()]);
        check_second_order(|v| v[0].softplus(), [x.clone()]);
        check_second_order(|v| v[0].gelu(TANH), [x.clone()]);
        check_second_order(|v| 2.0 / &v[0], [pos.clone()]);
        // Piecewise-linear ops: second derivative 0 away from the kinks.
        check_second_order(|v| &v[0].relu() * &v[0], [x.clone()]);
    }

    #[test]
    fn sigmoid_and_softplus_are_stable_at_extremes() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![-1000.0, 1000.0], &[2]).unwrap());
        let s = x.sigmoid();
        assert_eq!(s.value().to_vec(), vec![0.0, 1.0]);
        let sp = x.softplus();
        assert_eq!(sp.value().to_vec(), vec![0.0, 1000.0]);
        let g = (&s.sum() + &sp.sum()).backward().wrt(&x);
        assert!(g.data().iter().all(|v| v.is_finite()), "{g}");
        let x32 = Tensor::from_vec(vec![-1000.0f32, 1000.0], &[2]).unwrap();
        assert!(
            x32.sigmoid()
                .data()
                .iter()
                .chain(x32.softplus().data())
                .all(|v| v.is_finite())
        );
    }

    #[test]
    fn clamp_with_crossed_bounds_is_an_error() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2]));
        let err = x.try_clamp(1.0, -1.0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("clamp: lower bound 1 is above upper bound -1")
        );
    }
}
