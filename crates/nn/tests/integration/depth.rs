//! Depth: forward + backward + drop of a 10,000-block residual MLP, on the default main
//! thread stack and on a 2 MiB thread stack — nothing in the tape recurses.

use autograd::{Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Module, ResidualBlock};

fn deep_residual_step(blocks: usize) {
    let mut rng = seeded_rng(3);
    // Zero-initialised second layers: every block starts as the identity (then ReLU), so
    // values stay finite at any depth.
    let net: Vec<ResidualBlock<f32>> = (0..blocks)
        .map(|_| {
            let b = ResidualBlock::new(4, Init::he(), &mut rng);
            b.linear2.weight.set(Tensor::zeros(&[4, 4]));
            b
        })
        .collect();
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = cx.tracked_input(Tensor::uniform(&[2, 4], 0.0, 1.0, &mut rng));
    let mut h = x.clone();
    for block in &net {
        h = block.forward(&cx, &h);
    }
    let loss = h.sum();
    let grads = loss.backward();
    assert!(tape.len() > 6 * blocks);
    // With every branch at zero, H = relu(x) = x for x ≥ 0: ∂loss/∂x is all ones.
    assert_eq!(grads.wrt(&x).to_vec(), vec![1.0; 8]);
    let pg = cx.param_grads(&grads);
    assert!(pg.get(&net[0].linear2.weight).is_some());
    drop(grads);
    drop(tape);
}

#[test]
fn ten_thousand_blocks_on_the_main_test_stack() {
    deep_residual_step(10_000);
}

#[test]
fn ten_thousand_blocks_on_a_2_mib_stack() {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| deep_residual_step(10_000))
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}
