//! Softmax and log-softmax along an axis, computed stably (the maximum is subtracted
//! first, so logits of ±1e4 give exact probabilities, not NaN).
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | softmax | y = eˣ / Σeˣ | y ⊙ (g − Σ g⊙y) | y |
//! | log_softmax | y = x − ln Σeˣ | g − eʸ ⊙ Σ g | y |

use super::{Algebra, Op};
use crate::element::Element;
use crate::error::{Result, or_panic};
use crate::kernels::strided::split_at_axis;
use crate::shape::check_axis;
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};

/// A recorded softmax; both forms save their output.
#[derive(Clone)]
pub(crate) enum SoftmaxOp<T> {
    Softmax { axis: usize, out: Tensor<T> },
    LogSoftmax { axis: usize, out: Tensor<T> },
}

impl<T: Element> SoftmaxOp<T> {
    pub fn name(&self) -> &'static str {
        match self {
            SoftmaxOp::Softmax { .. } => "softmax",
            SoftmaxOp::LogSoftmax { .. } => "log_softmax",
        }
    }

    pub fn saved(&self) -> Vec<&Tensor<T>> {
        match self {
            SoftmaxOp::Softmax { out, .. } | SoftmaxOp::LogSoftmax { out, .. } => vec![out],
        }
    }

    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        let dx = match self {
            SoftmaxOp::Softmax { axis, out } => {
                let y = cx.output(out);
                y.mul(&g.sub(&g.mul(&y).sum_axes_keepdim(&[*axis])))
            }
            SoftmaxOp::LogSoftmax { axis, out } => {
                let y = cx.output(out);
                g.sub(&y.exp().mul(&g.sum_axes_keepdim(&[*axis])))
            }
        };
        cx.send(0, dx);
    }
}

/// Softmax (or its logarithm) along `axis`, each row shifted by its maximum. A row with a
/// NaN, or with +∞ (∞ − ∞), is all NaN, as in PyTorch.
#[track_caller]
fn softmax<T: Element>(x: &Tensor<T>, axis: usize, log: bool) -> Result<Tensor<T>> {
    let op = if log { "log_softmax" } else { "softmax" };
    let (outer, len, inner) = split_at_axis(x.shape(), axis);
    let mut out = output_buffer(op, x.shape())?;
    out.extend_from_slice(x.data());
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len).map(|j| out[at(j)]).fold(T::neg_infinity(), T::max);
            let mut sum = T::zero();
            for j in 0..len {
                let shifted = out[at(j)] - max;
                out[at(j)] = shifted;
                sum += shifted.exp();
            }
            let log_sum = sum.ln();
            for j in 0..len {
                let v = out[at(j)];
                out[at(j)] = if log { v - log_sum } else { v.exp() / sum };
            }
        }
    }
    Ok(Tensor::from_parts(out, x.shape().into()))
}

impl<T: Element> Tensor<T> {
    /// Softmax along `axis`.
    #[track_caller]
    pub fn try_softmax(&self, axis: usize) -> Result<Tensor<T>> {
        check_axis("softmax", axis, self.shape())?;
        softmax(self, axis, false)
    }
    /// [`Tensor::try_softmax`]; panics with its error.
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Tensor<T> {
        or_panic(self.try_softmax(axis))
    }
    /// Log-softmax along `axis`.
    #[track_caller]
    pub fn try_log_softmax(&self, axis: usize) -> Result<Tensor<T>> {
        check_axis("log_softmax", axis, self.shape())?;
        softmax(self, axis, true)
    }
    /// [`Tensor::try_log_softmax`]; panics with its error.
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Tensor<T> {
        or_panic(self.try_log_softmax(axis))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Softmax along `axis`, stable for large logits.
    #[track_caller]
    pub fn try_softmax(&self, axis: usize) -> Result<Var<'t, T>> {
        let out = self.value.try_softmax(axis)?;
        Ok(self.tape.record(&[self], out.clone(), || {
            Op::Softmax(Box::new(SoftmaxOp::Softmax { axis, out }))
        }))
    }
    /// [`Var::try_softmax`]; panics with its error.
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_softmax(axis))
    }
    /// Log-softmax along `axis`, stable for large logits.
    #[track_caller]
    pub fn try_log_softmax(&self, axis: usize) -> Result<Var<'t, T>> {
        let out = self.value.try_log_softmax(axis)?;
        Ok(self.tape.record(&[self], out.clone(), || {
            Op::Softmax(Box::new(SoftmaxOp::LogSoftmax { axis, out }))
        }))
    }
    /// [`Var::try_log_softmax`]; panics with its error.
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Var<'t, T> {
        or_panic(self.try_log_softmax(axis))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -2.0, 2.0, &mut seeded_rng(seed))
    }

    #[test]
    fn rows_sum_to_one_in_f32_and_f64() {
        let x = rand(&[3, 5], 1);
        let s = x.softmax(1);
        for r in 0..3 {
            let sum: f64 = (0..5).map(|c| s.get(&[r, c])).sum();
            assert!((sum - 1.0).abs() < 1e-15);
        }
        let ls = x.log_softmax(1);
        assert!(ls.exp().max_abs_diff(&s) < 1e-15);
        let s32 = x.cast::<f32>().softmax(0);
        let col: f32 = (0..3).map(|r| s32.get(&[r, 2])).sum();
        assert!((col - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gradients_of_softmax_family() {
        let x = rand(&[2, 3, 4], 2);
        for axis in 0..3 {
            check(|v| v[0].softmax(axis).tanh(), [x.clone()]);
            check(|v| v[0].log_softmax(axis).tanh(), [x.clone()]);
        }
        check_second_order(|v| v[0].softmax(1), [rand(&[2, 3], 3)]);
        check_second_order(|v| v[0].log_softmax(0), [rand(&[3, 2], 4)]);
    }

    #[test]
    fn stable_at_huge_logits() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![1e4, -1e4, 0.0, 1e4], &[2, 2]).unwrap());
        let ls = x.log_softmax(1);
        assert_eq!(ls.value().to_vec(), vec![0.0, -2e4, -1e4, 0.0]);
        let s = x.softmax(1);
        assert_eq!(s.value().to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
        let g = (&ls.sum() + &s.sum()).backward().wrt(&x);
        assert!(g.data().iter().all(|v| v.is_finite()));
        let x32 = Tensor::from_vec(vec![1e4f32, -1e4], &[2]).unwrap();
        assert!(x32.log_softmax(0).data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn axis_out_of_range() {
        let x = Tensor::<f64>::zeros(&[2]);
        assert!(matches!(
            x.try_softmax(1),
            Err(Error::Axis { op: "softmax", .. })
        ));
    }
}
