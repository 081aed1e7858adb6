//! Broadcasting binary arithmetic: add, sub, mul, div, maximum, minimum, and the operator
//! overloads (`+ - * /`) on tensors and `Var`s, with scalars on either side.
//!
//! | op | forward | backward (each reduced back to its input's shape) |
//! |----|---------|----------|
//! | add | a + b | ḡa = g, ḡb = g |
//! | sub | a − b | ḡa = g, ḡb = −g |
//! | mul | a · b | ḡa = g·b, ḡb = g·a |
//! | div | a / b | ḡa = g/b, ḡb = −g·a/b² |
//! | maximum | max(a, b), NaN if either is | g to the larger (halved on ties; to both where a NaN is involved) |
//! | minimum | min(a, b), NaN if either is | g to the smaller (halved on ties; to both where a NaN is involved) |
//!
//! NaN follows PyTorch: `maximum`/`minimum` return NaN when either operand is NaN, and
//! both operands then receive the whole gradient (neither "lost" the comparison).

use super::unary::ScalarOp;
use super::{Algebra, Op, Saved, SavedTensor};
use crate::element::Element;
use crate::error::{Result, or_panic};
use crate::kernels::strided::zip_broadcast;
use crate::shape::{Shape, broadcast_shapes};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, nan_max, nan_min, output_buffer};

/// Which binary function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
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
            BinaryKind::Maximum => "maximum",
            BinaryKind::Minimum => "minimum",
        }
    }
}

/// A recorded binary op. Add and sub keep the input shapes only when broadcasting made
/// them differ from the output's (to reduce the gradients back); the others save both
/// operands.
#[derive(Clone)]
pub(crate) enum BinaryOp<T> {
    Add { broadcast: Broadcast },
    Sub { broadcast: Broadcast },
    Mul { lhs: Saved<T>, rhs: Saved<T> },
    Div { lhs: Saved<T>, rhs: Saved<T> },
    Maximum { lhs: Saved<T>, rhs: Saved<T> },
    Minimum { lhs: Saved<T>, rhs: Saved<T> },
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

impl<T: Element> BinaryOp<T> {
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
            BinaryOp::Maximum { .. } => "maximum",
            BinaryOp::Minimum { .. } => "minimum",
        }
    }

    pub fn saved(&self) -> Vec<&Saved<T>> {
        match self {
            BinaryOp::Add { .. } | BinaryOp::Sub { .. } => vec![],
            BinaryOp::Mul { lhs, rhs }
            | BinaryOp::Div { lhs, rhs }
            | BinaryOp::Maximum { lhs, rhs }
            | BinaryOp::Minimum { lhs, rhs } => vec![lhs, rhs],
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

impl<T: Element> Tensor<T> {
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

    #[track_caller]
    fn binary_op(&self, rhs: &Tensor<T>, kind: BinaryKind) -> Result<Tensor<T>> {
        let op = kind.name();
        match kind {
            BinaryKind::Add => self.try_zip(op, rhs, |x, y| x + y),
            BinaryKind::Sub => self.try_zip(op, rhs, |x, y| x - y),
            BinaryKind::Mul => self.try_zip(op, rhs, |x, y| x * y),
            BinaryKind::Div => self.try_zip(op, rhs, |x, y| x / y),
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
pub(crate) fn add_assign<T: Element>(acc: &mut Tensor<T>, x: &Tensor<T>) {
    debug_assert_eq!(acc.shape(), x.shape());
    if let (Some(a), Some(b)) = (acc.as_scalar(), x.as_scalar()) {
        *acc = Tensor::scalar(a + b);
        return;
    }
    for (a, &b) in acc.data_mut().iter_mut().zip(x.data()) {
        *a += b;
    }
}

impl<'t, T: Element> Var<'t, T> {
    #[track_caller]
    fn binary_op(&self, rhs: &Var<'t, T>, kind: BinaryKind) -> Result<Var<'t, T>> {
        self.same_tape(kind.name(), &[rhs])?;
        let value = self.value.binary_op(&rhs.value, kind)?;
        Ok(self.tape.record(&[self, rhs], value, || {
            Op::Binary(BinaryOp::save(kind, &self.value, &rhs.value))
        }))
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
                or_panic(self.binary_op(rhs, $kind))
            }
        }
        impl<$($gen)*> std::ops::$Trait<$Ty> for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: $Ty) -> $Ty {
                or_panic(self.binary_op(&rhs, $kind))
            }
        }
        impl<$($gen)*> std::ops::$Trait<&$Ty> for $Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: &$Ty) -> $Ty {
                or_panic(self.binary_op(rhs, $kind))
            }
        }
        impl<$($gen)*> std::ops::$Trait<$Ty> for &$Ty {
            type Output = $Ty;
            #[track_caller]
            fn $method(self, rhs: $Ty) -> $Ty {
                or_panic(self.binary_op(&rhs, $kind))
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
    use crate::{Error, Tape, Tensor, seeded_rng};

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
