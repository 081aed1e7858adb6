//! Reductions: sum and mean (over everything or over axes), maximum and minimum (over an
//! axis or over everything), their positions (`argmax`, `argmin`), and the
//! broadcast-reduction `sum_to` that every broadcasting op's backward uses.
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | sum over axes | Σ over the axes | g broadcast back over them | input shape |
//! | sum_to | Σ over broadcast dims | g broadcast back | input shape |
//! | max / min over an axis | extremum along the axis | g to the (first) arg-max / arg-min, 0 elsewhere | its positions |
//! | max_all / min_all | extremum of all elements | g shared evenly among the elements equal to it | their positions |
//! | mean | sum / n | composed | — |
//!
//! NaN follows PyTorch: a slice (or a tensor) holding a NaN has the maximum *and* the
//! minimum NaN, found at its first NaN by `argmax`/`argmin`; `max()`/`min()` of all
//! elements share the gradient among the NaNs.

use super::unary::ScalarOp;
use super::{Algebra, Op};
use crate::buffer_pool;
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::strided::{pairwise_sum, split_at_axis, sum_keepdim};
use crate::shape::{Axis, Shape, numel, resolve_axes, resolve_axis};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};
use smallvec::SmallVec;
use std::sync::Arc;

/// Which extremum a reduction takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extremum {
    Max,
    Min,
}

impl Extremum {
    fn name(self) -> &'static str {
        match self {
            Extremum::Max => "max",
            Extremum::Min => "min",
        }
    }

    /// Whether `v` replaces `best` as the extremum found so far, scanning forward: a larger
    /// (smaller) value does, and a NaN does unless `best` is already one — so the first NaN
    /// wins, as in PyTorch.
    fn beats<T: Element>(self, v: T, best: T) -> bool {
        !best.is_nan()
            && (v.is_nan()
                || match self {
                    Extremum::Max => v > best,
                    Extremum::Min => v < best,
                })
    }
}

/// A recorded reduction.
#[derive(Clone)]
pub(crate) enum ReduceOp {
    /// Sum over `axes` of an input of shape `input`.
    Sum {
        input: Shape,
        axes: SmallVec<[usize; 4]>,
    },
    /// Sum of an input of shape `input` down to the output's (broadcast-compatible) shape.
    SumTo { input: Shape },
    /// Max or min along `axis`; `at` holds, for each output element, the winning position
    /// along the axis.
    Along {
        kind: Extremum,
        input: Shape,
        axis: usize,
        at: Arc<[usize]>,
    },
    /// Max or min of all elements; `at` holds the (row-major) positions of every element
    /// equal to it — or of every NaN when it is NaN — which share the gradient evenly.
    All {
        kind: Extremum,
        input: Shape,
        at: Arc<[usize]>,
    },
}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum { .. } => "sum",
            ReduceOp::SumTo { .. } => "sum_to",
            ReduceOp::Along { kind, .. } => kind.name(),
            ReduceOp::All {
                kind: Extremum::Max,
                ..
            } => "max_all",
            ReduceOp::All {
                kind: Extremum::Min,
                ..
            } => "min_all",
        }
    }

    pub fn saved_bytes(&self) -> usize {
        match self {
            ReduceOp::Sum { .. } | ReduceOp::SumTo { .. } => 0,
            ReduceOp::Along { at, .. } | ReduceOp::All { at, .. } => {
                at.len() * std::mem::size_of::<usize>()
            }
        }
    }

    pub fn vjp<T: Element, L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        let dx = match self {
            ReduceOp::Sum { input, axes, .. } => {
                g.reshape(&keepdim_shape(input, axes)).broadcast_to(input)
            }
            ReduceOp::SumTo { input } => g.broadcast_to(input),
            ReduceOp::Along {
                input, axis, at, ..
            } => {
                // A constant one-hot mask of the winners (its derivative is 0).
                let (outer, len, inner) = split_at_axis(input, *axis);
                let mut onehot = buffer_pool::zeroed(numel(input));
                for o in 0..outer {
                    for i in 0..inner {
                        onehot[(o * len + at[o * inner + i]) * inner + i] = T::one();
                    }
                }
                let onehot = Tensor::from_parts(onehot, input.clone());
                g.reshape(&keepdim_shape(input, &[*axis]))
                    .broadcast_to(input)
                    .mul_fn_of(&onehot, |m| m)
            }
            ReduceOp::All { input, at, .. } => {
                let mut share = buffer_pool::zeroed(numel(input));
                let each = T::one() / T::of(at.len() as f64);
                for &i in at.iter() {
                    share[i] = each;
                }
                let share = Tensor::from_parts(share, input.clone());
                g.broadcast_to(input).mul_fn_of(&share, |s| s)
            }
        };
        cx.send(0, dx);
    }
}

/// `shape` with every axis in `axes` set to 1.
fn keepdim_shape(shape: &[usize], axes: &[usize]) -> Shape {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

/// `shape` without the axes in `axes`.
fn drop_axes(shape: &[usize], axes: &[usize]) -> Shape {
    shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect()
}

/// The shape of a reduction of `shape` over `axes`: with 1s in their place (`keepdim`) or
/// without them.
pub(crate) fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Shape {
    if keepdim {
        keepdim_shape(shape, axes)
    } else {
        drop_axes(shape, axes)
    }
}

/// Sums `x` down to `shape`, which `shape` must broadcast to `x`'s shape.
pub(crate) fn sum_to<T: Element>(x: &Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if x.shape() == shape {
        return x.clone();
    }
    let lead = x.rank() - shape.len();
    let mut target: Shape = smallvec::smallvec![1; lead];
    target.extend_from_slice(shape);
    let out = buffer_pool::with_capacity(numel(shape));
    Tensor::from_parts(sum_keepdim(x.data(), x.shape(), &target, out), shape.into())
}

pub(crate) fn var_sum_to<'t, T: Element>(x: &Var<'t, T>, shape: &[usize]) -> Var<'t, T> {
    if x.shape() == shape {
        return x.clone();
    }
    let value = sum_to(&x.value, shape);
    x.tape.record(&[x], value, || {
        Op::Reduce(Box::new(ReduceOp::SumTo {
            input: x.shape().into(),
        }))
    })
}

/// The number of elements summed into each output of a reduction over `axes` of `shape`.
fn count_over(shape: &[usize], axes: &[usize]) -> usize {
    axes.iter().map(|&a| shape[a]).product()
}

/// The error of an extremum (or its position) of nothing.
#[track_caller]
fn empty_extremum(op: &'static str, kind: Extremum, what: String) -> Error {
    Error::InvalidArgument {
        op,
        reason: format!("{what} is empty: there is no {}imum", kind.name()),
        at: Caller::here(),
    }
}

impl<T: Element> Tensor<T> {
    /// Sum of all elements, as a 0-d tensor (0 for a tensor with no element).
    pub fn sum(&self) -> Tensor<T> {
        Tensor::scalar(pairwise_sum(self.data()))
    }

    /// Sum over `axes` (resolved and sorted), as op `op`.
    #[track_caller]
    fn sum_resolved(&self, op: &'static str, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let kd = keepdim_shape(self.shape(), axes);
        let out = output_buffer(op, &kd)?;
        let data = sum_keepdim(self.data(), self.shape(), &kd, out);
        Ok(Tensor::from_parts(
            data,
            reduced_shape(self.shape(), axes, keepdim),
        ))
    }

    /// Sum over `axes` (negative axes count from the back; an axis named twice is an
    /// error); with `keepdim` the reduced axes stay as 1s.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// assert_eq!(x.sum_axes(&[-1], false).to_vec(), vec![6.0, 15.0]);
    /// assert_eq!(x.sum_axes(&[0], true).shape(), &[1, 3]);
    /// assert!(x.try_sum_axes(&[1, -1], false).is_err()); // the same axis twice
    /// ```
    #[track_caller]
    pub fn try_sum_axes(&self, axes: &[impl Axis], keepdim: bool) -> Result<Tensor<T>> {
        let axes = resolve_axes("sum", axes, self.shape())?;
        self.sum_resolved("sum", &axes, keepdim)
    }
    /// [`Tensor::try_sum_axes`]; panics with its error.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[impl Axis], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_sum_axes(axes, keepdim))
    }

    /// Mean of all elements, as a 0-d tensor (NaN for a tensor with no element, 0/0).
    pub fn mean(&self) -> Tensor<T> {
        self.sum()
            .scalar_op(ScalarOp::Div(T::of(self.numel() as f64)))
    }

    /// Mean over `axes` (as [`Tensor::try_sum_axes`]; NaN where the axes hold no element).
    #[track_caller]
    pub fn try_mean_axes(&self, axes: &[impl Axis], keepdim: bool) -> Result<Tensor<T>> {
        let axes = resolve_axes("mean", axes, self.shape())?;
        let n = count_over(self.shape(), &axes);
        Ok(self
            .sum_resolved("mean", &axes, keepdim)?
            .scalar_op(ScalarOp::Div(T::of(n as f64))))
    }
    /// [`Tensor::try_mean_axes`]; panics with its error.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[impl Axis], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_mean_axes(axes, keepdim))
    }

    /// The extremum along `axis` and its position in each slice (the first one on ties; the
    /// first NaN if the slice holds one).
    #[track_caller]
    fn extremum_along(
        &self,
        kind: Extremum,
        op: &'static str,
        axis: impl Axis,
        keepdim: bool,
    ) -> Result<(Tensor<T>, Vec<usize>)> {
        let axis = resolve_axis(op, axis, self.shape())?;
        let (outer, len, inner) = split_at_axis(self.shape(), axis);
        if len == 0 {
            let what = format!("axis {axis} of shape {:?}", self.shape());
            return Err(empty_extremum(op, kind, what));
        }
        let shape = reduced_shape(self.shape(), &[axis], keepdim);
        let x = self.data();
        let mut values = output_buffer(op, &shape)?;
        let mut at = output_buffer(op, &shape)?;
        for o in 0..outer {
            for i in 0..inner {
                let (mut best, mut pos) = (x[o * len * inner + i], 0);
                for j in 1..len {
                    let v = x[(o * len + j) * inner + i];
                    if kind.beats(v, best) {
                        (best, pos) = (v, j);
                    }
                }
                values.push(best);
                at.push(pos);
            }
        }
        Ok((Tensor::from_parts(values, shape), at))
    }

    /// The extremum of all elements and the position of its first occurrence (the first NaN
    /// if there is one).
    #[track_caller]
    fn extremum_all(&self, kind: Extremum, op: &'static str) -> Result<(T, usize)> {
        let x = self.data();
        let Some(&first) = x.first() else {
            let what = format!("a tensor of shape {:?}", self.shape());
            return Err(empty_extremum(op, kind, what));
        };
        let (mut best, mut pos) = (first, 0);
        for (j, &v) in x.iter().enumerate().skip(1) {
            if kind.beats(v, best) {
                (best, pos) = (v, j);
            }
        }
        Ok((best, pos))
    }

    /// Largest element along `axis` (negative counts from the back). A NaN is the largest
    /// of all (PyTorch's rule): a slice holding one has the maximum NaN. An empty axis is
    /// an error (there is no maximum).
    #[track_caller]
    pub fn try_max_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<T>> {
        Ok(self.extremum_along(Extremum::Max, "max", axis, keepdim)?.0)
    }
    /// [`Tensor::try_max_axis`]; panics with its error.
    #[track_caller]
    pub fn max_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_max_axis(axis, keepdim))
    }
    /// Smallest element along `axis`; NaN where the slice holds one (as in PyTorch).
    #[track_caller]
    pub fn try_min_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<T>> {
        Ok(self.extremum_along(Extremum::Min, "min", axis, keepdim)?.0)
    }
    /// [`Tensor::try_min_axis`]; panics with its error.
    #[track_caller]
    pub fn min_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_min_axis(axis, keepdim))
    }

    /// The largest element, as a 0-d tensor (PyTorch's `max()`); NaN if there is a NaN. A
    /// tensor with no element is an error.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![3.0f64, -1.0, 7.0, 7.0], &[2, 2]).unwrap();
    /// assert_eq!(x.max().item(), 7.0);
    /// assert_eq!(x.min().item(), -1.0);
    /// assert_eq!(x.argmax().item(), 2); // the first of the two 7s, row-major
    /// assert!(Tensor::<f64>::zeros(&[0, 2]).try_max().is_err());
    /// ```
    #[track_caller]
    pub fn try_max(&self) -> Result<Tensor<T>> {
        Ok(Tensor::scalar(self.extremum_all(Extremum::Max, "max")?.0))
    }
    /// [`Tensor::try_max`]; panics with its error.
    #[track_caller]
    pub fn max(&self) -> Tensor<T> {
        or_panic(self.try_max())
    }
    /// The smallest element, as a 0-d tensor; NaN if there is a NaN.
    #[track_caller]
    pub fn try_min(&self) -> Result<Tensor<T>> {
        Ok(Tensor::scalar(self.extremum_all(Extremum::Min, "min")?.0))
    }
    /// [`Tensor::try_min`]; panics with its error.
    #[track_caller]
    pub fn min(&self) -> Tensor<T> {
        or_panic(self.try_min())
    }

    /// The row-major position of the largest element, as a 0-d index (PyTorch's
    /// `argmax()`): the first one on ties, the first NaN if there is one.
    #[track_caller]
    pub fn try_argmax(&self) -> Result<Tensor<usize>> {
        Ok(Tensor::scalar(
            self.extremum_all(Extremum::Max, "argmax")?.1,
        ))
    }
    /// [`Tensor::try_argmax`]; panics with its error.
    #[track_caller]
    pub fn argmax(&self) -> Tensor<usize> {
        or_panic(self.try_argmax())
    }
    /// The row-major position of the smallest element (the first on ties, the first NaN if
    /// there is one).
    #[track_caller]
    pub fn try_argmin(&self) -> Result<Tensor<usize>> {
        Ok(Tensor::scalar(
            self.extremum_all(Extremum::Min, "argmin")?.1,
        ))
    }
    /// [`Tensor::try_argmin`]; panics with its error.
    #[track_caller]
    pub fn argmin(&self) -> Tensor<usize> {
        or_panic(self.try_argmin())
    }

    /// The position of the largest element along `axis` in each slice (PyTorch's
    /// `argmax(dim)`): the first on ties, the first NaN if the slice holds one.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let logits = Tensor::from_vec(vec![0.1f32, 2.0, -1.0, 3.0, 0.0, 3.0], &[2, 3]).unwrap();
    /// assert_eq!(logits.argmax_axis(-1, false).to_vec(), vec![1, 0]);
    /// assert_eq!(logits.argmin_axis(1, true).shape(), &[2, 1]);
    /// ```
    #[track_caller]
    pub fn try_argmax_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<usize>> {
        let (values, at) = self.extremum_along(Extremum::Max, "argmax", axis, keepdim)?;
        Ok(Tensor::from_parts(at, values.shape().into()))
    }
    /// [`Tensor::try_argmax_axis`]; panics with its error.
    #[track_caller]
    pub fn argmax_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<usize> {
        or_panic(self.try_argmax_axis(axis, keepdim))
    }
    /// The position of the smallest element along `axis` in each slice (the first on ties,
    /// the first NaN if the slice holds one).
    #[track_caller]
    pub fn try_argmin_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<usize>> {
        let (values, at) = self.extremum_along(Extremum::Min, "argmin", axis, keepdim)?;
        Ok(Tensor::from_parts(at, values.shape().into()))
    }
    /// [`Tensor::try_argmin_axis`]; panics with its error.
    #[track_caller]
    pub fn argmin_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<usize> {
        or_panic(self.try_argmin_axis(axis, keepdim))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Sum of all elements, as a 0-d value.
    #[track_caller]
    pub fn sum(&self) -> Var<'t, T> {
        let axes: SmallVec<[usize; 4]> = (0..self.value.rank()).collect();
        or_panic(self.sum_resolved("sum", &axes, false))
    }

    /// Records the sum over `axes` (resolved and sorted), as op `op`.
    #[track_caller]
    fn sum_resolved(&self, op: &'static str, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let value = self.value.sum_resolved(op, axes, keepdim)?;
        Ok(self.tape.record(&[self], value, || {
            Op::Reduce(Box::new(ReduceOp::Sum {
                input: self.shape().into(),
                axes: axes.into(),
            }))
        }))
    }

    /// Sum over `axes` (negative axes count from the back; an axis named twice is an
    /// error); with `keepdim` the reduced axes stay as 1s.
    #[track_caller]
    pub fn try_sum_axes(&self, axes: &[impl Axis], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = resolve_axes("sum", axes, self.shape())?;
        self.sum_resolved("sum", &axes, keepdim)
    }
    /// [`Var::try_sum_axes`]; panics with its error.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[impl Axis], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_sum_axes(axes, keepdim))
    }

    /// Mean of all elements (sum, then one division).
    #[track_caller]
    pub fn mean(&self) -> Var<'t, T> {
        self.sum()
            .scalar_op(ScalarOp::Div(T::of(self.value.numel() as f64)))
    }

    /// Mean over `axes` (a sum, then one division; NaN where the axes hold no element, 0/0).
    /// Errors as [`Var::try_sum_axes`], naming `mean`.
    #[track_caller]
    pub fn try_mean_axes(&self, axes: &[impl Axis], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = resolve_axes("mean", axes, self.shape())?;
        let n = count_over(self.shape(), &axes);
        let sum = self.sum_resolved("mean", &axes, keepdim)?;
        Ok(sum.scalar_op(ScalarOp::Div(T::of(n as f64))))
    }
    /// [`Var::try_mean_axes`]; panics with its error.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[impl Axis], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_mean_axes(axes, keepdim))
    }

    #[track_caller]
    fn record_along(&self, kind: Extremum, axis: impl Axis, keepdim: bool) -> Result<Var<'t, T>> {
        let (value, at) = self
            .value
            .extremum_along(kind, kind.name(), axis, keepdim)?;
        let axis = resolve_axis(kind.name(), axis, self.shape())?; // resolved above: Ok
        Ok(self.tape.record(&[self], value, || {
            Op::Reduce(Box::new(ReduceOp::Along {
                kind,
                input: self.shape().into(),
                axis,
                at: at.into(),
            }))
        }))
    }

    /// Largest element along `axis`; the gradient goes to the first arg-max (the first NaN
    /// if the slice holds one).
    #[track_caller]
    pub fn try_max_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Var<'t, T>> {
        self.record_along(Extremum::Max, axis, keepdim)
    }
    /// [`Var::try_max_axis`]; panics with its error.
    #[track_caller]
    pub fn max_axis(&self, axis: impl Axis, keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_max_axis(axis, keepdim))
    }
    /// Smallest element along `axis`; the gradient goes to the first arg-min (the first NaN
    /// if the slice holds one).
    #[track_caller]
    pub fn try_min_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Var<'t, T>> {
        self.record_along(Extremum::Min, axis, keepdim)
    }
    /// [`Var::try_min_axis`]; panics with its error.
    #[track_caller]
    pub fn min_axis(&self, axis: impl Axis, keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_min_axis(axis, keepdim))
    }

    #[track_caller]
    fn record_all(&self, kind: Extremum) -> Result<Var<'t, T>> {
        let (best, _) = self.value.extremum_all(kind, kind.name())?;
        Ok(self.tape.record(&[self], Tensor::scalar(best), || {
            let x = self.value.data();
            let at: Arc<[usize]> = if best.is_nan() {
                (0..x.len()).filter(|&i| x[i].is_nan()).collect()
            } else {
                (0..x.len()).filter(|&i| x[i] == best).collect()
            };
            Op::Reduce(Box::new(ReduceOp::All {
                kind,
                input: self.shape().into(),
                at,
            }))
        }))
    }

    /// The largest element, as a 0-d value (PyTorch's `max()`): NaN if there is a NaN. The
    /// gradient is shared evenly among the elements equal to the maximum (among the NaNs
    /// when it is NaN), as in PyTorch. A value with no element is an error.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 4.0, 4.0], &[3]).unwrap());
    /// let g = x.max().backward().wrt(&x);
    /// assert_eq!(g.to_vec(), vec![0.0, 0.5, 0.5]); // a tie: half each
    /// ```
    #[track_caller]
    pub fn try_max(&self) -> Result<Var<'t, T>> {
        self.record_all(Extremum::Max)
    }
    /// [`Var::try_max`]; panics with its error.
    #[track_caller]
    pub fn max(&self) -> Var<'t, T> {
        or_panic(self.try_max())
    }
    /// The smallest element, as a 0-d value; the gradient as [`Var::try_max`]'s.
    #[track_caller]
    pub fn try_min(&self) -> Result<Var<'t, T>> {
        self.record_all(Extremum::Min)
    }
    /// [`Var::try_min`]; panics with its error.
    #[track_caller]
    pub fn min(&self) -> Var<'t, T> {
        or_panic(self.try_min())
    }

    /// [`Tensor::try_argmax`] of the value (positions are not differentiable: nothing is
    /// recorded).
    #[track_caller]
    pub fn try_argmax(&self) -> Result<Tensor<usize>> {
        self.value.try_argmax()
    }
    /// [`Var::try_argmax`]; panics with its error.
    #[track_caller]
    pub fn argmax(&self) -> Tensor<usize> {
        self.value.argmax()
    }
    /// [`Tensor::try_argmin`] of the value (nothing is recorded).
    #[track_caller]
    pub fn try_argmin(&self) -> Result<Tensor<usize>> {
        self.value.try_argmin()
    }
    /// [`Var::try_argmin`]; panics with its error.
    #[track_caller]
    pub fn argmin(&self) -> Tensor<usize> {
        self.value.argmin()
    }
    /// [`Tensor::try_argmax_axis`] of the value (nothing is recorded).
    #[track_caller]
    pub fn try_argmax_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<usize>> {
        self.value.try_argmax_axis(axis, keepdim)
    }
    /// [`Var::try_argmax_axis`]; panics with its error.
    #[track_caller]
    pub fn argmax_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<usize> {
        self.value.argmax_axis(axis, keepdim)
    }
    /// [`Tensor::try_argmin_axis`] of the value (nothing is recorded).
    #[track_caller]
    pub fn try_argmin_axis(&self, axis: impl Axis, keepdim: bool) -> Result<Tensor<usize>> {
        self.value.try_argmin_axis(axis, keepdim)
    }
    /// [`Var::try_argmin_axis`]; panics with its error.
    #[track_caller]
    pub fn argmin_axis(&self, axis: impl Axis, keepdim: bool) -> Tensor<usize> {
        self.value.argmin_axis(axis, keepdim)
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
    }

    #[test]
    fn forward_sums_means_and_maxima() {
        let x = Tensor::from_vec(vec![1.0f32, 5.0, 3.0, 4.0, 2.0, 6.0], &[2, 3]).unwrap();
        assert_eq!(x.sum().item(), 21.0);
        assert_eq!(x.mean().item(), 3.5);
        assert_eq!(x.sum_axes(&[0], false).to_vec(), vec![5.0, 7.0, 9.0]);
        assert_eq!(x.sum_axes(&[1], true).shape(), [2, 1]);
        assert_eq!(x.max_axis(1, false).to_vec(), vec![5.0, 6.0]);
        assert_eq!(x.max_axis(0, true).to_vec(), vec![4.0, 5.0, 6.0]);
        let y = x.cast::<f64>();
        assert_eq!(y.sum_axes(&[0, 1], false).item(), 21.0);
        // Negative axes count from the back; any integer type is an axis.
        assert_eq!(x.sum_axes(&[-1], false), x.sum_axes(&[1usize], false));
        assert_eq!(y.mean_axes(&[-2i64], true).to_vec(), vec![2.5, 3.5, 4.5]);
        assert_eq!(x.min_axis(-1, false).to_vec(), vec![1.0, 2.0]);
        assert_eq!(y.min_axis(0u8, true).to_vec(), vec![1.0, 2.0, 3.0]);
        assert_eq!((x.max().item(), x.min().item()), (6.0, 1.0));
        assert_eq!((y.argmax().item(), y.argmin().item()), (5, 0));
        assert_eq!(x.argmax_axis(1, false).to_vec(), vec![1, 2]);
        assert_eq!(y.argmin_axis(-2, true).to_vec(), vec![0, 1, 0]);
        assert_eq!(y.argmin_axis(-2, true).shape(), [1, 3]);
    }

    #[test]
    fn extrema_take_the_first_on_ties_and_nan_over_everything() {
        let nan = f64::NAN;
        let x = Tensor::from_vec(vec![2.0, 7.0, 7.0, 1.0, nan, 3.0, nan, 0.0], &[2, 4]).unwrap();
        assert_eq!(x.argmax_axis(1, false).to_vec(), vec![1, 0]); // first 7; first NaN
        assert_eq!(x.argmin_axis(1, false).to_vec(), vec![3, 0]);
        assert!(x.max().item().is_nan() && x.min().item().is_nan());
        assert_eq!((x.argmax().item(), x.argmin().item()), (4, 4));
        let row = x.narrow(0, 0, 1);
        assert_eq!((row.argmax().item(), row.max().item()), (1, 7.0));
    }

    #[test]
    fn max_and_min_of_all_share_the_gradient_among_ties_as_pytorch() {
        // PyTorch 2.15: max() of [1, 4, 4, NaN, NaN] sends [0, 0, 0, ½, ½]; min() of
        // [1, 4, 4] sends [1, 0, 0]; max() of [1, 4, 4] sends [0, ½, ½].
        let tape = Tape::<f64>::new();
        let nan = f64::NAN;
        let x = tape.var(Tensor::from_vec(vec![1.0, 4.0, 4.0, nan, nan], &[5]).unwrap());
        assert_eq!(
            x.max().backward().wrt(&x).to_vec(),
            vec![0.0, 0.0, 0.0, 0.5, 0.5]
        );
        let y = tape.var(Tensor::from_vec(vec![1.0, 4.0, 4.0], &[3]).unwrap());
        assert_eq!(y.min().backward().wrt(&y).to_vec(), vec![1.0, 0.0, 0.0]);
        assert_eq!(y.max().backward().wrt(&y).to_vec(), vec![0.0, 0.5, 0.5]);
        assert_eq!(tape.op_names()[tape.len() - 1], "max_all");
    }

    #[test]
    fn gradients_of_reductions() {
        let x = rand(&[2, 3, 4], 1);
        check(|v| v[0].sum().tanh(), [x.clone()]);
        check(|v| v[0].mean().tanh(), [x.clone()]);
        for axes in [&[0usize][..], &[1], &[2], &[0, 2], &[1, 2]] {
            for keepdim in [false, true] {
                check(|v| v[0].sum_axes(axes, keepdim).tanh(), [x.clone()]);
                check(|v| v[0].mean_axes(axes, keepdim).tanh(), [x.clone()]);
            }
        }
        for axis in 0..3 {
            check(|v| v[0].max_axis(axis, false).tanh(), [x.clone()]);
            check(|v| v[0].max_axis(axis, true).tanh(), [x.clone()]);
            check(|v| v[0].min_axis(axis, false).tanh(), [x.clone()]);
        }
        for axis in -3..0 {
            check(|v| v[0].max_axis(axis, false).tanh(), [x.clone()]);
        }
        check(|v| v[0].sum_axes(&[-1, 0], false).tanh(), [x.clone()]);
        check(|v| v[0].mean_axes(&[-2], true).tanh(), [x.clone()]);
        check(|v| v[0].max().tanh(), [x.clone()]);
        check(|v| v[0].min().tanh(), [x.clone()]);
    }

    #[test]
    fn second_order_through_sums() {
        let x = rand(&[3, 2], 2);
        check_second_order(
            |v| (&v[0] * &v[0]).sum_axes(&[1], false).tanh(),
            [x.clone()],
        );
        check_second_order(|v| v[0].max_axis(0, false).tanh(), [x.clone()]);
        check_second_order(|v| v[0].min_axis(-1, false).tanh(), [x.clone()]);
        check_second_order(|v| (&v[0] * &v[0]).max().tanh(), [x.clone()]);
        check_second_order(|v| v[0].exp().min(), [x.clone()]);
    }

    #[test]
    fn bad_axes_are_errors() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2, 3]));
        assert!(matches!(
            x.try_sum_axes(&[2], false),
            Err(Error::Axis {
                op: "sum",
                axis: 2,
                ..
            })
        ));
        assert!(matches!(
            x.try_max_axis(5, false),
            Err(Error::Axis { op: "max", .. })
        ));
        let empty = tape.var(Tensor::zeros(&[2, 0]));
        assert!(matches!(
            empty.try_max_axis(1, false),
            Err(Error::InvalidArgument { op: "max", .. })
        ));
        let err = empty.try_min().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("min: a tensor of shape [2, 0] is empty: there is no minimum"),
            "{err}"
        );
        assert!(matches!(
            empty.try_argmax(),
            Err(Error::InvalidArgument { op: "argmax", .. })
        ));
        assert!(matches!(
            x.try_sum_axes(&[-3], false),
            Err(Error::Axis {
                op: "sum",
                axis: -3,
                ..
            })
        ));
        // An axis named twice is an error (PyTorch: "dim 1 appears multiple times").
        let err = x.try_sum_axes(&[1, -1], false).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::InvalidArgument { op: "sum", .. }),
            "{msg}"
        );
        assert!(msg.contains("axis 1 is named twice in [1, -1]"), "{msg}");
        assert!(msg.contains("reduce.rs"), "{msg}");
        // mean's errors name mean.
        assert!(matches!(
            x.try_mean_axes(&[0, 0], false),
            Err(Error::InvalidArgument { op: "mean", .. })
        ));
        assert!(matches!(
            x.try_mean_axes(&[2], false),
            Err(Error::Axis {
                op: "mean",
                axis: 2,
                ..
            })
        ));
        assert_eq!(tape.len(), 2, "nothing recorded for a refused reduction");
    }
}
