//! End to end: a residual MLP from the builder learns the two-spirals problem, with SGD plus
//! momentum and with Adam, where a linear model cannot.

use autograd::{Tape, seeded_rng};
use nn::data::two_spirals;
use nn::loss::{accuracy, cross_entropy};
use nn::{Adam, Ctx, Init, MlpConfig, Module, Optimizer, Sgd};

struct Outcome {
    first_loss: f32,
    last_loss: f32,
    accuracy: f64,
}

/// Full-batch training of a residual MLP (width 32, `depth` blocks) on 200 spiral points.
fn train(
    depth: usize,
    make_opt: impl Fn(Vec<nn::Param<f32>>) -> Box<dyn Optimizer<f32>>,
) -> Outcome {
    let data = two_spirals::<f32>(100, 0.02, 0);
    let net = MlpConfig::residual(2, 32, 2, depth)
        .init(Init::he())
        .build::<f32>(&mut seeded_rng(1));
    let mut opt = make_opt(net.parameters());
    let mut losses = Vec::new();
    for step in 0..200 {
        let (loss, grads) = nn::value_and_grad(step, |cx| {
            let logits = net.forward(cx, &cx.input(data.x.clone()));
            cross_entropy(&logits, &data.labels)
        });
        losses.push(loss);
        opt.step(&grads);
    }
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let logits = net.forward(&cx, &cx.input(data.x.clone()));
    eprintln!(
        "depth {depth}: loss {} -> {}, accuracy {}",
        losses[0],
        losses[losses.len() - 1],
        accuracy(logits.value(), &data.labels)
    );
    Outcome {
        first_loss: losses[0],
        last_loss: losses[losses.len() - 1],
        accuracy: accuracy(logits.value(), &data.labels),
    }
}

fn sgd(params: Vec<nn::Param<f32>>) -> Box<dyn Optimizer<f32>> {
    Box::new(Sgd::new(params, 0.05).momentum(0.9))
}

fn adam(params: Vec<nn::Param<f32>>) -> Box<dyn Optimizer<f32>> {
    Box::new(Adam::new(params, 0.01))
}

#[test]
fn a_residual_mlp_learns_two_spirals_with_sgd_and_momentum() {
    let r = train(3, sgd);
    assert!(r.first_loss > 0.5, "starts near chance: {}", r.first_loss);
    assert!(r.last_loss < 0.1, "loss after 200 steps: {}", r.last_loss);
    assert!(r.accuracy >= 0.97, "training accuracy {}", r.accuracy);
}

#[test]
fn a_residual_mlp_learns_two_spirals_with_adam() {
    let r = train(3, adam);
    assert!(r.first_loss > 0.5, "starts near chance: {}", r.first_loss);
    assert!(r.last_loss < 0.1, "loss after 200 steps: {}", r.last_loss);
    assert!(r.accuracy >= 0.97, "training accuracy {}", r.accuracy);
    // Without hidden blocks the network is linear, and the spirals defeat it.
    let linear = train(0, adam);
    assert!(
        linear.last_loss > 0.5,
        "a linear model's loss: {}",
        linear.last_loss
    );
    assert!(
        linear.accuracy < 0.75,
        "a linear model's accuracy: {}",
        linear.accuracy
    );
}
