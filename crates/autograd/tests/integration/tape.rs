//! The tape's own behaviour: accumulation at fan-out, leaves and constants, seeds, depth,
//! and gradients of gradients.

use autograd::{Error, GradcheckOptions, Tape, Tensor, Var, gradgradcheck, seeded_rng};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

#[test]
fn a_skip_connection_accumulates_both_contributions() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[4], 1));
    let w = tape.var(rand(&[4], 2));
    let branch = (&w * &x).tanh();
    let h = &branch + &x; // x used twice: by the branch and by the skip
    let grads = h.sum().backward();
    // ∂h/∂x = w·(1 − tanh²(w·x)) + 1, elementwise.
    let want = Tensor::from_fn(&[4], |i| {
        let (wi, xi) = (w.value().get(i), x.value().get(i));
        wi * (1.0 - (wi * xi).tanh().powi(2)) + 1.0
    });
    assert!(grads.wrt(&x).max_abs_diff(&want) < 1e-15);
    // Intermediate values have gradients too.
    assert_eq!(grads.wrt(&branch).to_vec(), vec![1.0; 4]);
}

#[test]
fn the_first_contribution_is_stored_without_a_copy() {
    let tape = Tape::<f64>::new();
    let a = tape.var(rand(&[3], 3));
    let b = tape.var(rand(&[3], 4));
    let y = &a + &b;
    let seed = rand(&[3], 5);
    let grads = y.backward_with(seed.clone());
    assert!(grads.wrt(&a).shares_storage(&seed));
    assert!(grads.wrt(&b).shares_storage(&seed));
}

#[test]
fn constants_detach_and_no_grad_record_nothing() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::scalar(3.0));
    let c = tape.constant(Tensor::scalar(2.0));
    let before = tape.len();
    let k = &c * &c; // constants only: no node
    assert_eq!(tape.len(), before);
    assert!(!k.is_tracked());
    let y = &(&x * &k) + &(&x.detach() * &x);
    let g = y.backward();
    // d/dx (4x + x_detached·x) = 4 + 3
    assert_eq!(g.wrt(&x).item(), 7.0);
    assert!(g.get(&c).is_none());
    let z = tape.no_grad(|| &x * &x);
    assert!(!z.is_tracked());
    assert!(tape.is_recording());
}

#[test]
fn backward_needs_a_scalar_or_a_seed_of_the_right_shape() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[2, 2], 6));
    let y = x.exp();
    let err = y.try_backward().unwrap_err();
    assert!(matches!(err, Error::NonScalarBackward { .. }));
    assert!(err.to_string().contains("backward_with"));
    let err = y.try_backward_with(Tensor::ones(&[4])).unwrap_err();
    assert!(matches!(
        err,
        Error::ShapeMismatch {
            op: "backward_with",
            ..
        }
    ));
    assert!(
        err.to_string().contains("tape.rs"),
        "the message names the caller: {err}"
    );
    // A second backward over the same tape is allowed and gives the same result.
    let s = y.sum();
    assert_eq!(s.backward().wrt(&x), s.backward().wrt(&x));
}

#[test]
fn f32_end_to_end() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(vec![0.5f32, -1.0], &[1, 2]).unwrap());
    let w = tape.var(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap());
    let y = x.matmul(&w).relu().sum();
    let g = y.backward();
    // x·w = [0.5 − 3, 1 − 4] = [−2.5, −3]: both ReLUs closed, no gradient.
    assert_eq!(g.wrt(&w).to_vec(), vec![0.0; 4]);
    let y2 = x.matmul(&w).sigmoid().sum();
    assert!(
        y2.backward()
            .wrt(&x)
            .data()
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
    );
}

#[test]
fn long_chains_run_backward_and_drop_on_a_small_stack() {
    // Run on a 2 MiB thread stack: nothing in record, sweep or drop may recurse.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let tape = Tape::<f64>::new();
            let x = tape.var(Tensor::scalar(0.5));
            let mut h = x.clone();
            for _ in 0..10_000 {
                h = &h * 0.9999 + 0.0001;
            }
            let g = h.backward();
            assert!((g.wrt(&x).item() - 0.9999f64.powi(10_000)).abs() < 1e-12);
            assert_eq!(tape.len(), 20_001);

            let tape = Tape::<f64>::new();
            let x = tape.var(rand(&[2, 8], 7));
            let w = tape.var(rand(&[8, 8], 8).map(|v| v * 0.01));
            let mut h = x.clone();
            for _ in 0..1_000 {
                h = (&h.linear(&w, None).relu() + &h).tanh();
            }
            let g = h.sum().backward();
            assert!(g.wrt(&x).data().iter().all(|v| v.is_finite()));
            assert!(g.wrt(&w).norm() > 0.0);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn second_derivative_of_a_cubic_matches_calculus() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![-1.0, 0.5, 2.0], &[3]).unwrap());
    let y = (&(&x * &x) * &x).sum(); // Σ x³
    let dy = y.backward_create_graph().wrt(&x); // 3x²
    assert_eq!(dy.value().to_vec(), vec![3.0, 0.75, 12.0]);
    let d2y = dy.sum().backward().wrt(&x); // 6x
    assert_eq!(d2y.to_vec(), vec![-6.0, 3.0, 12.0]);
}

#[test]
fn hessian_vector_product_of_a_residual_block() {
    // h = tanh(x·W1ᵀ)·W2ᵀ + x, loss = Σ softplus(h): HVPs against finite differences of ∇.
    fn f<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
        let branch = v[0].linear(&v[1], None).tanh().linear(&v[2], None);
        (&branch + &v[0]).softplus().sum()
    }
    let inputs = [rand(&[3, 4], 9), rand(&[4, 4], 10), rand(&[4, 4], 11)];
    let options = GradcheckOptions {
        atol: 1e-7,
        rtol: 1e-5,
        ..GradcheckOptions::default()
    };
    let report = gradgradcheck(f, &inputs, &options);
    assert!(report.passed(), "{report}");
    assert_eq!(report.checked, 12 + 16 + 16);
}

#[test]
fn gradients_of_a_gradient_penalty() {
    // ‖∇ₓ f‖² as a loss, differentiated with respect to the weights (as in WGAN-GP).
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[2, 3], 12));
    let w = tape.var(rand(&[3, 3], 13));
    let f = x.linear(&w, None).tanh().sum();
    let gx = f.backward_create_graph().wrt(&x);
    let penalty = (&gx * &gx).sum();
    let gw = penalty.backward().wrt(&w);
    // Finite differences on w of the same penalty, computed with first-order backward.
    let penalty_at = |w: &Tensor<f64>| {
        let tape = Tape::<f64>::new();
        let x2 = tape.var(x.value().clone());
        let w2 = tape.constant(w.clone());
        let g = x2.linear(&w2, None).tanh().sum().backward().wrt(&x2);
        g.data().iter().map(|v| v * v).sum::<f64>()
    };
    let eps = 1e-6;
    for j in 0..9 {
        let mut plus = w.value().clone();
        plus.data_mut()[j] += eps;
        let mut minus = w.value().clone();
        minus.data_mut()[j] -= eps;
        let numeric = (penalty_at(&plus) - penalty_at(&minus)) / (2.0 * eps);
        assert!(
            (gw.data()[j] - numeric).abs() < 1e-7,
            "{j}: {} vs {numeric}",
            gw.data()[j]
        );
    }
}

#[test]
fn the_tape_prints_as_a_table() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::scalar(2.0));
    let b = tape.var(Tensor::scalar(3.0));
    let _y = &(&a + &b) * &a;
    let table = tape.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[3].contains("add") && lines[3].contains("%0, %1"));
    assert!(
        lines[4].contains("mul") && lines[4].contains("%2, %0") && lines[4].contains("tape.rs")
    );
    assert_eq!(tape.saved_bytes(), 2 * 8); // mul saves its two scalar operands
}

#[test]
fn backward_leaves_keeps_only_leaf_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.var(rand(&[3], 20));
    let w = tape.var(rand(&[3], 21));
    let h = (&w * &x).tanh();
    let y = (&h + &x).sum();
    let all = y.backward();
    let leaves = y.backward_leaves();
    assert_eq!(all.wrt(&x), leaves.wrt(&x));
    assert_eq!(all.wrt(&w), leaves.wrt(&w));
    assert!(all.get(&h).is_some());
    assert!(leaves.get(&h).is_none());
}
