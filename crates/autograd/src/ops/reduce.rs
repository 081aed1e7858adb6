//! Reductions: sum and mean (over everything or over axes), max over an axis, and the
//! broadcast-reduction `sum_to` that every broadcasting op's backward uses.
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | sum over axes | Σ over the axes | g broadcast back over them | input shape |
//! | sum_to | Σ over broadcast dims | g broadcast back | input shape |
//! | max over axis | max along the axis | g to the (first) arg-max, 0 elsewhere | arg-max indices |
//! | mean | sum / n | composed | — |

use super::unary::ScalarOp;
use super::{Algebra, Op};
use crate::buffer_pool;
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::strided::{pairwise_sum, split_at_axis, sum_keepdim};
use crate::shape::{Shape, check_axis, numel};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};
use smallvec::SmallVec;
use std::sync::Arc;

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
    /// Max along `axis`; `argmax` holds, for each output element, the winning position.
    Max {
        input: Shape,
        axis: usize,
        argmax: Arc<[usize]>,
    },
}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum { .. } => "sum",
            ReduceOp::SumTo { .. } => "sum_to",
            ReduceOp::Max { .. } => "max",
        }
    }

    pub fn saved_bytes(&self) -> usize {
        match self {
            ReduceOp::Sum { .. } | ReduceOp::SumTo { .. } => 0,
            ReduceOp::Max { argmax, .. } => argmax.len() * std::mem::size_of::<usize>(),
        }
    }

    pub fn vjp<T: Element, L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        let dx = match self {
            ReduceOp::Sum { input, axes, .. } => {
                g.reshape(&keepdim_shape(input, axes)).broadcast_to(input)
            }
            ReduceOp::SumTo { input } => g.broadcast_to(input),
            ReduceOp::Max {
                input,
                axis,
                argmax,
            } => {
                let (outer, len, inner) = split_at_axis(input, *axis);
                let mut onehot = buffer_pool::zeroed(numel(input));
                for o in 0..outer {
                    for i in 0..inner {
                        onehot[(o * len + argmax[o * inner + i]) * inner + i] = T::one();
                    }
                }
                let onehot = Tensor::from_parts(onehot, input.clone());
                g.reshape(&keepdim_shape(input, &[*axis]))
                    .broadcast_to(input)
                    .mul_fn_of(&onehot, |m| m)
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

#[track_caller]
fn check_axes(op: &'static str, axes: &[usize], shape: &[usize]) -> Result<SmallVec<[usize; 4]>> {
    let mut sorted: SmallVec<[usize; 4]> = axes.into();
    sorted.sort_unstable();
    sorted.dedup();
    for &a in &sorted {
        check_axis(op, a, shape)?;
    }
    Ok(sorted)
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

impl<T: Element> Tensor<T> {
    /// Sum of all elements, as a 0-d tensor (0 for a tensor with no element).
    pub fn sum(&self) -> Tensor<T> {
        Tensor::scalar(pairwise_sum(self.data()))
    }

    /// Sum over `axes`; with `keepdim` the reduced axes stay as 1s.
    #[track_caller]
    pub fn try_sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor<T>> {
        let axes = check_axes("sum", axes, self.shape())?;
        let kd = keepdim_shape(self.shape(), &axes);
        let out = output_buffer("sum", &kd)?;
        let data = sum_keepdim(self.data(), self.shape(), &kd, out);
        Ok(Tensor::from_parts(
            data,
            if keepdim {
                kd
            } else {
                drop_axes(self.shape(), &axes)
            },
        ))
    }
    /// [`Tensor::try_sum_axes`]; panics with its error.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_sum_axes(axes, keepdim))
    }

    /// Mean of all elements, as a 0-d tensor (NaN for a tensor with no element, 0/0).
    pub fn mean(&self) -> Tensor<T> {
        self.sum()
            .scalar_op(ScalarOp::Div(T::of(self.numel() as f64)))
    }

    /// Largest element along `axis` and its position (the first one on ties). A NaN is
    /// the largest of all (PyTorch's rule): a slice holding one has the maximum NaN, at
    /// its first NaN.
    #[track_caller]
    pub(crate) fn try_max_with_argmax(
        &self,
        axis: usize,
        keepdim: bool,
    ) -> Result<(Tensor<T>, Arc<[usize]>)> {
        check_axis("max", axis, self.shape())?;
        let (outer, len, inner) = split_at_axis(self.shape(), axis);
        if len == 0 {
            return Err(Error::InvalidArgument {
                op: "max",
                reason: format!("axis {axis} of shape {:?} is empty", self.shape()),
                at: Caller::here(),
            });
        }
        let shape = if keepdim {
            keepdim_shape(self.shape(), &[axis])
        } else {
            drop_axes(self.shape(), &[axis])
        };
        let x = self.data();
        let mut values = output_buffer("max", &shape)?;
        let mut argmax = output_buffer("max", &shape)?;
        for o in 0..outer {
            for i in 0..inner {
                let (mut best, mut at) = (x[o * len * inner + i], 0);
                for j in 1..len {
                    let v = x[(o * len + j) * inner + i];
                    if !best.is_nan() && (v > best || v.is_nan()) {
                        best = v;
                        at = j;
                    }
                }
                values.push(best);
                argmax.push(at);
            }
        }
        Ok((Tensor::from_parts(values, shape), argmax.into()))
    }

    /// Largest element along `axis`.
    #[track_caller]
    pub fn try_max_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor<T>> {
        Ok(self.try_max_with_argmax(axis, keepdim)?.0)
    }
    /// [`Tensor::try_max_axis`]; panics with its error.
    #[track_caller]
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        or_panic(self.try_max_axis(axis, keepdim))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Sum of all elements, as a 0-d value.
    #[track_caller]
    pub fn sum(&self) -> Var<'t, T> {
        let axes: SmallVec<[usize; 4]> = (0..self.value.rank()).collect();
        or_panic(self.try_sum_axes(&axes, false))
    }

    /// Sum over `axes`; with `keepdim` the reduced axes stay as 1s.
    #[track_caller]
    pub fn try_sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let value = self.value.try_sum_axes(axes, keepdim)?;
        let axes = check_axes("sum", axes, self.shape())?;
        Ok(self.tape.record(&[self], value, || {
            Op::Reduce(Box::new(ReduceOp::Sum {
                input: self.shape().into(),
                axes,
            }))
        }))
    }
    /// [`Var::try_sum_axes`]; panics with its error.
    #[track_caller]
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_sum_axes(axes, keepdim))
    }

    /// Mean of all elements (sum, then one division).
    #[track_caller]
    pub fn mean(&self) -> Var<'t, T> {
        self.sum()
            .scalar_op(ScalarOp::Div(T::of(self.value.numel() as f64)))
    }

    /// Mean over `axes` (NaN where the axes hold no element, 0/0).
    #[track_caller]
    pub fn try_mean_axes(&self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>> {
        let sum = self.try_sum_axes(axes, keepdim)?;
        let axes = check_axes("sum", axes, self.shape())?;
        let n = numel(&axes.iter().map(|&a| self.shape()[a]).collect::<Shape>());
        Ok(sum.scalar_op(ScalarOp::Div(T::of(n as f64))))
    }
    /// [`Var::try_mean_axes`]; panics with its error.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_mean_axes(axes, keepdim))
    }

    /// Largest element along `axis`; the gradient goes to the first arg-max.
    #[track_caller]
    pub fn try_max_axis(&self, axis: usize, keepdim: bool) -> Result<Var<'t, T>> {
        let (value, argmax) = self.value.try_max_with_argmax(axis, keepdim)?;
        Ok(self.tape.record(&[self], value, || {
            Op::Reduce(Box::new(ReduceOp::Max {
                input: self.shape().into(),
                axis,
                argmax,
            }))
        }))
    }
    /// [`Var::try_max_axis`]; panics with its error.
    #[track_caller]
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_max_axis(axis, keepdim))
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
        }
    }

    #[test]
    fn second_order_through_sums() {
        let x = rand(&[3, 2], 2);
        check_second_order(
            |v| (&v[0] * &v[0]).sum_axes(&[1], false).tanh(),
            [x.clone()],
        );
        check_second_order(|v| v[0].max_axis(0, false).tanh(), [x.clone()]);
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
    }
}
