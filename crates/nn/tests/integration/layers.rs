//! Normalisation, dropout, stochastic depth and the residual variants: gradients from the
//! tape against central finite differences in f64 (parameters and input, in training and
//! in evaluation), and the behaviour that differs between the two modes.

use autograd::{Error, Tape, Tensor, seeded_rng};
use nn::{
    Activation, BatchNorm1d, BatchNorm2d, Ctx, Dropout, Init, LayerNorm, Linear, Module,
    Normalization, PreActBlock, ProjectionBlock, Residual, ResidualBlock, ResidualUnit, Sequential,
    StochasticDepth,
};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// `Σ w ⊙ tanh(m(x))` in the given mode, with a fixed seed for the random layers (so a
/// training-mode dropout mask is the same in every evaluation).
fn loss_value(m: &dyn Module<f64>, x: &Tensor<f64>, w: &Tensor<f64>, train: bool) -> f64 {
    let tape = Tape::new();
    let cx = if train {
        Ctx::train(&tape, 42)
    } else {
        Ctx::eval(&tape)
    };
    let y = m.forward(&cx, &cx.input(x.clone())).tanh();
    (&y * &cx.input(w.clone())).sum().item()
}

/// Checks ∂loss/∂θ for every parameter θ of `m`, and ∂loss/∂x, against central differences.
fn check_against_finite_differences(m: &dyn Module<f64>, x: &Tensor<f64>, train: bool) {
    let probe = {
        let tape = Tape::new();
        let cx = Ctx::eval(&tape);
        m.forward(&cx, &cx.input(x.clone())).shape().to_vec()
    };
    let w = rand(&probe, 99);
    let tape = Tape::new();
    let cx = if train {
        Ctx::train(&tape, 42)
    } else {
        Ctx::eval(&tape)
    };
    let xv = cx.tracked_input(x.clone());
    let y = m.forward(&cx, &xv).tanh();
    let grads = (&y * &cx.input(w.clone())).sum().backward();
    let param_grads = cx.param_grads(&grads);
    let close =
        |analytic: f64, numeric: f64| (analytic - numeric).abs() < 1e-7 + 1e-6 * numeric.abs();
    let eps = 1e-6;
    for (name, p) in m.named_parameters() {
        let analytic = param_grads.wrt(&p);
        let original = p.value();
        for j in 0..original.numel() {
            let mut shifted = original.clone();
            shifted.data_mut()[j] += eps;
            p.set(shifted.clone());
            let up = loss_value(m, x, &w, train);
            shifted.data_mut()[j] -= 2.0 * eps;
            p.set(shifted);
            let down = loss_value(m, x, &w, train);
            p.set(original.clone());
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                close(analytic.data()[j], numeric),
                "{name}[{j}] (train={train}): tape {} vs finite differences {numeric}",
                analytic.data()[j]
            );
        }
    }
    let analytic = grads.wrt(&xv);
    for j in 0..x.numel() {
        let mut shifted = x.clone();
        shifted.data_mut()[j] += eps;
        let up = loss_value(m, &shifted, &w, train);
        shifted.data_mut()[j] -= 2.0 * eps;
        let down = loss_value(m, &shifted, &w, train);
        let numeric = (up - down) / (2.0 * eps);
        assert!(
            close(analytic.data()[j], numeric),
            "input[{j}] (train={train}): tape {} vs finite differences {numeric}",
            analytic.data()[j]
        );
    }
}

/// Random γ and β and running statistics, so no gradient is trivially 0 or 1.
fn randomise_batch_norm<const D: usize>(bn: &nn::BatchNorm<f64, D>, seed: u64) {
    let c = bn.num_features();
    bn.weight
        .set(Tensor::uniform(&[c], 0.5, 1.5, &mut seeded_rng(seed)));
    bn.bias.set(rand(&[c], seed + 1));
    bn.set_running_stats(
        rand(&[c], seed + 2),
        Tensor::uniform(&[c], 0.5, 2.0, &mut seeded_rng(seed + 3)),
    );
}

#[test]
fn batch_norm_matches_finite_differences_in_both_modes() {
    let bn1 = BatchNorm1d::<f64>::new(3);
    randomise_batch_norm(&bn1, 1);
    let bn2 = BatchNorm2d::<f64>::new(2);
    randomise_batch_norm(&bn2, 5);
    for train in [true, false] {
        check_against_finite_differences(&bn1, &rand(&[5, 3], 10), train);
        check_against_finite_differences(&bn1, &rand(&[2, 3, 4], 11), train);
        check_against_finite_differences(&bn2, &rand(&[3, 2, 2, 3], 12), train);
    }
}

#[test]
fn layer_norm_matches_finite_differences() {
    let ln = LayerNorm::<f64>::new(4);
    ln.weight
        .set(Tensor::uniform(&[4], 0.5, 1.5, &mut seeded_rng(1)));
    ln.bias.set(rand(&[4], 2));
    check_against_finite_differences(&ln, &rand(&[3, 4], 3), true);
    let ln2 = LayerNorm::<f64>::with_shape(&[2, 3]);
    ln2.weight
        .set(Tensor::uniform(&[2, 3], 0.5, 1.5, &mut seeded_rng(4)));
    check_against_finite_differences(&ln2, &rand(&[2, 2, 3], 5), false);
}

#[test]
fn layer_norm_normalises_each_example_the_same_in_both_modes() {
    let ln = LayerNorm::<f64>::new(5);
    let x = Tensor::uniform(&[3, 5], -4.0, 9.0, &mut seeded_rng(6));
    let tape = Tape::new();
    let train = Ctx::train(&tape, 0);
    let y = ln.forward(&train, &train.input(x.clone())).value().clone();
    for row in y.data().chunks(5) {
        let mean = row.iter().sum::<f64>() / 5.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
    let eval = Ctx::eval(&tape);
    assert_eq!(ln.forward(&eval, &eval.input(x)).value(), &y);
    let e = ln
        .try_forward(&eval, &eval.input(Tensor::zeros(&[3, 4])))
        .unwrap_err();
    assert!(e.to_string().contains("layer_norm") && e.to_string().contains("[3, 4]"));
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_running_ones_in_evaluation() {
    let bn = BatchNorm1d::<f64>::new(2);
    bn.weight
        .set(Tensor::from_vec(vec![2.0, 0.5], &[2]).unwrap());
    bn.bias
        .set(Tensor::from_vec(vec![1.0, -1.0], &[2]).unwrap());
    let x = Tensor::from_vec(vec![1.0, 10.0, 2.0, 20.0, 6.0, 60.0, 3.0, 30.0], &[4, 2]).unwrap();
    let column = |c: usize| {
        x.data()
            .iter()
            .skip(c)
            .step_by(2)
            .copied()
            .collect::<Vec<_>>()
    };
    let tape = Tape::new();

    // Training: each channel normalised by its batch mean and biased variance.
    let cx = Ctx::train(&tape, 0);
    let y = bn.forward(&cx, &cx.input(x.clone())).value().clone();
    let (gamma, beta) = ([2.0, 0.5], [1.0, -1.0]);
    let mut expected_mean = [0.0; 2];
    let mut expected_var = [1.0; 2];
    for c in 0..2 {
        let col = column(c);
        let mean = col.iter().sum::<f64>() / 4.0;
        let biased = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        for (i, v) in col.iter().enumerate() {
            let want = (v - mean) / (biased + 1e-5).sqrt() * gamma[c] + beta[c];
            assert!((y.get(&[i, c]) - want).abs() < 1e-12);
        }
        // PyTorch: momentum 0.1 and the unbiased variance in the running estimate.
        expected_mean[c] = 0.9 * 0.0 + 0.1 * mean;
        expected_var[c] = 0.9 * 1.0 + 0.1 * biased * 4.0 / 3.0;
    }
    let close =
        |a: &Tensor<f64>, b: &[f64; 2]| a.data().iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    assert!(close(&bn.running_mean(), &expected_mean));
    assert!(close(&bn.running_var(), &expected_var));

    // A second training step moves the running statistics again.
    let x2 = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[2, 2]).unwrap();
    let cx = Ctx::train(&tape, 0);
    let _ = bn.forward(&cx, &cx.input(x2));
    expected_mean = [
        0.9 * expected_mean[0] + 0.1 * 1.0,
        0.9 * expected_mean[1] + 0.1 * 2.0,
    ];
    expected_var = [
        0.9 * expected_var[0] + 0.1 * 2.0,
        0.9 * expected_var[1] + 0.1 * 2.0,
    ];
    assert!(close(&bn.running_mean(), &expected_mean));
    assert!(close(&bn.running_var(), &expected_var));

    // Evaluation: the running statistics, which evaluation does not change.
    let cx = Ctx::eval(&tape);
    let y_eval = bn.forward(&cx, &cx.input(x.clone())).value().clone();
    for i in 0..4 {
        for c in 0..2 {
            let want = (x.get(&[i, c]) - expected_mean[c]) / (expected_var[c] + 1e-5).sqrt()
                * gamma[c]
                + beta[c];
            assert!((y_eval.get(&[i, c]) - want).abs() < 1e-12);
        }
    }
    assert!(close(&bn.running_mean(), &expected_mean));
    assert!(y_eval.max_abs_diff(&y) > 0.1, "train and eval must differ");
    // In evaluation one example's output does not depend on the rest of the batch.
    let single = bn.forward(&cx, &cx.input(x.narrow(0, 1, 1)));
    assert!((single.value().get(&[0, 1]) - y_eval.get(&[1, 1])).abs() < 1e-15);
    assert_eq!(
        bn.named_buffers()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["running_mean", "running_var", "num_batches_tracked"]
    );
    // Two training steps counted; evaluation steps are not.
    assert_eq!(bn.num_batches_tracked(), 2);
    assert_eq!(bn.named_buffers()[2].1.count(), Some(2));
}

#[test]
fn batch_norm_rejects_bad_inputs_with_clear_errors() {
    let tape = Tape::<f64>::new();
    let train = Ctx::train(&tape, 0);
    let bn1 = BatchNorm1d::<f64>::new(3);
    let e = bn1
        .try_forward(&train, &train.input(Tensor::zeros(&[4, 2])))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "batch_norm",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("[4, 3]") && e.to_string().contains("layers.rs"));
    let e = bn1
        .try_forward(&train, &train.input(Tensor::zeros(&[4])))
        .unwrap_err();
    assert!(matches!(e, Error::Rank { .. }), "{e}");
    let bn2 = BatchNorm2d::<f64>::new(3);
    assert!(matches!(
        bn2.try_forward(&train, &train.input(Tensor::zeros(&[4, 3]))),
        Err(Error::Rank { .. })
    ));
    // One value per channel has no variance: an error in training, fine in evaluation.
    let e = bn1
        .try_forward(&train, &train.input(Tensor::zeros(&[1, 3])))
        .unwrap_err();
    assert!(
        e.to_string().contains("more than 1 value per channel"),
        "{e}"
    );
    let eval = Ctx::eval(&tape);
    assert!(
        bn1.try_forward(&eval, &eval.input(Tensor::zeros(&[1, 3])))
            .is_ok()
    );
}

#[test]
fn dropout_zeroes_and_rescales_in_training_only() {
    let tape = Tape::<f64>::new();
    let x = Tensor::ones(&[100, 100]);
    let dropout = Dropout::new(0.3);
    let cx = Ctx::train(&tape, 3);
    let y = dropout.forward(&cx, &cx.input(x.clone())).value().clone();
    let zeros = y.data().iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
    assert!((zeros - 0.3).abs() < 0.02, "dropped fraction {zeros}");
    assert!(
        y.data()
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-15)
    );
    let mean = y.data().iter().sum::<f64>() / 1e4;
    assert!(
        (mean - 1.0).abs() < 0.03,
        "inverted scaling keeps the mean: {mean}"
    );
    // Seeded: the same seed gives the same mask, another seed another one.
    let again = Ctx::train(&tape, 3);
    assert_eq!(dropout.forward(&again, &again.input(x.clone())).value(), &y);
    let other = Ctx::train(&tape, 4);
    assert_ne!(dropout.forward(&other, &other.input(x.clone())).value(), &y);
    // Evaluation is the identity; so are p = 0, and p = 1 drops everything.
    let eval = Ctx::eval(&tape);
    assert_eq!(dropout.forward(&eval, &eval.input(x.clone())).value(), &x);
    assert_eq!(
        Dropout::new(0.0).forward(&cx, &cx.input(x.clone())).value(),
        &x
    );
    let all = Dropout::new(1.0).forward(&cx, &cx.input(x.clone()));
    assert!(all.value().data().iter().all(|&v| v == 0.0));
    assert!(Dropout::try_new(1.5).is_err() && Dropout::try_new(-0.1).is_err());
}

#[test]
fn dropout_gradients_match_finite_differences() {
    let mut rng = seeded_rng(7);
    let net = Sequential::new()
        .push(Linear::<f64>::new(3, 6, true, &mut rng))
        .push(Dropout::new(0.5))
        .push(Linear::<f64>::new(6, 2, true, &mut rng));
    check_against_finite_differences(&net, &rand(&[4, 3], 8), true);
    check_against_finite_differences(&net, &rand(&[4, 3], 8), false);
}

#[test]
fn stochastic_depth_drops_branches_in_training_and_scales_them_in_evaluation() {
    let mut rng = seeded_rng(9);
    let block = StochasticDepth::new(ResidualBlock::<f64>::new(4, Init::he(), &mut rng), 0.5);
    let x = rand(&[3, 4], 10);
    let tape = Tape::new();
    let eval = Ctx::eval(&tape);
    let xv = eval.input(x.clone());
    let full = block.block.forward(&eval, &xv).value().clone();
    let without = block
        .block
        .forward_without_branch(&eval, &xv)
        .value()
        .clone();
    assert!(full.max_abs_diff(&without) > 1e-3);
    let (mut dropped, mut kept) = (0, 0);
    for seed in 0..200 {
        let cx = Ctx::train(&tape, seed);
        let y = block.forward(&cx, &cx.input(x.clone())).value().clone();
        if y == without {
            dropped += 1;
        } else {
            assert_eq!(
                y, full,
                "a training step is the whole block or the shortcut alone"
            );
            kept += 1;
        }
    }
    assert!(
        (70..=130).contains(&dropped),
        "dropped {dropped} of 200 at p = 0.5"
    );
    assert_eq!(dropped + kept, 200);
    // Evaluation: relu(x + (1 − p)·F(x)), from the parts.
    let f = block.block.branch(&eval, &xv);
    let expected = (&xv + &(f * 0.5)).relu();
    let y = block.forward(&eval, &xv);
    assert!(y.value().max_abs_diff(expected.value()) < 1e-15);
    assert!(y.value().max_abs_diff(&full) > 1e-3 && y.value().max_abs_diff(&without) > 1e-3);
    // As a residual unit: the same shortcut and activation, the branch scaled in evaluation.
    assert_eq!(block.post_activation(), Some(Activation::Relu));
    let as_unit = (&block.shortcut(&eval, &xv) + &block.branch(&eval, &xv)).relu();
    assert!(as_unit.value().max_abs_diff(y.value()) < 1e-15);
    assert_eq!(block.named_parameters()[0].0, "linear1.weight");
    assert!(
        StochasticDepth::try_new(ResidualBlock::<f64>::new(2, Init::he(), &mut rng), 2.0).is_err()
    );
}

#[test]
fn stochastic_depth_gradients_match_finite_differences() {
    let mut rng = seeded_rng(11);
    for p in [0.0, 0.3, 1.0] {
        let block =
            StochasticDepth::new(ProjectionBlock::<f64>::new(3, 4, Init::he(), &mut rng), p);
        for train in [true, false] {
            check_against_finite_differences(&block, &rand(&[2, 3], 12), train);
        }
    }
}

#[test]
fn stochastic_depth_returns_the_blocks_shape_error_in_training_and_evaluation() {
    let mut rng = seeded_rng(12);
    let block = StochasticDepth::new(ProjectionBlock::<f64>::new(3, 4, Init::he(), &mut rng), 0.5);
    let tape = Tape::new();
    let wrong = Tensor::<f64>::zeros(&[2, 5]);
    for seed in 0..8 {
        // Dropped or kept, a training step refuses the width through the block.
        let cx = Ctx::train(&tape, seed);
        let err = block
            .try_forward(&cx, &cx.input(wrong.clone()))
            .unwrap_err();
        assert!(err.to_string().contains("[2, 5]"), "{err}");
    }
    let eval = Ctx::eval(&tape);
    let x = eval.input(wrong);
    assert!(block.try_forward(&eval, &x).is_err());
    assert!(block.try_branch(&eval, &x).is_err());
    assert!(block.try_shortcut(&eval, &x).is_err());
    assert!(block.try_forward_without_branch(&eval, &x).is_err());
}

#[test]
fn residual_wrapper_is_shortcut_plus_scaled_branch() {
    let mut rng = seeded_rng(13);
    let branch = Sequential::new()
        .push(Linear::<f64>::new(3, 5, true, &mut rng))
        .push(Activation::Tanh)
        .push(Linear::<f64>::new(5, 5, true, &mut rng));
    let block = Residual::new(branch)
        .with_projection(Linear::new(3, 5, false, &mut rng))
        .with_activation(Activation::Relu)
        .with_scale(0.25);
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "branch.0.weight",
            "branch.0.bias",
            "branch.2.weight",
            "branch.2.bias",
            "projection.weight"
        ]
    );
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(rand(&[2, 3], 14));
    let by_hand = (&(block.branch.forward(&cx, &x) * 0.25)
        + &block
            .projection
            .as_ref()
            .map(|p| p.forward(&cx, &x))
            .unwrap())
        .relu();
    assert_eq!(block.forward(&cx, &x).value(), by_hand.value());
    let lesioned = block.forward_without_branch(&cx, &x);
    let p = block.projection.as_ref().unwrap();
    assert_eq!(lesioned.value(), p.forward(&cx, &x).relu().value());
    check_against_finite_differences(&block, &rand(&[2, 3], 15), true);
    // With no scale, no projection and a ReLU after the sum it is the notebook's block.
    let notebook = ResidualBlock::<f64>::new(4, Init::he(), &mut rng);
    let copy = |l: &Linear<f64>| {
        Linear::from_tensors(l.weight.value(), l.bias.as_ref().map(|b| b.value()))
    };
    let generic = Residual::new(
        Sequential::new()
            .push(copy(&notebook.linear1))
            .push(Activation::Relu)
            .push(copy(&notebook.linear2)),
    )
    .with_activation(Activation::Relu);
    let x = cx.input(rand(&[3, 4], 16));
    assert_eq!(
        generic.forward(&cx, &x).value(),
        notebook.forward(&cx, &x).value()
    );
}

#[test]
fn pre_activation_block_has_a_clean_identity_path() {
    let mut rng = seeded_rng(17);
    for norm in [
        Normalization::None,
        Normalization::Layer,
        Normalization::Batch,
    ] {
        let block = PreActBlock::<f64>::new(4, norm, Init::he(), &mut rng);
        assert_eq!(block.post_activation(), None);
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let x = cx.input(rand(&[5, 4], 18));
        let sum = &block.branch(&cx, &x) + &x;
        assert!(block.forward(&cx, &x).value().max_abs_diff(sum.value()) < 1e-15);
        assert_eq!(block.forward_without_branch(&cx, &x).value(), x.value());
        for train in [true, false] {
            check_against_finite_differences(&block, &rand(&[5, 4], 19), train);
        }
        let names: Vec<String> = block
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let expected_count = if norm == Normalization::None { 4 } else { 8 };
        assert_eq!(names.len(), expected_count, "{names:?}");
        assert_eq!(
            block.named_buffers().len(),
            if norm == Normalization::Batch { 6 } else { 0 }
        );
    }
}

/// A `Stack` carries its layers' buffers (batch norm's running statistics) like a
/// `Sequential`, so parameter files keep them.
#[test]
fn stack_and_sequential_name_buffers_alike() {
    let stack = nn::Stack::<dyn nn::Module<f32>>::new()
        .push(Box::new(nn::Linear::<f32>::new(
            3,
            2,
            true,
            &mut autograd::seeded_rng(0),
        )))
        .push(Box::new(nn::BatchNorm1d::<f32>::new(2)));
    let names: Vec<String> = nn::Module::named_buffers(&stack)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| n.starts_with("1.")), "{names:?}");
}
