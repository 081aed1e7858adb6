//! resmlp-step written by hand for speed: the bar the tape is measured against.
//!
//! Every buffer is allocated once, when the workload is made: the activations each block
//! keeps for backward, the gradient flowing back, one weight- and one bias-gradient buffer
//! reused by every layer. The matrix products are the ones the tape runs — the same
//! `gemm` kernels, transposes passed as strides, the same threading rule — and everything
//! between them is fused into single passes over memory:
//!
//! ```text
//! forward, block k:   a1 = relu(h·W1ᵀ + b1)            one product, one pass
//!                     h' = relu(a1·W2ᵀ + b2 + h)        one product, one pass
//! loss:               Σ(h − Y)²/BD and dh = 2(h − Y)/BD  one pass
//! backward, block k:  dz2 = dh ⊙ [h' > 0], gb2 = Σ dz2   one pass
//!                     da1 = dz2·W2, gW2 = dz2ᵀ·a1       two products, then SGD on W2, b2
//!                     dz1 = da1 ⊙ [a1 > 0], gb1 = Σ dz1  one pass
//!                     dh = dz2 + dz1·W1                 one product accumulating into dz2
//!                     gW1 = dz1ᵀ·h                      one product, then SGD on W1, b1
//! ```
//!
//! Each layer is updated as soon as its gradient is known and its weights are no longer
//! needed by the backward pass, which gives the same numbers as updating after the whole
//! backward pass.

use super::ResMlp;

/// Products of fewer multiply-adds than this run on one thread, as in autograd's kernels.
const PARALLEL_MIN_WORK: usize = 1 << 23;

/// A row-major matrix as it enters a product: `rows × cols`, stored as is or, when
/// `transposed`, stored as its transpose (`cols × rows`).
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose, read through strides (nothing is copied).
    fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
            ..self
        }
    }

    /// (row stride, column stride) of the logical `rows × cols` matrix in `data`.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.rows as isize)
        } else {
            (self.cols as isize, 1)
        }
    }
}

/// `out = a·b`, or `out += a·b` when `accumulate`; `out` is row-major `a.rows × b.cols`.
///
/// # Panics
/// If the operands' dimensions or lengths do not fit (the checks that make the call into
/// the kernel sound).
fn product(a: Mat<'_>, b: Mat<'_>, out: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && a.data.len() == m * k && b.data.len() == k * n && out.len() == m * n,
        "fused resmlp: a {m}×{k} by {}×{n} product into {} elements",
        b.rows,
        out.len()
    );
    let threads = autograd::num_threads();
    let parallelism = if threads > 1 && m * n * k >= PARALLEL_MIN_WORK {
        gemm_common::Parallelism::Rayon(threads)
    } else {
        gemm_common::Parallelism::None
    };
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    // The kernels prefer a column-major destination, so the row-major `out = a·b` is
    // computed as the column-major `outᵀ = bᵀ·aᵀ` (as the `gemm` umbrella crate does).
    // SAFETY: the assert above makes every index the kernel reads — `(i, j)` of an
    // `r × c` operand at `i·row_stride + j·col_stride`, i < r, j < c — fall inside `a.data`
    // and `b.data`, and every index it writes inside the `m·n` elements of `out`, which is
    // exclusively borrowed (so it aliases neither operand) and initialised (it is read
    // when `accumulate` is set).
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            n,
            m,
            k,
            out.as_mut_ptr(),
            n as isize,
            1,
            accumulate,
            b.data.as_ptr(),
            b_rs,
            b_cs,
            a.data.as_ptr(),
            a_rs,
            a_cs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `z ← relu(z + bias)` row by row, in place.
fn bias_relu(z: &mut [f32], bias: &[f32]) {
    for row in z.chunks_exact_mut(bias.len()) {
        for (z, &b) in row.iter_mut().zip(bias) {
            *z = (*z + b).max(0.0);
        }
    }
}

/// `z ← relu(z + bias + skip)` row by row, in place: the block's output.
fn bias_skip_relu(z: &mut [f32], bias: &[f32], skip: &[f32]) {
    for (row, skip) in z
        .chunks_exact_mut(bias.len())
        .zip(skip.chunks_exact(bias.len()))
    {
        for ((z, &b), &s) in row.iter_mut().zip(bias).zip(skip) {
            *z = (*z + b + s).max(0.0);
        }
    }
}

/// `g ← g ⊙ [activation > 0]` in place (the gradient through a ReLU, from its output), and
/// `column_sums ← Σ_rows g` (the bias gradient), in one pass.
fn relu_backward_and_column_sums(g: &mut [f32], activation: &[f32], column_sums: &mut [f32]) {
    column_sums.fill(0.0);
    let d = column_sums.len();
    for (row, act) in g.chunks_exact_mut(d).zip(activation.chunks_exact(d)) {
        for ((g, &a), sum) in row.iter_mut().zip(act).zip(column_sums.iter_mut()) {
            if a <= 0.0 {
                *g = 0.0;
            }
            *sum += *g;
        }
    }
}

/// `p ← p − lr·g`, in place.
fn sgd(p: &mut [f32], g: &[f32], lr: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * g;
    }
}

/// One layer's parameters: weight `[D, D]` (output × input) and bias `[D]`.
struct Layer {
    w: Vec<f32>,
    b: Vec<f32>,
}

/// resmlp-step by hand (see the [module](self)): parameters, data and every buffer of a
/// step, allocated once.
pub struct FusedResMlp {
    batch: usize,
    width: usize,
    lr: f32,
    /// (W1, b1) and (W2, b2) of each block.
    layers: Vec<[Layer; 2]>,
    x: Vec<f32>,
    y: Vec<f32>,
    /// Each block's hidden activation `relu(h·W1ᵀ + b1)`, kept for backward.
    hidden: Vec<Vec<f32>>,
    /// Each block's output, kept for backward (the last one is the network's).
    outputs: Vec<Vec<f32>>,
    /// The gradient with respect to the current block's output.
    grad: Vec<f32>,
    /// The gradient with respect to the current block's hidden pre-activation.
    grad_hidden: Vec<f32>,
    /// A weight gradient, reused by every layer.
    grad_w: Vec<f32>,
    /// A bias gradient, reused by every layer.
    grad_b: Vec<f32>,
}

impl FusedResMlp {
    /// The workload `size` with WORKLOADS.md's closed-form initialisation and SGD at `lr`.
    pub fn new(size: &ResMlp, lr: f32) -> Self {
        let (b, d) = (size.batch, size.width);
        let layer = |k, l| Layer {
            w: size.weight(k, l).into_vec(),
            b: size.bias(k, l).into_vec(),
        };
        FusedResMlp {
            batch: b,
            width: d,
            lr,
            layers: (0..size.blocks)
                .map(|k| [layer(k, 1), layer(k, 2)])
                .collect(),
            x: size.input().into_vec(),
            y: size.target().into_vec(),
            hidden: vec![vec![0.0; b * d]; size.blocks],
            outputs: vec![vec![0.0; b * d]; size.blocks],
            grad: vec![0.0; b * d],
            grad_hidden: vec![0.0; b * d],
            grad_w: vec![0.0; d * d],
            grad_b: vec![0.0; d],
        }
    }

    /// One step: forward, loss, backward and SGD. Returns the loss before the update.
    pub fn step(&mut self) -> f32 {
        let (b, d, lr) = (self.batch, self.width, self.lr);
        let n = self.layers.len();
        for k in 0..n {
            let (before, rest) = self.outputs.split_at_mut(k);
            let input: &[f32] = before.last().unwrap_or(&self.x);
            let [l1, l2] = &self.layers[k];
            let (hidden, out) = (&mut self.hidden[k], &mut rest[0]);
            product(
                Mat::new(input, b, d),
                Mat::new(&l1.w, d, d).t(),
                hidden,
                false,
            );
            bias_relu(hidden, &l1.b);
            product(
                Mat::new(hidden, b, d),
                Mat::new(&l2.w, d, d).t(),
                out,
                false,
            );
            bias_skip_relu(out, &l2.b, input);
        }
        let count = (b * d) as f32;
        let mut sum = 0.0f64;
        let prediction = self.outputs.last().unwrap_or(&self.x);
        for ((g, &p), &t) in self.grad.iter_mut().zip(prediction).zip(&self.y) {
            let diff = p - t;
            sum += f64::from(diff * diff);
            *g = 2.0 / count * diff;
        }
        for k in (0..n).rev() {
            let input: &[f32] = if k == 0 {
                &self.x
            } else {
                &self.outputs[k - 1]
            };
            let (hidden, out) = (&self.hidden[k], &self.outputs[k]);
            let [l1, l2] = &mut self.layers[k];
            relu_backward_and_column_sums(&mut self.grad, out, &mut self.grad_b);
            let dz2 = Mat::new(&self.grad, b, d);
            product(dz2, Mat::new(&l2.w, d, d), &mut self.grad_hidden, false);
            product(dz2.t(), Mat::new(hidden, b, d), &mut self.grad_w, false);
            sgd(&mut l2.w, &self.grad_w, lr);
            sgd(&mut l2.b, &self.grad_b, lr);
            relu_backward_and_column_sums(&mut self.grad_hidden, hidden, &mut self.grad_b);
            let dz1 = Mat::new(&self.grad_hidden, b, d);
            product(dz1, Mat::new(&l1.w, d, d), &mut self.grad, true);
            product(dz1.t(), Mat::new(input, b, d), &mut self.grad_w, false);
            sgd(&mut l1.w, &self.grad_w, lr);
            sgd(&mut l1.b, &self.grad_b, lr);
        }
        (sum / f64::from(count)) as f32
    }
}
