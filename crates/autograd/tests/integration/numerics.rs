//! Numerics at the extremes: no NaN where mathematics has a finite answer; inf or NaN
//! where it does not.

use autograd::{GeluApproximation, Tape, Tensor};

fn extremes<T: autograd::Element>(scale: f64) -> Tensor<T> {
    Tensor::from_vec(
        vec![
            T::of(-scale),
            T::of(-1.0),
            T::zero(),
            T::of(1.0),
            T::of(scale),
        ],
        &[5],
    )
    .expect("5 values")
}

fn all_finite<T: autograd::Element>(t: &Tensor<T>) -> bool {
    t.data().iter().all(|v| v.is_finite())
}

fn saturating_functions_at<T: autograd::Element>(scale: f64) {
    let tape = Tape::<T>::new();
    let x = tape.var(extremes::<T>(scale));
    for (name, y) in [
        ("sigmoid", x.sigmoid()),
        ("softplus", x.softplus()),
        ("tanh", x.tanh()),
        ("gelu", x.gelu(GeluApproximation::None)),
        ("gelu tanh", x.gelu(GeluApproximation::Tanh)),
        ("erf", x.erf()),
    ] {
        assert!(all_finite(y.value()), "{name} at ±{scale}: {}", y.value());
        let g = y.sum().backward().wrt(&x);
        assert!(all_finite(&g), "{name}' at ±{scale}: {g}");
    }
    // The exact limits.
    let s = x.sigmoid();
    assert_eq!(
        (s.value().get(&[0]), s.value().get(&[4])),
        (T::zero(), T::one())
    );
    assert_eq!(x.softplus().value().get(&[4]), T::of(scale));
    assert_eq!(x.tanh().value().get(&[0]), -T::one());
}

#[test]
fn sigmoid_softplus_tanh_gelu_at_plus_minus_1e3() {
    saturating_functions_at::<f32>(1e3);
    saturating_functions_at::<f64>(1e3);
    saturating_functions_at::<f64>(1e300);
}

#[test]
fn softmax_family_at_plus_minus_1e4() {
    for scale in [1e4, 1e30] {
        let tape = Tape::<f32>::new();
        let x = tape.var(extremes::<f32>(scale).reshape(&[1, 5]));
        let ls = x.log_softmax(1);
        let sm = x.softmax(1);
        assert!(all_finite(sm.value()));
        assert_eq!(sm.value().get(&[0, 4]), 1.0);
        assert_eq!(ls.value().get(&[0, 4]), 0.0);
        let g = (&ls.narrow(1, 4, 1).sum() + &sm.narrow(1, 3, 1).sum())
            .backward()
            .wrt(&x);
        assert!(all_finite(&g), "{g}");
    }
}

#[test]
fn overflow_and_division_by_zero_give_inf_and_nan() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(vec![100.0f32, 0.0, -1.0], &[3]).expect("3 values"));
    // e¹⁰⁰ is finite mathematically but not representable in f32: +inf, as IEEE says.
    assert_eq!(x.exp().value().get(&[0]), f32::INFINITY);
    let zero = tape.constant(Tensor::zeros(&[3]));
    let q = &x / &zero;
    assert_eq!(q.value().get(&[0]), f32::INFINITY);
    assert!(q.value().get(&[1]).is_nan()); // 0/0 has no value
    assert_eq!(q.value().get(&[2]), f32::NEG_INFINITY);
    // ln 0 = −∞, and its derivative 1/0 = +∞.
    let ln = x.ln();
    assert_eq!(ln.value().get(&[1]), f32::NEG_INFINITY);
    assert!(ln.value().get(&[2]).is_nan());
    let g = ln.narrow(0, 1, 1).sum().backward().wrt(&x);
    assert_eq!(g.get(&[1]), f32::INFINITY);
}

#[test]
fn f32_sums_are_accurate() {
    // 2^20 copies of 0.1: naive left-to-right f32 summation drifts by ~1 %; pairwise
    // summation stays within a few ulps of the exact value.
    let n = 1 << 20;
    let t = Tensor::full(&[n], 0.1f32);
    let exact = n as f64 * 0.1f32 as f64;
    let got = t.sum().item() as f64;
    assert!((got - exact).abs() / exact < 1e-6, "{got} vs {exact}");
    assert!(((t.mean().item() as f64) - 0.1f32 as f64).abs() < 1e-7);
}
