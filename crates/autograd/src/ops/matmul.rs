//! Matrix products: `matmul` (PyTorch's `torch.matmul`: vectors, matrices and broadcast
//! batches of matrices) and the fused `linear` (y = x·Wᵀ + b).
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | matmul | C = A·B | Ā = sum_to(G·Bᵀ), B̄ = sum_to(Aᵀ·G) | A, B |
//! | linear | y = x·Wᵀ + b | x̄ = G·W, W̄ = Gᵀ·x, b̄ = Σ_rows G | x, W |
//!
//! The batch dimensions (all but the last two) broadcast by NumPy's rules, so each
//! gradient is summed back over the batch dimensions its operand was broadcast along
//! (`sum_to`). A 1-d operand is a vector, as in PyTorch: on the left a row `[1, k]`, on the
//! right a column `[k, 1]`, and that dimension is removed from the result (reshapes,
//! recorded like any other op, so the gradients follow).
//!
//! Transposes in the backward rules are strides handed to the GEMM, never copies. The
//! recorded op carries the two transpose flags, so that those products can themselves be
//! recorded (and differentiated) when backward is recorded.

use super::{Algebra, Op};
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::matmul::{Operand, gemm_uninit, gemm_uninit_bias};
use crate::kernels::strided::walk2;
use crate::shape::{Shape, broadcast_strides, numel};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};

/// A recorded matrix product.
#[derive(Clone)]
pub(crate) enum MatMulOp<T> {
    /// `op(a) · op(b)`, `op` transposing the last two axes where the flag is set.
    MatMul {
        a: Tensor<T>,
        b: Tensor<T>,
        ta: bool,
        tb: bool,
    },
    /// `x · wᵀ (+ bias)`; the bias itself is not needed for backward.
    Linear { x: Tensor<T>, w: Tensor<T> },
}

impl<T: Element> MatMulOp<T> {
    pub fn name(&self) -> &'static str {
        match self {
            MatMulOp::MatMul { .. } => "matmul",
            MatMulOp::Linear { .. } => "linear",
        }
    }

    pub fn saved(&self) -> Vec<&Tensor<T>> {
        match self {
            MatMulOp::MatMul { a, b, .. } => vec![a, b],
            MatMulOp::Linear { x, w } => vec![x, w],
        }
    }

    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        match self {
            MatMulOp::MatMul { a, b, ta, tb } => {
                let (ta, tb) = (*ta, *tb);
                let (av, bv) = (cx.input(0, a), cx.input(1, b));
                if numel(&b.shape()[..b.rank() - 2]) == 1 && a.rank() > 2 && !ta {
                    // Batched A times one matrix B: the batch is just more rows.
                    let k = a.shape()[a.rank() - 1];
                    let rows = numel(&a.shape()[..a.rank() - 1]); // not numel / k: k may be 0
                    let a2 = av.reshape(&[rows, k]);
                    let g2 = g.reshape(&[rows, g.shape()[g.shape().len() - 1]]);
                    if cx.needs(0) {
                        cx.send(0, g2.matmul_t(false, &bv, !tb).reshape(a.shape()));
                    }
                    if cx.needs(1) {
                        let db = if tb {
                            g2.matmul_t(true, &a2, false)
                        } else {
                            a2.matmul_t(true, &g2, false)
                        };
                        cx.send(1, db.reshape(b.shape())); // B's leading 1s, if any
                    }
                    return;
                }
                if cx.needs(0) {
                    let da = if ta {
                        bv.matmul_t(tb, g, true)
                    } else {
                        g.matmul_t(false, &bv, !tb)
                    };
                    cx.send(0, da.sum_to(a.shape()));
                }
                if cx.needs(1) {
                    let db = if tb {
                        g.matmul_t(true, &av, ta)
                    } else {
                        av.matmul_t(!ta, g, false)
                    };
                    cx.send(1, db.sum_to(b.shape()));
                }
            }
            MatMulOp::Linear { x, w } => {
                let out = w.shape()[0];
                let rows = numel(&x.shape()[..x.rank() - 1]);
                let g2 = g.reshape(&[rows, out]);
                if cx.needs(0) {
                    cx.send(
                        0,
                        g2.matmul_t(false, &cx.input(1, w), false)
                            .reshape(x.shape()),
                    );
                }
                if cx.needs(1) {
                    let x2 = cx.input(0, x).reshape(&[rows, w.shape()[1]]);
                    cx.send(1, g2.matmul_t(true, &x2, false));
                }
                if cx.needs(2) {
                    cx.send(2, g2.sum_to(&[out]));
                }
            }
        }
    }
}

/// Rows and columns of `op(x)` (its last two axes, swapped when transposed).
fn dims(shape: &[usize], t: bool) -> (usize, usize) {
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if t { (c, r) } else { (r, c) }
}

/// The error of a product of `a` by `b` (the shapes as the caller gave them).
#[track_caller]
fn matmul_error(a: &[usize], b: &[usize], reason: &'static str) -> Error {
    Error::MatMul {
        op: "matmul",
        lhs: a.into(),
        rhs: b.into(),
        reason,
        at: Caller::here(),
    }
}

/// Checks ranks, inner and batch dimensions of `op(a) · op(b)`; returns the output shape.
/// The batch dimensions broadcast (NumPy's rules). Errors name `shown`, the shapes as the
/// caller gave them (before a vector was made a matrix).
#[track_caller]
fn matmul_shape(
    a: &[usize],
    ta: bool,
    b: &[usize],
    tb: bool,
    shown: (&[usize], &[usize]),
) -> Result<Shape> {
    if a.len() < 2 || b.len() < 2 {
        return Err(matmul_error(
            shown.0,
            shown.1,
            "both operands need rank 2 or more",
        ));
    }
    let ((m, k), (k2, n)) = (dims(a, ta), dims(b, tb));
    if k != k2 {
        return Err(matmul_error(shown.0, shown.1, "inner dimensions differ"));
    }
    let (ba, bb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
    let Ok(mut out) = crate::shape::broadcast_shapes("matmul", ba, bb) else {
        return Err(matmul_error(
            shown.0,
            shown.1,
            "batch dimensions do not broadcast",
        ));
    };
    out.extend([m, n]);
    Ok(out)
}

/// The shapes of a product by PyTorch's rules for vectors: a 1-d left operand `[k]` is
/// the row `[1, k]`, a 1-d right operand the column `[k, 1]`. Returns the shapes of the two
/// operands as matrices (or batches) and the shape of the result without the dimensions
/// the vectors added.
#[track_caller]
fn vector_product_shapes(a: &[usize], b: &[usize]) -> Result<(Shape, Shape, Shape)> {
    if a.is_empty() || b.is_empty() {
        return Err(matmul_error(
            a,
            b,
            "both operands need at least one dimension",
        ));
    }
    let a2: Shape = if a.len() == 1 {
        [1, a[0]][..].into()
    } else {
        a.into()
    };
    let b2: Shape = if b.len() == 1 {
        [b[0], 1][..].into()
    } else {
        b.into()
    };
    let mut out = matmul_shape(&a2, false, &b2, false, (a, b))?;
    if a.len() == 1 {
        out.remove(out.len() - 2); // the row's 1
    }
    if b.len() == 1 {
        out.pop(); // the column's 1
    }
    Ok((a2, b2, out))
}

/// `op(a) · op(b)` for shapes already checked by [`matmul_shape`] (in a backward rule).
#[track_caller]
pub(crate) fn matmul_t<T: Element>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Tensor<T> {
    or_panic(try_matmul_t(a, ta, b, tb))
}

/// `op(a) · op(b)`: the shapes are checked, the output allocated fallibly, then every
/// element of it written by the GEMM (also when an inner dimension is 0: zeros).
#[track_caller]
fn try_matmul_t<T: Element>(a: &Tensor<T>, ta: bool, b: &Tensor<T>, tb: bool) -> Result<Tensor<T>> {
    let shape = matmul_shape(a.shape(), ta, b.shape(), tb, (a.shape(), b.shape()))?;
    let mut out = output_buffer("matmul", &shape)?;
    let ((m, k), (_, n)) = (dims(a.shape(), ta), dims(b.shape(), tb));
    let len = numel(&shape);
    if len == 0 {
        // Nothing to write, and no GEMM to run: the batch may count enormously many empty
        // matrices (`[2, 2³², 0, 2]·[2, 2³², 0, 2]ᵀ` would loop 2³³ times).
        return Ok(Tensor::from_parts(out, shape));
    }
    let batch = &shape[..shape.len() - 2];
    let (ba, bb) = (&a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2]);
    // The `i`-th matrix of each operand (`m · k` and `k · n` elements each; the offsets fit:
    // they are below the operands' lengths).
    let lhs = |i: usize| Operand {
        data: &a.data()[i * m * k..],
        rows: m,
        cols: k,
        transposed: ta,
    };
    let rhs = |i: usize| Operand {
        data: &b.data()[i * k * n..],
        rows: k,
        cols: n,
        transposed: tb,
    };
    let dst = &mut out.spare_capacity_mut()[..len];
    if numel(bb) == 1 && !ta {
        // A batch of A matrices against one B: one GEMM with all rows stacked (`numel(ba)
        // · m` of them, not `a.numel() / k`, which is wrong for k = 0). The output's batch
        // is A's, with B's leading 1s, so its rows are in the same order.
        let stacked = Operand {
            rows: numel(ba) * m,
            ..lhs(0)
        };
        gemm_uninit(stacked, rhs(0), dst);
    } else {
        // One GEMM per output matrix `i`, reading the matrices `ia` of A and `ib` of B its
        // batch index selects.
        let size = m * n;
        let mut product = |i: usize, ia: usize, ib: usize| {
            gemm_uninit(lhs(ia), rhs(ib), &mut dst[i * size..(i + 1) * size]);
        };
        let (count, count_a, count_b) = (numel(batch), numel(ba), numel(bb));
        if (count_a == count || count_a == 1) && (count_b == count || count_b == 1) {
            // Each operand is one matrix or a whole batch (the common cases): a plain loop.
            let (step_a, step_b) = (usize::from(count_a != 1), usize::from(count_b != 1));
            for i in 0..count {
                product(i, i * step_a, i * step_b);
            }
        } else {
            // Batches broadcast against each other: `walk2` gives the matrices' positions,
            // with stride 0 along broadcast dimensions.
            let (sa, sb) = (broadcast_strides(ba, batch), broadcast_strides(bb, batch));
            walk2(batch, &sa, &sb, product);
        }
    }
    // SAFETY: precondition of `set_len(len)`: `len ≤ capacity` (the buffer was allocated
    // for `shape`, whose element count is `len`) and the first `len` elements are
    // initialised: the GEMMs above wrote all of them — one of `numel(ba) · m` rows by `n`
    // (`= len`: the output's batch holds as many matrices as A's), or one product of
    // `m · n` elements into each of the `numel(batch)` consecutive chunks of `dst` (the loop
    // and `walk2` visit every batch index once; for `m · n = 0` there is nothing to write).
    // `gemm_uninit` writes every element of its destination, zeros when `k = 0`.
    unsafe { out.set_len(len) };
    Ok(Tensor::from_parts(out, shape))
}

/// Checks `linear`'s shapes; returns the output shape.
#[track_caller]
fn linear_shape(x: &[usize], w: &[usize], b: Option<&[usize]>) -> Result<Shape> {
    if w.len() != 2 {
        return Err(Error::Rank {
            op: "linear",
            expected: "a rank-2 weight [out, in]",
            got: w.into(),
            at: Caller::here(),
        });
    }
    if x.is_empty() || x[x.len() - 1] != w[1] {
        return Err(Error::MatMul {
            op: "linear",
            lhs: x.into(),
            rhs: w.into(),
            reason: "the input's last dimension must equal the weight's second (in features)",
            at: Caller::here(),
        });
    }
    if let Some(b) = b.filter(|b| *b != [w[0]]) {
        return Err(Error::ShapeMismatch {
            op: "linear",
            expected: Box::new([w[0]]),
            got: b.into(),
            at: Caller::here(),
        });
    }
    let mut out: Shape = x.into();
    let last = out.len() - 1;
    out[last] = w[0];
    Ok(out)
}

/// `x · wᵀ + b` into a tensor of `shape` (checked by [`linear_shape`]).
#[track_caller]
fn linear<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
    shape: Shape,
) -> Result<Tensor<T>> {
    let (out_f, in_f) = (w.shape()[0], w.shape()[1]);
    // Not `x.numel() / in_f`: with 0 input features that would be 0 rows, and the bias
    // rows of `Linear(0, n)` would be lost.
    let rows = numel(&x.shape()[..x.rank() - 1]);
    let lhs = Operand {
        data: x.data(),
        rows,
        cols: in_f,
        transposed: false,
    };
    let rhs = Operand {
        data: w.data(),
        rows: in_f,
        cols: out_f,
        transposed: true,
    };
    let mut out = output_buffer("linear", &shape)?;
    let len = numel(&shape); // rows · out_f, checked by `output_buffer`
    // The bias is added as the product is written (no separate pass over the output; no
    // row visited when there is no output feature, though `rows` may then be enormous).
    gemm_uninit_bias(
        lhs,
        rhs,
        &mut out.spare_capacity_mut()[..len],
        b.map(Tensor::data),
    );
    // SAFETY: precondition of `set_len(len)`: `len ≤ capacity` (the buffer was allocated
    // for `shape`, of `len = rows · out_f` elements) and the first `len` are initialised:
    // `gemm_uninit_bias` wrote every element of its `rows × out_f` destination (the bias
    // alone, or zeros, when `in_f = 0`).
    unsafe { out.set_len(len) };
    Ok(Tensor::from_parts(out, shape))
}

impl<T: Element> Tensor<T> {
    /// Matrix product with PyTorch's `torch.matmul` rules:
    ///
    /// - `[m, k]·[k, n]` is `[m, n]`;
    /// - leading (batch) dimensions broadcast by NumPy's rules: `[2, 1, m, k]·[3, k, n]` is
    ///   `[2, 3, m, n]`, and a single matrix multiplies every matrix of a batch;
    /// - a 1-d operand is a vector: `[k]·[k, n]` is `[n]`, `[m, k]·[k]` is `[m]`, and
    ///   `[k]·[k]` is the dot product, 0-d.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let a = Tensor::<f32>::ones(&[2, 1, 4, 3]);
    /// let b = Tensor::<f32>::ones(&[3, 3, 5]);
    /// assert_eq!(a.matmul(&b).shape(), &[2, 3, 4, 5]);
    /// let v = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    /// assert_eq!(v.matmul(&v).item(), 14.0); // the dot product
    /// assert_eq!(Tensor::<f32>::ones(&[4, 3]).matmul(&v).to_vec(), vec![6.0; 4]);
    /// ```
    #[track_caller]
    pub fn try_matmul(&self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
        if self.rank() >= 2 && rhs.rank() >= 2 {
            return try_matmul_t(self, false, rhs, false); // no vector: no reshape
        }
        let (a, b, out) = vector_product_shapes(self.shape(), rhs.shape())?;
        let product = try_matmul_t(&self.with_shape(&a), false, &rhs.with_shape(&b), false)?;
        Ok(product.with_shape(&out))
    }
    /// [`Tensor::try_matmul`]; panics with its error.
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        or_panic(self.try_matmul(rhs))
    }
    /// `self · wᵀ + b` for `self` `[…, in]`, `w` `[out, in]`, `b` `[out]`: one GEMM with the
    /// bias accumulated in place.
    #[track_caller]
    pub fn try_linear(&self, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Result<Tensor<T>> {
        let shape = linear_shape(self.shape(), w.shape(), b.map(Tensor::shape))?;
        linear(self, w, b, shape)
    }
    /// [`Tensor::try_linear`]; panics with its error.
    #[track_caller]
    pub fn linear(&self, w: &Tensor<T>, b: Option<&Tensor<T>>) -> Tensor<T> {
        or_panic(self.try_linear(w, b))
    }
    /// `op(self) · op(rhs)` with optional transposes of the last two axes, as strides; both
    /// operands have rank 2 or more, and their batch dimensions broadcast.
    /// Shapes are checked; for hand-written backward passes (`x̄ = G·W` is
    /// `g.matmul_t(false, &w, false)`, `W̄ = Gᵀ·x` is `g.matmul_t(true, &x, false)`).
    #[track_caller]
    pub fn try_matmul_t(&self, ta: bool, rhs: &Tensor<T>, tb: bool) -> Result<Tensor<T>> {
        try_matmul_t(self, ta, rhs, tb)
    }
}

/// Records `op(a) · op(b)` (used by recorded backward).
#[track_caller]
pub(crate) fn var_matmul_t<'t, T: Element>(
    a: &Var<'t, T>,
    ta: bool,
    b: &Var<'t, T>,
    tb: bool,
) -> Var<'t, T> {
    or_panic(try_var_matmul_t(a, ta, b, tb))
}

/// Computes and records `op(a) · op(b)`.
#[track_caller]
fn try_var_matmul_t<'t, T: Element>(
    a: &Var<'t, T>,
    ta: bool,
    b: &Var<'t, T>,
    tb: bool,
) -> Result<Var<'t, T>> {
    let value = try_matmul_t(&a.value, ta, &b.value, tb)?;
    Ok(a.tape.record(&[a, b], value, || {
        Op::MatMul(Box::new(MatMulOp::MatMul {
            a: a.value.clone(),
            b: b.value.clone(),
            ta,
            tb,
        }))
    }))
}

impl<'t, T: Element> Var<'t, T> {
    /// Matrix product with PyTorch's `torch.matmul` rules (see [`Tensor::try_matmul`]):
    /// batch dimensions broadcast, and each gradient is summed back over the dimensions its
    /// operand was broadcast along; a 1-d operand is a vector (a reshape to a row or a
    /// column, recorded, then the product).
    #[track_caller]
    pub fn try_matmul(&self, rhs: &Var<'t, T>) -> Result<Var<'t, T>> {
        self.same_tape("matmul", &[rhs])?;
        if self.value.rank() >= 2 && rhs.value.rank() >= 2 {
            return try_var_matmul_t(self, false, rhs, false); // no vector: no reshape
        }
        let (a, b, out) = vector_product_shapes(self.shape(), rhs.shape())?;
        let as_matrix = |v: &Var<'t, T>, shape: &[usize]| {
            if v.shape() == shape {
                Ok(v.clone())
            } else {
                v.try_reshape(shape)
            }
        };
        let product = try_var_matmul_t(&as_matrix(self, &a)?, false, &as_matrix(rhs, &b)?, false)?;
        as_matrix(&product, &out)
    }
    /// [`Var::try_matmul`]; panics with its error.
    #[track_caller]
    pub fn matmul(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_matmul(rhs))
    }
    /// A fully connected layer in one node: `self · wᵀ + b`, `w` `[out, in]`, `b` `[out]`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.constant(Tensor::ones(&[4, 3]));
    /// let w = tape.var(Tensor::ones(&[2, 3]));
    /// let b = tape.var(Tensor::zeros(&[2]));
    /// let y = x.linear(&w, Some(&b));
    /// assert_eq!(y.shape(), &[4, 2]);
    /// assert_eq!(y.value().get(&[0, 0]), 3.0);
    /// ```
    #[track_caller]
    pub fn try_linear(&self, w: &Var<'t, T>, b: Option<&Var<'t, T>>) -> Result<Var<'t, T>> {
        self.same_tape("linear", &[w])?;
        if let Some(b) = b {
            self.same_tape("linear", &[b])?;
        }
        let shape = linear_shape(self.shape(), w.shape(), b.map(Var::shape))?;
        let value = linear(&self.value, &w.value, b.map(|b| &b.value), shape)?;
        let op = || {
            Op::MatMul(Box::new(MatMulOp::Linear {
                x: self.value.clone(),
                w: w.value.clone(),
            }))
        };
        Ok(match b {
            Some(b) => self.tape.record(&[self, w, b], value, op),
            None => self.tape.record(&[self, w], value, op),
        })
    }
    /// [`Var::try_linear`]; panics with its error.
    #[track_caller]
    pub fn linear(&self, w: &Var<'t, T>, b: Option<&Var<'t, T>>) -> Var<'t, T> {
        or_panic(self.try_linear(w, b))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
    }

    fn naive(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        Tensor::from_fn(&[m, n], |i| {
            (0..k).map(|p| a.get(&[i[0], p]) * b.get(&[p, i[1]])).sum()
        })
    }

    #[test]
    fn matmul_matches_a_naive_product_f32_and_f64() {
        let a = rand(&[5, 7], 1);
        let b = rand(&[7, 3], 2);
        assert!(a.matmul(&b).max_abs_diff(&naive(&a, &b)) < 1e-14);
        let c = a.cast::<f32>().matmul(&b.cast::<f32>());
        assert!(c.cast::<f64>().max_abs_diff(&naive(&a, &b)) < 1e-5);
        let batch = rand(&[2, 5, 7], 3);
        let out = batch.matmul(&b);
        assert_eq!(out.shape(), [2, 5, 3]);
        let second = Tensor::from_fn(&[5, 7], |i| batch.get(&[1, i[0], i[1]]));
        let want = naive(&second, &b);
        assert!((out.get(&[1, 4, 2]) - want.get(&[4, 2])).abs() < 1e-14);
    }

    #[test]
    fn linear_is_x_wt_plus_b() {
        let x = rand(&[4, 3], 4);
        let w = rand(&[2, 3], 5);
        let b = rand(&[2], 6);
        let want = &naive(&x, &Tensor::from_fn(&[3, 2], |i| w.get(&[i[1], i[0]]))) + &b;
        assert!(x.linear(&w, Some(&b)).max_abs_diff(&want) < 1e-14);
    }

    #[test]
    fn gradients_of_matmul() {
        check(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[3, 4], 7), rand(&[4, 2], 8)],
        );
        check(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[2, 3, 4], 9), rand(&[4, 2], 10)],
        );
        check(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[2, 3, 4], 11), rand(&[2, 4, 5], 12)],
        );
        check(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[3, 4], 13), rand(&[2, 4, 5], 14)],
        );
    }

    #[test]
    fn gradients_of_linear() {
        let (x, w, b) = (rand(&[5, 3], 15), rand(&[4, 3], 16), rand(&[4], 17));
        check(
            |v| v[0].linear(&v[1], Some(&v[2])).tanh(),
            [x.clone(), w.clone(), b],
        );
        check(|v| v[0].linear(&v[1], None).tanh(), [x, w.clone()]);
        check(
            |v| v[0].linear(&v[1], None).tanh(),
            [rand(&[2, 5, 3], 18), w],
        );
    }

    #[test]
    fn second_order_of_products() {
        check_second_order(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[2, 3], 19), rand(&[3, 2], 20)],
        );
        check_second_order(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[2, 2, 3], 21), rand(&[3, 2], 22)],
        );
        check_second_order(
            |v| v[0].matmul(&v[1]).tanh(),
            [rand(&[2, 2, 3], 23), rand(&[2, 3, 2], 24)],
        );
        check_second_order(
            |v| v[0].linear(&v[1], Some(&v[2])).tanh(),
            [rand(&[3, 2], 25), rand(&[2, 2], 26), rand(&[2], 27)],
        );
    }

    /// `torch.matmul` by its definition: a 1-d operand made a row (left) or a column
    /// (right), batch dimensions aligned from the right with size-1 dimensions repeated,
    /// each element a sum of products; then the vectors' dimensions removed.
    fn naive_matmul(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
        let a2 = if a.rank() == 1 {
            a.reshape(&[1, a.numel()])
        } else {
            a.clone()
        };
        let b2 = if b.rank() == 1 {
            b.reshape(&[b.numel(), 1])
        } else {
            b.clone()
        };
        let rank = a2.rank().max(b2.rank());
        let dim = |t: &Tensor<f64>, d: usize| {
            let lead = rank - t.rank();
            if d < lead { 1 } else { t.shape()[d - lead] }
        };
        let mut shape: Vec<usize> = (0..rank - 2)
            .map(|d| dim(&a2, d).max(dim(&b2, d)))
            .collect();
        let (m, k, n) = (dim(&a2, rank - 2), dim(&a2, rank - 1), dim(&b2, rank - 1));
        shape.extend([m, n]);
        let product = Tensor::from_fn(&shape, |i| {
            let at = |t: &Tensor<f64>, row: usize, col: usize| {
                let lead = rank - t.rank();
                let mut index: Vec<usize> = (0..t.rank() - 2)
                    .map(|d| if t.shape()[d] == 1 { 0 } else { i[d + lead] })
                    .collect();
                index.extend([row, col]);
                t.get(&index)
            };
            (0..k)
                .map(|p| at(&a2, i[rank - 2], p) * at(&b2, p, i[rank - 1]))
                .sum()
        });
        let mut out = shape.clone();
        if a.rank() == 1 {
            out.remove(rank - 2);
        }
        if b.rank() == 1 {
            out.pop();
        }
        product.reshape(&out)
    }

    /// Pairs of shapes `torch.matmul` accepts: broadcast batches on either side, vectors on
    /// either side, and the dot product.
    const BROADCAST_PAIRS: [(&[usize], &[usize]); 10] = [
        (&[2, 1, 2, 3], &[3, 3, 2]), // the issue's example: [2, 3, 2, 2]
        (&[1, 2, 3], &[4, 3, 5]),
        (&[3, 2, 3], &[1, 3, 4]),
        (&[2, 3], &[5, 3, 4]),
        (&[2, 1, 2, 3], &[1, 1, 3, 2]), // B's batch all 1s: the stacked product
        (&[4], &[4]),                   // dot
        (&[4], &[4, 3]),                // vector · matrix
        (&[2, 4], &[4]),                // matrix · vector
        (&[3], &[2, 3, 5]),             // vector · batch
        (&[2, 1, 3, 4], &[4]),          // batch · vector
    ];

    #[test]
    fn broadcast_batches_and_vectors_follow_torch_matmul_f32_and_f64() {
        for (i, (sa, sb)) in BROADCAST_PAIRS.into_iter().enumerate() {
            let (a, b) = (rand(sa, 40 + i as u64), rand(sb, 60 + i as u64));
            let want = naive_matmul(&a, &b);
            let got = a.matmul(&b);
            assert_eq!(got.shape(), want.shape(), "{sa:?} · {sb:?}");
            assert!(got.max_abs_diff(&want) < 1e-14, "{sa:?} · {sb:?}");
            let got32 = a.cast::<f32>().matmul(&b.cast::<f32>()).cast::<f64>();
            assert!(got32.max_abs_diff(&want) < 1e-5, "f32 {sa:?} · {sb:?}");
        }
        let (a, b) = (rand(&[2, 1, 2, 3], 1), rand(&[3, 3, 2], 2));
        assert_eq!(a.matmul(&b).shape(), [2, 3, 2, 2]);
        assert_eq!(rand(&[4], 3).matmul(&rand(&[4], 4)).shape(), [0usize; 0]);
    }

    #[test]
    fn gradients_reduce_over_broadcast_batches_and_vectors() {
        for (i, (sa, sb)) in BROADCAST_PAIRS.into_iter().enumerate() {
            let (a, b) = (rand(sa, 80 + i as u64), rand(sb, 100 + i as u64));
            check(|v| v[0].matmul(&v[1]).tanh(), [a, b]);
        }
        for (sa, sb) in [(&[1, 2, 3][..], &[2, 3, 2][..]), (&[3][..], &[2, 3, 2][..])] {
            check_second_order(
                |v| v[0].matmul(&v[1]).tanh(),
                [rand(sa, 120), rand(sb, 121)],
            );
        }
    }

    #[test]
    fn precondition_every_output_element_is_written_before_set_len() {
        // `matmul_t` and `linear` `set_len` their output after the GEMMs, so every element
        // must have been written — also when a dimension is 0. A NaN-filled block of the
        // output's size waits in the buffer cache each time: an element left unwritten
        // would show as NaN (or garbage) in the result.
        let cases: [(&[usize], &[usize]); 9] = [
            (&[32, 0], &[0, 32]),
            (&[2, 16, 0], &[0, 32]),    // a batch against one matrix, stacked
            (&[2, 16, 0], &[2, 0, 32]), // batch against batch, one GEMM each
            (&[16, 0], &[2, 0, 32]),    // one matrix against a batch
            (&[16, 3], &[3, 64]),
            (&[2, 16, 3], &[3, 32]),
            (&[2, 1, 16, 3], &[3, 3, 32]), // broadcast batches, one GEMM each
            (&[2, 16, 3], &[1, 3, 32]),    // B's batch all 1s: stacked
            (&[1, 16, 0], &[3, 0, 32]),    // broadcast, empty inner dimension
        ];
        for (sa, sb) in cases {
            let (a, b) = (rand(sa, 30), rand(sb, 31));
            let want = naive_matmul(&a, &b);
            crate::buffer_pool::give(vec![f64::NAN; want.numel()]);
            let got = a.matmul(&b);
            assert!(got.max_abs_diff(&want) < 1e-14, "{sa:?} · {sb:?}");
        }
        let (x, w, bias) = (rand(&[32, 0], 32), rand(&[32, 0], 33), rand(&[32], 34));
        crate::buffer_pool::give(vec![f64::NAN; 32 * 32]);
        assert_eq!(x.linear(&w, None), Tensor::zeros(&[32, 32]));
        crate::buffer_pool::give(vec![f64::NAN; 32 * 32]);
        let rows = x.linear(&w, Some(&bias));
        assert_eq!(rows, bias.broadcast_to(&[32, 32]));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let tape = Tape::<f64>::new();
        let a = tape.var(Tensor::zeros(&[2, 3]));
        let b = tape.var(Tensor::zeros(&[4, 5]));
        let err = a.try_matmul(&b).unwrap_err();
        assert!(matches!(
            err,
            Error::MatMul {
                reason: "inner dimensions differ",
                ..
            }
        ));
        assert!(err.to_string().contains("[2, 3] by [4, 5]"));
        let v = tape.var(Tensor::zeros(&[4]));
        let err = a.try_matmul(&v).unwrap_err(); // [2, 3] · [4]: 3 ≠ 4
        assert!(
            err.to_string()
                .contains("[2, 3] by [4]: inner dimensions differ"),
            "{err}"
        );
        let err = v.try_matmul(&tape.var(Tensor::zeros(&[3]))).unwrap_err();
        assert!(
            err.to_string()
                .contains("[4] by [3]: inner dimensions differ"),
            "{err}"
        );
        let scalar = tape.var(Tensor::scalar(1.0));
        let err = scalar.try_matmul(&v).unwrap_err();
        assert!(err.to_string().contains("at least one dimension"), "{err}");
        let batch1 = tape.var(Tensor::zeros(&[2, 2, 3]));
        let batch2 = tape.var(Tensor::zeros(&[3, 3, 2]));
        let err = batch1.try_matmul(&batch2).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("[2, 2, 3] by [3, 3, 2]: batch dimensions do not broadcast"),
            "{msg}"
        );
        assert!(msg.contains("matmul.rs"), "{msg}");
        assert_eq!(tape.len(), 7, "nothing recorded for a refused product");
        let w = tape.var(Tensor::zeros(&[4, 2]));
        assert!(matches!(
            a.try_linear(&w, None),
            Err(Error::MatMul { op: "linear", .. })
        ));
        let w = tape.var(Tensor::zeros(&[4, 3]));
        let bias = tape.var(Tensor::zeros(&[3]));
        assert!(matches!(
            a.try_linear(&w, Some(&bias)),
            Err(Error::ShapeMismatch { op: "linear", .. })
        ));
    }
}
