//! Gradient hooks and per-consumer contributions.

use autograd::{Error, Tape, Tensor, Var, seeded_rng};
use std::sync::{Arc, Mutex};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// A small residual block from raw ops: h = tanh(x·W1ᵀ)·W2ᵀ + x; returns (x, W1, W2, loss).
fn residual<'t>(tape: &'t Tape<f64>) -> [Var<'t, f64>; 4] {
    let x = tape.var(rand(&[3, 4], 1));
    let w1 = tape.var(rand(&[4, 4], 2));
    let w2 = tape.var(rand(&[4, 4], 3));
    let branch = x.linear(&w1, None).tanh().linear(&w2, None);
    let h = &branch + &x;
    let loss = (&h * &h).sum();
    [x, w1, w2, loss]
}

#[test]
fn a_hook_that_doubles_a_gradient_doubles_the_leafs_gradient() {
    let tape = Tape::<f64>::new();
    let [x, w1, w2, loss] = residual(&tape);
    let plain = loss.backward();
    let handle = tape.register_hook(&x, |g| Some(g.map(|v| 2.0 * v)));
    let hooked = loss.backward();
    assert!(hooked.wrt(&x).max_abs_diff(&plain.wrt(&x).map(|v| 2.0 * v)) < 1e-15);
    // A leaf's hook changes nothing upstream (a leaf has no inputs) nor other leaves.
    assert_eq!(hooked.wrt(&w1), plain.wrt(&w1));
    assert_eq!(hooked.wrt(&w2), plain.wrt(&w2));
    assert!(tape.remove_hook(handle));
    assert!(!tape.remove_hook(handle), "a hook is removed once");
    assert_eq!(loss.backward().wrt(&x), plain.wrt(&x));
}

#[test]
fn a_hook_on_an_intermediate_value_changes_what_flows_on() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[5], 4));
    let u = x.exp();
    let v = u.tanh();
    let loss = v.sum();
    let plain = loss.backward();
    // Doubling the gradient at u doubles every gradient upstream of u (only x here), and
    // leaves the gradient at v untouched.
    v.register_hook(|_| None); // a hook that only looks
    u.register_hook(|g| Some(g.map(|a| 2.0 * a)));
    let hooked = loss.backward();
    assert_eq!(hooked.wrt(&v), plain.wrt(&v));
    assert!(hooked.wrt(&u).max_abs_diff(&plain.wrt(&u).map(|a| 2.0 * a)) < 1e-15);
    assert!(hooked.wrt(&x).max_abs_diff(&plain.wrt(&x).map(|a| 2.0 * a)) < 1e-15);
}

#[test]
fn a_hook_sees_the_final_sum_once_and_hooks_chain_in_order() {
    let tape = Tape::<f64>::new();
    let [x, _, _, loss] = residual(&tape);
    let want = loss.backward().wrt(&x);
    let seen: Arc<Mutex<Vec<Tensor<f64>>>> = Arc::default();
    let record = Arc::clone(&seen);
    tape.register_hook(&x, move |g| {
        record.lock().unwrap().push(g.clone());
        Some(g.map(|v| v + 1.0))
    });
    let record = Arc::clone(&seen);
    tape.register_hook(&x, move |g| {
        record.lock().unwrap().push(g.clone());
        Some(g.map(|v| v * 10.0))
    });
    let got = loss.backward().wrt(&x);
    let seen = seen.lock().unwrap();
    // x is used twice (branch and skip): its hooks run once, on the summed gradient, in
    // registration order, each seeing the previous one's result.
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], want);
    assert_eq!(seen[1], want.map(|v| v + 1.0));
    assert!(got.max_abs_diff(&want.map(|v| (v + 1.0) * 10.0)) < 1e-12);
}

#[test]
fn a_hook_returning_the_wrong_shape_is_an_error_naming_its_line() {
    let tape = Tape::<f64>::new();
    let [x, _, _, loss] = residual(&tape);
    let line = line!() + 1;
    tape.register_hook(&x, |_| Some(Tensor::zeros(&[2])));
    let err = loss.try_backward().unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { op: "gradient hook", expected, got, .. }
            if expected[..] == [3, 4] && got[..] == [2]),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("hooks.rs:{line}")),
        "{err}"
    );
}

#[test]
fn hooks_on_constants_or_other_tapes_are_errors() {
    let tape = Tape::<f64>::new();
    let other = Tape::<f64>::new();
    let c = tape.constant(Tensor::scalar(1.0));
    let err = tape.try_register_hook(&c, |_| None).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidArgument {
            op: "register_hook",
            ..
        }
    ));
    let y = other.var(Tensor::scalar(1.0));
    let err = tape.try_register_hook(&y, |_| None).unwrap_err();
    assert!(matches!(
        err,
        Error::ForeignTape {
            op: "register_hook",
            ..
        }
    ));
    let err = tape.try_track_contributions(&c).unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidArgument {
            op: "track_contributions",
            ..
        }
    ));
}

#[test]
fn recorded_backward_ignores_hooks() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[4], 5));
    let y = (&(&x * &x) * &x).sum(); // Σ x³
    let calls = Arc::new(Mutex::new(0));
    let count = Arc::clone(&calls);
    tape.register_hook(&x, move |g| {
        *count.lock().unwrap() += 1;
        Some(g.map(|v| 100.0 * v))
    });
    let dy = y.backward_create_graph().wrt(&x);
    assert_eq!(*calls.lock().unwrap(), 0, "not called by recorded backward");
    assert!(dy.value().max_abs_diff(&x.value().map(|v| 3.0 * v * v)) < 1e-14);
    // First-order backward of the recorded gradient does run the hook (at x, ×100).
    let d2y = dy.sum().backward().wrt(&x);
    assert_eq!(*calls.lock().unwrap(), 1);
    assert!(d2y.max_abs_diff(&x.value().map(|v| 600.0 * v)) < 1e-12);
}

#[test]
fn the_two_contributions_at_a_skip_connection_are_reported_separately() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[3, 4], 6));
    let w1 = tape.var(rand(&[4, 4], 7));
    let w2 = tape.var(rand(&[4, 4], 8));
    tape.track_contributions(&x);
    let first = x.linear(&w1, None);
    let branch = first.tanh().linear(&w2, None);
    let h = &branch + &x;
    let loss = h.softplus().sum();
    let grads = loss.backward();
    let parts = grads.contributions(&x);
    assert_eq!(parts.len(), 2);
    // The sweep meets the add (the skip) first, then the branch's first op.
    let (skip, through_branch) = (parts[0], parts[1]);
    assert_eq!((skip.from, skip.op), (h.node_id().unwrap(), "add"));
    assert_eq!(
        (through_branch.from, through_branch.op),
        (first.node_id().unwrap(), "linear")
    );
    // Through the skip, x receives ∂L/∂h unchanged; through the branch, its linear's vjp.
    assert_eq!(skip.tensor, grads.wrt(&h));
    let want_branch = grads.wrt(&first).matmul(w1.value());
    assert!(through_branch.tensor.max_abs_diff(&want_branch) < 1e-14);
    // They sum to the accumulated gradient.
    let sum = &skip.tensor + &through_branch.tensor;
    assert!(sum.max_abs_diff(&grads.wrt(&x)) < 1e-15);
    assert!((skip.norm() - skip.tensor.norm()).abs() == 0.0);
    // Untracked values have none.
    assert!(grads.contributions(&w1).is_empty());
}

#[test]
fn contributions_are_kept_before_the_hook_at_the_same_value() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[4], 9));
    tape.track_contributions(&x);
    x.register_hook(|g| Some(g.map(|v| -v)));
    let y = (&x.exp() + &x.tanh()).sum();
    let grads = y.backward();
    let parts = grads.contributions(&x);
    assert_eq!(
        parts.iter().map(|c| c.op).collect::<Vec<_>>(),
        vec!["tanh", "exp"]
    );
    let sum = &parts[0].tensor + &parts[1].tensor;
    assert!(sum.map(|v| -v).max_abs_diff(&grads.wrt(&x)) < 1e-15);
}

#[test]
fn a_tape_with_hooks_can_still_move_to_another_thread() {
    fn assert_send<S: Send>(_: &S) {}
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(1.0));
    let total = Arc::new(Mutex::new(0.0));
    let sink = Arc::clone(&total);
    x.register_hook(move |g| {
        *sink.lock().unwrap() += g.item();
        None
    });
    drop(x);
    assert_send(&tape);
    let moved = std::thread::spawn(move || {
        let x = tape.var(Tensor::scalar(2.0));
        (&x * &x).backward().wrt(&x).item()
    });
    assert_eq!(moved.join().unwrap(), 4.0);
    // The hook was on node 0 of the moved tape; the new x is node 1, so it did not run.
    assert_eq!(*total.lock().unwrap(), 0.0);
}
