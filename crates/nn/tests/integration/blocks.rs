//! The residual blocks' gradients from the tape, against finite differences.

use autograd::{Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Module, ProjectionBlock, ResidualBlock, ResidualUnit, Sequential};

/// Central differences of `loss(params)` for every element of every parameter of `m`.
fn check_against_finite_differences(m: &dyn Module<f64>, x: &Tensor<f64>) {
    let loss = |m: &dyn Module<f64>| {
        let tape = Tape::new();
        let cx = Ctx::eval(&tape);
        m.forward(&cx, &cx.input(x.clone())).tanh().sum().item()
    };
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let grads = cx.param_grads(&m.forward(&cx, &cx.input(x.clone())).tanh().sum().backward());
    for (name, p) in m.named_parameters() {
        let analytic = grads.wrt(&p);
        for j in 0..analytic.numel() {
            let original = p.value();
            let mut plus = original.clone();
            plus.data_mut()[j] += 1e-6;
            p.set(plus);
            let up = loss(m);
            let mut minus = original.clone();
            minus.data_mut()[j] -= 1e-6;
            p.set(minus);
            let down = loss(m);
            p.set(original);
            let numeric = (up - down) / 2e-6;
            assert!(
                (analytic.data()[j] - numeric).abs() < 1e-7,
                "{name}[{j}]: {} vs {numeric}",
                analytic.data()[j]
            );
        }
    }
}

#[test]
fn residual_and_projection_blocks_match_finite_differences() {
    let mut rng = seeded_rng(1);
    let x = Tensor::uniform(&[5, 4], -1.0, 1.0, &mut rng);
    check_against_finite_differences(&ResidualBlock::<f64>::new(4, Init::he(), &mut rng), &x);
    check_against_finite_differences(&ProjectionBlock::<f64>::new(4, 3, Init::he(), &mut rng), &x);
    let stack = Sequential::new()
        .push(ResidualBlock::<f64>::new(4, Init::he(), &mut rng))
        .push(ProjectionBlock::<f64>::new(4, 6, Init::he(), &mut rng))
        .push(ResidualBlock::<f64>::new(6, Init::he(), &mut rng));
    check_against_finite_differences(&stack, &x);
    assert_eq!(stack.named_parameters()[4].0, "1.linear1.weight");
}

#[test]
fn a_block_is_its_branch_plus_its_shortcut() {
    let mut rng = seeded_rng(2);
    let block = ProjectionBlock::<f64>::new(3, 5, Init::he(), &mut rng);
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(Tensor::uniform(&[2, 3], -1.0, 1.0, &mut rng));
    let whole = block.forward(&cx, &x);
    let parts = (&block.branch(&cx, &x) + &block.shortcut(&cx, &x)).relu();
    assert_eq!(whole.value(), parts.value());
    let lesioned = block.forward_without_branch(&cx, &x);
    assert_eq!(lesioned.value(), block.shortcut(&cx, &x).relu().value());
}
