//! The differentiable operations, one file per family. Each file holds, side by side, the
//! op's forward on plain tensors, the `Var` method that records it, its backward rule
//! (vector–Jacobian product) and its tests.
//!
//! The set of ops is closed: [`Op`] is an enum of families, and the reverse sweep
//! dispatches with one exhaustive `match`, so an op without a backward rule does not
//! compile. Each variant holds exactly the tensors its backward needs, so the tape's
//! memory cost is visible in the type.
//!
//! Backward rules are written once, generic over [`Algebra`]: the first-order sweep runs
//! them on plain tensors (straight to the kernels), the recorded sweep runs them on `Var`s,
//! which records the backward pass itself and gives gradients of gradients.

pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod matmul;
pub(crate) mod movement;
pub(crate) mod reduce;
pub(crate) mod softmax;
pub(crate) mod unary;

use crate::element::Element;
use crate::error::Result;
use crate::kernels::conv::Conv2dGeometry;
use crate::shape::{self, Shape};
use crate::tape::{Lift, SegmentOp, Var, Vjp};
use crate::tensor::Tensor;
use std::sync::Arc;

pub(crate) use binary::BinaryOp;
pub use binary::Mask;
pub(crate) use conv::ConvOp;
pub(crate) use matmul::MatMulOp;
pub(crate) use movement::MovementOp;
pub(crate) use reduce::ReduceOp;
pub(crate) use softmax::SoftmaxOp;
pub use unary::GeluApproximation;
pub(crate) use unary::UnaryOp;

/// What a node computed, with the state its backward needs.
#[derive(Clone)]
pub(crate) enum Op<T> {
    /// A tracked input: nothing to propagate further.
    Leaf,
    /// Broadcasting binary arithmetic.
    Binary(BinaryOp<T>),
    /// Elementwise functions and scalar arithmetic.
    Unary(UnaryOp<T>),
    // The families below hold more state and are rarer in long chains of tiny ops: they
    // are boxed, so that every node stays small.
    /// Matrix products and the fused `linear`.
    MatMul(Box<MatMulOp<T>>),
    /// Sums and maxima over axes.
    Reduce(Box<ReduceOp>),
    /// Reshape, permute, broadcast, slicing, concatenation and indexing.
    Movement(Box<MovementOp>),
    /// Softmax and log-softmax.
    Softmax(Box<SoftmaxOp<T>>),
    /// 2-d convolution, its two adjoints, and max pooling.
    Conv(Box<ConvOp<T>>),
    /// A checkpointed segment: its inputs and the closure that recomputes it in backward
    /// (defined with the rest of the machinery in `tape/checkpoint.rs`).
    Checkpoint(Box<SegmentOp<T>>),
}

impl<T: Element> Op<T> {
    /// The op's name, as printed in tape tables.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::Binary(op) => op.name(),
            Op::Unary(op) => op.name(),
            Op::MatMul(op) => op.name(),
            Op::Reduce(op) => op.name(),
            Op::Movement(op) => op.name(),
            Op::Softmax(op) => op.name(),
            Op::Conv(op) => op.name(),
            Op::Checkpoint(_) => "checkpoint",
        }
    }

    /// Bytes this op keeps alive for backward: its saved tensors and index lists.
    pub fn saved_bytes(&self) -> usize {
        let bytes = |saved: Vec<&Tensor<T>>| saved.iter().map(|t| t.bytes()).sum();
        let kept = |saved: &[&Saved<T>]| saved.iter().map(|t| t.bytes()).sum::<usize>();
        match self {
            Op::Leaf => 0,
            Op::Binary(op) => op.saved().map_or(0, |s| kept(&s)) + op.mask_bytes(),
            Op::Unary(op) => op.saved().map_or(0, |s| kept(&[s])),
            Op::MatMul(op) => bytes(op.saved()),
            Op::Reduce(op) => op.saved_bytes(),
            Op::Movement(op) => op.saved_bytes(),
            Op::Softmax(op) => bytes(op.saved()),
            Op::Conv(op) => op.saved_bytes(),
            Op::Checkpoint(op) => op.saved_bytes(),
        }
    }

    /// Sends each tracked input its share of the output gradient `g`. Only a checkpointed
    /// segment can fail here (its recomputation meets an anomaly or a failing hook).
    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) -> Result<()> {
        match self {
            Op::Leaf => {}
            Op::Binary(op) => op.vjp(g, cx),
            Op::Unary(op) => op.vjp(g, cx),
            Op::MatMul(op) => op.vjp(g, cx),
            Op::Reduce(op) => op.vjp(g, cx),
            Op::Movement(op) => op.vjp(g, cx),
            Op::Softmax(op) => op.vjp(g, cx),
            Op::Conv(op) => op.vjp(g, cx),
            Op::Checkpoint(op) => return L::segment_vjp(op, g, cx),
        }
        Ok(())
    }
}

impl<T: Element> Op<T> {
    /// The light path of scalar programs (micrograd style, every value 0-d): when the
    /// adjoint `g` and the op's saved values are plain numbers, the contributions to inputs
    /// 0 and 1 (a unary op uses the first), computed on numbers with the same operations in
    /// the same order as [`Op::vjp`], so the same bits — without building a tensor per
    /// intermediate. `None`: the node takes `vjp`.
    #[inline]
    pub fn scalar_vjp(&self, g: T) -> Option<[T; 2]> {
        match self {
            Op::Leaf => Some([T::zero(); 2]), // no inputs: nothing is sent
            Op::Binary(op) => op.scalar_vjp(g),
            Op::Unary(op) => op.scalar_vjp(g).map(|d| [d, T::zero()]),
            _ => None,
        }
    }
}

/// A tensor an op keeps for its backward. A 0-d value (one number, no shape) is kept as
/// the number: saving it copies no shape and keeps the op small. Any other tensor is boxed,
/// its data shared, never copied.
#[derive(Clone)]
pub(crate) enum Saved<T> {
    Scalar(T),
    Tensor(Box<Tensor<T>>),
}

impl<T: Element> Saved<T> {
    pub fn new(t: &Tensor<T>) -> Self {
        match t.as_one() {
            Some(x) if t.rank() == 0 => Saved::Scalar(x),
            _ => Saved::Tensor(Box::new(t.clone())),
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Saved::Scalar(_) => &[],
            Saved::Tensor(t) => t.shape(),
        }
    }

    /// Bytes of element data kept alive.
    pub fn bytes(&self) -> usize {
        match self {
            Saved::Scalar(_) => std::mem::size_of::<T>(),
            Saved::Tensor(t) => t.bytes(),
        }
    }
}

/// A tensor kept for backward, plain or [`Saved`]: what [`Vjp::input`] and
/// [`Vjp::output`] lift into the sweep.
pub(crate) trait SavedTensor<T> {
    /// The tensor (its data shared, never copied).
    fn to_tensor(&self) -> Tensor<T>;
}

impl<T: Clone> SavedTensor<T> for Tensor<T> {
    fn to_tensor(&self) -> Tensor<T> {
        self.clone()
    }
}

impl<T: Element> SavedTensor<T> for Saved<T> {
    fn to_tensor(&self) -> Tensor<T> {
        match self {
            Saved::Scalar(x) => Tensor::one(*x, Shape::new()),
            Saved::Tensor(t) => Tensor::clone(t),
        }
    }
}

/// The operations a backward rule may use, implemented by `Tensor` (evaluated at once) and
/// by `Var` (recorded, so the backward pass can be differentiated again). Shapes are
/// always compatible here: they were checked when the forward pass was recorded.
pub(crate) trait Algebra<T: Element>: Clone {
    fn shape(&self) -> &[usize];
    /// Adds a later contribution into an accumulated gradient (in place for tensors).
    fn accumulate(&mut self, other: Self);
    fn sub(&self, o: &Self) -> Self;
    fn mul(&self, o: &Self) -> Self;
    fn div(&self, o: &Self) -> Self;
    fn neg(&self) -> Self;
    fn add_scalar(&self, c: T) -> Self;
    fn mul_scalar(&self, c: T) -> Self;
    fn div_scalar(&self, c: T) -> Self;
    /// `c − self`.
    fn rsub_scalar(&self, c: T) -> Self;
    /// `self ⊙ f(x)`, where `f(x)` is a constant (a mask or a derivative no gradient flows
    /// through, e.g. ReLU's step).
    fn mul_fn_of(&self, x: &Tensor<T>, f: impl Fn(T) -> T) -> Self;
    /// `self ? … : 0`: `self` where `mask` (broadcast to its shape) equals `keep`, 0
    /// elsewhere — a choice, not a product, so an infinity or NaN dropped leaves no NaN.
    fn masked(&self, mask: &Tensor<bool>, keep: bool) -> Self;
    fn powf(&self, p: T) -> Self;
    /// `self` to the power `o`, elementwise with broadcasting.
    fn pow(&self, o: &Self) -> Self;
    fn exp(&self) -> Self;
    fn ln(&self) -> Self;
    fn sigmoid(&self) -> Self;
    /// `op(self) · op(o)` where `op` transposes the last two axes when its flag is set.
    fn matmul_t(&self, ta: bool, o: &Self, tb: bool) -> Self;
    fn sum_to(&self, shape: &[usize]) -> Self;
    /// [`Algebra::sum_to`] of an owned value: returned as is when it has that shape.
    fn into_sum_to(self, shape: &[usize]) -> Self {
        if self.shape() == shape {
            self
        } else {
            self.sum_to(shape)
        }
    }
    fn sum_axes_keepdim(&self, axes: &[usize]) -> Self;
    fn broadcast_to(&self, shape: &[usize]) -> Self;
    fn reshape(&self, shape: &[usize]) -> Self;
    fn permute(&self, perm: &[usize]) -> Self;
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self;
    /// Places `self` at `start..` along `axis` inside zeros of length `len` (narrow's adjoint).
    fn pad(&self, axis: usize, start: usize, len: usize) -> Self;
    fn index_select(&self, axis: usize, index: &Arc<[usize]>) -> Self;
    /// Adds slices into zeros of length `len` at `index` along `axis` (index_select's adjoint).
    fn index_add(&self, axis: usize, index: &Arc<[usize]>, len: usize) -> Self;
    fn gather(&self, axis: usize, index: &Tensor<usize>) -> Self;
    /// Adds into zeros of `shape` at `index` along `axis` (gather's adjoint).
    fn scatter_add(&self, axis: usize, index: &Tensor<usize>, shape: &[usize]) -> Self;
    /// `self ⋆ w`: a 2-d convolution without bias, `self` the input.
    fn conv_forward(&self, w: &Self, geom: &Conv2dGeometry) -> Self;
    /// The convolution's adjoint in its input, `self` the output gradient.
    fn conv_input_grad(&self, w: &Self, geom: &Conv2dGeometry) -> Self;
    /// The convolution's adjoint in its weight, `self` the output gradient.
    fn conv_weight_grad(&self, x: &Self, geom: &Conv2dGeometry) -> Self;
}

impl<T: Element> Algebra<T> for Tensor<T> {
    fn shape(&self) -> &[usize] {
        Tensor::shape(self)
    }
    #[inline]
    fn accumulate(&mut self, other: Self) {
        binary::add_assign(self, &other);
    }
    fn sub(&self, o: &Self) -> Self {
        self - o
    }
    fn mul(&self, o: &Self) -> Self {
        self * o
    }
    fn div(&self, o: &Self) -> Self {
        self / o
    }
    fn neg(&self) -> Self {
        -self
    }
    fn add_scalar(&self, c: T) -> Self {
        self.map(|x| x + c)
    }
    fn mul_scalar(&self, c: T) -> Self {
        self.map(|x| x * c)
    }
    fn div_scalar(&self, c: T) -> Self {
        self.map(|x| x / c)
    }
    fn rsub_scalar(&self, c: T) -> Self {
        self.map(|x| c - x)
    }
    fn mul_fn_of(&self, x: &Tensor<T>, f: impl Fn(T) -> T) -> Self {
        if let (Some(g), Some(x)) = (self.as_one(), x.as_one()) {
            return Tensor::one(g * f(x), shape::copy(self.shape()));
        }
        let products = self.data().iter().zip(x.data()).map(|(&g, &x)| g * f(x));
        Tensor::from_parts(
            crate::buffer_pool::collect(self.numel(), products),
            self.shape().into(),
        )
    }
    fn masked(&self, mask: &Tensor<bool>, keep: bool) -> Self {
        Tensor::masked(self, mask, keep)
    }
    fn powf(&self, p: T) -> Self {
        Tensor::powf(self, p)
    }
    fn pow(&self, o: &Self) -> Self {
        Tensor::pow(self, o)
    }
    fn exp(&self) -> Self {
        Tensor::exp(self)
    }
    fn ln(&self) -> Self {
        Tensor::ln(self)
    }
    fn sigmoid(&self) -> Self {
        Tensor::sigmoid(self)
    }
    fn matmul_t(&self, ta: bool, o: &Self, tb: bool) -> Self {
        matmul::matmul_t(self, ta, o, tb)
    }
    fn sum_to(&self, shape: &[usize]) -> Self {
        reduce::sum_to(self, shape)
    }
    fn sum_axes_keepdim(&self, axes: &[usize]) -> Self {
        self.sum_axes(axes, true)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        match self.as_one() {
            // The adjoint of a sum or mean to one number: a fill, not a strided walk.
            Some(x) => Tensor::full(shape, x),
            None => Tensor::broadcast_to(self, shape),
        }
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Tensor::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Self {
        Tensor::permute(self, perm)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Tensor::narrow(self, axis, start, len)
    }
    fn pad(&self, axis: usize, start: usize, len: usize) -> Self {
        movement::pad(self, axis, start, len)
    }
    fn index_select(&self, axis: usize, index: &Arc<[usize]>) -> Self {
        Tensor::index_select(self, axis, index)
    }
    fn index_add(&self, axis: usize, index: &Arc<[usize]>, len: usize) -> Self {
        movement::index_add(self, axis, index, len)
    }
    fn gather(&self, axis: usize, index: &Tensor<usize>) -> Self {
        Tensor::gather(self, axis, index)
    }
    fn scatter_add(&self, axis: usize, index: &Tensor<usize>, shape: &[usize]) -> Self {
        movement::scatter_add(self, axis, index, shape)
    }
    fn conv_forward(&self, w: &Self, geom: &Conv2dGeometry) -> Self {
        crate::error::or_panic(conv::conv2d(self, w, None, geom))
    }
    fn conv_input_grad(&self, w: &Self, geom: &Conv2dGeometry) -> Self {
        crate::error::or_panic(conv::conv2d_input_grad(self, w, geom))
    }
    fn conv_weight_grad(&self, x: &Self, geom: &Conv2dGeometry) -> Self {
        crate::error::or_panic(conv::conv2d_weight_grad(self, x, geom))
    }
}

impl<'t, T: Element> Algebra<T> for Var<'t, T> {
    fn shape(&self) -> &[usize] {
        Var::shape(self)
    }
    fn accumulate(&mut self, other: Self) {
        *self = &*self + &other;
    }
    fn sub(&self, o: &Self) -> Self {
        self - o
    }
    fn mul(&self, o: &Self) -> Self {
        self * o
    }
    fn div(&self, o: &Self) -> Self {
        self / o
    }
    fn neg(&self) -> Self {
        -self
    }
    fn add_scalar(&self, c: T) -> Self {
        self.scalar_op(unary::ScalarOp::Add(c))
    }
    fn mul_scalar(&self, c: T) -> Self {
        self.scalar_op(unary::ScalarOp::Mul(c))
    }
    fn div_scalar(&self, c: T) -> Self {
        self.scalar_op(unary::ScalarOp::Div(c))
    }
    fn rsub_scalar(&self, c: T) -> Self {
        self.scalar_op(unary::ScalarOp::RSub(c))
    }
    fn mul_fn_of(&self, x: &Tensor<T>, f: impl Fn(T) -> T) -> Self {
        self * &self.tape.constant(x.map(f))
    }
    fn masked(&self, mask: &Tensor<bool>, keep: bool) -> Self {
        Var::masked(self, mask, keep)
    }
    fn powf(&self, p: T) -> Self {
        Var::powf(self, p)
    }
    fn pow(&self, o: &Self) -> Self {
        Var::pow(self, o)
    }
    fn exp(&self) -> Self {
        Var::exp(self)
    }
    fn ln(&self) -> Self {
        Var::ln(self)
    }
    fn sigmoid(&self) -> Self {
        Var::sigmoid(self)
    }
    fn matmul_t(&self, ta: bool, o: &Self, tb: bool) -> Self {
        matmul::var_matmul_t(self, ta, o, tb)
    }
    fn sum_to(&self, shape: &[usize]) -> Self {
        reduce::var_sum_to(self, shape)
    }
    fn sum_axes_keepdim(&self, axes: &[usize]) -> Self {
        self.sum_axes(axes, true)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Var::broadcast_to(self, shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Var::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Self {
        Var::permute(self, perm)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Var::narrow(self, axis, start, len)
    }
    fn pad(&self, axis: usize, start: usize, len: usize) -> Self {
        movement::var_pad(self, axis, start, len)
    }
    fn index_select(&self, axis: usize, index: &Arc<[usize]>) -> Self {
        movement::var_index_select(self, axis, index)
    }
    fn index_add(&self, axis: usize, index: &Arc<[usize]>, len: usize) -> Self {
        movement::var_index_add(self, axis, index, len)
    }
    fn gather(&self, axis: usize, index: &Tensor<usize>) -> Self {
        Var::gather(self, axis, index)
    }
    fn scatter_add(&self, axis: usize, index: &Tensor<usize>, shape: &[usize]) -> Self {
        movement::var_scatter_add(self, axis, index, shape)
    }
    fn conv_forward(&self, w: &Self, geom: &Conv2dGeometry) -> Self {
        conv::var_conv2d(self, w, None, geom)
    }
    fn conv_input_grad(&self, w: &Self, geom: &Conv2dGeometry) -> Self {
        conv::var_conv2d_input_grad(self, w, geom)
    }
    fn conv_weight_grad(&self, x: &Self, geom: &Conv2dGeometry) -> Self {
        conv::var_conv2d_weight_grad(self, x, geom)
    }
}

impl<T> Op<T> {
    /// Whether dropping the op frees nothing: a leaf, or an op of the light path of scalar
    /// programs (its saved values are numbers, nothing is boxed). The tape forgets such
    /// nodes when it is dropped instead of visiting each one; answering `false` for an op
    /// that owns nothing only costs that visit.
    pub fn owns_nothing(&self) -> bool {
        match self {
            Op::Leaf => true,
            Op::Binary(op) => op.owns_nothing(),
            Op::Unary(op) => op.owns_nothing(),
            _ => false,
        }
    }
}

impl<T> Saved<T> {
    /// Whether it is a number (nothing to free).
    pub fn is_number(&self) -> bool {
        matches!(self, Saved::Scalar(_))
    }
}
