//! Checkpointed segments: recomputed in backward, with the same gradients bit for bit.

use autograd::rand::Rng;
use autograd::rand::rngs::StdRng;
use autograd::{
    AnomalyPhase, Element, Error, GradcheckOptions, Tape, Tensor, Var, gradcheck, gradgradcheck,
    seeded_rng,
};

fn rand<T: Element>(shape: &[usize], seed: u64) -> Tensor<T> {
    Tensor::uniform(shape, T::of(-1.0), T::of(1.0), &mut seeded_rng(seed))
}

/// The notebook's block on raw ops: relu(W2·relu(W1·x + b1) + b2 + x); `p` = [W1, b1, W2, b2].
fn block<'t, T: Element>(x: &Var<'t, T>, p: &[Var<'t, T>]) -> Var<'t, T> {
    let hidden = x.linear(&p[0], Some(&p[1])).relu();
    (&hidden.linear(&p[2], Some(&p[3])) + x).relu()
}

/// Consecutive blocks; `p` holds four parameters per block.
fn blocks<'t, T: Element>(x: &Var<'t, T>, p: &[Var<'t, T>]) -> Var<'t, T> {
    p.chunks(4).fold(x.clone(), |h, p| block(&h, p))
}

/// One checkpointed segment: the blocks of parameters `p`, from `h`.
fn segment<'t, T: Element>(h: &Var<'t, T>, p: &[Var<'t, T>]) -> Var<'t, T> {
    let inputs: Vec<&Var<'t, T>> = std::iter::once(h).chain(p).collect();
    h.tape()
        .checkpoint_slice(&inputs, |v| blocks(&v[0], &v[1..]))
}

/// How the network of [`network_grads`] checkpoints its blocks.
#[derive(Clone, Copy, Debug)]
enum Plan {
    Plain,
    /// Segments of this many blocks.
    Every(usize),
    /// Segments of `outer` blocks, each made of segments of `inner` blocks.
    Nested {
        outer: usize,
        inner: usize,
    },
}

/// `depth` blocks of width 6 on a batch of 5, then a loss; the gradients of the input and
/// of every parameter, flattened, and the tape's node count.
fn network_grads<T: Element>(depth: usize, plan: Plan, leaves_only: bool) -> (Vec<T>, usize) {
    let tape = Tape::<T>::new();
    let x = tape.var(rand(&[5, 6], 1));
    let shapes: [&[usize]; 4] = [&[6, 6], &[6], &[6, 6], &[6]];
    let params: Vec<Var<'_, T>> = (0..4 * depth)
        .map(|i| tape.var(rand::<T>(shapes[i % 4], 100 + i as u64).map(|v| v * T::of(0.6))))
        .collect();
    let h = match plan {
        Plan::Plain => blocks(&x, &params),
        Plan::Every(k) => params.chunks(4 * k).fold(x.clone(), |h, p| segment(&h, p)),
        Plan::Nested { outer, inner } => params.chunks(4 * outer).fold(x.clone(), |h, p| {
            let inputs: Vec<&Var<'_, T>> = std::iter::once(&h).chain(p).collect();
            tape.checkpoint_slice(&inputs, move |v| {
                v[1..]
                    .chunks(4 * inner)
                    .fold(v[0].clone(), |h, p| segment(&h, p))
            })
        }),
    };
    let target = tape.constant(rand(&[5, 6], 2));
    let diff = &h.tanh() - &target;
    let loss = (&diff * &diff).mean();
    let grads = if leaves_only {
        loss.backward_leaves()
    } else {
        loss.backward()
    };
    let flat = std::iter::once(&x)
        .chain(&params)
        .flat_map(|v| grads.wrt(v).to_vec())
        .collect();
    (flat, tape.len())
}

fn assert_bit_identical<T: Element>(plan: Plan, leaves_only: bool) {
    let (plain, plain_nodes) = network_grads::<T>(8, Plan::Plain, false);
    let (checkpointed, nodes) = network_grads::<T>(8, plan, leaves_only);
    assert!(
        nodes < plain_nodes,
        "{plan:?}: {nodes} vs {plain_nodes} nodes"
    );
    // Bit-identical: `{:?}` prints the shortest decimal that reads back to the same bits
    // (−0.0 included), so equal strings are equal bits.
    let bits = |v: &[T]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>();
    assert_eq!(bits(&checkpointed), bits(&plain), "{} {plan:?}", T::NAME);
}

#[test]
fn gradients_are_bit_identical_to_the_plain_tape_in_f64_and_f32() {
    for plan in [Plan::Every(1), Plan::Every(3), Plan::Every(8)] {
        assert_bit_identical::<f64>(plan, false);
        assert_bit_identical::<f32>(plan, true);
    }
}

#[test]
fn nested_segments_give_the_same_gradients() {
    let plan = Plan::Nested { outer: 4, inner: 2 };
    assert_bit_identical::<f64>(plan, true);
    assert_bit_identical::<f32>(plan, false);
}

/// Inverted dropout with p = 0.5, its mask drawn from a copy of `state`.
fn dropout<'t>(state: &StdRng, x: &Var<'t, f32>) -> Var<'t, f32> {
    let mut rng = state.clone();
    let mask = Tensor::from_fn(
        x.shape(),
        |_| if rng.random::<f64>() < 0.5 { 0.0 } else { 2.0 },
    );
    (x * &x.tape().constant(mask)).tanh()
}

#[test]
fn a_dropout_mask_drawn_inside_a_segment_is_drawn_again_identically() {
    // The generator's state is moved into the closure and copied at each run.
    let state = seeded_rng(42);
    let x0 = rand::<f32>(&[64], 3);
    let tape = Tape::new();
    let x = tape.var(x0.clone());
    let moved = state.clone();
    let y = tape.checkpoint([&x], move |[x]| dropout(&moved, x));
    let grads = (&y * &y).sum().backward();
    let plain = Tape::new();
    let px = plain.var(x0);
    let py = dropout(&state, &px);
    let plain_grads = (&py * &py).sum().backward();
    assert_eq!(y.value().to_vec(), py.value().to_vec());
    assert_eq!(grads.wrt(&x).to_vec(), plain_grads.wrt(&px).to_vec());
    assert!(
        grads.wrt(&x).data().contains(&0.0),
        "the mask dropped elements"
    );
}

/// exp(σ(a·w) ⊙ b).
fn gated<'t>([a, b, w]: &[Var<'t, f64>; 3]) -> Var<'t, f64> {
    (&a.matmul(w).sigmoid() * b).exp()
}

/// `x` feeds an op before the segment, the segment twice (two inputs) and an op after it;
/// the segment's output feeds three consumers.
fn fan_out<'t>(
    tape: &'t Tape<f64>,
    x: &Var<'t, f64>,
    w: &Var<'t, f64>,
    checkpointed: bool,
) -> Var<'t, f64> {
    let before = x.tanh();
    let y = if checkpointed {
        tape.checkpoint([x, x, w], gated)
    } else {
        gated(&[x.clone(), x.clone(), w.clone()])
    };
    let after = x * 3.0;
    let uses = &(&(&y * &y) + &y.softplus()) + &(&y * &before);
    (&uses + &after).sum()
}

#[test]
fn fan_out_of_inputs_and_output_gives_the_same_gradients() {
    let (x0, w0) = (rand::<f64>(&[4, 4], 5), rand::<f64>(&[4, 4], 6));
    let grads = |checkpointed: bool| {
        let tape = Tape::new();
        let (x, w) = (tape.var(x0.clone()), tape.var(w0.clone()));
        let g = fan_out(&tape, &x, &w, checkpointed).backward();
        (g.wrt(&x).to_vec(), g.wrt(&w).to_vec())
    };
    assert_eq!(grads(true), grads(false));
}

/// A segment with a segment inside, then a loss.
fn nested<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
    let y = v[0].tape().checkpoint([&v[0], &v[1]], |[x, w]| {
        let inner = x.tape().checkpoint([x, w], |[x, w]| x.matmul(w).tanh());
        &inner * &x.sigmoid()
    });
    (&y * &y).sum()
}

#[test]
fn a_segment_checks_against_finite_differences_to_second_order() {
    let f = nested;
    let inputs = [rand::<f64>(&[3, 3], 7), rand::<f64>(&[3, 3], 8)];
    let report = gradcheck(f, &inputs, &GradcheckOptions::default());
    assert!(report.passed(), "{report:?}");
    let report = gradgradcheck(f, &inputs, &GradcheckOptions::default());
    assert!(report.passed(), "{report:?}");
}

#[test]
fn recorded_backward_through_segments_matches_the_plain_tape() {
    let (x0, w0) = (rand::<f64>(&[4, 4], 9), rand::<f64>(&[4, 4], 10));
    let run = |checkpointed: bool| {
        let tape = Tape::new();
        let (x, w) = (tape.var(x0.clone()), tape.var(w0.clone()));
        let y = fan_out(&tape, &x, &w, checkpointed);
        let dx = y.backward_create_graph().wrt(&x);
        // A gradient penalty: differentiate ‖∂y/∂x‖² again.
        let penalty = (&dx * &dx).sum();
        let g = penalty.backward();
        (dx.value().clone(), g.wrt(&x), g.wrt(&w))
    };
    let ((dx, gx, gw), (plain_dx, plain_gx, plain_gw)) = (run(true), run(false));
    // The recorded gradients are bit-identical …
    assert_eq!(dx.to_vec(), plain_dx.to_vec());
    // … but the second backward goes through the segment's recomputed copy, whose nodes
    // come later on the tape: its contributions are summed in another order.
    for (got, want) in [(gx, plain_gx), (gw, plain_gw)] {
        assert!(
            got.max_abs_diff(&want) <= 1e-12 * want.norm(),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn backward_leaves_frees_each_recomputation_and_keeps_leaf_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[4, 4], 11));
    let y = tape.checkpoint([&x], |[x]| x.exp().softplus());
    let loss = (&y * 2.0).sum();
    let leaves = loss.backward_leaves();
    assert!(leaves.get(&y).is_none(), "intermediate adjoints are freed");
    let all = loss.backward();
    assert_eq!(leaves.wrt(&x).to_vec(), all.wrt(&x).to_vec());
    assert!(
        all.get(&y).is_some(),
        "the segment's output is a node of the tape"
    );
}

#[test]
fn the_memory_report_shows_what_each_segment_keeps_and_avoids() {
    // Avoided bytes are what the plain tape saves for the same nodes.
    let (plain_saved, plain_nodes) = {
        let tape = Tape::<f32>::new();
        let x = tape.var(rand(&[8, 8], 12));
        let _ = (&x.tanh() * &x).exp();
        (tape.saved_bytes(), tape.len() - 1)
    };
    let tape = Tape::<f32>::new();
    let x = tape.var(rand(&[8, 8], 12));
    let y = tape.region("stage", || {
        tape.checkpoint([&x], |[x]| (&x.tanh() * x).exp())
    });
    let report = tape.memory_report();
    let segment = &report.segments[0];
    assert_eq!(segment.node, y.node_id().unwrap());
    assert_eq!(segment.region.as_deref(), Some("stage"));
    assert_eq!(
        (segment.nodes, segment.avoided_bytes),
        (plain_nodes, plain_saved)
    );
    assert_eq!(segment.saved_bytes, 8 * 8 * 4);
    assert_eq!(report.total_bytes, segment.saved_bytes);
    assert_eq!(report.avoided_bytes(), plain_saved);
    let text = report.to_string();
    assert!(text.contains("checkpointed segments: 1"), "{text}");
    assert!(text.contains("stage"), "{text}");
}

#[test]
fn hooks_inside_a_segment_run_once_per_backward_with_the_final_gradient() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::<(&str, f64)>::new()));
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(0.5));
    let log = Arc::clone(&seen);
    let y = tape.checkpoint([&x], move |[x]| {
        let (on_input, on_inner, on_output) = (log.clone(), log.clone(), log.clone());
        x.register_hook(move |g| {
            on_input.lock().unwrap().push(("input", g.item()));
            None
        });
        let inner = x * 3.0;
        inner.register_hook(move |g| {
            on_inner.lock().unwrap().push(("inner", g.item()));
            None
        });
        let out = &inner * x; // 3x²
        out.register_hook(move |g| {
            on_output.lock().unwrap().push(("output", g.item()));
            Some(g.map(|v| v * 10.0)) // replaces ∂L/∂out
        });
        out
    });
    let loss = &y + &(&x * 2.0); // x also has a consumer outside the segment
    let g = loss.backward();
    // ∂L/∂out = 1 → 10 by the hook; ∂L/∂x = 10·6x + 2 = 32 at x = 0.5.
    assert_eq!(g.wrt(&x).item(), 32.0);
    assert_eq!(
        g.wrt(&y).item(),
        10.0,
        "the output's hook replaced its gradient"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![("output", 1.0), ("inner", 10.0 * 0.5), ("input", 32.0)]
    );
}

/// Phase, node, op, source line and description of an anomaly.
fn anomaly(e: Option<Error>) -> (AnomalyPhase, usize, &'static str, u32, String) {
    match e {
        Some(Error::Anomaly {
            phase,
            node,
            op,
            at,
            what,
            ..
        }) => (phase, node, op, at.0.line(), what),
        other => panic!("not an anomaly: {other:?}"),
    }
}

#[test]
fn a_nan_inside_a_segment_is_reported_at_the_line_inside_it_forward_and_backward() {
    // Forward: ln of a negative number, found when the segment first runs.
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(Tensor::from_vec(vec![1.0, -1.0], &[2]).unwrap());
    let line = line!() + 1;
    let y = tape.checkpoint([&x], |[x]| x.ln().exp());
    let (phase, node, op, at, what) = anomaly(tape.anomaly());
    assert_eq!(
        (phase, node, op, at),
        (AnomalyPhase::Forward, y.node_id().unwrap(), "ln", line)
    );
    assert!(
        what.contains("NaN") && what.contains("in checkpointed segment"),
        "{what}"
    );
    assert!(y.sum().try_backward().is_err());

    // Backward: sqrt at 0 has an infinite derivative, found by the recomputation's sweep.
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(Tensor::from_vec(vec![0.0, 4.0], &[2]).unwrap());
    let line = line!() + 1;
    let y = tape.checkpoint([&x], |[x]| (x * 2.0).sqrt());
    assert!(tape.anomaly().is_none(), "the forward values are finite");
    let (phase, node, op, at, _) = anomaly(y.sum().try_backward().err());
    assert_eq!(
        (phase, node, op, at),
        (AnomalyPhase::Backward, y.node_id().unwrap(), "sqrt", line)
    );
}

#[test]
fn step_through_backward_shows_the_segment_as_one_step() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(2.0));
    let y = tape.checkpoint([&x, &x], |[a, b]| a * b); // x², x passed twice
    let mut steps = (&y * 1.5).backward_steps();
    let ops: Vec<&str> = steps.by_ref().map(|s| s.op).collect();
    assert_eq!(ops, ["mul_scalar", "checkpoint", "leaf"]);
    assert_eq!(steps.into_gradients().wrt(&x).item(), 6.0); // 1.5 · 2x
}

#[test]
fn without_tracked_inputs_or_inside_no_grad_the_segment_runs_in_place() {
    let tape = Tape::<f64>::new();
    let c = tape.constant(Tensor::scalar(3.0));
    let y = tape.checkpoint([&c], |[c]| c.exp());
    assert!(!y.is_tracked() && tape.is_empty());
    let x = tape.var(Tensor::scalar(1.0));
    let z = tape.no_grad(|| tape.checkpoint([&x], |[x]| x * 2.0));
    assert_eq!((z.item(), z.is_tracked(), tape.len()), (2.0, false, 1));
    // An output that does not depend on the inputs is a constant too.
    let k = tape.checkpoint([&x], |[x]| x.tape().constant(Tensor::scalar(7.0)));
    assert_eq!((k.item(), k.is_tracked(), tape.len()), (7.0, false, 1));
}

thread_local! {
    /// A tape leaked to `'static`, and a value on it that a segment's closure can reach.
    static OUTER: (&'static Tape<f64>, Var<'static, f64>) = {
        let tape: &'static Tape<f64> = Box::leak(Box::new(Tape::new()));
        let w = tape.var(Tensor::ones(&[2, 2]));
        (tape, &w * &w) // a non-leaf value
    };
}

#[test]
fn an_outer_value_used_inside_a_segment_is_an_error_naming_the_line() {
    // A closure cannot capture a `Var`: it must be 'static and Send + Sync, and a `Var`
    // is neither (a compile error, see the `compile_fail` example of `Tape::checkpoint`).
    // One kept in a thread-local, on a tape leaked to 'static, can still be reached; using
    // it inside the segment fails at that line.
    let (tape, w_squared) = OUTER.with(|(tape, w)| (*tape, w.clone()));
    let x = tape.var(Tensor::ones(&[2, 2]));
    let line = line!() + 2;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.checkpoint([&x], |[x]| OUTER.with(|(_, w)| x.matmul(w)))
    }));
    let message = panic_message(result.unwrap_err());
    assert!(
        message.contains("outside a checkpointed segment"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}:{line}:", file!())),
        "{message}"
    );

    // Returning an outer value instead of computing from the inputs is an error too.
    let err = tape
        .try_checkpoint([&x], |[_]| OUTER.with(|(_, w)| w.clone()))
        .unwrap_err();
    let _ = w_squared;
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                op: "checkpoint",
                ..
            }
        ),
        "{err}"
    );
    // An input of another tape is refused before anything runs.
    let other = Tape::<f64>::new();
    let y = other.var(Tensor::ones(&[2, 2]));
    let err = tape.try_checkpoint([&x, &y], |[x, _]| x.exp()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ForeignTape {
                op: "checkpoint",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_closure_that_computes_something_else_when_recomputed_is_an_error_at_backward() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = AtomicUsize::new(0);
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::ones(&[3]));
    let y = tape.checkpoint([&x], move |[x]| {
        match runs.fetch_add(1, Ordering::Relaxed) {
            0 => x.exp(),
            _ => x.exp().sum(), // another shape
        }
    });
    let err = y.sum().try_backward().unwrap_err();
    let Error::InvalidArgument { op, reason, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*op, "checkpoint");
    assert!(reason.contains("same thing every time"), "{reason}");
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
