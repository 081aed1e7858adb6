//! Property tests: random expression graphs over random shapes — broadcasting, reductions
//! over random axes, values reused two or three times, chains — whose tape gradients must
//! match central finite differences in f64. Failing cases are shrunk by proptest and kept
//! in `proptest-regressions/` as regression tests.

use autograd::rand::rngs::StdRng;
use autograd::rand::{Rng, SeedableRng};
use autograd::{GradcheckOptions, Tensor, Var, gradcheck};
use proptest::prelude::*;

/// One step of a random program; operands are indices of earlier values.
#[derive(Clone, Debug)]
enum Step {
    Unary(Unary, usize),
    Binary(Binary, usize, usize),
    Sum {
        of: usize,
        axes: Vec<usize>,
        keepdim: bool,
    },
    Mean {
        of: usize,
        axes: Vec<usize>,
        keepdim: bool,
    },
    Max {
        of: usize,
        axis: usize,
        keepdim: bool,
    },
    Softmax {
        of: usize,
        axis: usize,
    },
    Reshape {
        of: usize,
        shape: Vec<usize>,
    },
    Permute {
        of: usize,
        perm: Vec<usize>,
    },
}

#[derive(Clone, Copy, Debug)]
enum Unary {
    Tanh,
    Sigmoid,
    Softplus,
    Square,
    Relu,
    ExpTanh,
    LnSquarePlusOne,
}

#[derive(Clone, Copy, Debug)]
enum Binary {
    Add,
    Sub,
    Mul,
    /// a / (b² + 1), never dividing by zero.
    SafeDiv,
    Maximum,
}

#[derive(Clone, Debug)]
struct Program {
    inputs: Vec<Tensor<f64>>,
    steps: Vec<Step>,
}

fn random_shape(rng: &mut StdRng) -> Vec<usize> {
    let rank = rng.random_range(0..=3);
    (0..rank).map(|_| rng.random_range(1..=4)).collect()
}

/// A shape that broadcasts with `base`: some dimensions set to 1, some leading ones dropped.
fn broadcastable(base: &[usize], rng: &mut StdRng) -> Vec<usize> {
    let drop = rng.random_range(0..=base.len());
    base[drop..]
        .iter()
        .map(|&d| if rng.random_bool(0.3) { 1 } else { d })
        .collect()
}

fn compatible(a: &[usize], b: &[usize]) -> bool {
    autograd::broadcast_shapes("t", a, b).is_ok()
}

fn generate(seed: u64, n_steps: usize) -> Program {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = random_shape(&mut rng);
    let n_inputs = rng.random_range(1..=3);
    let mut shapes: Vec<Vec<usize>> = (0..n_inputs)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                broadcastable(&base, &mut rng)
            }
        })
        .collect();
    let inputs = shapes
        .iter()
        .map(|s| Tensor::uniform(s, -1.5, 1.5, &mut rng))
        .collect();
    let mut steps = Vec::new();
    for _ in 0..n_steps {
        // Prefer recent values, but reach back so that values fan out.
        let pick = |rng: &mut StdRng, n: usize| n - 1 - rng.random_range(0..n.min(4));
        let a = pick(&mut rng, shapes.len());
        let sa = shapes[a].clone();
        let rank = sa.len();
        let (step, shape) = match rng.random_range(0..8) {
            0 | 1 => {
                let kinds = [
                    Unary::Tanh,
                    Unary::Sigmoid,
                    Unary::Softplus,
                    Unary::Square,
                    Unary::Relu,
                    Unary::ExpTanh,
                    Unary::LnSquarePlusOne,
                ];
                (Step::Unary(kinds[rng.random_range(0..kinds.len())], a), sa)
            }
            2 | 3 => {
                let partners: Vec<usize> = (0..shapes.len())
                    .filter(|&b| compatible(&sa, &shapes[b]))
                    .collect();
                let b = partners[rng.random_range(0..partners.len())];
                let kinds = [
                    Binary::Add,
                    Binary::Sub,
                    Binary::Mul,
                    Binary::SafeDiv,
                    Binary::Maximum,
                ];
                let out = autograd::broadcast_shapes("t", &sa, &shapes[b])
                    .expect("compatible")
                    .to_vec();
                (
                    Step::Binary(kinds[rng.random_range(0..kinds.len())], a, b),
                    out,
                )
            }
            4 if rank > 0 => {
                let axes: Vec<usize> = (0..rank).filter(|_| rng.random_bool(0.5)).collect();
                let keepdim = rng.random_bool(0.5);
                let out = sa
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &d)| {
                        if axes.contains(&i) {
                            keepdim.then_some(1)
                        } else {
                            Some(d)
                        }
                    })
                    .collect();
                if rng.random_bool(0.5) {
                    (
                        Step::Sum {
                            of: a,
                            axes,
                            keepdim,
                        },
                        out,
                    )
                } else {
                    (
                        Step::Mean {
                            of: a,
                            axes,
                            keepdim,
                        },
                        out,
                    )
                }
            }
            5 if rank > 0 => {
                let axis = rng.random_range(0..rank);
                if rng.random_bool(0.5) {
                    let keepdim = rng.random_bool(0.5);
                    let out = sa
                        .iter()
                        .enumerate()
                        .filter_map(|(i, &d)| {
                            if i == axis {
                                keepdim.then_some(1)
                            } else {
                                Some(d)
                            }
                        })
                        .collect();
                    (
                        Step::Max {
                            of: a,
                            axis,
                            keepdim,
                        },
                        out,
                    )
                } else {
                    (Step::Softmax { of: a, axis }, sa)
                }
            }
            6 if rank > 1 => {
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.rotate_left(1);
                let out = perm.iter().map(|&p| sa[p]).collect();
                (Step::Permute { of: a, perm }, out)
            }
            _ => {
                let n: usize = sa.iter().product();
                let shape = if rng.random_bool(0.5) {
                    vec![n]
                } else {
                    sa.iter().rev().copied().collect()
                };
                (
                    Step::Reshape {
                        of: a,
                        shape: shape.clone(),
                    },
                    shape,
                )
            }
        };
        steps.push(step);
        shapes.push(shape);
    }
    Program { inputs, steps }
}

fn run<'t>(steps: &[Step], inputs: &[Var<'t, f64>]) -> Var<'t, f64> {
    let mut values: Vec<Var<'t, f64>> = inputs.to_vec();
    for step in steps {
        let v = |i: usize| &values[i];
        let out = match step {
            Step::Unary(kind, a) => {
                let x = v(*a);
                match kind {
                    Unary::Tanh => x.tanh(),
                    Unary::Sigmoid => x.sigmoid(),
                    Unary::Softplus => x.softplus(),
                    Unary::Square => x * x,
                    Unary::Relu => x.relu(),
                    Unary::ExpTanh => x.tanh().exp(),
                    Unary::LnSquarePlusOne => (x * x + 1.0).ln(),
                }
            }
            Step::Binary(kind, a, b) => {
                let (x, y) = (v(*a), v(*b));
                match kind {
                    Binary::Add => x + y,
                    Binary::Sub => x - y,
                    Binary::Mul => x * y,
                    Binary::SafeDiv => x / &(y * y + 1.0),
                    Binary::Maximum => x.maximum(y),
                }
            }
            Step::Sum { of, axes, keepdim } => v(*of).sum_axes(axes, *keepdim),
            Step::Mean { of, axes, keepdim } => v(*of).mean_axes(axes, *keepdim),
            Step::Max { of, axis, keepdim } => v(*of).max_axis(*axis, *keepdim),
            Step::Softmax { of, axis } => v(*of).softmax(*axis),
            Step::Reshape { of, shape } => v(*of).reshape(shape),
            Step::Permute { of, perm } => v(*of).permute(perm),
        };
        values.push(out);
    }
    values.last().expect("at least the inputs").tanh()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_finite_differences(seed in any::<u64>(), n_steps in 1usize..14) {
        let program = generate(seed, n_steps);
        let steps = program.steps.clone();
        let report = gradcheck(move |x| run(&steps, x), &program.inputs, &GradcheckOptions::default());
        prop_assert!(report.passed(), "{report}\n{program:?}");
    }
}
