//! NaN propagates as in PyTorch: forward values and the gradients at NaN. The expected
//! numbers are PyTorch 2.15's answers to the same calls (its rules: relu's mask is
//! `y <= 0 ? 0 : g`, clamp's `lo <= x <= hi`, maximum/minimum send `g` to both operands
//! where they are unordered, max along an axis picks the first NaN, max pooling the last
//! NaN of its window).

use autograd::{GeluApproximation, Tape, Tensor, Var};

const NAN: f64 = f64::NAN;

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape).expect("a valid shape")
}

/// Equal element by element, NaN equal to NaN.
fn same(got: &Tensor<f64>, want: &[f64]) -> bool {
    got.data().len() == want.len()
        && got
            .data()
            .iter()
            .zip(want)
            .all(|(a, b)| (a.is_nan() && b.is_nan()) || a == b)
}

/// The value of `f(x)` and the gradient of `Σ f(x)` with respect to `x`.
fn value_and_grad(
    x: &Tensor<f64>,
    f: impl for<'t> Fn(&Var<'t, f64>) -> Var<'t, f64>,
) -> (Tensor<f64>, Tensor<f64>) {
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = f(&v);
    let g = y.sum().backward().wrt(&v);
    (y.value().clone(), g)
}

#[test]
fn relu_keeps_nan_and_passes_its_gradient() {
    let x = t(&[NAN, -1.0, 2.0, 0.0], &[4]);
    let (y, g) = value_and_grad(&x, |v| v.relu());
    assert!(same(&y, &[NAN, 0.0, 2.0, 0.0]), "{y}");
    assert!(same(&g, &[1.0, 0.0, 1.0, 0.0]), "{g}");
    assert!(same(&x.relu(), &[NAN, 0.0, 2.0, 0.0]));
    let x32 = Tensor::from_vec(vec![f32::NAN, -1.0], &[2]).unwrap();
    assert!(x32.relu().get(&[0]).is_nan());
}

#[test]
fn clamp_keeps_nan_with_gradient_zero() {
    let x = t(&[NAN, -1.0, 2.0, 0.5], &[4]);
    let (y, g) = value_and_grad(&x, |v| v.clamp(0.0, 1.0));
    assert!(same(&y, &[NAN, 0.0, 1.0, 0.5]), "{y}");
    assert!(same(&g, &[0.0, 0.0, 0.0, 1.0]), "{g}");
    assert!(same(&x.clamp(0.0, 1.0), &[NAN, 0.0, 1.0, 0.5]));
    // A NaN bound is refused, like crossed bounds.
    let tape = Tape::<f64>::new();
    let msg = tape.var(x).try_clamp(NAN, 1.0).unwrap_err().to_string();
    assert!(msg.starts_with("clamp: a bound is NaN"), "{msg}");
}

#[test]
fn maximum_and_minimum_propagate_nan_and_send_both_operands_the_gradient() {
    let a = t(&[NAN, 1.0, NAN, 2.0], &[4]);
    let b = t(&[1.0, NAN, NAN, 2.0], &[4]);
    for max in [true, false] {
        let tape = Tape::new();
        let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
        let y = if max {
            va.maximum(&vb)
        } else {
            va.minimum(&vb)
        };
        assert!(same(y.value(), &[NAN, NAN, NAN, 2.0]), "{}", y.value());
        let g = y.sum().backward();
        // Unordered: both get g; a tie: half each.
        assert!(same(&g.wrt(&va), &[1.0, 1.0, 1.0, 0.5]), "{}", g.wrt(&va));
        assert!(same(&g.wrt(&vb), &[1.0, 1.0, 1.0, 0.5]), "{}", g.wrt(&vb));
        let plain = if max { a.maximum(&b) } else { a.minimum(&b) };
        assert!(same(&plain, &[NAN, NAN, NAN, 2.0]));
    }
    // Broadcasting a NaN scalar.
    let tape = Tape::new();
    let x = tape.var(t(&[1.0, 2.0], &[2]));
    let nan = tape.var(Tensor::scalar(NAN));
    let y = x.maximum(&nan);
    let g = y.sum().backward();
    assert!(same(y.value(), &[NAN, NAN]));
    assert!(same(&g.wrt(&x), &[1.0, 1.0]) && same(&g.wrt(&nan), &[2.0]));
}

#[test]
fn max_along_an_axis_is_nan_at_the_first_nan() {
    let x = t(&[1.0, NAN, 3.0, NAN, 1.0, 5.0, 5.0, 2.0], &[2, 4]);
    let (y, g) = value_and_grad(&x, |v| v.max_axis(1, false));
    assert!(same(&y, &[NAN, 5.0]), "{y}");
    assert!(same(&g, &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), "{g}");
    assert!(same(&x.max_axis(1, false), &[NAN, 5.0]));
    // A NaN in the first place stays the maximum.
    let first = t(&[NAN, 7.0], &[2]);
    let (y, g) = value_and_grad(&first, |v| v.max_axis(0, false));
    assert!(same(&y, &[NAN]) && same(&g, &[1.0, 0.0]), "{y} {g}");
}

#[test]
fn max_pooling_is_nan_at_the_last_nan_of_its_window() {
    let x = t(&[1.0, NAN, 3.0, NAN], &[1, 1, 2, 2]);
    let (y, g) = value_and_grad(&x, |v| v.max_pool2d((2, 2), (1, 1), (1, 1)));
    let want = [1.0, NAN, NAN, 3.0, NAN, NAN, 3.0, NAN, NAN];
    assert!(same(&y, &want), "{y}");
    assert!(same(&g, &[1.0, 2.0, 2.0, 4.0]), "{g}");
    let x = t(&[NAN, NAN, 3.0, NAN], &[1, 1, 2, 2]);
    let (y, g) = value_and_grad(&x, |v| v.max_pool2d((2, 2), (1, 1), (0, 0)));
    assert!(
        same(&y, &[NAN]) && same(&g, &[0.0, 0.0, 0.0, 1.0]),
        "{y} {g}"
    );
    // −∞ and NaN: NaN.
    let x = t(&[f64::NEG_INFINITY, NAN], &[1, 1, 1, 2]);
    assert!(same(&x.max_pool2d((1, 2), (1, 1), (0, 0)), &[NAN]));
}

#[test]
fn the_other_elementwise_ops_keep_nan() {
    let x = t(&[NAN, -1.0, 2.0, 0.0], &[4]);
    let (y, g) = value_and_grad(&x, |v| v.abs());
    assert!(same(&y, &[NAN, 1.0, 2.0, 0.0]) && same(&g, &[0.0, -1.0, 1.0, 0.0]));
    let (y, g) = value_and_grad(&x, |v| v.leaky_relu(0.1));
    assert!(same(&y, &[NAN, -0.1, 2.0, 0.0]), "{y}");
    assert!(same(&g, &[0.1, 0.1, 1.0, 0.1]), "{g}");
    for (name, y) in [
        ("exp", x.exp()),
        ("tanh", x.tanh()),
        ("sigmoid", x.sigmoid()),
        ("softplus", x.softplus()),
        ("gelu", x.gelu(GeluApproximation::None)),
        ("gelu tanh", x.gelu(GeluApproximation::Tanh)),
        ("erf", x.erf()),
        ("sqrt", x.sqrt()),
    ] {
        assert!(y.get(&[0]).is_nan(), "{name}");
    }
    // A row of a softmax with a NaN (or +∞) is NaN; the other rows are untouched.
    let logits = t(&[NAN, 1.0, f64::INFINITY, 1.0, 0.0, 1.0], &[3, 2]);
    let s = logits.softmax(1);
    assert!(s.data()[..4].iter().all(|v| v.is_nan()), "{s}");
    assert!((s.get(&[2, 1]) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
}

/// A two-layer network with max pooling and a clamp, on a batch whose third row is NaN.
fn network<'t>(tape: &'t Tape<f64>, x: &Tensor<f64>) -> (Var<'t, f64>, Var<'t, f64>) {
    let w1 = tape.var(Tensor::from_fn(&[8, 4], |i| {
        ((i[0] * 4 + i[1]) as f64 * 0.7).sin()
    }));
    let w2 = tape.var(Tensor::from_fn(&[3, 2], |i| {
        ((i[0] * 2 + i[1]) as f64 * 0.3).cos()
    }));
    let x = tape.constant(x.clone());
    let h = x.linear(&w1, None).relu().clamp(-5.0, 5.0);
    let pooled = h.reshape(&[4, 1, 2, 4]).max_pool2d((2, 2), (1, 2), (0, 0));
    let h = pooled
        .reshape(&[4, 2])
        .maximum(&tape.constant(Tensor::zeros(&[2])));
    let y = h.linear(&w2, None).max_axis(1, false);
    ((&y * &y).mean(), w1)
}

#[test]
fn a_network_with_one_nan_input_row_reports_a_nan_loss() {
    let mut x = Tensor::from_fn(&[4, 4], |i| (i[0] as f64 - 1.5) * (i[1] as f64 + 0.5));
    let tape = Tape::new();
    let (loss, _) = network(&tape, &x);
    assert!(loss.item().is_finite());
    x.data_mut()[8] = NAN; // row 2
    let tape = Tape::new();
    let (loss, w1) = network(&tape, &x);
    assert!(loss.item().is_nan(), "loss {}", loss.item());
    // The gradient says the same: NaN reaches the first layer's weights.
    let g = loss.backward().wrt(&w1);
    assert!(g.data().iter().any(|v| v.is_nan()), "{g}");
}
