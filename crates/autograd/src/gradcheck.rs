//! Gradient checking against central finite differences, in `f64`.
//!
//! [`gradcheck`] compares the tape's gradient of any function of tensors with
//! `(f(x + ε) − f(x − ε)) / 2ε`, element by element. [`gradgradcheck`] does the same for
//! recorded (create-graph) backward: it checks Hessian–vector products against finite
//! differences of the first-order gradient. Every op in this crate is tested with both;
//! use them for your own functions.
//!
//! A non-scalar output is projected on fixed random weights `w` (the check is on
//! `Σ w ⊙ f(x)`), so the incoming gradient is not all ones.

use crate::element::Element;
use crate::tape::{Tape, Var};
use crate::tensor::{Tensor, seeded_rng};
use std::fmt;

/// Step and tolerances of a gradient check. An element passes when
/// `|analytic − numeric| ≤ atol + rtol · |numeric|`.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Seed of the random projection weights (and, for `gradgradcheck`, directions).
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-8,
            rtol: 1e-6,
            seed: 0,
        }
    }
}

/// The element where analytic and numeric gradients differ the most.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Which input (position in the `inputs` slice).
    pub input: usize,
    /// Row-major index of the element within that input.
    pub index: usize,
    /// The tape's gradient.
    pub analytic: f64,
    /// The finite-difference estimate.
    pub numeric: f64,
}

/// The outcome of a gradient check.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// Largest `|analytic − numeric|` over all elements.
    pub max_abs_error: f64,
    /// Largest `|analytic − numeric| / |numeric|` over elements with `|numeric| > atol`.
    pub max_rel_error: f64,
    /// The element with the largest violation of the tolerance (or the largest error).
    pub worst: Option<Mismatch>,
    /// How many elements were checked.
    pub checked: usize,
    /// How many elements were outside the tolerance.
    pub failures: usize,
}

impl GradcheckReport {
    /// Whether every element was within tolerance.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck: {} of {} elements out of tolerance; max abs error {:.3e}, max rel error {:.3e}",
            self.failures, self.checked, self.max_abs_error, self.max_rel_error
        )?;
        if let Some(w) = &self.worst {
            write!(
                f,
                "; worst: input {} element {}: analytic {:.12e} vs numeric {:.12e}",
                w.input, w.index, w.analytic, w.numeric
            )?;
        }
        Ok(())
    }
}

/// Compares the tape's gradient of `f` at `inputs` with central finite differences.
///
/// ```
/// use autograd::{Tensor, gradcheck, GradcheckOptions};
/// let x = Tensor::from_vec(vec![0.3, -0.7, 1.1], &[3]).unwrap();
/// let report = gradcheck(|v| (&v[0] * &v[0]).exp().sum(), &[x], &GradcheckOptions::default());
/// assert!(report.passed(), "{report}");
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>], options: &GradcheckOptions) -> GradcheckReport
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let out = f(&vars);
    let w = weights(out.shape(), options.seed);
    let grads = out.backward_with(w.clone());
    let analytic: Vec<Tensor<f64>> = vars.iter().map(|v| grads.wrt(v)).collect();
    let scalar = |xs: &[Tensor<f64>]| {
        let tape = Tape::new();
        let vs: Vec<_> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        dot(f(&vs).value(), &w)
    };
    compare(&analytic, inputs, scalar, options)
}

/// Checks recorded (create-graph) backward: the gradient of `h(x) = Σᵢ ⟨vᵢ, ∇ᵢ s(x)⟩`,
/// with `s = ⟨w, f(x)⟩` and random directions `vᵢ` — a Hessian–vector product — against
/// finite differences of `h`, whose value comes from first-order backward.
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>], options: &GradcheckOptions) -> GradcheckReport
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let directions: Vec<Tensor<f64>> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            Tensor::uniform(
                x.shape(),
                -1.0,
                1.0,
                &mut seeded_rng(options.seed + 1 + i as u64),
            )
        })
        .collect();
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let out = f(&vars);
    let w = weights(out.shape(), options.seed);
    let first = out
        .try_backward_create_graph_with(w.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let h = vars
        .iter()
        .zip(&directions)
        .map(|(v, d)| (&first.wrt(v) * &tape.constant(d.clone())).sum())
        .reduce(|a, b| &a + &b)
        .unwrap_or_else(|| tape.constant(Tensor::scalar(0.0)));
    let grads = h.backward();
    let analytic: Vec<Tensor<f64>> = vars.iter().map(|v| grads.wrt(v)).collect();
    let h_value = |xs: &[Tensor<f64>]| {
        let tape = Tape::new();
        let vs: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let g = f(&vs).backward_with(w.clone());
        vs.iter()
            .zip(&directions)
            .map(|(v, d)| dot(&g.wrt(v), d))
            .sum::<f64>()
    };
    compare(&analytic, inputs, h_value, options)
}

fn weights(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.5, 1.5, &mut seeded_rng(seed))
}

fn dot<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> f64 {
    a.data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| (x * y).to_f64().unwrap_or(f64::NAN))
        .sum()
}

fn compare(
    analytic: &[Tensor<f64>],
    inputs: &[Tensor<f64>],
    scalar: impl Fn(&[Tensor<f64>]) -> f64,
    o: &GradcheckOptions,
) -> GradcheckReport {
    let mut report = GradcheckReport {
        max_abs_error: 0.0,
        max_rel_error: 0.0,
        worst: None,
        checked: 0,
        failures: 0,
    };
    let mut worst_excess = f64::NEG_INFINITY;
    let mut xs: Vec<Tensor<f64>> = inputs.to_vec();
    for i in 0..xs.len() {
        for j in 0..xs[i].numel() {
            let x0 = xs[i].data()[j];
            xs[i].data_mut()[j] = x0 + o.eps;
            let plus = scalar(&xs);
            xs[i].data_mut()[j] = x0 - o.eps;
            let minus = scalar(&xs);
            xs[i].data_mut()[j] = x0;
            let numeric = (plus - minus) / (2.0 * o.eps);
            let a = analytic[i].data()[j];
            let err = (a - numeric).abs();
            let excess = err - (o.atol + o.rtol * numeric.abs());
            report.checked += 1;
            if excess > 0.0 || err.is_nan() {
                report.failures += 1;
            }
            report.max_abs_error = report.max_abs_error.max(err);
            if numeric.abs() > o.atol {
                report.max_rel_error = report.max_rel_error.max(err / numeric.abs());
            }
            if excess > worst_excess || err.is_nan() {
                worst_excess = if err.is_nan() { f64::INFINITY } else { excess };
                report.worst = Some(Mismatch {
                    input: i,
                    index: j,
                    analytic: a,
                    numeric,
                });
            }
        }
    }
    report
}

/// Test helper: asserts that `gradcheck` passes with default options.
#[cfg(test)]
#[track_caller]
pub(crate) fn check<F>(f: F, inputs: impl AsRef<[Tensor<f64>]>)
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let report = gradcheck(f, inputs.as_ref(), &GradcheckOptions::default());
    assert!(report.passed(), "{report}");
}

/// Test helper: asserts that `gradgradcheck` passes (looser tolerance: the numeric side is
/// a difference of gradients).
#[cfg(test)]
#[track_caller]
pub(crate) fn check_second_order<F>(f: F, inputs: impl AsRef<[Tensor<f64>]>)
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let options = GradcheckOptions {
        atol: 1e-7,
        rtol: 1e-5,
        ..GradcheckOptions::default()
    };
    let report = gradgradcheck(f, inputs.as_ref(), &options);
    assert!(report.passed(), "{report}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_gradient_is_caught() {
        // ln|x| composed as abs then ln has the right gradient; the check passes…
        let x = Tensor::from_vec(vec![0.5, -1.5], &[2]).unwrap();
        let ok = gradcheck(
            |v| v[0].abs().ln(),
            std::slice::from_ref(&x),
            &GradcheckOptions::default(),
        );
        assert!(ok.passed(), "{ok}");
        // …while a function that detaches half of itself has a wrong one, and fails.
        let bad = gradcheck(
            |v| &v[0] * &v[0].detach(),
            &[x],
            &GradcheckOptions::default(),
        );
        assert!(!bad.passed());
        let worst = bad.worst.unwrap();
        assert!((worst.numeric - 2.0 * worst.analytic).abs() < 1e-6);
    }
}
