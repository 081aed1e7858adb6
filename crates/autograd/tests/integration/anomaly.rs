//! Anomaly mode: the first node that produced a NaN or an infinity, forward or backward.

use autograd::{AnomalyPhase, Error, Tape, Tensor, Var, seeded_rng};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// A residual network of `depth` blocks h ← h + tanh(h·W1ᵀ)·W2ᵀ·0.1, from raw ops; block
/// `bad` also runs `poison` on its branch's hidden activation and adds it in. Returns the
/// loss and the id of the node `poison` recorded last.
fn network<'t>(
    tape: &'t Tape<f64>,
    depth: usize,
    bad: usize,
    poison: impl Fn(&Var<'t, f64>) -> Var<'t, f64>,
) -> (Var<'t, f64>, usize) {
    let x = tape.var(rand(&[4, 6], 1));
    let mut h = x.clone();
    let mut planted = None;
    for k in 0..depth {
        let w1 = tape.var(rand(&[6, 6], 10 + 2 * k as u64));
        let w2 = tape.var(rand(&[6, 6], 11 + 2 * k as u64));
        let mut hidden = h.linear(&w1, None).relu();
        if k == bad {
            let p = poison(&hidden);
            planted = p.node_id();
            hidden = &hidden + &p;
        }
        h = &h + &(&hidden.linear(&w2, None) * 0.1);
    }
    ((&h * &h).mean(), planted.expect("the poison is recorded"))
}

#[test]
fn a_planted_ln_of_zero_deep_in_a_residual_network_is_found_in_the_forward_pass() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    // relu leaves zeros, so ln(relu(·)) is −∞ somewhere: in block 17 of 24.
    let line = line!() + 1;
    let (loss, planted) = network(&tape, 24, 17, |hidden| hidden.ln());
    let Some(Error::Anomaly {
        phase,
        node,
        op,
        input_shapes,
        what,
        at,
    }) = tape.anomaly()
    else {
        panic!("no anomaly recorded")
    };
    assert_eq!((phase, node, op), (AnomalyPhase::Forward, planted, "ln"));
    assert_eq!(input_shapes, [Some([4, 6].into())].into());
    assert!(what.contains("-inf") && !what.contains("NaN"), "{what}");
    assert_eq!((at.0.file(), at.0.line()), (file!(), line));
    // The op still returned its value; backward from a loss that depends on it refuses.
    assert!(loss.value().item().is_nan() || loss.value().item().is_infinite());
    let err = loss.try_backward().unwrap_err();
    assert_eq!(Some(&err), tape.anomaly().as_ref());
    let message = err.to_string();
    assert!(
        message.contains(&format!("node %{planted} (ln of [4, 6])")),
        "{message}"
    );
    assert!(message.contains("anomaly.rs"), "{message}");
    // Without anomaly mode, the same network differentiates silently into NaN.
    let quiet = Tape::<f64>::new();
    let (loss, _) = network(&quiet, 24, 17, |hidden| hidden.ln());
    assert!(quiet.anomaly().is_none());
    let g = loss.backward();
    assert!(g.by_id(0).unwrap().data().iter().any(|v| !v.is_finite()));
}

#[test]
fn a_gradient_that_blows_up_is_found_in_the_backward_pass() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    // √0 = 0 is fine forward; its derivative 1/(2√0) is not: in block 13 of 20.
    let (loss, planted) = network(&tape, 20, 13, |hidden| hidden.sqrt());
    assert!(tape.anomaly().is_none(), "every forward value is finite");
    assert!(loss.value().item().is_finite());
    let err = loss.try_backward().unwrap_err();
    let Error::Anomaly {
        phase,
        node,
        op,
        ref input_shapes,
        ref what,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((phase, node, op), (AnomalyPhase::Backward, planted, "sqrt"));
    assert_eq!(&input_shapes[..], [Some([4, 6].into())]);
    assert!(
        what.contains(&format!("to its input %{}", planted - 1)),
        "{what}"
    );
    // The step-through iterator stops at the same node with the same error.
    let mut steps = loss.backward_steps();
    let last = steps.by_ref().last().unwrap();
    assert!(last.node > planted);
    assert_eq!(steps.try_into_gradients().unwrap_err(), err);
    // Recorded backward checks too.
    let recorded = loss.try_backward_create_graph_with(Tensor::scalar(1.0));
    assert!(matches!(recorded, Err(Error::Anomaly { node, .. }) if node == planted));
}

#[test]
fn an_exploding_plain_network_reports_the_first_matmul_that_overflowed() {
    let x0 = Tensor::<f32>::uniform(&[2, 8], 0.5, 1.0, &mut seeded_rng(2));
    let w0 = Tensor::<f32>::uniform(&[8, 8], 2.0, 3.0, &mut seeded_rng(3)); // ‖W‖ ≈ 20
    // Where the forward pass first overflows f32, computed without a tape.
    let mut value = x0.clone();
    let mut first_bad_layer = None;
    for layer in 0..40 {
        value = value.matmul(&w0);
        if first_bad_layer.is_none() && value.data().iter().any(|v| !v.is_finite()) {
            first_bad_layer = Some(layer);
        }
    }
    let first_bad_layer = first_bad_layer.expect("40 layers of ‖W‖ ≈ 20 overflow f32");

    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(x0);
    let w = tape.var(w0);
    let mut h = x.clone();
    let mut layer_nodes = Vec::new();
    for _ in 0..40 {
        h = h.matmul(&w);
        layer_nodes.push(h.node_id().unwrap());
    }
    let loss = h.sum();
    let want = layer_nodes[first_bad_layer];
    let err = loss.try_backward().unwrap_err();
    let Error::Anomaly {
        phase,
        node,
        op,
        input_shapes,
        ..
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!((phase, node, op), (AnomalyPhase::Forward, want, "matmul"));
    let shape = |s: &[usize]| Some(s.iter().copied().collect());
    assert_eq!(&input_shapes[..], [shape(&[2, 8]), shape(&[8, 8])]);
    // The values before that layer were all finite.
    assert!(first_bad_layer > 0);
}

#[test]
fn an_anomaly_the_output_does_not_depend_on_does_not_stop_backward() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(Tensor::from_vec(vec![0.0, 1.0], &[2]).unwrap());
    let _log = x.ln(); // −∞, but unused
    let y = (&x * &x).sum();
    assert!(matches!(
        tape.anomaly(),
        Some(Error::Anomaly { node: 1, .. })
    ));
    assert_eq!(y.backward().wrt(&x).to_vec(), vec![0.0, 2.0]);
    // Switched off, anomaly mode checks nothing.
    tape.set_detect_anomaly(false);
    let z = x.ln().sum();
    assert!(z.try_backward().is_ok());
    assert!(!tape.detects_anomalies());
}

#[test]
fn a_non_finite_seed_or_leaf_is_reported_too() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(rand(&[3], 4));
    let y = x.exp();
    let err = y
        .try_backward_with(Tensor::full(&[3], f64::NAN))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Anomaly {
                phase: AnomalyPhase::Backward,
                node: 1,
                op: "exp",
                ..
            }
        ),
        "{err}"
    );
    let bad = tape.var(Tensor::from_vec(vec![1.0, f64::INFINITY], &[2]).unwrap());
    // The first anomaly stays the one reported.
    let _ = bad.exp();
    assert!(matches!(
        tape.anomaly(),
        Some(Error::Anomaly { op: "leaf", .. })
    ));
}

#[test]
fn a_nan_entering_through_a_constant_is_reported_at_its_first_consuming_op() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(rand(&[2, 3], 5));
    let h = x.tanh();
    // A constant with an infinity: `h / ∞` is 0, finite, so no value ever shows it.
    let scale = tape.constant(Tensor::from_vec(vec![1.0, f64::INFINITY, 2.0], &[3]).unwrap());
    let line = line!() + 1;
    let y = &h / &scale;
    assert!(y.value().data().iter().all(|v| v.is_finite()));
    let Some(Error::Anomaly {
        phase,
        node,
        op,
        input_shapes,
        what,
        at,
    }) = tape.anomaly()
    else {
        panic!("no anomaly recorded")
    };
    assert_eq!((phase, op), (AnomalyPhase::Forward, "div"));
    assert_eq!(Some(node), y.node_id());
    let shape = |s: &[usize]| Some(s.iter().copied().collect());
    assert_eq!(&input_shapes[..], [shape(&[2, 3]), shape(&[3])]);
    assert!(
        what.contains("untracked input (argument 1, a constant)") && what.contains("1 +inf"),
        "{what}"
    );
    assert_eq!((at.0.file(), at.0.line()), (file!(), line));
    // Backward from a loss that depends on it refuses, naming that node.
    let err = y.sum().try_backward().unwrap_err();
    assert_eq!(Some(&err), tape.anomaly().as_ref());
    assert!(err.to_string().contains("(div of [2, 3], [3])"), "{err}");
}

#[test]
fn a_nan_computed_from_constants_only_is_reported_where_it_meets_the_tape() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(rand(&[3], 6));
    let zero = tape.constant(Tensor::zeros(&[3]));
    let nan = &zero / &zero; // untracked: not recorded, not reported yet
    assert!(nan.node_id().is_none() && tape.anomaly().is_none());
    let y = x.maximum(&nan);
    assert!(matches!(
        tape.anomaly(),
        Some(Error::Anomaly { op: "maximum", ref what, .. }) if what.contains("3 NaN among 3 values")
    ));
    assert!(y.sum().try_backward().is_err());
    // The first anomaly stays the one reported; without anomaly mode nothing is checked.
    let quiet = Tape::<f64>::new();
    let x = quiet.var(rand(&[3], 6));
    let _ = &x * &quiet.constant(Tensor::full(&[3], f64::NAN));
    assert!(quiet.anomaly().is_none());
}
