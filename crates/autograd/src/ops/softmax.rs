//! Softmax, log-softmax and log-sum-exp along axes, computed stably (the maximum is
//! subtracted first, so logits of ±1e4 give exact probabilities, not NaN).
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | softmax | y = eˣ / Σeˣ | y ⊙ (g − Σ g⊙y) | y |
//! | log_softmax | y = x − ln Σeˣ | g − eʸ ⊙ Σ g | y |
//! | logsumexp | y = m + ln Σ eˣ⁻ᵐ, m the maximum | g ⊙ eˣ⁻ʸ (the softmax) | x, y |

use super::reduce::reduced_shape;
use super::{Algebra, Op};
use crate::element::Element;
use crate::error::{Result, or_panic};
use crate::kernels::strided::{split_at_axis, walk2};
use crate::shape::{Axis, Shape, broadcast_strides, resolve_axes, resolve_axis, strides};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};
use smallvec::SmallVec;

/// A recorded softmax or log-sum-exp.
#[derive(Clone)]
pub(crate) enum SoftmaxOp<T> {
    /// Saves its output.
    Softmax { axis: usize, out: Tensor<T> },
    /// Saves its output.
    LogSoftmax { axis: usize, out: Tensor<T> },
    /// Saves its input and its output.
    LogSumExp {
        axes: SmallVec<[usize; 4]>,
        x: Tensor<T>,
        out: Tensor<T>,
    },
}

impl<T: Element> SoftmaxOp<T> {
    pub fn name(&self) -> &'static str {
        match self {
            SoftmaxOp::Softmax { .. } => "softmax",
            SoftmaxOp::LogSoftmax { .. } => "log_softmax",
            SoftmaxOp::LogSumExp { .. } => "logsumexp",
        }
    }

    pub fn saved(&self) -> Vec<&Tensor<T>> {
        match self {
            SoftmaxOp::Softmax { out, .. } | SoftmaxOp::LogSoftmax { out, .. } => vec![out],
            SoftmaxOp::LogSumExp { x, out, .. } => vec![x, out],
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
            SoftmaxOp::LogSumExp { axes, x, out } => {
                // The output and its gradient in the keepdim shape (a reshape, no copy), so
                // that they broadcast against the input.
                let kd = reduced_shape(x.shape(), axes, true);
                let y = cx.output(out).reshape(&kd);
                let softmax = cx.input(0, x).sub(&y).exp();
                softmax.mul(&g.reshape(&kd))
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

/// `ln Σ eˣ` over `axes` (resolved, sorted), in the keepdim shape: the maximum `m` of each
/// slice first, then `m + ln Σ eˣ⁻ᵐ`. As in PyTorch, an infinite maximum is not subtracted
/// (a slice of −∞ gives −∞, one holding +∞ gives +∞), and a NaN gives NaN.
#[track_caller]
fn logsumexp<T: Element>(x: &Tensor<T>, axes: &[usize]) -> Result<Tensor<T>> {
    let kd: Shape = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let mut max = output_buffer("logsumexp", &kd)?;
    max.resize(crate::shape::numel(&kd), T::neg_infinity());
    // Visit every element with its slice's output offset: `so` reads the keepdim shape.
    let (so, sx) = (broadcast_strides(&kd, x.shape()), strides(x.shape()));
    let data = x.data();
    walk2(x.shape(), &so, &sx, |_, o, i| {
        let v = data[i];
        if v > max[o] || v.is_nan() {
            max[o] = if max[o].is_nan() { max[o] } else { v };
        }
    });
    for m in max.iter_mut() {
        if m.is_infinite() {
            *m = T::zero();
        }
    }
    let mut sum = vec![T::zero(); max.len()];
    walk2(x.shape(), &so, &sx, |_, o, i| {
        sum[o] += (data[i] - max[o]).exp()
    });
    for (m, s) in max.iter_mut().zip(sum) {
        *m += s.ln();
    }
    Ok(Tensor::from_parts(max, kd))
}

impl<T: Element> Tensor<T> {
    /// Softmax along `axis` (negative counts from the back).
    #[track_caller]
    pub fn try_softmax(&self, axis: impl Axis) -> Result<Tensor<T>> {
        let axis = resolve_axis("softmax", axis, self.shape())?;
        softmax(self, axis, false)
    }
    /// [`Tensor::try_softmax`]; panics with its error.
    #[track_caller]
    pub fn softmax(&self, axis: impl Axis) -> Tensor<T> {
        or_panic(self.try_softmax(axis))
    }
    /// Log-softmax along `axis` (negative counts from the back).
    #[track_caller]
    pub fn try_log_softmax(&self, axis: impl Axis) -> Result<Tensor<T>> {
        let axis = resolve_axis("log_softmax", axis, self.shape())?;
        softmax(self, axis, true)
    }
    /// [`Tensor::try_log_softmax`]; panics with its error.
    #[track_caller]
    pub fn log_softmax(&self, axis: impl Axis) -> Tensor<T> {
        or_panic(self.try_log_softmax(axis))
    }
    /// `ln Σ eˣ` over `axes` (PyTorch's `logsumexp`), computed stably: each slice's maximum
    /// is taken out first, so `[1000, 1000]` gives `1000 + ln 2`, not ∞. With `keepdim` the
    /// reduced axes stay as 1s. Axes as in [`Tensor::try_sum_axes`] (no axis: nothing is
    /// reduced); a slice with no element gives −∞ (the logarithm of an empty sum).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1000.0f64, 1000.0, -1.0, f64::NEG_INFINITY], &[2, 2]).unwrap();
    /// let y = x.logsumexp(&[-1], false);
    /// assert_eq!(y.to_vec(), vec![1000.0 + 2f64.ln(), -1.0]);
    /// ```
    #[track_caller]
    pub fn try_logsumexp(&self, axes: &[impl Axis], keepdim: bool) -> Result<Tensor<T>> {
        let axes = resolve_axes("logsumexp", axes, self.shape())?;
        let y = logsumexp(self, &axes)?;
        Ok(y.with_shape(&reduced_shape(self.shape(), &axes, keepdim)))
    }
    /// [`Tensor::try_logsumexp`]; panics with its error.
    #[track_caller]
    pub fn logsumexp(&self, axes: &[impl Axis], keepdim: bool) -> Tensor<T> {
        or_panic(self.try_logsumexp(axes, keepdim))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Softmax along `axis` (negative counts from the back), stable for large logits.
    #[track_caller]
    pub fn try_softmax(&self, axis: impl Axis) -> Result<Var<'t, T>> {
        let axis = resolve_axis("softmax", axis, self.shape())?;
        let out = softmax(&self.value, axis, false)?;
        Ok(self.tape.record(&[self], out.clone(), || {
            Op::Softmax(Box::new(SoftmaxOp::Softmax { axis, out }))
        }))
    }
    /// [`Var::try_softmax`]; panics with its error.
    #[track_caller]
    pub fn softmax(&self, axis: impl Axis) -> Var<'t, T> {
        or_panic(self.try_softmax(axis))
    }
    /// Log-softmax along `axis` (negative counts from the back), stable for large logits.
    #[track_caller]
    pub fn try_log_softmax(&self, axis: impl Axis) -> Result<Var<'t, T>> {
        let axis = resolve_axis("log_softmax", axis, self.shape())?;
        let out = softmax(&self.value, axis, true)?;
        Ok(self.tape.record(&[self], out.clone(), || {
            Op::Softmax(Box::new(SoftmaxOp::LogSoftmax { axis, out }))
        }))
    }
    /// [`Var::try_log_softmax`]; panics with its error.
    #[track_caller]
    pub fn log_softmax(&self, axis: impl Axis) -> Var<'t, T> {
        or_panic(self.try_log_softmax(axis))
    }
    /// `ln Σ eˣ` over `axes`, stable (see [`Tensor::try_logsumexp`]); its gradient is the
    /// softmax over those axes, `g ⊙ eˣ⁻ʸ`, differentiable again.
    #[track_caller]
    pub fn try_logsumexp(&self, axes: &[impl Axis], keepdim: bool) -> Result<Var<'t, T>> {
        let axes = resolve_axes("logsumexp", axes, self.shape())?;
        let value = logsumexp(&self.value, &axes)?;
        let value = value.with_shape(&reduced_shape(self.shape(), &axes, keepdim));
        Ok(self.tape.record_with_output(&[self], value, |out| {
            Op::Softmax(Box::new(SoftmaxOp::LogSumExp {
                axes,
                x: self.value.clone(),
                out: out.clone(),
            }))
        }))
    }
    /// [`Var::try_logsumexp`]; panics with its error.
    #[track_caller]
    pub fn logsumexp(&self, axes: &[impl Axis], keepdim: bool) -> Var<'t, T> {
        or_panic(self.try_logsumexp(axes, keepdim))
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
    fn logsumexp_is_ln_of_a_sum_of_exps_stably_f32_and_f64() {
        let x = rand(&[2, 3, 4], 5);
        for (axes, keepdim) in [(&[2][..], false), (&[0, 2], true), (&[-1, -3], false)] {
            let direct = x.exp().sum_axes(axes, keepdim).ln();
            let y = x.logsumexp(axes, keepdim);
            assert_eq!(y.shape(), direct.shape());
            assert!(y.max_abs_diff(&direct) < 1e-14, "{axes:?}");
            let y32 = x.cast::<f32>().logsumexp(axes, keepdim).cast::<f64>();
            assert!(y32.max_abs_diff(&direct) < 1e-6);
        }
        assert_eq!(x.logsumexp(&[] as &[usize], false), x); // no axis: nothing reduced
        // Where the direct form overflows or gives ln 0; PyTorch's answers.
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        let big = Tensor::from_vec(vec![1e4, 1e4, -inf, -inf, 1.0, inf, nan, 0.0], &[4, 2]);
        let y = big.unwrap().logsumexp(&[1], false).to_vec();
        assert_eq!(&y[..3], &[1e4 + 2f64.ln(), -inf, inf]);
        assert!(y[3].is_nan());
        let y32 = Tensor::from_vec(vec![100.0f32, 100.0], &[2])
            .unwrap()
            .logsumexp(&[0], true);
        assert_eq!(
            (y32.shape(), y32.item()),
            (&[1usize][..], 100.0 + 2f32.ln())
        );
        // An empty sum: −∞, as in PyTorch.
        let empty = Tensor::<f64>::zeros(&[2, 0]).logsumexp(&[1], false);
        assert_eq!(empty.to_vec(), vec![-inf, -inf]);
    }

    #[test]
    fn gradients_of_logsumexp() {
        let x = rand(&[2, 3, 4], 6);
        for axes in [&[0][..], &[2], &[-1, 0], &[0, 1, 2]] {
            check(|v| v[0].logsumexp(axes, false).tanh(), [x.clone()]);
            check(|v| v[0].logsumexp(axes, true).tanh(), [x.clone()]);
        }
        check_second_order(|v| v[0].logsumexp(&[1], false), [rand(&[2, 3], 7)]);
        check_second_order(|v| v[0].logsumexp(&[0, 1], true).tanh(), [rand(&[3, 2], 8)]);
        // The gradient of a logsumexp is the softmax.
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let g = v.logsumexp(&[-1], false).sum().backward().wrt(&v);
        assert!(g.max_abs_diff(&x.softmax(-1)) < 1e-15);
    }

    #[test]
    fn negative_axes_and_repeated_axes() {
        let x = rand(&[2, 3], 9);
        assert_eq!(x.softmax(-1), x.softmax(1));
        assert_eq!(x.log_softmax(-2), x.log_softmax(0));
        let tape = Tape::<f64>::new();
        let v = tape.var(x);
        assert!(matches!(
            v.try_softmax(-3),
            Err(Error::Axis {
                op: "softmax",
                axis: -3,
                ..
            })
        ));
        assert!(matches!(
            v.try_logsumexp(&[0, -2], false),
            Err(Error::InvalidArgument {
                op: "logsumexp",
                ..
            })
        ));
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
