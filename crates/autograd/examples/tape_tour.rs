//! A tour of the tape's inspection tools on one residual block, `h = relu(F(x) + x)` with
//! `F = linear → relu → linear`. It prints what docs/tape.md shows and writes the DOT
//! graph; regenerate the docs with
//!
//! ```text
//! cargo run -p autograd --example tape_tour -- docs/tape.dot
//! dot -Tsvg docs/tape.dot -o docs/tape.svg
//! ```

use autograd::{Tape, Tensor, seeded_rng};

fn main() {
    let mut rng = seeded_rng(0);
    let mut uniform = |shape: &[usize]| Tensor::<f32>::uniform(shape, -0.5, 0.5, &mut rng);
    let tape = Tape::<f32>::new();
    tape.set_value_summaries(true);

    // A batch of 4 inputs of width 8, and the block's parameters.
    let x = tape.region("input", || tape.var(uniform(&[4, 8])));
    let (w1, b1) = (tape.var(uniform(&[8, 8])), tape.var(uniform(&[8])));
    let (w2, b2) = (tape.var(uniform(&[8, 8])), tape.var(uniform(&[8])));
    tape.track_contributions(&x);

    let h = tape.region("block", || {
        let branch = tape.region("branch", || {
            let out = x.linear(&w1, Some(&b1)).relu();
            out.linear(&w2, Some(&b2))
        });
        (&branch + &x).relu() // the skip connection: x is used twice
    });
    let loss = tape.region("loss", || (&h * &h).mean());

    println!("## The tape\n\n{tape}");
    println!("## Memory\n\n{}", tape.memory_report());

    println!("## Backward, one node at a time\n");
    let mut steps = loss.backward_steps();
    for step in steps.by_ref() {
        println!("{step}");
    }
    let grads = steps.into_gradients();

    println!("\n## Contributions at the skip connection\n");
    for c in grads.contributions(&x) {
        println!("from %{} ({}): ‖·‖ = {:.4}", c.from, c.op, c.norm());
    }
    println!("sum: ‖∂L/∂x‖ = {:.4}", grads.wrt(&x).norm());

    println!(
        "\n## The tape after backward\n\n{}",
        tape.table().with_gradients(&grads)
    );

    println!("## Anomaly mode\n");
    anomaly();

    println!("\n## Checkpointed segments\n");
    checkpointed(&grads.wrt(&x));

    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, tape.to_dot_with(&grads)).expect("cannot write the DOT file");
        println!("wrote {path}");
    }
}

/// Twenty blocks `h ← h + 0.1·relu(h·W1ᵀ)·W2ᵀ`, one of which takes a logarithm of its
/// ReLU output (zeros included): anomaly mode names the node, its op, its input's shape
/// and the line that recorded it.
fn anomaly() {
    let tape = Tape::<f32>::new();
    tape.set_detect_anomaly(true);
    let mut rng = seeded_rng(1);
    let x = tape.var(Tensor::uniform(&[4, 8], -1.0, 1.0, &mut rng));
    let mut h = x.clone();
    for k in 0..20 {
        let w1 = tape.var(Tensor::uniform(&[8, 8], -0.5, 0.5, &mut rng));
        let w2 = tape.var(Tensor::uniform(&[8, 8], -0.5, 0.5, &mut rng));
        let mut hidden = h.linear(&w1, None).relu();
        if k == 13 {
            hidden = &hidden + &hidden.ln(); // ln 0 = −∞
        }
        h = &h + &(&hidden.linear(&w2, None) * 0.1);
    }
    let loss = (&h * &h).mean();
    match loss.try_backward() {
        Ok(_) => println!("no anomaly"),
        Err(e) => println!("{e}"),
    }
}

/// The same block as a checkpointed segment: the tape records one node that keeps the
/// block's inputs (its parameters among them), and backward recomputes the block. The
/// gradients are those of the plain block (`plain_dx`), bit for bit.
fn checkpointed(plain_dx: &Tensor<f32>) {
    let mut rng = seeded_rng(0);
    let mut uniform = |shape: &[usize]| Tensor::<f32>::uniform(shape, -0.5, 0.5, &mut rng);
    let tape = Tape::<f32>::new();
    let x = tape.var(uniform(&[4, 8]));
    let (w1, b1) = (tape.var(uniform(&[8, 8])), tape.var(uniform(&[8])));
    let (w2, b2) = (tape.var(uniform(&[8, 8])), tape.var(uniform(&[8])));

    let h = tape.checkpoint([&x, &w1, &b1, &w2, &b2], |[x, w1, b1, w2, b2]| {
        let branch = x.linear(w1, Some(b1)).relu().linear(w2, Some(b2));
        (&branch + x).relu()
    });
    let loss = (&h * &h).mean();

    println!("{tape}");
    println!("{}", tape.memory_report());
    let grads = loss.backward();
    assert_eq!(grads.wrt(&x).to_vec(), plain_dx.to_vec());
    println!(
        "‖∂L/∂x‖ = {:.4}, bit for bit the plain block's",
        grads.wrt(&x).norm()
    );
}
