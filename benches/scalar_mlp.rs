//! Tape overhead on tiny values (WORKLOADS.md, scalar-mlp): an MLP 2 → 16 → 16 → 1 on 100
//! two-moons points, SVM max-margin loss + 1e-4·Σp², one step = forward + backward + SGD —
//! evaluated scalar by scalar (every weight a 0-d `Var`, ~66k nodes per step, like
//! micrograd) and in batched tensor form; plus the cost per recorded node of a long chain.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wengert::autograd::{Tape, Tensor, Var, seeded_rng};

/// 100 points of two interleaved half circles, labels ±1, with seeded noise.
fn two_moons() -> (Vec<[f64; 2]>, Vec<f64>) {
    let noise = Tensor::<f64>::normal(&[100, 2], 0.0, 0.1, &mut seeded_rng(1));
    (0..100)
        .map(|i| {
            let t = std::f64::consts::PI * (i % 50) as f64 / 49.0;
            let (x, y, label) = if i < 50 {
                (t.cos(), t.sin(), -1.0)
            } else {
                (1.0 - t.cos(), 0.5 - t.sin(), 1.0)
            };
            ([x + noise.get(&[i, 0]), y + noise.get(&[i, 1])], label)
        })
        .unzip()
}

/// The MLP's parameters as one flat list of scalars: layer by layer, weight rows then bias.
struct Mlp {
    sizes: [usize; 4],
    params: Vec<f64>,
}

impl Mlp {
    fn new() -> Self {
        let sizes = [2, 16, 16, 1];
        let n = (0..3).map(|l| sizes[l] * sizes[l + 1] + sizes[l + 1]).sum();
        let params = Tensor::<f64>::uniform(&[n], -1.0, 1.0, &mut seeded_rng(2)).to_vec();
        Mlp { sizes, params }
    }

    /// One step evaluated scalar by scalar on the tape. Returns the loss.
    fn step_scalar(&mut self, xs: &[[f64; 2]], ys: &[f64]) -> f64 {
        let tape = Tape::new();
        let p: Vec<Var<'_, f64>> = self
            .params
            .iter()
            .map(|&v| tape.var(Tensor::scalar(v)))
            .collect();
        let mut losses = Vec::with_capacity(xs.len());
        for (x, &y) in xs.iter().zip(ys) {
            let mut h: Vec<Var<'_, f64>> = x
                .iter()
                .map(|&v| tape.constant(Tensor::scalar(v)))
                .collect();
            let mut at = 0;
            for l in 0..3 {
                let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
                let bias_at = at + n_in * n_out;
                h = (0..n_out)
                    .map(|o| {
                        let mut s = p[bias_at + o].clone();
                        for (i, hi) in h.iter().enumerate() {
                            s = &s + &(&p[at + o * n_in + i] * hi);
                        }
                        if l < 2 { s.relu() } else { s }
                    })
                    .collect();
                at = bias_at + n_out;
            }
            losses.push((1.0 - &(&h[0] * y)).relu());
        }
        let n = losses.len() as f64;
        let data_loss = losses
            .into_iter()
            .reduce(|a, b| &a + &b)
            .expect("100 points")
            / n;
        let reg = p
            .iter()
            .map(|w| w * w)
            .reduce(|a, b| &a + &b)
            .expect("337 parameters")
            * 1e-4;
        let loss = &data_loss + &reg;
        let grads = loss.backward();
        for (v, w) in p.iter().zip(self.params.iter_mut()) {
            *w -= 0.05 * grads.wrt(v).item();
        }
        loss.item()
    }

    /// The same step with one tensor per layer (forward on all 100 points at once).
    fn step_batched(&mut self, x: &Tensor<f64>, y: &Tensor<f64>) -> f64 {
        let tape = Tape::new();
        let mut at = 0;
        let mut layers = Vec::new();
        for l in 0..3 {
            let (n_in, n_out) = (self.sizes[l], self.sizes[l + 1]);
            let w = Tensor::from_vec(self.params[at..at + n_in * n_out].to_vec(), &[n_out, n_in])
                .expect("sizes");
            let b = Tensor::from_vec(
                self.params[at + n_in * n_out..at + n_in * n_out + n_out].to_vec(),
                &[n_out],
            )
            .expect("sizes");
            layers.push((tape.var(w), tape.var(b)));
            at += n_in * n_out + n_out;
        }
        let mut h = tape.constant(x.clone());
        for (l, (w, b)) in layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if l < 2 {
                h = h.relu();
            }
        }
        let margin = (1.0 - &(&h * &tape.constant(y.clone()))).relu().mean();
        let reg = layers
            .iter()
            .map(|(w, b)| &(w * w).sum() + &(b * b).sum())
            .reduce(|a, b| &a + &b)
            .expect("3 layers")
            * 1e-4;
        let loss = &margin + &reg;
        let grads = loss.backward();
        let mut at = 0;
        for (w, b) in &layers {
            for v in [w, b] {
                for (p, g) in self.params[at..at + v.value().numel()]
                    .iter_mut()
                    .zip(grads.wrt(v).data())
                {
                    *p -= 0.05 * g;
                }
                at += v.value().numel();
            }
        }
        loss.item()
    }
}

fn scalar_mlp(c: &mut Criterion) {
    let (xs, ys) = two_moons();
    let x =
        Tensor::from_vec(xs.iter().flatten().copied().collect(), &[100, 2]).expect("100 points");
    let y = Tensor::from_vec(ys.clone(), &[100, 1]).expect("100 labels");
    {
        let mut a = Mlp::new();
        let mut b = Mlp::new();
        let (ls, lb) = (a.step_scalar(&xs, &ys), b.step_batched(&x, &y));
        println!(
            "scalar-mlp initial loss: scalar form {ls:.12}, batched form {lb:.12} (same math, same parameters)"
        );
    }
    let mut mlp = Mlp::new();
    c.bench_function("scalar_mlp/scalar_by_scalar", |b| {
        b.iter(|| black_box(mlp.step_scalar(&xs, &ys)))
    });
    let mut mlp = Mlp::new();
    c.bench_function("scalar_mlp/batched", |b| {
        b.iter(|| black_box(mlp.step_batched(&x, &y)))
    });
}

/// Cost per node: a chain of 10,000 tiny ops (`h = h·c`, `h = h + c` alternately) on a
/// scalar, recorded, then swept backward.
fn per_node(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut group = c.benchmark_group("per_node");
    group.throughput(criterion::Throughput::Elements(N as u64));
    group.bench_function("record_10k_chain", |b| {
        b.iter(|| {
            let tape = Tape::<f32>::new();
            let mut h = tape.var(Tensor::scalar(1.0));
            for i in 0..N {
                h = if i % 2 == 0 { &h * 0.999 } else { &h + 0.001 };
            }
            black_box(h.item())
        })
    });
    group.bench_function("record_and_backward_10k_chain", |b| {
        b.iter(|| {
            let tape = Tape::<f32>::new();
            let x = tape.var(Tensor::scalar(1.0));
            let mut h = x.clone();
            for i in 0..N {
                h = if i % 2 == 0 { &h * 0.999 } else { &h + 0.001 };
            }
            black_box(h.backward().wrt(&x).item())
        })
    });
    group.finish();
}

criterion_group!(benches, scalar_mlp, per_node);
criterion_main!(benches);
