//! Broadcasting binary arithmetic: add, sub, mul, div, pow, maximum, minimum, the
//! operator overloads (`+ - * /`) on tensors and `Var`s with scalars on either side, and
//! `where_`, the elementwise choice between two operands by a constant mask.
//!
//! | op | forward | backward (each reduced back to its input's shape) |
//! |----|---------|----------|
//! | add | a + b | ḡa = g, ḡb = g |
//! | sub | a − b | ḡa = g, ḡb = −g |
//! | mul | a · b | ḡa = g·b, ḡb = g·a |
//! | div | a / b | ḡa = g/b, ḡb = −g·a/b² |
//! | pow | aᵇ | ḡa = g·b·aᵇ⁻¹ (0 where b = 0), ḡb = g·aᵇ·ln a (0 where a = 0 and b ≥ 0) |
//! | maximum | max(a, b), NaN if either is | g to the larger (halved on ties; to both where a NaN is involved) |
//! | minimum | min(a, b), NaN if either is | g to the smaller (halved on ties; to both where a NaN is involved) |
//! | where | c ? a : b | ḡa = c ? g : 0, ḡb = c ? 0 : g |
//!
//! NaN follows PyTorch: `maximum`/`minimum` return NaN when either operand is NaN, and
//! both operands then receive the whole gradient (neither "lost" the comparison). `pow`'s
//! zeroed gradients are PyTorch's too: chosen with a mask, not multiplied by 0, so that
//! `0⁰` has the gradients (0, 0) and not NaN.

use super::unary::ScalarOp;
use super::{Algebra, Op, Saved, SavedTensor};
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::strided::{self, walk2, zip_broadcast};
use crate::shape::{Shape, broadcast_shapes, broadcast_strides, numel};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, nan_max, nan_min, output_buffer};

/// Which binary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl BinaryKind {
    fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
            BinaryKind::Pow => "pow",
            BinaryKind::Maximum => "maximum",
            BinaryKind::Minimum => "minimum",
        }
    }

    /// The function on two numbers (the light path of scalar programs; the tensor forward
    /// below applies the same functions elementwise).
    fn apply<T: Element>(self, a: T, b: T) -> T {
        match self {
            BinaryKind::Add => a + b,
            BinaryKind::Sub => a - b,
            BinaryKind::Mul => a * b,
            BinaryKind::Div => a / b,
            BinaryKind::Pow => a.powf(b),
            BinaryKind::Maximum => nan_max(a, b),
            BinaryKind::Minimum => nan_min(a, b),
        }
    }
}

/// A recorded binary op. Add and sub keep the input shapes only when broadcasting made
/// them differ from the output's (to reduce the gradients back); `where` keeps its mask
/// and the input shapes; the others save both operands.
#[derive(Clone)]
pub(crate) enum BinaryOp<T> {
    Add { broadcast: Broadcast },
    Sub { broadcast: Broadcast },
    Mul { lhs: Saved<T>, rhs: Saved<T> },
    Div { lhs: Saved<T>, rhs: Saved<T> },
    Pow { lhs: Saved<T>, rhs: Saved<T> },
    Maximum { lhs: Saved<T>, rhs: Saved<T> },
    Minimum { lhs: Saved<T>, rhs: Saved<T> },
    Where(Box<WhereOp>),
}

/// A recorded `where_`: the mask (in its own shape, broadcast against the gradient in
/// backward) and the shapes of the two operands.
#[derive(Clone)]
pub(crate) struct WhereOp {
    mask: Tensor<bool>,
    shapes: [Shape; 2],
}

/// The input shapes of an add or sub when one was broadcast; `None` when both have the
/// output's shape, so that the gradient passes to them as it is.
type Broadcast = Option<Box<[Shape; 2]>>;

/// The gradient `g` of an add or sub reduced to the shape of input `k`.
fn unbroadcast<T: Element, V: Algebra<T>>(g: &V, broadcast: &Broadcast, k: usize) -> V {
    match broadcast {
        Some(shapes) => g.sum_to(&shapes[k]),
        None => g.clone(),
    }
}

impl<T> BinaryOp<T> {
    /// The operands it keeps for backward: both for a product, a quotient, a power, a
    /// maximum or a minimum; none for a sum, a difference or `where` (whose mask is not
    /// an operand).
    pub fn saved(&self) -> Option<[&Saved<T>; 2]> {
        match self {
            BinaryOp::Add { .. } | BinaryOp::Sub { .. } | BinaryOp::Where(_) => None,
            BinaryOp::Mul { lhs, rhs }
            | BinaryOp::Div { lhs, rhs }
            | BinaryOp::Pow { lhs, rhs }
            | BinaryOp::Maximum { lhs, rhs }
            | BinaryOp::Minimum { lhs, rhs } => Some([lhs, rhs]),
        }
    }

    /// Whether it holds no saved tensor and no boxed state (see [`Op::owns_nothing`]).
    pub fn owns_nothing(&self) -> bool {
        match self {
            BinaryOp::Add { broadcast } | BinaryOp::Sub { broadcast } => broadcast.is_none(),
            BinaryOp::Where(_) => false,
            _ => self.saved().into_iter().flatten().all(Saved::is_number),
        }
    }
}

impl<T: Element> BinaryOp<T> {
    /// The op of two 0-d operands `a` and `b`, saved as numbers.
    fn save_numbers(kind: BinaryKind, a: T, b: T) -> Self {
        let (lhs, rhs) = (Saved::Scalar(a), Saved::Scalar(b));
        match kind {
            BinaryKind::Add => BinaryOp::Add { broadcast: None },
            BinaryKind::Sub => BinaryOp::Sub { broadcast: None },
            BinaryKind::Mul => BinaryOp::Mul { lhs, rhs },
            BinaryKind::Div => BinaryOp::Div { lhs, rhs },
            BinaryKind::Pow => BinaryOp::Pow { lhs, rhs },
            BinaryKind::Maximum => BinaryOp::Maximum { lhs, rhs },
            BinaryKind::Minimum => BinaryOp::Minimum { lhs, rhs },
        }
    }

    fn save(kind: BinaryKind, lhs: &Tensor<T>, rhs: &Tensor<T>) -> Self {
        let broadcast = || {
            (lhs.shape() != rhs.shape()).then(|| {
                Box::new([
                    Shape::from_slice(lhs.shape()),
                    Shape::from_slice(rhs.shape()),
                ])
            })
        };
        let both = |op: fn(Saved<T>, Saved<T>) -> Self| op(Saved::new(lhs), Saved::new(rhs));
        match kind {
            BinaryKind::Add => BinaryOp::Add {
                broadcast: broadcast(),
            },
            BinaryKind::Sub => BinaryOp::Sub {
                broadcast: broadcast(),
            },
            BinaryKind::Mul => both(|lhs, rhs| BinaryOp::Mul { lhs, rhs }),
            BinaryKind::Div => both(|lhs, rhs| BinaryOp::Div { lhs, rhs }),
            BinaryKind::Pow => both(|lhs, rhs| BinaryOp::Pow { lhs, rhs }),
            BinaryKind::Maximum => both(|lhs, rhs| BinaryOp::Maximum { lhs, rhs }),
            BinaryKind::Minimum => both(|lhs, rhs| BinaryOp::Minimum { lhs, rhs }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add { .. } => "add",
            BinaryOp::Sub { .. } => "sub",
            BinaryOp::Mul { .. } => "mul",
            BinaryOp::Div { .. } => "div",
            BinaryOp::Pow { .. } => "pow",
            BinaryOp::Maximum { .. } => "maximum",
            BinaryOp::Minimum { .. } => "minimum",
            BinaryOp::Where(_) => "where",
        }
    }

    /// Bytes kept for backward besides the saved operands: `where`'s mask.
    pub fn mask_bytes(&self) -> usize {
        match self {
            BinaryOp::Where(op) => op.mask.bytes(),
            _ => 0,
        }
    }

    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        match self {
            BinaryOp::Add { broadcast } => {
                if cx.needs(0) {
                    cx.send(0, unbroadcast(g, broadcast, 0));
                }
                if cx.needs(1) {
                    cx.send(1, unbroadcast(g, broadcast, 1));
                }
            }
            BinaryOp::Sub { broadcast } => {
                if cx.needs(0) {
                    cx.send(0, unbroadcast(g, broadcast, 0));
                }
                if cx.needs(1) {
                    cx.send(1, unbroadcast(g, broadcast, 1).neg());
                }
            }
            BinaryOp::Mul { lhs, rhs } => {
                if cx.needs(0) {
                    cx.send(0, g.mul(&cx.input(1, rhs)).into_sum_to(lhs.shape()));
                }
                if cx.needs(1) {
                    cx.send(1, g.mul(&cx.input(0, lhs)).into_sum_to(rhs.shape()));
                }
            }
            BinaryOp::Div { lhs, rhs } => {
                let b = cx.input(1, rhs);
                if cx.needs(0) {
                    cx.send(0, g.div(&b).into_sum_to(lhs.shape()));
                }
                if cx.needs(1) {
                    let a = cx.input(0, lhs);
                    let db = g.mul(&a).div(&b.mul(&b)).neg();
                    cx.send(1, db.into_sum_to(rhs.shape()));
                }
            }
            BinaryOp::Pow { lhs, rhs } => {
                let (a, b) = (cx.input(0, lhs), cx.input(1, rhs));
                let (at, bt) = (lhs.to_tensor(), rhs.to_tensor());
                if cx.needs(0) {
                    // g·b·aᵇ⁻¹, chosen to be 0 where b = 0 (PyTorch's rule: aᵇ is 1 there
                    // whatever a is, even where aᵇ⁻¹ is infinite).
                    let zero_exponent = bt.zip_to_mask(&at, |b, _| b == T::zero());
                    let d = g.mul(&b.mul(&a.pow(&b.add_scalar(-T::one()))));
                    cx.send(0, d.masked(&zero_exponent, false).into_sum_to(lhs.shape()));
                }
                if cx.needs(1) {
                    // g·aᵇ·ln a, chosen to be 0 where a = 0 and b ≥ 0 (where aᵇ·ln a would
                    // be 0·(−∞)): PyTorch's rule.
                    let zero_base = at.zip_to_mask(&bt, |a, b| a == T::zero() && b >= T::zero());
                    let d = a.pow(&b).mul(&a.ln()).masked(&zero_base, false);
                    cx.send(1, g.mul(&d).into_sum_to(rhs.shape()));
                }
            }
            BinaryOp::Where(op) => {
                for k in 0..2 {
                    if cx.needs(k) {
                        let kept = g.masked(&op.mask, k == 0); // c ? g : 0, or c ? 0 : g
                        cx.send(k, kept.into_sum_to(&op.shapes[k]));
                    }
                }
            }
            BinaryOp::Maximum { lhs, rhs } | BinaryOp::Minimum { lhs, rhs } => {
                let max = matches!(self, BinaryOp::Maximum { .. });
                let (a, b) = (lhs.to_tensor(), rhs.to_tensor());
                if cx.needs(0) {
                    let share = a.zip(&b, |a, b| share_of_extremum(max, a, b));
                    cx.send(0, g.mul_fn_of(&share, |s| s).into_sum_to(lhs.shape()));
                }
                if cx.needs(1) {
                    let share = a.zip(&b, |a, b| share_of_extremum(max, b, a));
                    cx.send(1, g.mul_fn_of(&share, |s| s).into_sum_to(rhs.shape()));
                }
            }
        }
    }
}

impl<T: Element> BinaryOp<T> {
    /// [`BinaryOp::vjp`] on plain numbers, for a 0-d output whose saved operands are 0-d
    /// (the light path of scalar programs): the contributions to both inputs, computed with
    /// the same operations in the same order as `vjp`, so the same bits. `None` for any
    /// other op or shape.
    #[inline]
    pub fn scalar_vjp(&self, g: T) -> Option<[T; 2]> {
        match self {
            BinaryOp::Add { broadcast: None } => Some([g, g]),
            BinaryOp::Sub { broadcast: None } => Some([g, -g]),
            BinaryOp::Mul {
                lhs: Saved::Scalar(a),
                rhs: Saved::Scalar(b),
            } => Some([g * *b, g * *a]),
            BinaryOp::Div {
                lhs: Saved::Scalar(a),
                rhs: Saved::Scalar(b),
            } => Some([g / *b, -((g * *a) / (*b * *b))]),
            _ => None,
        }
    }
}

/// The share of the gradient of `maximum(x, other)` (`max`) or `minimum(x, other)` that
/// goes to `x`: 1 where `x` wins, ½ on a tie, 0 where it loses — and 1 where the two are
/// unordered (a NaN), as PyTorch does: the result is NaN, and neither operand lost.
fn share_of_extremum<T: Element>(max: bool, x: T, other: T) -> T {
    let (wins, loses) = if max {
        (x > other, x < other)
    } else {
        (x < other, x > other)
    };
    if loses {
        T::zero()
    } else if x == other {
        T::of(0.5)
    } else {
        debug_assert!(wins || x.is_nan() || other.is_nan());
        T::one()
    }
}

/// A mask for [`Tensor::where_`] and [`Var::where_`]: a `Tensor<bool>`, or a tensor of
/// `f32` / `f64` holding only 0 and 1 (1 = true); any other value in it (NaN included) is an
/// error, never a guess. Sealed: implemented for those three tensor types.
pub trait Mask: sealed::Sealed {
    /// The mask as booleans (shared, not copied, for a `Tensor<bool>`), or an
    /// [`Error::InvalidArgument`] for `op` naming the first value that is neither 0 nor 1.
    #[track_caller]
    fn to_bool(&self, op: &'static str) -> Result<Tensor<bool>>;
}

mod sealed {
    /// Seals [`Mask`](super::Mask).
    pub trait Sealed {}
    impl Sealed for crate::Tensor<bool> {}
    impl<T: crate::Element> Sealed for crate::Tensor<T> {}
}

impl Mask for Tensor<bool> {
    fn to_bool(&self, _op: &'static str) -> Result<Tensor<bool>> {
        Ok(self.clone())
    }
}

impl<T: Element> Mask for Tensor<T> {
    #[track_caller]
    fn to_bool(&self, op: &'static str) -> Result<Tensor<bool>> {
        if let Some(&bad) = self
            .data()
            .iter()
            .find(|&&v| v != T::zero() && v != T::one())
        {
            return Err(Error::InvalidArgument {
                op,
                reason: format!("a 0/1 mask holds {bad}; use a Tensor<bool> or only 0 and 1"),
                at: Caller::here(),
            });
        }
        let mut out = output_buffer(op, self.shape())?;
        out.extend(self.data().iter().map(|&v| v == T::one()));
        Ok(Tensor::from_parts(out, self.shape().into()))
    }
}

/// `mask ? a : b` elementwise over the broadcast shape of the three (`op` names errors).
#[track_caller]
fn select<T: Element>(
    op: &'static str,
    mask: &Tensor<bool>,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<Tensor<T>> {
    let ab = broadcast_shapes(op, a.shape(), b.shape())?;
    let shape = broadcast_shapes(op, mask.shape(), &ab)?;
    // The mask as read at each output position: its own buffer when it has the output's
    // shape, else broadcast into a new one.
    let broadcast_mask;
    let choice: &[bool] = if mask.shape() == &shape[..] {
        mask.data()
    } else {
        let buffer = output_buffer::<bool>(op, &shape)?;
        broadcast_mask = strided::broadcast_to(mask.data(), mask.shape(), &shape, buffer);
        &broadcast_mask
    };
    let mut out = output_buffer(op, &shape)?;
    let (da, db) = (a.data(), b.data());
    let (sa, sb) = (
        broadcast_strides(a.shape(), &shape),
        broadcast_strides(b.shape(), &shape),
    );
    walk2(&shape, &sa, &sb, |i, ia, ib| {
        out.push(if choice[i] { da[ia] } else { db[ib] })
    });
    Ok(Tensor::from_parts(out, shape))
}

impl<T: Element> Tensor<T> {
    /// `mask ? self : 0` (`keep = true`) or `mask ? 0 : self` (`keep = false`), with `mask`
    /// broadcastable to `self`'s shape: the zeros are chosen, not products with 0, so an
    /// infinite or NaN element where it is dropped leaves no NaN.
    pub(crate) fn masked(&self, mask: &Tensor<bool>, keep: bool) -> Tensor<T> {
        let zero = Tensor::scalar(T::zero());
        let (a, b) = if keep { (self, &zero) } else { (&zero, self) };
        or_panic(select("where", mask, a, b))
    }

    /// A boolean mask of `f(a, b)` over the broadcast shape of `self` and `rhs`.
    pub(crate) fn zip_to_mask(&self, rhs: &Tensor<T>, f: impl Fn(T, T) -> bool) -> Tensor<bool> {
        let shape = or_panic(broadcast_shapes("mask", self.shape(), rhs.shape()));
        let mut out = Vec::with_capacity(numel(&shape));
        let (da, db) = (self.data(), rhs.data());
        let (sa, sb) = (
            broadcast_strides(self.shape(), &shape),
            broadcast_strides(rhs.shape(), &shape),
        );
        walk2(&shape, &sa, &sb, |_, ia, ib| out.push(f(da[ia], db[ib])));
        Tensor::from_parts(out, shape)
    }

    /// PyTorch's `where`: `mask ? a : b` elementwise, the three broadcast together. The
    /// mask is a `Tensor<bool>` or a 0/1 tensor ([`Mask`]).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![-2.0f32, 0.5, 3.0], &[3]).unwrap();
    /// let positive = Tensor::from_vec(vec![false, true, true], &[3]).unwrap();
    /// let y = Tensor::where_(&positive, &x, &Tensor::scalar(0.0));
    /// assert_eq!(y.to_vec(), vec![0.0, 0.5, 3.0]);
    /// ```
    #[track_caller]
    pub fn try_where_(mask: &impl Mask, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
        select("where", &mask.to_bool("where")?, a, b)
    }
    /// [`Tensor::try_where_`]; panics with its error.
    #[track_caller]
    pub fn where_(mask: &impl Mask, a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
        or_panic(Self::try_where_(mask, a, b))
    }

    /// `f(a, b)` elementwise with broadcasting (no shape check beyond broadcasting).
    #[track_caller]
    pub(crate) fn zip(&self, rhs: &Tensor<T>, f: impl Fn(T, T) -> T) -> Tensor<T> {
        or_panic(self.try_zip("zip", rhs, f))
    }

    /// `f(a, b)` elementwise with broadcasting, as op `op`.
    #[track_caller]
    fn try_zip(
        &self,
        op: &'static str,
        rhs: &Tensor<T>,
        f: impl Fn(T, T) -> T,
    ) -> Result<Tensor<T>> {
        if let (Some(a), Some(b)) = (self.as_scalar(), rhs.as_scalar()) {
            // Two 0-d values (scalar programs): nothing to broadcast.
            return Ok(Tensor::scalar(f(a, b)));
        }
        let shape = broadcast_shapes(op, self.shape(), rhs.shape())?;
        if let (Some(a), Some(b)) = (self.as_one(), rhs.as_one()) {
            // One element each: no buffer at all.
            return Ok(Tensor::one(f(a, b), shape));
        }
        let out = output_buffer(op, &shape)?;
        let (a, sa, b, sb) = (self.data(), self.shape(), rhs.data(), rhs.shape());
        let data = zip_broadcast(a, sa, b, sb, &shape, out, f);
        Ok(Tensor::from_parts(data, shape))
    }

    /// The operators: [`Tensor::binary_op`], panicking with its error.
    #[track_caller]
    fn binary(&self, rhs: &Tensor<T>, kind: BinaryKind) -> Tensor<T> {
        or_panic(self.binary_op(rhs, kind))
    }

    #[track_caller]
    fn binary_op(&self, rhs: &Tensor<T>, kind: BinaryKind) -> Result<Tensor<T>> {
        let op = kind.name();
        match kind {
            BinaryKind::Add => self.try_zip(op, rhs, |x, y| x + y),
            BinaryKind::Sub => self.try_zip(op, rhs, |x, y| x - y),
            BinaryKind::Mul => self.try_zip(op, rhs, |x, y| x * y),
            BinaryKind::Div => self.try_zip(op, rhs, |x, y| x / y),
            BinaryKind::Pow => self.try_zip(op, rhs, T::powf),
            BinaryKind::Maximum => self.try_zip(op, rhs, nan_max),
            BinaryKind::Minimum => self.try_zip(op, rhs, nan_min),
        }
    }

    /// `self + rhs` with broadcasting.
    #[track_caller]
    pub fn try_add(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Add)
    }
    /// `self − rhs` with broadcasting.
    #[track_caller]
    pub fn try_sub(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Sub)
    }
    /// `self ⊙ rhs` with broadcasting.
    #[track_caller]
    pub fn try_mul(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Mul)
    }
    /// `self / rhs` with broadcasting.
    #[track_caller]
    pub fn try_div(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Div)
    }
    /// `self` to the power `exponent`, elementwise with broadcasting (PyTorch's `pow` of two
    /// tensors; `powf` takes one number).
    #[track_caller]
    pub fn try_pow(&self, exponent: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(exponent, BinaryKind::Pow)
    }
    /// [`Tensor::try_pow`]; panics with its error.
    #[track_caller]
    pub fn pow(&self, exponent: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_pow(exponent))
    }
    /// Elementwise maximum with broadcasting; NaN where either operand is NaN (as in
    /// PyTorch).
    #[track_caller]
    pub fn try_maximum(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Maximum)
    }
    /// Elementwise maximum; panics if the shapes do not broadcast.
    #[track_caller]
    pub fn maximum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_maximum(rhs))
    }
    /// Elementwise minimum with broadcasting; NaN where either operand is NaN.
    #[track_caller]
    pub fn try_minimum(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        self.binary_op(rhs, BinaryKind::Minimum)
    }
    /// Elementwise minimum; panics if the shapes do not broadcast.
    #[track_caller]
    pub fn minimum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_minimum(rhs))
    }
}

/// `acc += x` in place (same shape); copies `acc`'s buffer first only if it is shared.
#[inline]
pub(crate) fn add_assign<T: Element>(acc: &mut Tensor<T>, x: &Tensor<T>) {
    debug_assert_eq!(acc.shape(), x.shape());
    if let (Some(a), Some(b)) = (acc.as_one_mut(), x.as_one()) {
        *a += b;
        return;
    }
    for (a, &b) in acc.data_mut().iter_mut().zip(x.data()) {
        *a += b;
    }
}

impl<'t, T: Element> Var<'t, T> {
    #[track_caller]
    fn binary_op(&self, rhs: &Var<'t, T>, kind: BinaryKind) -> Result<Var<'t, T>> {
        match self.binary_of_numbers(rhs, kind) {
            Some(out) => Ok(out),
            None => self.binary_of_tensors(rhs, kind),
        }
    }

    /// [`Var::binary_op`] off the light path: tensors, broadcasting, errors.
    #[inline(never)]
    #[track_caller]
    fn binary_of_tensors(&self, rhs: &Var<'t, T>, kind: BinaryKind) -> Result<Var<'t, T>> {
        self.same_tape(kind.name(), &[rhs])?;
        let value = self.value.binary_op(&rhs.value, kind)?;
        Ok(self.tape.record(&[self, rhs], value, || {
            Op::Binary(BinaryOp::save(kind, &self.value, &rhs.value))
        }))
    }

    /// The light path of scalar programs: two 0-d values of one tape give a number, and the
    /// node saves numbers. `None` for any other operands.
    #[inline]
    #[track_caller]
    fn binary_of_numbers(&self, rhs: &Var<'t, T>, kind: BinaryKind) -> Option<Var<'t, T>> {
        let (a, b) = (self.value.as_scalar()?, rhs.value.as_scalar()?);
        if !std::ptr::eq(self.tape, rhs.tape) {
            return None; // `binary_op` reports it
        }
        let op = || Op::Binary(BinaryOp::save_numbers(kind, a, b));
        Some(self.tape.record_number([self, rhs], kind.apply(a, b), op))
    }

    /// The operators: [`Var::binary_op`], panicking with its error (two 0-d values take
    /// the light path with no `Result` in between).
    #[inline]
    #[track_caller]
    fn binary(&self, rhs: &Var<'t, T>, kind: BinaryKind) -> Var<'t, T> {
        match self.binary_of_numbers(rhs, kind) {
            Some(out) => out,
            None => or_panic(self.binary_of_tensors(rhs, kind)),
        }
    }

    /// `self + rhs` with broadcasting (also the `+` operator).
    #[track_caller]
    pub fn try_add(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Add)
    }
    /// `self − rhs` with broadcasting (also the `-` operator).
    #[track_caller]
    pub fn try_sub(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Sub)
    }
    /// `self ⊙ rhs` with broadcasting (also the `*` operator).
    #[track_caller]
    pub fn try_mul(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Mul)
    }
    /// `self / rhs` with broadcasting (also the `/` operator).
    #[track_caller]
    pub fn try_div(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Div)
    }
    /// `self` to the power `exponent`, elementwise with broadcasting (PyTorch's `pow` of two
    /// tensors). Both operands get gradients: ḡself = g·b·selfᵇ⁻¹ and ḡb = g·selfᵇ·ln self,
    /// with PyTorch's zeros where the exponent is 0 (for self) and where the base is 0 and
    /// the exponent ≥ 0 (for the exponent), so `0⁰` has no NaN gradient.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![2.0, 3.0], &[2]).unwrap());
    /// let b = tape.var(Tensor::scalar(2.0)); // broadcast
    /// let y = a.pow(&b).sum(); // 4 + 9
    /// let g = y.backward();
    /// assert_eq!(g.wrt(&a).to_vec(), vec![4.0, 6.0]); // 2a
    /// assert!((g.wrt(&b).item() - (4.0 * 2f64.ln() + 9.0 * 3f64.ln())).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn try_pow(&self, exponent: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(exponent, BinaryKind::Pow)
    }
    /// [`Var::try_pow`]; panics with its error.
    #[track_caller]
    pub fn pow(&self, exponent: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_pow(exponent))
    }
    /// PyTorch's `where`: `mask ? a : b` elementwise, the three broadcast together (see
    /// [`Tensor::try_where_`]). The mask is a constant: `a` receives the gradient where it
    /// is true, `b` where it is false (chosen, not multiplied by 0 — a NaN on one side does
    /// not reach the other).
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![-2.0, 3.0], &[2]).unwrap());
    /// let mask = x.value().map(|v| if v > 0.0 { 1.0 } else { 0.0 }); // a 0/1 mask
    /// let y = autograd::Var::where_(&mask, &x, &(&x * 0.1)); // leaky ReLU
    /// assert_eq!(y.value().to_vec(), vec![-0.2, 3.0]);
    /// assert_eq!(y.sum().backward().wrt(&x).to_vec(), vec![0.1, 1.0]);
    /// ```
    #[track_caller]
    pub fn try_where_(mask: &impl Mask, a: &Var<'t, T>, b: &Var<'t, T>) -> Result<Var<'t, T>> {
        a.same_tape("where", &[b])?;
        let mask = mask.to_bool("where")?;
        let value = select("where", &mask, &a.value, &b.value)?;
        Ok(a.tape.record(&[a, b], value, || {
            Op::Binary(BinaryOp::Where(Box::new(WhereOp {
                mask,
                shapes: [a.shape().into(), b.shape().into()],
            })))
        }))
    }
    /// [`Var::try_where_`]; panics with its error.
    #[track_caller]
    pub fn where_(mask: &impl Mask, a: &Var<'t, T>, b: &Var<'t, T>) -> Var<'t, T> {
        or_panic(Self::try_where_(mask, a, b))
    }
    /// Recorded `mask ? self : 0` (`keep`) or `mask ? 0 : self`: `where` with a constant 0.
    pub(crate) fn masked(&self, mask: &Tensor<bool>, keep: bool) -> Var<'t, T> {
        let zero = self.tape.constant(Tensor::scalar(T::zero()));
        let (a, b) = if keep { (self, &zero) } else { (&zero, self) };
        or_panic(Self::try_where_(mask, a, b))
    }
    /// Elementwise maximum with broadcasting; on ties the gradient is split in half. NaN
    /// where either operand is NaN, and then both receive the gradient (as in PyTorch).
    #[track_caller]
    pub fn try_maximum(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Maximum)
    }
    /// Elementwise maximum; panics if the shapes do not broadcast.
    #[track_caller]
    pub fn maximum(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_maximum(rhs))
    }
    /// Elementwise minimum with broadcasting; on ties the gradient is split in half. NaN
    /// where either operand is NaN, and then both receive the gradient.
    #[track_caller]
    pub fn try_minimum(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.binary_op(rhs, BinaryKind::Minimum)
    }
    /// Elementwise minimum; panics if the shapes do not broadcast.
    #[track_caller]
    pub fn minimum(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_minimum(rhs))
    }
}

/// `+ - * /` between two values of one type, owned or borrowed, panicking with the
/// `try_*` form's message.
macro_rules! binary_operators {
    ([$($gen:tt)*] $Ty:ty) => {
        binary_operators!(@one [$($gen)*] $Ty, Add, add, BinaryKind::Add);
        binary_operators!(@one [$($gen)*] $Ty, Sub, sub, BinaryKind::Sub);
        binary_operators!(@one [$($gen)*] $Ty, Mul, mul, BinaryKind::Mul);
        binary_operators!(@one [$($gen)*] $Ty, Div, div, BinaryKind::Div);
    };
    (@one [$($gen:tt)*] $Ty:ty, $Trait:ident, $method:ident, $kind:expr) => {
        impl<$($gen)*> std::ops::$Trait<&$Ty> for &$Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: &$Ty) -> $Ty {
                self.binary(rhs, $kind)
            }
        }
        impl<$($gen)*> std::ops::$Trait<$Ty> for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: $Ty) -> $Ty {
                self.binary(&rhs, $kind)
            }
        }
        impl<$($gen)*> std::ops::$Trait<&$Ty> for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: &$Ty) -> $Ty {
                self.binary(rhs, $kind)
            }
        }
        impl<$($gen)*> std::ops::$Trait<$Ty> for &$Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: $Ty) -> $Ty {
                self.binary(&rhs, $kind)
            }
        }
    };
}

binary_operators!(['t, T: Element] Var<'t, T>);
binary_operators!([T: Element] Tensor<T>);

/// Arithmetic with a scalar on either side and unary minus; each is one `Scalar` node.
macro_rules! scalar_operators {
    ([$($gen:tt)*] $Ty:ty, $T:ty) => {
        scalar_operators!(@right [$($gen)*] $Ty, $T, Add, add, |c| ScalarOp::Add(c));
        scalar_operators!(@right [$($gen)*] $Ty, $T, Sub, sub, |c: $T| ScalarOp::Add(-c));
        scalar_operators!(@right [$($gen)*] $Ty, $T, Mul, mul, |c| ScalarOp::Mul(c));
        scalar_operators!(@right [$($gen)*] $Ty, $T, Div, div, |c| ScalarOp::Div(c));
        impl<$($gen)*> std::ops::Neg for &$Ty {
            type Output = $Ty;
            #[track_caller]
            fn neg(self) -> $Ty {
                self.scalar_op(ScalarOp::Neg)
            }
        }
        impl<$($gen)*> std::ops::Neg for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn neg(self) -> $Ty {
                self.scalar_op(ScalarOp::Neg)
            }
        }
    };
    (@right [$($gen:tt)*] $Ty:ty, $T:ty, $Trait:ident, $method:ident, $op:expr) => {
        impl<$($gen)*> std::ops::$Trait<$T> for &$Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, c: $T) -> $Ty {
                self.scalar_op(($op)(c))
            }
        }
        impl<$($gen)*> std::ops::$Trait<$T> for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, c: $T) -> $Ty {
                self.scalar_op(($op)(c))
            }
        }
    };
}

scalar_operators!(['t, T: Element] Var<'t, T>, T);
scalar_operators!([T: Element] Tensor<T>, T);

/// Scalars on the left (`1.0 - &x`, `2.0 * x`, `1.0 / &x`), for `f32` and `f64`.
macro_rules! scalar_left_operators {
    ($($T:ty),*) => {$(
        scalar_left_operators!(@all ['t] Var<'t, $T>, $T);
        scalar_left_operators!(@all [] Tensor<$T>, $T);
    )*};
    (@all [$($gen:tt)*] $Ty:ty, $T:ty) => {
        scalar_left_operators!(@one [$($gen)*] $Ty, $T, Add, add, |c| ScalarOp::Add(c));
        scalar_left_operators!(@one [$($gen)*] $Ty, $T, Sub, sub, |c| ScalarOp::RSub(c));
        scalar_left_operators!(@one [$($gen)*] $Ty, $T, Mul, mul, |c| ScalarOp::Mul(c));
        scalar_left_operators!(@one [$($gen)*] $Ty, $T, Div, div, |c| ScalarOp::RDiv(c));
    };
    (@one [$($gen:tt)*] $Ty:ty, $T:ty, $Trait:ident, $method:ident, $op:expr) => {
        impl<$($gen)*> std::ops::$Trait<&$Ty> for $T {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, x: &$Ty) -> $Ty {
                x.scalar_op(($op)(self))
            }
        }
        impl<$($gen)*> std::ops::$Trait<$Ty> for $T {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, x: $Ty) -> $Ty {
                x.scalar_op(($op)(self))
            }
        }
    };
}

scalar_left_operators!(f32, f64);

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, Var, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
    }

    /// Away from zero, for divisors.
    fn rand_pos(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, 0.5, 1.5, &mut seeded_rng(seed))
    }

    #[test]
    fn forward_in_f32_and_f64() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let b = Tensor::from_vec(vec![10.0f32, 20.0], &[2]).unwrap();
        assert_eq!((&a + &b).to_vec(), vec![11.0, 22.0, 13.0, 24.0]);
        assert_eq!((&a - &b).to_vec(), vec![-9.0, -18.0, -7.0, -16.0]);
        assert_eq!((&a * &b).to_vec(), vec![10.0, 40.0, 30.0, 80.0]);
        assert_eq!((&b / &a).to_vec(), vec![10.0, 10.0, 10.0 / 3.0, 5.0]);
        let c = a.cast::<f64>();
        assert_eq!(
            c.maximum(&Tensor::scalar(2.5)).to_vec(),
            vec![2.5, 2.5, 3.0, 4.0]
        );
        assert_eq!(
            c.minimum(&Tensor::scalar(2.5)).to_vec(),
            vec![1.0, 2.0, 2.5, 2.5]
        );
        assert_eq!((1.0 - &c).to_vec(), vec![0.0, -1.0, -2.0, -3.0]);
        assert_eq!((2.0 / &c).to_vec(), vec![2.0, 1.0, 2.0 / 3.0, 0.5]);
        assert_eq!((-&c).to_vec(), vec![-1.0, -2.0, -3.0, -4.0]);
        assert_eq!(
            (&c / 3.0).to_vec(),
            vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 4.0 / 3.0]
        );
    }

    #[test]
    fn one_add_node_per_add() {
        let tape = Tape::<f64>::new();
        let a = tape.var(rand(&[3], 1));
        let b = tape.var(rand(&[3], 2));
        let before = tape.len();
        let _c = &a + &b;
        assert_eq!(tape.len(), before + 1);
        assert_eq!(tape.op_names().last(), Some(&"add"));
        let _d = a.clone() + &b;
        let _e = &a + b.clone();
        let _f = a.clone() + b.clone();
        let _g = 1.0 - &a;
        assert_eq!(tape.len(), before + 5);
    }

    #[test]
    fn gradients_of_each_binary_op() {
        let a = rand(&[3, 4], 1);
        let b = rand(&[3, 4], 2);
        let p = rand_pos(&[3, 4], 3);
        check(|x| (&x[0] + &x[1]).tanh(), [a.clone(), b.clone()]);
        check(|x| (&x[0] - &x[1]).tanh(), [a.clone(), b.clone()]);
        check(|x| (&x[0] * &x[1]).tanh(), [a.clone(), b.clone()]);
        check(|x| (&x[0] / &x[1]).tanh(), [a.clone(), p.clone()]);
        check(|x| x[0].maximum(&x[1]).tanh(), [a.clone(), b.clone()]);
        check(|x| x[0].minimum(&x[1]).tanh(), [a.clone(), b.clone()]);
    }

    #[test]
    fn gradients_with_scalars() {
        let a = rand(&[5], 4);
        let p = rand_pos(&[5], 5);
        check(|x| (&x[0] + 2.0).tanh(), [a.clone()]);
        check(|x| (&x[0] - 2.0).tanh(), [a.clone()]);
        check(|x| (&x[0] * 3.0).tanh(), [a.clone()]);
        check(|x| (&x[0] / 3.0).tanh(), [a.clone()]);
        check(|x| (1.5 - &x[0]).tanh(), [a.clone()]);
        check(|x| (1.5 * &x[0]).tanh(), [a.clone()]);
        check(|x| (1.5 / &x[0]).tanh(), [p.clone()]);
        check(|x| (-&x[0]).tanh(), [a.clone()]);
    }

    #[test]
    fn broadcasting_gradients_reduce_to_each_shape() {
        let pairs: [(&[usize], &[usize]); 7] = [
            (&[3, 4], &[4]),
            (&[3, 4], &[3, 1]),
            (&[2, 3, 4], &[3, 4]),
            (&[2, 1, 4], &[1, 3, 1]),
            (&[3, 4], &[]),
            (&[1], &[2, 3]),
            (&[2, 3, 1, 5], &[3, 4, 1]),
        ];
        for (i, (sa, sb)) in pairs.into_iter().enumerate() {
            let a = rand(sa, 10 + i as u64);
            let b = rand_pos(sb, 20 + i as u64);
            check(|x| (&x[0] + &x[1]).tanh(), [a.clone(), b.clone()]);
            check(|x| (&x[0] - &x[1]).tanh(), [a.clone(), b.clone()]);
            check(|x| (&x[0] * &x[1]).tanh(), [a.clone(), b.clone()]);
            check(|x| (&x[0] / &x[1]).tanh(), [a.clone(), b.clone()]);
            check(|x| x[0].maximum(&x[1]).tanh(), [a.clone(), b.clone()]);
        }
    }

    #[test]
    fn second_order_of_mul_and_div() {
        let a = rand(&[3], 6);
        let p = rand_pos(&[3], 7);
        check_second_order(|x| &(&x[0] * &x[1]) * &x[0], [a.clone(), p.clone()]);
        check_second_order(|x| &x[0] / &x[1], [a.clone(), p.clone()]);
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::zeros(&[2, 3]));
        let b = tape.var(Tensor::zeros(&[2]));
        let err = a.try_add(&b).unwrap_err();
        assert!(matches!(err, Error::Broadcast { op: "add", .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("[2, 3]") && msg.contains("[2]") && msg.contains("binary.rs"),
            "{msg}"
        );
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| &a * &b)).unwrap_err();
        let text = panic.downcast_ref::<String>().unwrap();
        assert!(
            text.starts_with("mul: shapes [2, 3] and [2] cannot be broadcast"),
            "{text}"
        );
    }

    #[test]
    fn pow_of_two_tensors_broadcasts_f32_and_f64() {
        let a = Tensor::from_vec(vec![1.5f64, 2.0, 0.5, 3.0], &[2, 2]).unwrap();
        let b = Tensor::from_vec(vec![2.0f64, -0.5], &[2]).unwrap();
        let want = Tensor::from_fn(&[2, 2], |i| a.get(i).powf(b.get(&[i[1]])));
        assert_eq!(a.pow(&b), want);
        let got32 = a.cast::<f32>().pow(&b.cast::<f32>()).cast::<f64>();
        assert!(got32.max_abs_diff(&want) < 1e-6);
        assert!(matches!(
            a.try_pow(&Tensor::zeros(&[3])),
            Err(Error::Broadcast { op: "pow", .. })
        ));
    }

    #[test]
    fn gradients_of_pow_in_both_operands() {
        let base = rand_pos(&[3, 4], 30);
        let exponent = rand(&[3, 4], 31);
        check(|x| x[0].pow(&x[1]).tanh(), [base.clone(), exponent.clone()]);
        check(|x| x[0].pow(&x[1]).tanh(), [base.clone(), rand(&[4], 32)]);
        check(
            |x| x[0].pow(&x[1]).tanh(),
            [rand_pos(&[3, 1], 33), exponent],
        );
        check(|x| x[0].pow(&x[1]).tanh(), [base, Tensor::scalar(1.7)]);
        check_second_order(|x| x[0].pow(&x[1]), [rand_pos(&[3], 34), rand(&[3], 35)]);
    }

    #[test]
    fn pow_gradients_at_zero_follow_pytorch() {
        // PyTorch 2.15: a = [0, 0, 2, 0, −2], b = [0, 2, 0, −1, 0.5] gives aᵇ =
        // [1, 0, 1, inf, nan], ∂/∂a = [0, 0, 0, −inf, nan], ∂/∂b = [0, 0, ln 2, −inf, nan]:
        // zeros chosen where b = 0 (for a) and where a = 0, b ≥ 0 (for b), not 0·∞ = NaN.
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::from_vec(vec![0.0, 0.0, 2.0, 0.0, -2.0], &[5]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![0.0, 2.0, 0.0, -1.0, 0.5], &[5]).unwrap());
        let y = a.pow(&b);
        let g = y.sum().backward();
        let same = |t: &Tensor<f64>, want: &[f64]| {
            t.data()
                .iter()
                .zip(want)
                .all(|(x, w)| x == w || (x.is_nan() && w.is_nan()))
        };
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        assert!(same(y.value(), &[1.0, 0.0, 1.0, inf, nan]), "{}", y.value());
        assert!(
            same(&g.wrt(&a), &[0.0, 0.0, 0.0, -inf, nan]),
            "{}",
            g.wrt(&a)
        );
        let db = [0.0, 0.0, 2f64.ln(), -inf, nan];
        assert!(same(&g.wrt(&b), &db), "{}", g.wrt(&b));
    }

    #[test]
    fn where_chooses_by_a_bool_or_0_1_mask_with_broadcasting() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::from_vec(vec![-1.0f32, -2.0, -3.0], &[3]).unwrap();
        let rows = Tensor::from_vec(vec![true, false], &[2, 1]).unwrap();
        let y = Tensor::where_(&rows, &a, &b);
        assert_eq!(y.to_vec(), vec![1.0, 2.0, 3.0, -1.0, -2.0, -3.0]);
        let columns = Tensor::from_vec(vec![0.0f32, 1.0, 0.0], &[3]).unwrap();
        let y = Tensor::where_(&columns, &a, &b);
        assert_eq!(y.to_vec(), vec![-1.0, 2.0, -3.0, -1.0, 5.0, -3.0]);
        let y64 = Tensor::where_(&rows, &a.cast::<f64>(), &Tensor::scalar(0.0));
        assert_eq!(y64.to_vec(), vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
        let tape = Tape::<f64>::new();
        let (va, vb) = (tape.var(a.cast()), tape.var(b.cast()));
        let half = Tensor::from_vec(vec![0.5, 1.0, 0.0], &[3]).unwrap();
        let err = Var::try_where_(&half, &va, &vb).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::InvalidArgument { op: "where", .. }),
            "{msg}"
        );
        assert!(
            msg.contains("holds 0.5") && msg.contains("binary.rs"),
            "{msg}"
        );
        let nan = Tensor::from_vec(vec![f64::NAN], &[1]).unwrap();
        assert!(Var::try_where_(&nan, &va, &vb).is_err());
        let wide = Tensor::from_vec(vec![true; 4], &[4]).unwrap();
        assert!(matches!(
            Var::try_where_(&wide, &va, &vb),
            Err(Error::Broadcast { op: "where", .. })
        ));
    }

    #[test]
    fn gradients_of_where_go_to_the_chosen_side() {
        let mask = Tensor::from_fn(&[3, 4], |i| (i[0] + 2 * i[1]) % 3 == 0);
        check(
            |x| Var::where_(&mask, &x[0], &x[1]).tanh(),
            [rand(&[3, 4], 40), rand(&[3, 4], 41)],
        );
        check(
            |x| Var::where_(&mask, &x[0], &x[1]).tanh(),
            [rand(&[4], 42), rand(&[3, 1], 43)],
        );
        let column = Tensor::from_vec(vec![1.0, 0.0, 1.0], &[3, 1]).unwrap();
        check(
            |x| Var::where_(&column, &x[0], &x[1]).tanh(),
            [rand(&[3, 4], 44), rand(&[], 45)],
        );
        check_second_order(
            |x| Var::where_(&mask, &(&x[0] * &x[0]), &x[1].exp()),
            [rand(&[3, 4], 46), rand(&[3, 4], 47)],
        );
        // An infinite gradient on the side not chosen does not reach the other (a choice,
        // not a product with 0).
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let b = tape.var(Tensor::from_vec(vec![0.0, 0.0], &[2]).unwrap());
        let choose_a = Tensor::from_vec(vec![true, false], &[2]).unwrap();
        let y = Var::where_(&choose_a, &a, &b).sum();
        let g = y.backward_with(Tensor::scalar(f64::INFINITY));
        assert_eq!(g.wrt(&a).to_vec(), vec![f64::INFINITY, 0.0]);
        assert_eq!(g.wrt(&b).to_vec(), vec![0.0, f64::INFINITY]);
    }

    #[test]
    fn vars_of_two_tapes_do_not_mix() {
        let t1 = Tape::<f64>::new();
        let t2 = Tape::<f64>::new();
        let a = t1.var(Tensor::scalar(1.0));
        let b = t2.var(Tensor::scalar(2.0));
        assert!(matches!(
            a.try_mul(&b),
            Err(Error::ForeignTape { op: "mul", .. })
        ));
    }
}
