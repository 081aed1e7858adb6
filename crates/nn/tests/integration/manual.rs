//! The manual-backward layers against central finite differences (f64), and their SGD step.

use autograd::{Tape, Tensor, seeded_rng};
use nn::manual::{
    Layer, Linear, MSELoss, ProjectionBlock, ReLU, ResidualBlock, Sequential, Sigmoid, Tanh,
};
use nn::{Ctx, Init, Module};

const EPS: f64 = 1e-6;

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// `Σ w ⊙ layer(x)`: a scalar whose gradient seeds backward with `w` (not all ones).
fn projected(layer: &mut dyn Layer<f64>, x: &Tensor<f64>, w: &Tensor<f64>) -> f64 {
    let y = layer.forward(x);
    y.data().iter().zip(w.data()).map(|(a, b)| a * b).sum()
}

/// Checks `d_in` and every parameter gradient of `layer` against central differences of
/// `Σ w ⊙ layer(x)`.
fn check_layer(layer: &mut dyn Layer<f64>, x: &Tensor<f64>) {
    let w = rand(layer.forward(x).shape(), 99);
    layer.forward(x);
    let d_in = layer.backward(&w);
    let grads: Vec<(String, Tensor<f64>)> = layer
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.grad.clone().expect("backward stored a gradient")))
        .collect();
    let name = layer.name();
    let compare = |what: &str, analytic: f64, numeric: f64| {
        assert!(
            (analytic - numeric).abs() <= 1e-8 + 1e-6 * numeric.abs(),
            "{name}: {what}: manual {analytic} vs finite differences {numeric}"
        );
    };
    for j in 0..x.numel() {
        let (mut up, mut down) = (x.clone(), x.clone());
        up.data_mut()[j] += EPS;
        down.data_mut()[j] -= EPS;
        let numeric = (projected(layer, &up, &w) - projected(layer, &down, &w)) / (2.0 * EPS);
        compare(&format!("d_in[{j}]"), d_in.data()[j], numeric);
    }
    for (k, (pname, g)) in grads.iter().enumerate() {
        for j in 0..g.numel() {
            let mut shifted = |delta: f64| {
                layer.parameters_mut()[k].value.data_mut()[j] += delta;
                let v = projected(layer, x, &w);
                layer.parameters_mut()[k].value.data_mut()[j] -= delta;
                v
            };
            let numeric = (shifted(EPS) - shifted(-EPS)) / (2.0 * EPS);
            compare(&format!("{pname}[{j}]"), g.data()[j], numeric);
        }
    }
}

fn linear(i: usize, o: usize, bias: bool, seed: u64) -> Linear<f64> {
    Linear::new(rand(&[o, i], seed), bias.then(|| rand(&[o], seed + 1)))
}

#[test]
fn linear_matches_finite_differences_with_and_without_bias_and_batch_axes() {
    check_layer(&mut linear(4, 3, true, 1), &rand(&[5, 4], 2));
    check_layer(&mut linear(4, 3, false, 3), &rand(&[5, 4], 4));
    // Leading axes are more rows.
    check_layer(&mut linear(3, 2, true, 5), &rand(&[2, 3, 3], 6));
}

#[test]
fn activations_match_finite_differences() {
    // Inputs away from ReLU's kink at 0, where the derivative is not defined.
    let x = rand(&[4, 5], 7).map(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
    check_layer(&mut ReLU::new(), &x);
    check_layer(&mut Sigmoid::new(), &(&x * 3.0));
    check_layer(&mut Tanh::new(), &(&x * 2.0));
}

#[test]
fn residual_and_projection_blocks_match_finite_differences() {
    let mut block = ResidualBlock::new(linear(4, 4, true, 10), linear(4, 4, true, 12));
    check_layer(&mut block, &rand(&[6, 4], 14));
    let mut proj = ProjectionBlock::new(
        linear(4, 3, true, 15),
        linear(3, 3, true, 17),
        linear(4, 3, false, 19),
    );
    check_layer(&mut proj, &rand(&[6, 4], 20));
}

#[test]
fn a_sequential_stack_matches_finite_differences() {
    let mut net = Sequential::new()
        .push(linear(3, 4, true, 21))
        .push(Tanh::new())
        .push(ResidualBlock::new(
            linear(4, 4, true, 23),
            linear(4, 4, true, 25),
        ))
        .push(ProjectionBlock::new(
            linear(4, 2, true, 27),
            linear(2, 2, true, 29),
            linear(4, 2, false, 31),
        ))
        .push(Sigmoid::new());
    check_layer(&mut net, &rand(&[5, 3], 33));
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "0.weight");
    assert_eq!(names[2], "2.linear1.weight");
    assert_eq!(names[names.len() - 1], "3.projection.weight");
}

#[test]
fn mse_loss_matches_finite_differences() {
    let (pred, target) = (rand(&[3, 4], 40), rand(&[3, 4], 41));
    let mut mse = MSELoss::new();
    let loss = mse.forward(&pred, &target);
    let want: f64 = pred
        .data()
        .iter()
        .zip(target.data())
        .map(|(p, t)| (p - t) * (p - t))
        .sum::<f64>()
        / 12.0;
    assert!((loss - want).abs() < 1e-15);
    let d = mse.backward();
    for j in 0..pred.numel() {
        let (mut up, mut down) = (pred.clone(), pred.clone());
        up.data_mut()[j] += EPS;
        down.data_mut()[j] -= EPS;
        let numeric = (MSELoss::new().forward(&up, &target)
            - MSELoss::new().forward(&down, &target))
            / (2.0 * EPS);
        assert!((d.data()[j] - numeric).abs() < 1e-9, "{j}");
    }
}

#[test]
fn mse_loss_agrees_with_the_tape_at_scale_in_f32() {
    // B·D = 262,144: a running f32 sum drifted 4e-5 from the tape's pairwise sum here.
    for shape in [[512, 512], [262_144, 1], [1, 262_144]] {
        let pred = Tensor::<f32>::uniform(&shape, -1.0, 3.0, &mut seeded_rng(50));
        let target = Tensor::<f32>::uniform(&shape, -1.0, 1.0, &mut seeded_rng(51));
        let manual = MSELoss::new().forward(&pred, &target);
        let tape = Tape::new();
        let on_tape = nn::loss::mse(&tape.var(pred.clone()), &tape.constant(target.clone()));
        assert_eq!(manual, on_tape.item(), "{shape:?}");
        // Both are within f32 rounding of the f64 mean.
        let exact = pred
            .data()
            .iter()
            .zip(target.data())
            .map(|(&p, &t)| (f64::from(p) - f64::from(t)).powi(2))
            .sum::<f64>()
            / 262_144.0;
        assert!(
            (f64::from(manual) - exact).abs() < 1e-5 * exact,
            "{shape:?}"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let err = MSELoss::<f64>::new()
        .try_forward(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[3, 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("MSELoss") && err.contains("[2, 3]") && err.contains("[3, 2]"));
    let err = ResidualBlock::try_new(linear(4, 3, true, 0), linear(3, 4, true, 0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ResidualBlock") && err.contains("[4, 4]"),
        "{err}"
    );
    let err = Linear::<f64>::try_new(Tensor::zeros(&[3, 2]), Some(Tensor::zeros(&[2])))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manual::Linear::new") && err.contains("[3]"),
        "{err}"
    );
    let panic =
        std::panic::catch_unwind(|| linear(2, 2, true, 0).backward(&Tensor::zeros(&[1, 2])));
    let msg = panic.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("before forward"), "{msg}");
    let panic = std::panic::catch_unwind(|| {
        let mut l = linear(2, 3, true, 0);
        l.forward(&Tensor::zeros(&[4, 2]));
        l.backward(&Tensor::zeros(&[4, 2]))
    });
    let msg = panic.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("[4, 3]") && msg.contains("[4, 2]"), "{msg}");
}

#[test]
fn sgd_steps_in_place_and_leaves_the_autograd_parameters_alone() {
    let mut rng = seeded_rng(50);
    let auto = nn::ResidualBlock::<f64>::new(3, Init::he(), &mut rng);
    let mut block = ResidualBlock::from_autograd(&auto);
    // The twin starts from the same buffer (no copy) …
    assert!(
        block
            .linear1
            .weight
            .value
            .shares_storage(&auto.linear1.weight.value())
    );
    let x = rand(&[4, 3], 51);
    let before = block.linear1.weight.value.clone();
    block.forward(&x);
    block.backward(&Tensor::ones(&[4, 3]));
    let g = block.linear1.weight.grad.clone().unwrap();
    block.sgd_step(0.5);
    // … p ← p − lr·grad …
    for ((p, b), g) in block
        .linear1
        .weight
        .value
        .data()
        .iter()
        .zip(before.data())
        .zip(g.data())
    {
        assert_eq!(*p, b - 0.5 * g);
    }
    // … and the update copied on write: the autograd block is unchanged.
    assert_eq!(auto.linear1.weight.value(), before);
    assert!(
        !block
            .linear1
            .weight
            .value
            .shares_storage(&auto.linear1.weight.value())
    );
    // A second step writes into the twin's own buffer, without another copy.
    let ptr = block.linear1.weight.value.data().as_ptr();
    block.sgd_step(0.5);
    assert_eq!(ptr, block.linear1.weight.value.data().as_ptr());
}

/// Training both networks with SGD keeps them in lockstep: the manual backward is a
/// faithful reference step after step, not only at initialisation.
#[test]
fn manual_and_tape_training_stay_in_lockstep() {
    let mut rng = seeded_rng(60);
    let (d, lr) = (6, 0.05);
    let blocks: Vec<nn::ResidualBlock<f64>> = (0..3)
        .map(|_| nn::ResidualBlock::new(d, Init::he(), &mut rng))
        .collect();
    let mut manual = Sequential::new();
    for b in &blocks {
        manual = manual.push(ResidualBlock::from_autograd(b));
    }
    let x = rand(&[8, d], 61);
    let y = rand(&[8, d], 62);
    let mut mse = MSELoss::new();
    for step in 0..5 {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let mut h = cx.input(x.clone());
        for b in &blocks {
            h = b.forward(&cx, &h);
        }
        let diff = &h - &cx.input(y.clone());
        let loss = (&diff * &diff).mean();
        let grads = cx.param_grads(&loss.backward());
        for b in &blocks {
            for (_, p) in b.named_parameters() {
                let g = grads.wrt(&p);
                p.update(|v| v.iter_mut().zip(g.data()).for_each(|(v, g)| *v -= lr * g));
            }
        }
        let manual_loss = mse.forward(&manual.forward(&x), &y);
        manual.backward(&mse.backward());
        manual.sgd_step(lr);
        let rel = (loss.item() - manual_loss).abs() / loss.item();
        println!("step {step}: loss {manual_loss:.6}, tape vs manual relative {rel:.1e}");
        assert!(rel < 1e-13, "step {step}: {} vs {manual_loss}", loss.item());
    }
}
