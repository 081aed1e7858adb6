//! The unraveled view (gradient per path length) against the tape's full gradient and
//! against a brute-force enumeration of the 2ⁿ paths; lesioning.

use autograd::{Result, Tape, Tensor, Var, seeded_rng};
use nn::analysis::{
    block_outputs, lesioned_loss, lesioned_output, path_gradients, path_gradients_mse,
    single_lesion_losses,
};
use nn::{
    Activation, Ctx, Linear, Module, Param, ProjectionBlock, Relu, ResidualBlock, ResidualUnit,
    Stack, prefixed,
};

/// A residual block without an activation after the sum: `F(x) + S(x)`, `S` the identity
/// or a bias-free projection.
struct SumBlock {
    linear1: Linear<f64>,
    linear2: Linear<f64>,
    projection: Option<Linear<f64>>,
}

impl Module<f64> for SumBlock {
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: &Var<'t, f64>) -> Var<'t, f64> {
        &self.branch(cx, x) + &self.shortcut(cx, x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
        let mut v = prefixed("linear1", self.linear1.named_parameters());
        v.extend(prefixed("linear2", self.linear2.named_parameters()));
        if let Some(p) = &self.projection {
            v.extend(prefixed("projection", p.named_parameters()));
        }
        v
    }
}

impl ResidualUnit<f64> for SumBlock {
    fn try_branch<'t>(&self, cx: &Ctx<'t, f64>, x: &Var<'t, f64>) -> Result<Var<'t, f64>> {
        let h = self.linear1.try_forward(cx, x)?.relu();
        self.linear2.try_forward(cx, &h)
    }
    fn try_shortcut<'t>(&self, cx: &Ctx<'t, f64>, x: &Var<'t, f64>) -> Result<Var<'t, f64>> {
        match &self.projection {
            Some(p) => p.try_forward(cx, x),
            None => Ok(x.clone()),
        }
    }
    fn post_activation(&self) -> Option<Activation> {
        None
    }
}

/// A block's numbers, from which both the nn block and the brute force are built.
#[derive(Clone)]
struct Spec {
    w1: Tensor<f64>,
    b1: Tensor<f64>,
    w2: Tensor<f64>,
    b2: Tensor<f64>,
    projection: Option<Tensor<f64>>,
    post_relu: bool,
}

impl Spec {
    fn random(n_in: usize, n_out: usize, project: bool, post_relu: bool, seed: u64) -> Spec {
        let mut rng = seeded_rng(seed);
        let mut u = |shape: &[usize], scale: f64| Tensor::uniform(shape, -scale, scale, &mut rng);
        Spec {
            w1: u(&[n_out, n_in], 0.8),
            b1: u(&[n_out], 0.3),
            w2: u(&[n_out, n_out], 0.8),
            b2: u(&[n_out], 0.3),
            projection: project.then(|| u(&[n_out, n_in], 0.8)),
            post_relu,
        }
    }

    fn unit(&self) -> Box<dyn ResidualUnit<f64>> {
        let l1 = Linear::from_tensors(self.w1.clone(), Some(self.b1.clone()));
        let l2 = Linear::from_tensors(self.w2.clone(), Some(self.b2.clone()));
        let p = self
            .projection
            .clone()
            .map(|p| Linear::from_tensors(p, None));
        match (self.post_relu, p) {
            (true, None) => Box::new(ResidualBlock::from_layers(l1, l2)),
            (true, Some(projection)) => Box::new(ProjectionBlock {
                linear1: l1,
                relu1: Relu,
                linear2: l2,
                projection,
                relu2: Relu,
            }),
            (false, projection) => Box::new(SumBlock {
                linear1: l1,
                linear2: l2,
                projection,
            }),
        }
    }
}

fn stack(specs: &[Spec]) -> Stack<dyn ResidualUnit<f64>> {
    specs.iter().map(Spec::unit).collect()
}

// ---- brute force: plain row-major matrices, no tape ----

/// `M·v` for `M` `[r, c]`.
fn mat_vec(m: &Tensor<f64>, v: &[f64]) -> Vec<f64> {
    let c = m.shape()[1];
    m.data()
        .chunks(c)
        .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

/// `vᵀ·M` for `M` `[r, c]`: a row vector of length `c`.
fn vec_mat(v: &[f64], m: &Tensor<f64>) -> Vec<f64> {
    let c = m.shape()[1];
    let mut out = vec![0.0; c];
    for (row, &vi) in m.data().chunks(c).zip(v) {
        for (o, &a) in out.iter_mut().zip(row) {
            *o += vi * a;
        }
    }
    out
}

/// One block's local linearization at input `h`: the output, the branch Jacobian
/// `J_F = W2·diag(relu'(W1·h + b1))·W1` and shortcut Jacobian as explicit matrices, and
/// σ'(z) as a vector.
struct Linearization {
    out: Vec<f64>,
    j_branch: Tensor<f64>,
    j_shortcut: Tensor<f64>,
    sigma_prime: Vec<f64>,
}

fn linearize(s: &Spec, h: &[f64]) -> Linearization {
    let (n_out, n_in) = (s.w1.shape()[0], s.w1.shape()[1]);
    let a1: Vec<f64> = mat_vec(&s.w1, h)
        .iter()
        .zip(s.b1.data())
        .map(|(a, b)| a + b)
        .collect();
    let mask: Vec<f64> = a1
        .iter()
        .map(|&a| if a > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let r1: Vec<f64> = a1.iter().map(|&a| a.max(0.0)).collect();
    let f: Vec<f64> = mat_vec(&s.w2, &r1)
        .iter()
        .zip(s.b2.data())
        .map(|(a, b)| a + b)
        .collect();
    let (shortcut, j_shortcut) = match &s.projection {
        Some(p) => (mat_vec(p, h), p.clone()),
        None => (h.to_vec(), Tensor::eye(n_in)),
    };
    let z: Vec<f64> = f.iter().zip(&shortcut).map(|(a, b)| a + b).collect();
    let j_branch = Tensor::from_fn(&[n_out, n_in], |ix| {
        (0..n_out)
            .map(|k| s.w2.get(&[ix[0], k]) * mask[k] * s.w1.get(&[k, ix[1]]))
            .sum()
    });
    let (out, sigma_prime) = if s.post_relu {
        (
            z.iter().map(|&v| v.max(0.0)).collect(),
            z.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect(),
        )
    } else {
        (z.clone(), vec![1.0; z.len()])
    };
    Linearization {
        out,
        j_branch,
        j_shortcut,
        sigma_prime,
    }
}

/// For every subset of blocks whose branch is taken, the product of Jacobians along that
/// path applied to `d_out`, summed per number of branches taken. Row by row of the batch
/// (rows do not interact).
fn brute_force_buckets(specs: &[Spec], x: &Tensor<f64>, d_out: &Tensor<f64>) -> Vec<Vec<f64>> {
    let n = specs.len();
    let (rows, width) = (x.shape()[0], x.shape()[1]);
    let mut buckets = vec![vec![0.0; rows * width]; n + 1];
    let out_w = d_out.shape()[1];
    for r in 0..rows {
        let mut h = x.data()[r * width..(r + 1) * width].to_vec();
        let mut lins = Vec::new();
        for s in specs {
            let lin = linearize(s, &h);
            h = lin.out.clone();
            lins.push(lin);
        }
        for subset in 0..(1usize << n) {
            let mut g = d_out.data()[r * out_w..(r + 1) * out_w].to_vec();
            for (k, lin) in lins.iter().enumerate().rev() {
                let mid: Vec<f64> = g.iter().zip(&lin.sigma_prime).map(|(a, b)| a * b).collect();
                let jac = if subset & (1 << k) != 0 {
                    &lin.j_branch
                } else {
                    &lin.j_shortcut
                };
                g = vec_mat(&mid, jac);
            }
            let len = subset.count_ones() as usize;
            for (b, v) in buckets[len][r * width..(r + 1) * width].iter_mut().zip(&g) {
                *b += v;
            }
        }
    }
    buckets
}

fn three_block_specs(post_relu: bool, seed: u64) -> Vec<Spec> {
    vec![
        Spec::random(4, 4, false, post_relu, seed),
        Spec::random(4, 5, true, post_relu, seed + 1),
        Spec::random(5, 5, false, post_relu, seed + 2),
    ]
}

#[test]
fn three_blocks_match_the_brute_force_enumeration_of_the_eight_paths() {
    for post_relu in [true, false] {
        let specs = three_block_specs(post_relu, 10);
        let net = stack(&specs);
        let mut rng = seeded_rng(20);
        let x = Tensor::uniform(&[3, 4], -1.0, 1.0, &mut rng);
        let d_out = Tensor::uniform(&[3, 5], -1.0, 1.0, &mut rng);
        let paths = path_gradients(&net.layers, &x, &d_out).unwrap();
        assert_eq!(paths.by_length.len(), 4);
        assert_eq!(paths.path_counts(), vec![1.0, 3.0, 3.0, 1.0]);
        let want = brute_force_buckets(&specs, &x, &d_out);
        for (j, (got, want)) in paths.by_length.iter().zip(&want).enumerate() {
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 1e-3, "length {j} carries a gradient in this test");
            let err = got
                .data()
                .iter()
                .zip(want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            println!(
                "post ReLU {post_relu}: length {j}: |g| {:.3e}, error {err:.1e}",
                paths.norms()[j]
            );
            assert!(err <= 1e-13 * scale, "length {j}: error {err:e}");
        }
    }
}

/// The tape's ∂L/∂x for the MSE loss of the whole stack.
fn tape_input_gradient(
    net: &Stack<dyn ResidualUnit<f64>>,
    x: &Tensor<f64>,
    y: &Tensor<f64>,
) -> Tensor<f64> {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let xv = cx.tracked_input(x.clone());
    let diff = &net.forward(&cx, &xv) - &cx.input(y.clone());
    (&diff * &diff).mean().backward().wrt(&xv)
}

#[test]
fn the_buckets_sum_to_the_full_input_gradient() {
    for post_relu in [true, false] {
        // Eight blocks, one of them projecting 6 → 7.
        let specs: Vec<Spec> = (0..8)
            .map(|k| match k {
                0..=2 => Spec::random(6, 6, false, post_relu, 30 + k),
                3 => Spec::random(6, 7, true, post_relu, 30 + k),
                _ => Spec::random(7, 7, false, post_relu, 30 + k),
            })
            .map(|mut s| {
                // Smaller weights: a deep stack without normalization stays well scaled.
                s.w1 = &s.w1 * 0.5;
                s.w2 = &s.w2 * 0.5;
                s
            })
            .collect();
        let net = stack(&specs);
        let mut rng = seeded_rng(40);
        let x = Tensor::uniform(&[4, 6], -1.0, 1.0, &mut rng);
        let y = Tensor::uniform(&[4, 7], -1.0, 1.0, &mut rng);
        let paths = path_gradients_mse(&net.layers, &x, &y).unwrap();
        assert_eq!(paths.depth(), 8);
        let full = tape_input_gradient(&net, &x, &y);
        let err = paths.total().max_abs_diff(&full);
        let scale = full.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let norms: Vec<String> = paths.norms().iter().map(|n| format!("{n:.2e}")).collect();
        println!("post ReLU {post_relu}: norms by length {norms:?}, sum error {err:.1e}");
        assert!(err <= 1e-13 * scale, "{err:e} vs scale {scale:e}");
        // Paths of every length carry some gradient.
        assert!(paths.norms().iter().all(|&n| n > 0.0));
    }
}

#[test]
fn a_stack_of_zero_blocks_passes_the_gradient_through_untouched() {
    let net: Stack<dyn ResidualUnit<f64>> = Stack::new();
    let x = Tensor::uniform(&[2, 3], -1.0, 1.0, &mut seeded_rng(1));
    let paths = path_gradients(&net.layers, &x, &x).unwrap();
    assert_eq!(paths.by_length, vec![x.clone()]);
    assert_eq!(paths.path_counts(), vec![1.0]);
}

#[test]
fn lesioning_removes_chosen_branches() {
    let specs = three_block_specs(true, 50);
    let net = stack(&specs);
    let mut rng = seeded_rng(51);
    let x = Tensor::uniform(&[3, 4], -1.0, 1.0, &mut rng);
    let y = Tensor::uniform(&[3, 5], -1.0, 1.0, &mut rng);
    let mse = |out: &Tensor<f64>| {
        out.data()
            .iter()
            .zip(y.data())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            / 15.0
    };
    // Nothing removed: the intact network.
    let intact = block_outputs(&net.layers, &x).pop().unwrap();
    assert_eq!(
        lesioned_loss(&net.layers, &x, &y, &[]).unwrap(),
        mse(&intact)
    );
    // Everything removed: only the shortcuts and the ReLUs remain, relu(P·relu(x)) here.
    let p = specs[1].projection.as_ref().unwrap();
    let skip_only = Tensor::from_fn(&[3, 5], |ix| {
        let row: Vec<f64> = (0..4).map(|c| x.get(&[ix[0], c]).max(0.0)).collect();
        mat_vec(p, &row)[ix[1]].max(0.0)
    });
    let all = lesioned_output(&net.layers, &x, &[0, 1, 2]).unwrap();
    assert!(all.max_abs_diff(&skip_only) < 1e-15);
    // One block removed: its output is σ(S(h)) in place of σ(F(h) + S(h)).
    let singles = single_lesion_losses(&net.layers, &x, &y).unwrap();
    assert_eq!(singles.len(), 3);
    for (i, &loss) in singles.iter().enumerate() {
        let mut h = x.clone();
        for (k, s) in specs.iter().enumerate() {
            h = if k == i {
                let unit = s.unit();
                let tape = Tape::new();
                let cx = Ctx::eval(&tape);
                unit.shortcut(&cx, &cx.input(h.clone())).value().relu()
            } else {
                block_outputs(&[s.unit()], &h).pop().unwrap()
            };
        }
        assert_eq!(loss, mse(&h));
        assert_ne!(loss, mse(&intact));
    }
    // Bad input: a clear error.
    let err = lesioned_loss(&net.layers, &x, &y, &[3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lesioned_output") && err.contains('3'),
        "{err}"
    );
    let err = lesioned_loss(&net.layers, &x, &x, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lesioned_loss") && err.contains("[3, 5]"),
        "{err}"
    );
    let err = path_gradients(&net.layers, &x, &x).unwrap_err().to_string();
    assert!(err.contains("path_gradients"), "{err}");
}
