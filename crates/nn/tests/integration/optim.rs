//! Optimizers against their update rules, re-implemented here on plain numbers from
//! PyTorch's documented algorithms (torch.optim.SGD, Adam, AdamW), and gradient clipping.

use autograd::{Tape, Tensor};
use nn::{Adam, AdamW, Ctx, Optimizer, Param, ParamGrads, Sgd, clip_grad_norm, try_clip_grad_norm};

/// Gradients `g` for each listed parameter, from the loss `Σ g ⊙ p` on a tape.
fn grads_for(pairs: &[(&Param<f64>, &[f64])]) -> ParamGrads<f64> {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let loss = pairs
        .iter()
        .map(|(p, g)| {
            let g = Tensor::from_vec(g.to_vec(), &[g.len()]).unwrap();
            (&cx.param(p) * &cx.input(g)).sum()
        })
        .reduce(|a, b| &a + &b)
        .unwrap();
    cx.param_grads(&loss.backward())
}

fn param(values: &[f64]) -> Param<f64> {
    Param::new(Tensor::from_vec(values.to_vec(), &[values.len()]).unwrap())
}

fn assert_close(got: &Tensor<f64>, want: &[f64]) {
    for (g, w) in got.data().iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-14 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

const GRADS: [[f64; 3]; 4] = [
    [0.5, -1.0, 2.0],
    [0.25, 0.75, -1.5],
    [-2.0, 0.1, 0.3],
    [1.0, 1.0, -0.2],
];

struct SgdRef {
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl SgdRef {
    /// torch.optim.SGD, element by element.
    fn run(&self, p0: &[f64], grads: &[[f64; 3]]) -> Vec<f64> {
        let mut p = p0.to_vec();
        let mut buf: Option<Vec<f64>> = None;
        for g in grads {
            let d: Vec<f64> = (0..3).map(|i| g[i] + self.weight_decay * p[i]).collect();
            let mut d_final = d.clone();
            if self.momentum != 0.0 {
                let b = match buf.take() {
                    None => d.clone(),
                    Some(b) => (0..3)
                        .map(|i| self.momentum * b[i] + (1.0 - self.dampening) * d[i])
                        .collect(),
                };
                for i in 0..3 {
                    d_final[i] = if self.nesterov {
                        d[i] + self.momentum * b[i]
                    } else {
                        b[i]
                    };
                }
                buf = Some(b);
            }
            for i in 0..3 {
                p[i] -= self.lr * d_final[i];
            }
        }
        p
    }
}

#[test]
fn sgd_follows_pytorchs_rules() {
    let p0 = [1.0, -2.0, 0.5];
    let cases = [
        (0.0, 0.0, false, 0.0),
        (0.9, 0.0, false, 0.0),
        (0.9, 0.5, false, 0.0),
        (0.9, 0.0, true, 0.0),
        (0.8, 0.0, true, 0.01),
        (0.0, 0.0, false, 0.05),
    ];
    for (momentum, dampening, nesterov, weight_decay) in cases {
        let p = param(&p0);
        let mut opt = Sgd::new(vec![p.clone()], 0.1)
            .momentum(momentum)
            .dampening(dampening)
            .nesterov(nesterov)
            .weight_decay(weight_decay);
        for g in &GRADS {
            opt.step(&grads_for(&[(&p, g)]));
        }
        let reference = SgdRef {
            lr: 0.1,
            momentum,
            dampening,
            nesterov,
            weight_decay,
        };
        assert_close(&p.value(), &reference.run(&p0, &GRADS));
    }
}

/// torch.optim.Adam / AdamW, element by element.
fn adam_ref(p0: &[f64], grads: &[[f64; 3]], lr: f64, wd: f64, decoupled: bool) -> Vec<f64> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut p = p0.to_vec();
    let (mut m, mut v) = ([0.0; 3], [0.0; 3]);
    for (k, g) in grads.iter().enumerate() {
        let t = (k + 1) as i32;
        for i in 0..3 {
            let mut gi = g[i];
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            } else {
                gi += wd * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat_sqrt = v[i].sqrt() / (1.0 - b2.powi(t)).sqrt();
            p[i] -= lr * m_hat / (v_hat_sqrt + eps);
        }
    }
    p
}

#[test]
fn adam_and_adamw_follow_pytorchs_rules() {
    let p0 = [1.0, -2.0, 0.5];
    for wd in [0.0, 0.1] {
        let p = param(&p0);
        let mut adam = Adam::with(vec![p.clone()], 0.01, (0.9, 0.999), 1e-8, wd);
        let q = param(&p0);
        let mut adamw = AdamW::with(vec![q.clone()], 0.01, (0.9, 0.999), 1e-8, wd);
        for g in &GRADS {
            adam.step(&grads_for(&[(&p, g)]));
            adamw.step(&grads_for(&[(&q, g)]));
        }
        assert_close(&p.value(), &adam_ref(&p0, &GRADS, 0.01, wd, false));
        assert_close(&q.value(), &adam_ref(&p0, &GRADS, 0.01, wd, true));
        if wd > 0.0 {
            assert!(
                p.value().max_abs_diff(&q.value()) > 1e-6,
                "L2 ≠ decoupled decay"
            );
        }
    }
    // Adam's first step moves each weight by about lr, in the gradient's opposite sign.
    let p = param(&p0);
    let mut adam = Adam::new(vec![p.clone()], 0.01);
    adam.step(&grads_for(&[(&p, &GRADS[0])]));
    for i in 0..3 {
        let moved = p.value().data()[i] - p0[i];
        assert!(
            (moved + 0.01 * GRADS[0][i].signum()).abs() < 1e-9,
            "{moved}"
        );
    }
    assert_eq!(AdamW::new(vec![p.clone()], 0.01).lr(), 0.01);
}

#[test]
fn state_follows_the_parameter_not_its_position() {
    // q gets no gradient in the first step: it must be left alone, and its momentum and
    // step count must start at its own first gradient, not inherit p's.
    let p0 = [1.0, -2.0, 0.5];
    let (p, q) = (param(&p0), param(&p0));
    let mut sgd = Sgd::new(vec![p.clone(), q.clone()], 0.1).momentum(0.9);
    let (p2, q2) = (param(&p0), param(&p0));
    let mut adam = Adam::new(vec![p2.clone(), q2.clone()], 0.01);
    sgd.step(&grads_for(&[(&p, &GRADS[0])]));
    adam.step(&grads_for(&[(&p2, &GRADS[0])]));
    assert_eq!(q.value().to_vec(), p0.to_vec());
    assert_eq!(q2.value().to_vec(), p0.to_vec());
    for g in &GRADS[1..] {
        sgd.step(&grads_for(&[(&p, g), (&q, g)]));
        adam.step(&grads_for(&[(&p2, g), (&q2, g)]));
    }
    let sgd_ref = SgdRef {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    assert_close(&p.value(), &sgd_ref.run(&p0, &GRADS));
    assert_close(&q.value(), &sgd_ref.run(&p0, &GRADS[1..]));
    assert_close(&p2.value(), &adam_ref(&p0, &GRADS, 0.01, 0.0, false));
    assert_close(&q2.value(), &adam_ref(&p0, &GRADS[1..], 0.01, 0.0, false));
}

#[test]
fn clipping_scales_all_gradients_by_their_global_norm() {
    let (p, q) = (param(&[0.0; 3]), param(&[0.0; 2]));
    let (gp, gq) = ([3.0, 0.0, -4.0], [12.0, 0.0]);
    let total_by_hand = (9.0f64 + 16.0 + 144.0).sqrt(); // 13
    let mut grads = grads_for(&[(&p, &gp), (&q, &gq)]);
    assert_eq!(clip_grad_norm(&mut grads, 100.0), total_by_hand);
    assert_eq!(
        grads.wrt(&p).to_vec(),
        gp.to_vec(),
        "below the limit: unchanged"
    );
    let total = clip_grad_norm(&mut grads, 1.0);
    assert_eq!(total, total_by_hand);
    let coef = 1.0 / (total_by_hand + 1e-6);
    assert_close(&grads.wrt(&p), &gp.map(|g| g * coef));
    assert_close(&grads.wrt(&q), &gq.map(|g| g * coef));
    let after = (grads.wrt(&p).norm().powi(2) + grads.wrt(&q).norm().powi(2)).sqrt();
    assert!((after - 1.0).abs() < 1e-6);
}

#[test]
fn bad_hyperparameters_are_errors() {
    let p = param(&[1.0]);
    assert!(Sgd::try_new(vec![p.clone()], -0.1).is_err());
    assert!(Sgd::try_new(vec![p.clone()], f64::NAN).is_err());
    let e = Adam::try_with(vec![p.clone()], 0.1, (1.0, 0.999), 1e-8, 0.0)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("Adam") && e.to_string().contains("beta1"),
        "{e}"
    );
    assert!(AdamW::try_with(vec![p.clone()], 0.1, (0.9, 0.999), -1.0, 0.0).is_err());
    let nesterov_without_momentum = std::panic::catch_unwind(|| {
        let p = param(&[1.0]);
        let mut opt = Sgd::new(vec![p.clone()], 0.1).nesterov(true);
        opt.step(&grads_for(&[(&p, &[1.0])]));
    });
    assert!(nesterov_without_momentum.is_err());
    let bad_momentum =
        std::panic::catch_unwind(|| Sgd::new(vec![param(&[1.0])], 0.1).momentum(1.5));
    assert!(bad_momentum.is_err());
}

#[test]
fn the_learning_rate_can_be_scheduled() {
    let p = param(&[1.0, 1.0, 1.0]);
    let mut opt = Sgd::new(vec![p.clone()], 0.1);
    opt.set_lr(0.5);
    assert_eq!(opt.lr(), 0.5);
    opt.step(&grads_for(&[(&p, &[1.0, 2.0, -2.0])]));
    assert_eq!(p.value().to_vec(), vec![0.5, 0.0, 2.0]);
}

#[test]
fn a_learning_rate_that_is_not_finite_is_refused_everywhere() {
    let p = param(&[1.0]);
    let mut sgd = Sgd::new(vec![p.clone()], 0.1);
    let mut adam = Adam::new(vec![p.clone()], 0.1);
    let mut adamw = AdamW::new(vec![p.clone()], 0.1);
    let optimizers: [&mut dyn Optimizer<f64>; 3] = [&mut sgd, &mut adam, &mut adamw];
    for opt in optimizers {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5] {
            let e = opt.try_set_lr(bad).unwrap_err().to_string();
            assert!(
                e.contains("learning rate") && e.contains("integration/optim.rs"),
                "{e}"
            );
            assert_eq!(opt.lr(), 0.1, "a refused rate leaves the old one");
        }
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| opt.set_lr(f64::NAN)));
        assert!(panicked.is_err());
        opt.try_set_lr(0.0).unwrap();
        assert_eq!(opt.lr(), 0.0);
    }
    for bad in [f64::NAN, f64::INFINITY] {
        assert!(Sgd::try_new(vec![p.clone()], bad).is_err());
        assert!(Adam::try_new(vec![p.clone()], bad).is_err());
        assert!(AdamW::try_new(vec![p.clone()], bad).is_err());
        let sgd = || Sgd::new(vec![p.clone()], 0.1);
        assert!(sgd().try_momentum(bad).is_err());
        assert!(sgd().try_dampening(bad).is_err());
        assert!(sgd().try_weight_decay(bad).is_err());
        assert!(Adam::try_with(vec![p.clone()], 0.1, (bad, 0.999), 1e-8, 0.0).is_err());
        assert!(Adam::try_with(vec![p.clone()], 0.1, (0.9, bad), 1e-8, 0.0).is_err());
        assert!(Adam::try_with(vec![p.clone()], 0.1, (0.9, 0.999), bad, 0.0).is_err());
        assert!(AdamW::try_with(vec![p.clone()], 0.1, (0.9, 0.999), 1e-8, bad).is_err());
    }
}

#[test]
fn a_parameter_reshaped_under_an_optimizer_with_state_is_a_clear_error() {
    let named = |p: &Param<f64>| vec![("block0.weight".to_string(), p.clone())];
    let (p, q, r) = (param(&[1.0, 2.0]), param(&[1.0, 2.0]), param(&[1.0, 2.0]));
    let mut sgd = Sgd::new(named(&p), 0.1).momentum(0.9);
    let mut adam = Adam::new(named(&q), 0.1);
    let mut unnamed = AdamW::new(vec![param(&[0.0]), r.clone()], 0.1);
    sgd.step(&grads_for(&[(&p, &[1.0, 1.0])]));
    adam.step(&grads_for(&[(&q, &[1.0, 1.0])]));
    unnamed.step(&grads_for(&[(&r, &[1.0, 1.0])]));
    for p in [&p, &q, &r] {
        p.set(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap());
    }
    let cases: [(&mut dyn Optimizer<f64>, &Param<f64>, &str); 3] = [
        (&mut sgd, &p, "Sgd: parameter `block0.weight`"),
        (&mut adam, &q, "Adam: parameter `block0.weight`"),
        (
            &mut unnamed,
            &r,
            "AdamW: parameter #1 of the optimizer's list",
        ),
    ];
    for (opt, p, named) in cases {
        let e = opt
            .try_step(&grads_for(&[(p, &[1.0, 1.0, 1.0])]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(named), "{e}");
        assert!(e.contains("from [2] to [3]"), "{e}");
        assert_eq!(p.value().to_vec(), vec![1.0, 2.0, 3.0], "nothing updated");
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            opt.step(&grads_for(&[(p, &[1.0, 1.0, 1.0])]))
        }))
        .unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("from [2] to [3]"), "{message}");
    }
}

#[test]
fn a_gradient_of_the_wrong_shape_is_refused_before_any_update() {
    let (p, q) = (param(&[1.0, 2.0]), param(&[1.0, 2.0, 3.0]));
    let mut sgd = Sgd::new(vec![p.clone(), q.clone()], 0.1);
    let wrong: ParamGrads<f64> = [
        (p.clone(), Tensor::ones(&[2])),
        (q.clone(), Tensor::ones(&[2])),
    ]
    .into_iter()
    .collect();
    let e = sgd.try_step(&wrong).unwrap_err().to_string();
    assert!(
        e.contains("gradient of parameter #1") && e.contains("[2]") && e.contains("[3]"),
        "{e}"
    );
    assert_eq!(
        p.value().to_vec(),
        vec![1.0, 2.0],
        "p was not updated either"
    );
}

#[test]
fn a_parameter_listed_twice_is_refused() {
    let p = param(&[1.0]);
    let e = Sgd::try_new(vec![p.clone(), p.clone()], 0.1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("parameter #1") && e.contains("more than once"),
        "{e}"
    );
    assert!(Adam::try_new(vec![p.clone(), p.clone()], 0.1).is_err());
}

#[test]
fn gradients_iterate_as_parameter_gradient_pairs_in_binding_order() {
    let (p, q) = (param(&[1.0, 2.0]), param(&[3.0]));
    let grads = grads_for(&[(&q, &[5.0]), (&p, &[6.0, 7.0])]);
    let pairs: Vec<(u64, Vec<f64>)> = grads.iter().map(|(p, g)| (p.id(), g.to_vec())).collect();
    assert_eq!(pairs, vec![(q.id(), vec![5.0]), (p.id(), vec![6.0, 7.0])]);
    let owned: Vec<(Param<f64>, Tensor<f64>)> = grads.into_iter().collect();
    assert!(owned[0].0.same(&q) && owned[1].0.same(&p));
}

#[test]
fn clipping_refuses_a_nan_or_negative_limit_and_measures_with_infinity() {
    let p = param(&[0.0, 0.0]);
    let mut grads = grads_for(&[(&p, &[3.0, 4.0])]);
    for bad in [f64::NAN, -1.0] {
        let e = try_clip_grad_norm(&mut grads, bad).unwrap_err().to_string();
        assert!(
            e.contains("clip_grad_norm") && e.contains("max_norm"),
            "{e}"
        );
    }
    assert_eq!(clip_grad_norm(&mut grads, f64::INFINITY), 5.0);
    assert_eq!(grads.wrt(&p).to_vec(), vec![3.0, 4.0]);
}
