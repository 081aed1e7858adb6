//! Step-through backward: one step per node that receives an adjoint, ending with the
//! gradients of `backward()`.

use autograd::{Gradients, Tape, Tensor, seeded_rng};
use std::collections::BTreeMap;

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

fn assert_same_gradients(a: &Gradients<f64>, b: &Gradients<f64>, nodes: usize) {
    for id in 0..nodes {
        assert_eq!(a.by_id(id), b.by_id(id), "gradient of node %{id}");
    }
}

#[test]
fn one_step_per_node_the_output_depends_on_then_the_same_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[2, 3], 1)); // %0
    let w = tape.var(rand(&[3, 3], 2)); // %1
    let unused = tape.var(rand(&[3], 3)); // %2: no adjoint
    let c = tape.constant(rand(&[2, 3], 4)); // no node
    let a = x.linear(&w, None); // %3
    let dead = a.exp(); // %4: computed, not used by the loss
    let t = a.tanh(); // %5
    let s = &t + &x; // %6: the skip
    let h = &s * &c; // %7
    let loss = h.sum(); // %8
    let _after = loss.exp(); // %9: recorded after the output
    assert_eq!(tape.len(), 10);
    assert!(unused.is_tracked() && dead.is_tracked());

    let steps: Vec<_> = loss.backward_steps().collect();
    let visited: Vec<usize> = steps.iter().map(|s| s.node).collect();
    // One step per node the loss depends on through tracked inputs, from the output down:
    // not `unused`, `dead` or `_after`, and nothing for the constant.
    let want: Vec<usize> = [&loss, &h, &s, &t, &a, &w, &x]
        .iter()
        .map(|v| v.node_id().unwrap())
        .collect();
    assert_eq!(visited, want);
    let ops: Vec<&str> = steps.iter().map(|s| s.op).collect();
    assert_eq!(
        ops,
        vec!["sum", "mul", "add", "tanh", "linear", "leaf", "leaf"]
    );

    let grads = loss.backward();
    let mut stepped = loss.backward_steps();
    for step in stepped.by_ref() {
        // Each step's adjoint is the final gradient of its node.
        assert_eq!(Some(&step.adjoint), grads.by_id(step.node));
    }
    assert_same_gradients(&stepped.into_gradients(), &grads, tape.len());
}

#[test]
fn the_contributions_a_step_sends_add_up_to_each_input_adjoint() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[4, 5], 5));
    let w1 = tape.var(rand(&[5, 5], 6));
    let w2 = tape.var(rand(&[5, 5], 7));
    let mut h = x.clone();
    for _ in 0..3 {
        let branch = h.linear(&w1, None).relu().linear(&w2, None);
        h = (&branch + &h).tanh();
    }
    let loss = (&h * &h).mean();
    let steps: Vec<_> = loss.backward_steps().collect();
    // Σ of everything sent to node k, over all steps, is the adjoint of k's own step.
    let mut received: BTreeMap<usize, Tensor<f64>> = BTreeMap::new();
    for step in &steps {
        for (to, c) in &step.sends {
            let sum = match received.remove(to) {
                Some(s) => &s + c,
                None => c.clone(),
            };
            received.insert(*to, sum);
        }
    }
    for step in &steps[1..] {
        let got = &received[&step.node];
        assert!(
            got.max_abs_diff(&step.adjoint) < 1e-14,
            "node %{}",
            step.node
        );
    }
    // Strictly decreasing node ids, starting at the output, each node once.
    assert_eq!(steps[0].node, loss.node_id().unwrap());
    assert!(steps.windows(2).all(|p| p[0].node > p[1].node));
    // Every node here feeds the loss.
    assert_eq!(steps.len(), tape.len());
}

#[test]
fn stopping_early_and_collecting_gives_the_same_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[3], 8));
    let y = (&x.sigmoid() * &x).sum();
    let mut steps = y.backward_steps();
    assert_eq!(steps.next().map(|s| s.op), Some("sum"));
    assert_eq!(steps.next().map(|s| s.op), Some("mul"));
    assert_same_gradients(&steps.into_gradients(), &y.backward(), tape.len());
}

#[test]
fn steps_run_hooks_and_print_a_row_each() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
    let s = (&x * 3.0).sum();
    x.register_hook(|g| Some(g.map(|v| v / 3.0)));
    let steps: Vec<_> = s.backward_steps().collect();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2].adjoint.to_vec(), vec![1.0, 1.0]); // 3, after the hook
    let row = steps[1].to_string();
    assert!(
        row.contains("%1") && row.contains("mul_scalar") && row.contains("→ %0"),
        "{row}"
    );
    // An untracked output has nothing to step through.
    let c = tape.constant(Tensor::scalar(1.0));
    assert_eq!(c.backward_steps().count(), 0);
}
