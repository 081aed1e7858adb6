//! Loss functions, as functions of `Var`s composed of tape ops (mean reduction, as
//! PyTorch's default).
//!
//! Each has a `try_*` form returning [`Result`] and a panicking form with the same message.
//! Both classification losses start from logits and stay finite for logits of any size.

use crate::module::or_panic;
use autograd::{Caller, Element, Error, Result, Tensor, Var};

#[track_caller]
fn same_shape<T: Element>(op: &'static str, a: &Var<'_, T>, b: &Var<'_, T>) -> Result<()> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: a.shape().into(),
            got: b.shape().into(),
            at: Caller::here(),
        })
    }
}

/// Mean squared error, `mean((pred − target)²)`; the shapes must be equal (no
/// broadcasting, which would silently compare the wrong elements).
#[track_caller]
pub fn try_mse<'t, T: Element>(pred: &Var<'t, T>, target: &Var<'t, T>) -> Result<Var<'t, T>> {
    same_shape("mse", pred, target)?;
    let diff = pred - target;
    Ok((&diff * &diff).mean())
}

/// [`try_mse`]; panics with its error.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let pred = tape.var(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
/// let target = tape.constant(Tensor::from_vec(vec![0.0, 4.0], &[2]).unwrap());
/// assert_eq!(nn::loss::mse(&pred, &target).item(), (1.0 + 4.0) / 2.0);
/// ```
#[track_caller]
pub fn mse<'t, T: Element>(pred: &Var<'t, T>, target: &Var<'t, T>) -> Var<'t, T> {
    try_mse(pred, target).unwrap_or_else(|e| panic!("{e}"))
}

/// Cross-entropy of logits `[N, C]` against class indices (`targets[i] < C`), averaged over
/// the batch: `−mean_i log softmax(logits_i)[targets_i]`. Computed as log-softmax (which
/// subtracts each row's maximum) then a gather, so logits of ±1e4 give a finite loss.
#[track_caller]
pub fn try_cross_entropy<'t, T: Element>(
    logits: &Var<'t, T>,
    targets: &[usize],
) -> Result<Var<'t, T>> {
    let &[n, c] = logits.shape() else {
        return Err(Error::Rank {
            op: "cross_entropy",
            expected: "rank 2 [N, C] logits",
            got: logits.shape().into(),
            at: Caller::here(),
        });
    };
    if targets.len() != n {
        return Err(Error::ShapeMismatch {
            op: "cross_entropy",
            expected: [n].as_slice().into(),
            got: [targets.len()].as_slice().into(),
            at: Caller::here(),
        });
    }
    if let Some(&bad) = targets.iter().find(|&&t| t >= c) {
        return Err(Error::Index {
            op: "cross_entropy (class index)",
            index: bad,
            len: c,
            at: Caller::here(),
        });
    }
    let index = Tensor::from_vec(targets.to_vec(), &[n, 1])?;
    let picked = logits.try_log_softmax(1)?.try_gather(1, &index)?;
    Ok(-picked.mean())
}

/// [`try_cross_entropy`]; panics with its error.
///
/// ```
/// use autograd::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(Tensor::from_vec(vec![0.0, 0.0, 1e4, -1e4], &[2, 2]).unwrap());
/// let loss = nn::loss::cross_entropy(&logits, &[1, 0]);
/// assert!((loss.item() - 2f64.ln() / 2.0).abs() < 1e-12);
/// ```
#[track_caller]
pub fn cross_entropy<'t, T: Element>(logits: &Var<'t, T>, targets: &[usize]) -> Var<'t, T> {
    try_cross_entropy(logits, targets).unwrap_or_else(|e| panic!("{e}"))
}

/// Binary cross-entropy of logits `x` against targets `y ∈ [0, 1]` of the same shape,
/// averaged: `mean(softplus(x) − x·y)`, where softplus is computed as
/// `max(x, 0) + log(1 + e^−|x|)` — the stable form of `−y·log σ(x) − (1−y)·log(1 − σ(x))`.
#[track_caller]
pub fn try_binary_cross_entropy_with_logits<'t, T: Element>(
    logits: &Var<'t, T>,
    targets: &Var<'t, T>,
) -> Result<Var<'t, T>> {
    same_shape("binary_cross_entropy_with_logits", logits, targets)?;
    Ok((&logits.softplus() - &(logits * targets)).mean())
}

/// [`try_binary_cross_entropy_with_logits`]; panics with its error.
#[track_caller]
pub fn binary_cross_entropy_with_logits<'t, T: Element>(
    logits: &Var<'t, T>,
    targets: &Var<'t, T>,
) -> Var<'t, T> {
    try_binary_cross_entropy_with_logits(logits, targets).unwrap_or_else(|e| panic!("{e}"))
}

/// The class each row of `logits` predicts: for `[N, C]` logits with `C ≥ 2` the position
/// of the row's largest entry (the first one on ties, a NaN counting as largest, as
/// `torch.argmax`); for `[N, 1]` logits of a binary classifier (trained with
/// [`binary_cross_entropy_with_logits`]) class 1 where the logit is above 0 — σ(x) > ½ —
/// and class 0 otherwise (NaN included).
///
/// ```
/// use autograd::Tensor;
/// let multi = Tensor::from_vec(vec![0.1, 0.9, 0.8, 0.2], &[2, 2]).unwrap();
/// assert_eq!(nn::loss::predict_classes(&multi), vec![1, 0]);
/// let binary = Tensor::from_vec(vec![2.5, -0.3, 0.0], &[3, 1]).unwrap();
/// assert_eq!(nn::loss::predict_classes(&binary), vec![1, 0, 0]);
/// ```
#[track_caller]
pub fn try_predict_classes<T: Element>(logits: &Tensor<T>) -> Result<Vec<usize>> {
    let &[_, c] = logits.shape() else {
        return Err(Error::Rank {
            op: "predict_classes",
            expected: "rank 2 [N, C] logits ([N, 1] for a binary classifier)",
            got: logits.shape().into(),
            at: Caller::here(),
        });
    };
    if c == 0 {
        return Err(Error::InvalidArgument {
            op: "predict_classes",
            reason: format!("logits of shape {:?} have no class", logits.shape()),
            at: Caller::here(),
        });
    }
    let rows = logits.data().chunks_exact(c);
    Ok(if c == 1 {
        rows.map(|row| usize::from(row[0] > T::zero())).collect()
    } else {
        rows.map(argmax).collect()
    })
}

/// [`try_predict_classes`]; panics with its error.
#[track_caller]
pub fn predict_classes<T: Element>(logits: &Tensor<T>) -> Vec<usize> {
    or_panic(try_predict_classes(logits))
}

/// The position of the largest entry, the first on ties; a NaN counts as the largest.
fn argmax<T: Element>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        let current = row[best];
        if !current.is_nan() && (v.is_nan() || v > current) {
            best = j;
        }
    }
    best
}

/// The fraction of rows whose predicted class ([`predict_classes`]: the arg-max of
/// `[N, C]` logits, or logit > 0 for `[N, 1]`) equals the target. Errors: logits not of
/// rank 2, a target count other than `N`, a target outside the classes (≥ C, or ≥ 2 for
/// `[N, 1]`), an empty batch.
///
/// ```
/// use autograd::Tensor;
/// // A perfect binary classifier: one logit per row, positive for class 1.
/// let logits = Tensor::from_vec(vec![3.0, -2.0, 0.5, -0.1], &[4, 1]).unwrap();
/// assert_eq!(nn::loss::accuracy(&logits, &[1, 0, 1, 0]), 1.0);
/// assert!(nn::loss::try_accuracy(&logits, &[1, 0]).is_err());
/// ```
#[track_caller]
pub fn try_accuracy<T: Element>(logits: &Tensor<T>, targets: &[usize]) -> Result<f64> {
    let predicted = try_predict_classes(logits)?;
    if targets.len() != predicted.len() {
        return Err(Error::ShapeMismatch {
            op: "accuracy (one target per row of logits)",
            expected: [predicted.len()].as_slice().into(),
            got: [targets.len()].as_slice().into(),
            at: Caller::here(),
        });
    }
    if predicted.is_empty() {
        return Err(Error::InvalidArgument {
            op: "accuracy",
            reason: format!(
                "the accuracy of an empty batch (logits {:?}) is undefined",
                logits.shape()
            ),
            at: Caller::here(),
        });
    }
    let classes = logits.shape()[1].max(2);
    if let Some(&bad) = targets.iter().find(|&&t| t >= classes) {
        return Err(Error::Index {
            op: "accuracy (class index)",
            index: bad,
            len: classes,
            at: Caller::here(),
        });
    }
    let correct = predicted
        .iter()
        .zip(targets)
        .filter(|(p, t)| p == t)
        .count();
    Ok(correct as f64 / targets.len() as f64)
}

/// [`try_accuracy`]; panics with its error.
#[track_caller]
pub fn accuracy<T: Element>(logits: &Tensor<T>, targets: &[usize]) -> f64 {
    or_panic(try_accuracy(logits, targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::{GradcheckOptions, Tape, gradcheck, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -2.0, 2.0, &mut seeded_rng(seed))
    }

    #[test]
    fn losses_match_their_formulas() {
        let tape = Tape::<f64>::new();
        let x = rand(&[3, 4], 1);
        let y = Tensor::uniform(&[3, 4], 0.0, 1.0, &mut seeded_rng(2));
        let (xv, yv) = (tape.var(x.clone()), tape.constant(y.clone()));
        let pairs = || x.data().iter().zip(y.data());
        let expected_mse = pairs().map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 12.0;
        assert!((mse(&xv, &yv).item() - expected_mse).abs() < 1e-14);
        // BCE by its textbook definition, with σ computed directly.
        let sigma = |v: f64| 1.0 / (1.0 + (-v).exp());
        let expected_bce = pairs()
            .map(|(&a, &b)| -(b * sigma(a).ln() + (1.0 - b) * (1.0 - sigma(a)).ln()))
            .sum::<f64>()
            / 12.0;
        let bce = binary_cross_entropy_with_logits(&xv, &yv).item();
        assert!(
            (bce - expected_bce).abs() < 1e-12,
            "{bce} vs {expected_bce}"
        );
        // Cross-entropy by its definition.
        let targets = [3, 0, 2];
        let expected_ce = (0..3)
            .map(|i| {
                let row = &x.data()[i * 4..i * 4 + 4];
                let z: f64 = row.iter().map(|v| v.exp()).sum();
                -(row[targets[i]].exp() / z).ln()
            })
            .sum::<f64>()
            / 3.0;
        assert!((cross_entropy(&xv, &targets).item() - expected_ce).abs() < 1e-12);
    }

    #[test]
    fn losses_stay_finite_for_huge_logits() {
        let tape = Tape::<f32>::new();
        let logits = tape.var(Tensor::from_vec(vec![1e4, -1e4, -1e4, 1e4], &[2, 2]).unwrap());
        let ce = cross_entropy(&logits, &[1, 1]);
        assert_eq!(ce.item(), 1e4); // row 0 misses by 2e4, row 1 is right: (2e4 + 0)/2
        let g = ce.backward().wrt(&logits);
        assert!(g.data().iter().all(|v| v.is_finite()));
        let targets = tape.constant(Tensor::from_vec(vec![0.0, 1.0, 0.0, 1.0], &[2, 2]).unwrap());
        let bce = binary_cross_entropy_with_logits(&logits, &targets);
        assert_eq!(bce.item(), 1e4 / 2.0); // two elements miss by 1e4 each, two are right
        let g = bce.backward().wrt(&logits);
        assert!(g.data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let o = GradcheckOptions::default();
        let x = rand(&[3, 4], 3);
        let y = Tensor::uniform(&[3, 4], 0.0, 1.0, &mut seeded_rng(4));
        let r = gradcheck(|v| mse(&v[0], &v[1]).tanh(), &[x.clone(), y.clone()], &o);
        assert!(r.passed(), "{r}");
        let r = gradcheck(
            |v| binary_cross_entropy_with_logits(&v[0], &v[1]).tanh(),
            &[x.clone(), y],
            &o,
        );
        assert!(r.passed(), "{r}");
        let r = gradcheck(|v| cross_entropy(&v[0], &[1, 0, 3]).tanh(), &[x], &o);
        assert!(r.passed(), "{r}");
    }

    #[test]
    fn bad_shapes_and_classes_are_errors() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::zeros(&[2, 3]));
        let b = tape.constant(Tensor::zeros(&[3, 2]));
        let e = try_mse(&a, &b).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { op: "mse", .. }), "{e}");
        assert!(e.to_string().contains("[2, 3]") && e.to_string().contains("loss.rs"));
        assert!(try_binary_cross_entropy_with_logits(&a, &b).is_err());
        let e = try_cross_entropy(&a, &[0, 3]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Index {
                    index: 3,
                    len: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("class index"));
        let e = try_cross_entropy(&a, &[0]).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let flat = tape.var(Tensor::zeros(&[6]));
        assert!(matches!(
            try_cross_entropy(&flat, &[0]),
            Err(Error::Rank { .. })
        ));
        let panic = std::panic::catch_unwind(|| {
            let tape = Tape::<f64>::new();
            let a = tape.var(Tensor::zeros(&[2, 3]));
            cross_entropy(&a, &[0, 7]);
        })
        .unwrap_err();
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("index 7"), "{msg}");
    }

    #[test]
    fn accuracy_counts_argmax_hits_and_binary_logits() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.8, 0.2, 0.3, 0.7], &[3, 2]).unwrap();
        assert_eq!(accuracy(&logits, &[1, 0, 0]), 2.0 / 3.0);
        // Binary [N, 1]: class 1 where the logit is positive; a perfect classifier scores 1.
        let binary = Tensor::from_vec(vec![4.0f32, -1.0, 0.0, 1e-3], &[4, 1]).unwrap();
        assert_eq!(predict_classes(&binary), vec![1, 0, 0, 1]);
        assert_eq!(accuracy(&binary, &[1, 0, 0, 1]), 1.0);
        assert_eq!(accuracy(&binary, &[0, 0, 0, 1]), 0.75);
        // Ties go to the first class, NaN counts as the largest (torch.argmax).
        let ties = Tensor::from_vec(vec![1.0, 1.0, 0.0, 0.0, f64::NAN, 2.0], &[2, 3]).unwrap();
        assert_eq!(predict_classes(&ties), vec![0, 1]);
    }

    #[test]
    fn accuracy_refuses_what_it_cannot_score() {
        let logits = Tensor::from_vec(vec![0.1, 0.9, 0.8, 0.2, 0.3, 0.7], &[3, 2]).unwrap();
        let (e, line) = (try_accuracy(&logits, &[1]).unwrap_err(), line!());
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("one target per row") && msg.contains("[3]") && msg.contains("[1]"));
        assert!(msg.contains(&format!("loss.rs:{line}:")), "{msg}");
        let e = try_accuracy(&logits, &[1, 0, 2]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Index {
                    index: 2,
                    len: 2,
                    ..
                }
            ),
            "{e}"
        );
        let binary = Tensor::<f64>::zeros(&[2, 1]);
        assert!(matches!(
            try_accuracy(&binary, &[0, 2]),
            Err(Error::Index {
                index: 2,
                len: 2,
                ..
            })
        ));
        assert!(matches!(
            try_accuracy(&Tensor::<f64>::zeros(&[0, 2]), &[]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            try_predict_classes(&Tensor::<f64>::zeros(&[3])),
            Err(Error::Rank { .. })
        ));
        assert!(try_predict_classes(&Tensor::<f64>::zeros(&[3, 0])).is_err());
        let panic = std::panic::catch_unwind(|| accuracy(&binary, &[1])).unwrap_err();
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("accuracy"), "{msg}");
    }
}
