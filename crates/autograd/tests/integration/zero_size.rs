//! Zero-size tensors behave like PyTorch's: every op family with a zero-size dimension in
//! each input position, forward (shape, values) and backward (gradient shapes and values),
//! against PyTorch's answers in `tests/fixtures/zero_size.txt` (written by
//! `tests/fixtures/zero_size.py`, which documents the format). Where PyTorch refuses, the
//! op must return an `Error` — never panic.

use autograd::{Error, GeluApproximation, Tape, Tensor, Var};
use std::panic::{AssertUnwindSafe, catch_unwind};

const FIXTURE: &str = include_str!("../fixtures/zero_size.txt");

/// What PyTorch did with one case.
#[derive(Debug)]
enum Expected {
    Error,
    Value {
        shape: Vec<usize>,
        sum: f64,
        grad_shapes: Vec<Vec<usize>>,
        grad_sums: Vec<f64>,
    },
}

struct Case {
    op: String,
    inputs: Vec<Vec<usize>>,
    expected: Expected,
}

fn dims(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("a dimension"))
        .collect()
}

fn number(s: &str) -> f64 {
    if s == "nan" {
        f64::NAN
    } else {
        s.parse().expect("a number")
    }
}

fn cases() -> Vec<Case> {
    FIXTURE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let inputs = f[1].split(';').map(dims).collect();
            let expected = if f[2] == "ERR" {
                Expected::Error
            } else {
                Expected::Value {
                    shape: dims(f[2]),
                    sum: number(f[3]),
                    grad_shapes: f[4].split(';').map(dims).collect(),
                    grad_sums: f[5].split(';').map(number).collect(),
                }
            };
            Case {
                op: f[0].to_string(),
                inputs,
                expected,
            }
        })
        .collect()
}

/// Input `k` of `shape`: sin(0.37·(i + 1) + k) at row-major index i (as the script).
fn input(shape: &[usize], k: usize) -> Tensor<f64> {
    let n = shape.iter().product::<usize>();
    let data = (0..n)
        .map(|i| (0.37 * (i + 1) as f64 + k as f64).sin())
        .collect();
    Tensor::from_vec(data, shape).expect("a valid shape")
}

/// A list of axes or dimensions (negative axes count from the back).
fn list(s: &str) -> Vec<i64> {
    s.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("an integer"))
        .collect()
}

/// The mask `x > 0` of a value (a constant: no gradient flows through it).
fn positive(x: &Var<'_, f64>) -> Tensor<bool> {
    let data = x.value().data().iter().map(|&v| v > 0.0).collect();
    Tensor::from_vec(data, x.shape()).expect("the value's shape")
}

/// The op named like the script's `run`, through the `try_*` API.
fn run<'t>(op: &str, x: &[Var<'t, f64>]) -> Result<Var<'t, f64>, Error> {
    let mut words = op.split(' ');
    let name = words.next().expect("an op");
    let args: Vec<&str> = words.collect();
    let axis = |k: usize| args[k].parse::<i64>().expect("an axis");
    let int = |k: usize| args[k].parse::<usize>().expect("an integer");
    let pair = |k: usize| (int(k), int(k));
    let dims = |k: usize| {
        list(args[k])
            .iter()
            .map(|&d| d as usize)
            .collect::<Vec<_>>()
    };
    let zero_index =
        |like: &Var<'t, f64>| Tensor::from_vec(vec![0; like.value().numel()], like.shape());
    Ok(match name {
        "relu" => x[0].relu(),
        "exp" => x[0].exp(),
        "tanh" => x[0].tanh(),
        "sigmoid" => x[0].sigmoid(),
        "abs" => x[0].abs(),
        "neg" => -&x[0],
        "erf" => x[0].erf(),
        "gelu" if args[0] == "none" => x[0].gelu(GeluApproximation::None),
        "gelu" => x[0].gelu(GeluApproximation::Tanh),
        "add" => x[0].try_add(&x[1])?,
        "mul" => x[0].try_mul(&x[1])?,
        "pow" => x[0].try_pow(&x[1])?,
        "maximum" => x[0].try_maximum(&x[1])?,
        "minimum" => x[0].try_minimum(&x[1])?,
        "where" => Var::try_where_(&positive(&x[0]), &x[1], &x[2])?,
        "matmul" => x[0].try_matmul(&x[1])?,
        "linear" => x[0].try_linear(&x[1], x.get(2))?,
        "sum" => x[0].sum(),
        "mean" => x[0].mean(),
        "sum_axes" => x[0].try_sum_axes(&list(args[0]), false)?,
        "mean_axes" => x[0].try_mean_axes(&list(args[0]), false)?,
        "max_axis" => x[0].try_max_axis(axis(0), false)?,
        "min_axis" => x[0].try_min_axis(axis(0), false)?,
        "max_all" => x[0].try_max()?,
        "min_all" => x[0].try_min()?,
        "logsumexp" => x[0].try_logsumexp(&list(args[0]), false)?,
        "softmax" => x[0].try_softmax(axis(0))?,
        "log_softmax" => x[0].try_log_softmax(axis(0))?,
        "reshape" => x[0].try_reshape(&dims(0))?,
        "permute" => x[0].try_permute(&list(args[0]))?,
        "broadcast_to" => x[0].try_broadcast_to(&dims(0))?,
        "narrow" => x[0].try_narrow(axis(0), int(1), int(2))?,
        "concat" => Var::try_concat(&x.iter().collect::<Vec<_>>(), axis(0))?,
        "stack" => Var::try_stack(&x.iter().collect::<Vec<_>>(), axis(0))?,
        "index_select" => {
            let index: Vec<usize> = list(args.get(1).unwrap_or(&""))
                .iter()
                .map(|&i| i as usize)
                .collect();
            x[0].try_index_select(axis(0), &index)?
        }
        "gather" => x[0].try_gather(axis(0), &zero_index(&x[1])?)?,
        "scatter_add" => x[0].try_scatter_add(axis(0), &zero_index(&x[1])?, &x[1])?,
        "masked_select" => x[0].try_masked_select(&positive(&x[1]))?,
        "conv2d" => x[0].try_conv2d(&x[1], x.get(2), pair(0), pair(1))?,
        "max_pool2d" => x[0].try_max_pool2d(pair(0), pair(1), pair(2))?,
        "avg_pool2d" => x[0].try_avg_pool2d(pair(0), pair(1), pair(2))?,
        "global_avg_pool2d" => x[0].try_global_avg_pool2d()?,
        other => panic!("unknown op {other}"),
    })
}

/// Equal as numbers, NaN equal to NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

/// Where wengert answers differently from PyTorch on purpose. `conv2d` with zero input
/// channels: PyTorch 2.15 returns a `[N, 0, OH, OW]` tensor (losing the weight's output
/// channels); a convolution over no channels is its bias, as `Linear(0, n)` gives its bias
/// rows, so wengert returns `[N, O, OH, OW]` filled with the bias (the fixture's case has
/// N = 1 and a 2 × 2 output).
fn deviation(case: &Case) -> Option<Expected> {
    let channels_empty = case.op.starts_with("conv2d") && case.inputs[0][1] == 0;
    if !channels_empty {
        return None;
    }
    let o = case.inputs[1][0];
    let bias = input(&[o], 2); // the bias is input 2
    let weights = (0..o * 4).map(|j| 1.0 + 0.01 * j as f64);
    Some(Expected::Value {
        shape: vec![1, o, 2, 2],
        sum: 4.0 * bias.data().iter().sum::<f64>(),
        grad_shapes: case.inputs.clone(),
        grad_sums: vec![0.0, 0.0, weights.sum()], // ∂/∂b_o = Σ of channel o's weights
    })
}

#[test]
fn every_op_family_with_a_zero_size_dimension_matches_pytorch() {
    let cases = cases();
    assert!(cases.len() > 80, "the fixture has {} cases", cases.len());
    for case in &cases {
        let label = format!("{} on {:?}", case.op, case.inputs);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let tape = Tape::<f64>::new();
            let xs: Vec<Var<'_, f64>> = (case.inputs.iter().enumerate())
                .map(|(k, s)| tape.var(input(s, k)))
                .collect();
            let y = match run(&case.op, &xs) {
                Err(e) => return Err(e.to_string()),
                Ok(y) => y,
            };
            let weights = Tensor::from_vec(
                (0..y.value().numel())
                    .map(|j| 1.0 + 0.01 * j as f64)
                    .collect(),
                y.shape(),
            )
            .expect("weights");
            let loss = (&y * &tape.constant(weights)).sum();
            let grads = loss.backward();
            let g: Vec<Tensor<f64>> = xs.iter().map(|x| grads.wrt(x)).collect();
            Ok((y.value().clone(), g))
        }));
        let expected = deviation(case).unwrap_or(match &case.expected {
            Expected::Error => Expected::Error,
            Expected::Value {
                shape,
                sum,
                grad_shapes,
                grad_sums,
            } => Expected::Value {
                shape: shape.clone(),
                sum: *sum,
                grad_shapes: grad_shapes.clone(),
                grad_sums: grad_sums.clone(),
            },
        });
        match (outcome, expected) {
            (Err(panic), _) => panic!("{label}: panicked: {panic:?}"),
            (Ok(Err(message)), Expected::Error) => {
                assert!(message.contains(" (at "), "{label}: {message}");
            }
            (Ok(Err(message)), Expected::Value { .. }) => {
                panic!("{label}: PyTorch computes it, wengert refused: {message}")
            }
            (Ok(Ok((y, _))), Expected::Error) => {
                panic!(
                    "{label}: PyTorch refuses it, wengert returned {:?}",
                    y.shape()
                )
            }
            (
                Ok(Ok((y, g))),
                Expected::Value {
                    shape,
                    sum,
                    grad_shapes,
                    grad_sums,
                },
            ) => {
                assert_eq!(y.shape(), shape.as_slice(), "{label}: output shape");
                let got: f64 = y.data().iter().sum();
                assert!(same(got, sum), "{label}: Σy = {got}, PyTorch {sum}");
                for (k, ((g, s), want)) in g.iter().zip(&grad_shapes).zip(&grad_sums).enumerate() {
                    assert_eq!(g.shape(), s.as_slice(), "{label}: gradient {k} shape");
                    let got: f64 = g.data().iter().sum();
                    assert!(
                        same(got, *want),
                        "{label}: Σ gradient {k} = {got}, PyTorch {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_product_over_an_empty_inner_dimension_is_zeros() {
    // The case, in both element types and through both APIs.
    let a = Tensor::<f32>::zeros(&[2, 0]);
    let b = Tensor::<f32>::zeros(&[0, 4]);
    assert_eq!(a.matmul(&b), Tensor::zeros(&[2, 4]));
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros(&[2, 3, 0]));
    let b = tape.var(Tensor::zeros(&[0, 4]));
    let c = a.matmul(&b);
    assert_eq!(c.value(), &Tensor::zeros(&[2, 3, 4]));
    let g = (&c * 2.0).sum().backward();
    assert_eq!(
        (g.wrt(&a).shape(), g.wrt(&b).shape()),
        (&[2, 3, 0][..], &[0, 4][..])
    );
}

#[test]
fn linear_with_no_input_features_gives_the_bias_rows() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[2, 0]));
    let w = tape.var(Tensor::zeros(&[4, 0]));
    let b = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]).unwrap());
    let y = x.linear(&w, Some(&b));
    assert_eq!(y.value().to_vec(), [1.0, 2.0, 3.0, 4.0].repeat(2));
    let g = y.sum().backward();
    assert_eq!(g.wrt(&b).to_vec(), vec![2.0; 4]); // one per row
    assert_eq!(g.wrt(&w).shape(), &[4, 0]);
}

#[test]
fn positions_of_extrema_over_nothing_are_errors_as_in_pytorch() {
    // PyTorch 2.15: argmax(1) of a [0, 3] tensor is empty ([0]); argmax(0) and argmax()
    // are errors ("Expected reduction dim 0 to have non-zero size").
    let x = Tensor::<f64>::zeros(&[0, 3]);
    assert_eq!(x.argmax_axis(1, false).shape(), [0]);
    assert_eq!(x.argmin_axis(-1, true).shape(), [0, 1]);
    for err in [
        x.try_argmax_axis(0, false).unwrap_err(),
        x.try_argmin().unwrap_err(),
    ] {
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        assert!(err.to_string().contains("zero_size.rs"), "{err}");
    }
}
