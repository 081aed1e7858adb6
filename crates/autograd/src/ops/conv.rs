//! 2-d convolution and pooling on `[N, C, H, W]` tensors.
//!
//! | op | forward | backward | saves |
//! |----|---------|----------|-------|
//! | conv2d | y = W ⋆ x + b: im2col, then `W [O, C·kh·kw] · cols` per image | x̄ = conv2d_input_grad(G, W), W̄ = conv2d_weight_grad(G, x), b̄ = Σ G over N, H, W | x, W |
//! | conv2d_input_grad | `Wᵀ · Gₙ`, then col2im (a transposed convolution) | Ḡ = conv2d(U, W), W̄ = conv2d_weight_grad(G, U) | G, W |
//! | conv2d_weight_grad | `Σₙ Gₙ · colsₙᵀ` | Ḡ = conv2d(x, V), x̄ = conv2d_input_grad(G, V) | G, x |
//! | max_pool2d | max over each window | g to the window's (first) arg-max | arg-max indices |
//! | avg_pool2d | composed: conv2d of each channel with a constant kernel 1/(kh·kw) | — | — |
//! | global_avg_pool2d | composed: mean over H and W | — | — |
//!
//! The convolution is bilinear in (input, weight), and so are its two adjoints: the
//! backward of each of the three ops is written with the other two. That closes the set
//! under differentiation, so convolutions are differentiable to any order (recorded
//! backward records these ops like any other).
//!
//! A 1×1 kernel with stride 1 and no padding (a projection shortcut) skips im2col: each
//! image `[C, H·W]` is already the column matrix, and the op is one GEMM per image.
//! Transposes (`Wᵀ`, `colsᵀ`) are strides handed to the GEMM, never copies.
//!
//! Threads: a large convolution (≥ 2²⁰ multiply-adds) over a batch is split into contiguous
//! ranges of images, one per thread ([`crate::set_num_threads`]), each doing its own im2col
//! and single-threaded GEMMs; the weight gradient sums one partial per thread. A single
//! image uses the GEMM's own threads instead. Results do not depend on the split, except
//! for the order of the weight gradient's sum over images.

use super::{Algebra, Op};
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::conv::{Conv2dGeometry, col2im_add, im2col, out_len, padded_len};
use crate::kernels::matmul::{Operand, gemm_threads, num_threads};
use crate::shape::{Shape, checked_len, numel};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};
use std::sync::Arc;

/// A recorded convolution or pooling.
#[derive(Clone)]
pub(crate) enum ConvOp<T> {
    /// `x ⋆ w (+ bias)`; the bias is not needed for backward.
    Conv2d {
        x: Tensor<T>,
        w: Tensor<T>,
        geom: Conv2dGeometry,
    },
    /// The adjoint of `conv2d` in its input: `G ↦ ∂⟨G, x ⋆ w⟩/∂x`, from `g` and `w`.
    InputGrad {
        g: Tensor<T>,
        w: Tensor<T>,
        geom: Conv2dGeometry,
    },
    /// The adjoint of `conv2d` in its weight: `G ↦ ∂⟨G, x ⋆ w⟩/∂w`, from `g` and `x`.
    WeightGrad {
        g: Tensor<T>,
        x: Tensor<T>,
        geom: Conv2dGeometry,
    },
    /// Max pooling of an input of shape `input`; `argmax` holds, for each output element,
    /// the row-major position of the winning input element.
    MaxPool2d { input: Shape, argmax: Arc<[usize]> },
}

impl<T: Element> ConvOp<T> {
    pub fn name(&self) -> &'static str {
        match self {
            ConvOp::Conv2d { .. } => "conv2d",
            ConvOp::InputGrad { .. } => "conv2d_input_grad",
            ConvOp::WeightGrad { .. } => "conv2d_weight_grad",
            ConvOp::MaxPool2d { .. } => "max_pool2d",
        }
    }

    pub fn saved_bytes(&self) -> usize {
        match self {
            ConvOp::Conv2d { x: a, w: b, .. }
            | ConvOp::InputGrad { g: a, w: b, .. }
            | ConvOp::WeightGrad { g: a, x: b, .. } => a.bytes() + b.bytes(),
            ConvOp::MaxPool2d { argmax, .. } => argmax.len() * std::mem::size_of::<usize>(),
        }
    }

    pub fn vjp<L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        match self {
            ConvOp::Conv2d { x, w, geom } => {
                if cx.needs(0) {
                    let w = cx.input(1, w);
                    cx.send(0, g.conv_input_grad(&w, geom));
                }
                if cx.needs(1) {
                    let x = cx.input(0, x);
                    cx.send(1, g.conv_weight_grad(&x, geom));
                }
                if cx.needs(2) {
                    let b = g.sum_axes_keepdim(&[0, 2, 3]);
                    cx.send(2, b.reshape(&[geom.out_channels]));
                }
            }
            // y = input_grad(G, W) is bilinear, ⟨U, y⟩ = ⟨conv2d(U, W), G⟩ = ⟨weight_grad(G, U), W⟩.
            ConvOp::InputGrad { g: g0, w, geom } => {
                if cx.needs(0) {
                    let w = cx.input(1, w);
                    cx.send(0, g.conv_forward(&w, geom));
                }
                if cx.needs(1) {
                    let g0 = cx.input(0, g0);
                    cx.send(1, g0.conv_weight_grad(g, geom));
                }
            }
            // y = weight_grad(G, x), ⟨V, y⟩ = ⟨conv2d(x, V), G⟩ = ⟨input_grad(G, V), x⟩.
            ConvOp::WeightGrad { g: g0, x, geom } => {
                if cx.needs(0) {
                    let x = cx.input(1, x);
                    cx.send(0, x.conv_forward(g, geom));
                }
                if cx.needs(1) {
                    let g0 = cx.input(0, g0);
                    cx.send(1, g0.conv_input_grad(g, geom));
                }
            }
            ConvOp::MaxPool2d { input, argmax } => {
                let flat = g.reshape(&[argmax.len()]);
                cx.send(0, flat.index_add(0, argmax, numel(input)).reshape(input));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shape checks
// ---------------------------------------------------------------------------------------

#[track_caller]
fn check_rank4(op: &'static str, shape: &[usize], expected: &'static str) -> Result<()> {
    if shape.len() == 4 {
        Ok(())
    } else {
        Err(Error::Rank {
            op,
            expected,
            got: shape.into(),
            at: Caller::here(),
        })
    }
}

#[track_caller]
fn invalid(op: &'static str, reason: String) -> Error {
    Error::InvalidArgument {
        op,
        reason,
        at: Caller::here(),
    }
}

/// Checks stride, kernel and padding against an input `[…, H, W]`; returns `(OH, OW)`.
#[track_caller]
fn window_output(
    op: &'static str,
    input: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<(usize, usize)> {
    if stride.0 == 0 || stride.1 == 0 {
        return Err(invalid(
            op,
            format!("stride {stride:?} must be at least 1 along both axes (input {input:?})"),
        ));
    }
    if kernel.0 == 0 || kernel.1 == 0 {
        return Err(invalid(
            op,
            format!("kernel {kernel:?} must be at least 1×1 (input {input:?})"),
        ));
    }
    let (h, w) = (input[2], input[3]);
    if padded_len(h, padding.0).is_none() || padded_len(w, padding.1).is_none() {
        return Err(invalid(
            op,
            format!("padding {padding:?} makes the input {input:?} too large to address"),
        ));
    }
    match (
        out_len(h, kernel.0, stride.0, padding.0),
        out_len(w, kernel.1, stride.1, padding.1),
    ) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(invalid(
            op,
            format!(
                "kernel {}×{} is larger than the input {input:?} padded by {padding:?}",
                kernel.0, kernel.1
            ),
        )),
    }
}

/// Refuses an input with no rows or no columns (PyTorch's rule: only the batch and the
/// channels may be empty).
#[track_caller]
fn check_spatial(op: &'static str, x: &[usize]) -> Result<()> {
    if x[2] == 0 || x[3] == 0 {
        return Err(invalid(
            op,
            format!("the input {x:?} has no rows or no columns (only N and C may be 0)"),
        ));
    }
    Ok(())
}

/// Checks, with checked arithmetic, that every buffer of a convolution can be addressed:
/// input, weight, output, and one image's column matrix `[C·kh·kw, OH·OW]`, whose size no
/// tensor bounds (a large kernel with a large padding). Then no product of the geometry's
/// sizes computed by the kernels overflows.
#[track_caller]
fn check_conv_sizes<T>(op: &'static str, g: &Conv2dGeometry) -> Result<()> {
    checked_len::<T>(op, &g.input_shape())?;
    checked_len::<T>(op, &g.weight_shape())?;
    checked_len::<T>(op, &g.output_shape())?;
    checked_len::<T>(op, &cols_shape(g))?;
    Ok(())
}

/// The shape of one image's column matrix, `[C·kh·kw, OH·OW]` (for a geometry whose
/// weight and output shapes are checked, so that both products fit).
fn cols_shape(g: &Conv2dGeometry) -> [usize; 2] {
    [g.col_rows(), g.out_positions()]
}

/// Checks a convolution of `x` `[N, C, H, W]` by `w` `[O, C, kh, kw]` with elements of `T`.
///
/// Zero sizes follow PyTorch: an empty batch gives an empty output, zero input channels
/// give the bias (zeros without one); no rows or columns, or no output channels, are
/// errors.
#[track_caller]
fn conv2d_geometry<T>(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Conv2dGeometry> {
    check_rank4(op, x, "an input of rank 4 [N, C, H, W]")?;
    check_rank4(op, w, "a weight of rank 4 [O, C, kh, kw]")?;
    if x[1] != w[1] {
        return Err(invalid(
            op,
            format!(
                "the input {x:?} has {} channels but the weight {w:?} expects {}",
                x[1], w[1]
            ),
        ));
    }
    if w[0] == 0 {
        return Err(invalid(
            op,
            format!("the weight {w:?} has no output channels"),
        ));
    }
    check_spatial(op, x)?;
    let kernel = (w[2], w[3]);
    let out_hw = window_output(op, x, kernel, stride, padding)?;
    let geom = Conv2dGeometry {
        batch: x[0],
        in_channels: x[1],
        in_hw: (x[2], x[3]),
        out_channels: w[0],
        kernel,
        stride,
        padding,
        out_hw,
    };
    check_conv_sizes::<T>(op, &geom)?;
    Ok(geom)
}

#[track_caller]
fn check_bias(op: &'static str, bias: Option<&[usize]>, out_channels: usize) -> Result<()> {
    match bias {
        Some(b) if b != [out_channels] => Err(Error::ShapeMismatch {
            op,
            expected: Box::new([out_channels]),
            got: b.into(),
            at: Caller::here(),
        }),
        _ => Ok(()),
    }
}

/// Checks that an output gradient `g` has the shape the convolution produces.
#[track_caller]
fn check_output(op: &'static str, g: &[usize], geom: &Conv2dGeometry) -> Result<()> {
    if g == geom.output_shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: geom.output_shape().as_slice().into(),
            got: g.into(),
            at: Caller::here(),
        })
    }
}

/// The geometry of a pooling window over `x` `[N, C, H, W]`, as a per-channel convolution
/// (`out_channels = C`). An empty batch gives an empty output; no channels, rows or
/// columns are errors (PyTorch's rules).
#[track_caller]
fn pool_geometry<T>(
    op: &'static str,
    x: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Conv2dGeometry> {
    check_rank4(op, x, "an input of rank 4 [N, C, H, W]")?;
    if x[1] == 0 || x[2] == 0 || x[3] == 0 {
        return Err(invalid(
            op,
            format!("the input {x:?} is empty (only the batch N may be 0)"),
        ));
    }
    if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
        return Err(invalid(
            op,
            format!("padding {padding:?} must be at most half the kernel {kernel:?} (input {x:?})"),
        ));
    }
    let out_hw = window_output(op, x, kernel, stride, padding)?;
    let geom = Conv2dGeometry {
        batch: x[0],
        in_channels: x[1],
        in_hw: (x[2], x[3]),
        out_channels: x[1],
        kernel,
        stride,
        padding,
        out_hw,
    };
    checked_len::<T>(op, &geom.output_shape())?;
    Ok(geom)
}

// ---------------------------------------------------------------------------------------
// Kernels on plain tensors (shapes already checked)
// ---------------------------------------------------------------------------------------

/// Convolutions with at least this many multiply-adds are spread over the batch.
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// How a convolution runs: on `workers` threads, each taking a contiguous range of images
/// and running its GEMMs on one thread; or (one worker) image after image, each GEMM
/// using every thread. Splitting the batch also spreads im2col and col2im, and keeps each
/// GEMM on the shapes it runs fastest on.
#[derive(Clone, Copy)]
struct BatchPlan {
    workers: usize,
    gemm_threads: usize,
    images_per_worker: usize,
}

impl BatchPlan {
    /// Every thread the kernels may use, for convolutions large enough to be worth it.
    fn new(geom: &Conv2dGeometry) -> Self {
        let work = geom
            .batch
            .saturating_mul(geom.out_channels)
            .saturating_mul(geom.col_rows())
            .saturating_mul(geom.out_positions());
        let threads = num_threads();
        let workers = if work >= PARALLEL_MIN_WORK {
            threads
        } else {
            1
        };
        Self::with_workers(geom, workers, threads)
    }

    /// Up to `workers` workers (at most one per image); `threads` for the GEMMs when the
    /// batch is not split.
    fn with_workers(geom: &Conv2dGeometry, workers: usize, threads: usize) -> Self {
        let workers = workers.min(geom.batch).max(1);
        let images_per_worker = geom.batch.div_ceil(workers).max(1);
        BatchPlan {
            // Recount: ⌈N / per-worker⌉ chunks can be fewer than the threads asked for.
            workers: geom.batch.div_ceil(images_per_worker).max(1),
            gemm_threads: if workers > 1 { 1 } else { threads },
            images_per_worker,
        }
    }

    /// One column-matrix buffer per worker (none needed for a pointwise convolution),
    /// allocated before any work starts: a column matrix too large for memory is an error
    /// naming `op`, not an abort in a worker thread.
    #[track_caller]
    fn cols_buffers<T: Element>(
        &self,
        op: &'static str,
        geom: &Conv2dGeometry,
    ) -> Result<Vec<Vec<T>>> {
        let shape: &[usize] = if geom.is_pointwise() {
            &[0]
        } else {
            &cols_shape(geom)
        };
        let mut buffers = Vec::with_capacity(self.workers);
        for _ in 0..self.workers {
            // (A loop, not a closure: `output_buffer` names the caller's line.)
            let mut cols = output_buffer(op, shape)?;
            cols.resize(numel(shape), T::zero());
            buffers.push(cols);
        }
        Ok(buffers)
    }

    /// Calls `f(first image, chunk, scratch)` for each worker's images, its chunk of `out`
    /// (`per_worker` elements each) and its own scratch buffer (`scratch[worker]`), in
    /// parallel when there are several workers.
    fn run<T: Send>(
        &self,
        out: &mut [T],
        per_worker: usize,
        scratch: &mut [Vec<T>],
        f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
    ) {
        debug_assert_eq!(scratch.len(), self.workers);
        let Some((first_scratch, other_scratch)) = scratch.split_first_mut() else {
            return;
        };
        if self.workers <= 1 || per_worker == 0 {
            f(0, out, first_scratch);
            return;
        }
        std::thread::scope(|s| {
            let mut chunks = out
                .chunks_mut(per_worker)
                .enumerate()
                .zip(std::iter::once(first_scratch).chain(other_scratch.iter_mut()));
            let first = chunks.next();
            for ((i, chunk), cols) in chunks {
                let f = &f;
                s.spawn(move || f(i * self.images_per_worker, chunk, cols));
            }
            if let Some(((_, chunk), cols)) = first {
                f(0, chunk, cols); // the calling thread takes the first share
            }
        });
    }
}

/// `W [O, C·kh·kw]` as the left operand of the per-image product.
fn weight_operand<'a, T>(w: &'a [T], geom: &Conv2dGeometry, transposed: bool) -> Operand<'a, T> {
    let (o, k) = (geom.out_channels, geom.col_rows());
    if transposed {
        Operand {
            data: w,
            rows: k,
            cols: o,
            transposed: true,
        }
    } else {
        Operand {
            data: w,
            rows: o,
            cols: k,
            transposed: false,
        }
    }
}

/// The column matrix of image `n`: the image itself for a pointwise convolution, else
/// im2col into `cols`.
fn columns_of<'a, T: Element>(
    x: &'a [T],
    n: usize,
    geom: &Conv2dGeometry,
    cols: &'a mut [T],
) -> &'a [T] {
    let image = &x[n * geom.image_len()..(n + 1) * geom.image_len()];
    if geom.is_pointwise() {
        image
    } else {
        im2col(image, geom, cols);
        cols
    }
}

/// Output gradient of image `n`, `Gₙ [O, OH·OW]`, as a GEMM operand.
fn output_operand<'a, T>(g: &'a [T], n: usize, geom: &Conv2dGeometry) -> Operand<'a, T> {
    let (o, p) = (geom.out_channels, geom.out_positions());
    Operand {
        data: &g[n * o * p..(n + 1) * o * p],
        rows: o,
        cols: p,
        transposed: false,
    }
}

/// `y = x ⋆ w (+ b)`: per image, `W · im2col(xₙ)` with the bias accumulated in place.
#[track_caller]
pub(crate) fn conv2d<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geom: &Conv2dGeometry,
) -> Result<Tensor<T>> {
    conv2d_planned(x, w, bias, geom, BatchPlan::new(geom))
}

#[track_caller]
fn conv2d_planned<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    bias: Option<&Tensor<T>>,
    geom: &Conv2dGeometry,
    plan: BatchPlan,
) -> Result<Tensor<T>> {
    let op = "conv2d";
    let (o, k, p) = (geom.out_channels, geom.col_rows(), geom.out_positions());
    let shape = geom.output_shape();
    let mut out = output_buffer(op, &shape)?;
    out.resize(numel(&shape), T::zero());
    if !out.is_empty() {
        let mut cols = plan.cols_buffers(op, geom)?;
        let per_worker = plan.images_per_worker * o * p;
        plan.run(&mut out, per_worker, &mut cols, |first, chunk, cols| {
            for (n, y) in (first..).zip(chunk.chunks_exact_mut(o * p)) {
                let rhs = Operand {
                    data: columns_of(x.data(), n, geom, cols),
                    rows: k,
                    cols: p,
                    transposed: false,
                };
                if let Some(b) = bias {
                    for (row, &b) in y.chunks_exact_mut(p).zip(b.data()) {
                        row.fill(b);
                    }
                }
                let lhs = weight_operand(w.data(), geom, false);
                gemm_threads(lhs, rhs, y, bias.is_some(), plan.gemm_threads);
            }
        });
    }
    Ok(Tensor::from_parts(out, Shape::from_slice(&shape)))
}

/// `x̄ₙ = col2im(Wᵀ · Gₙ)`: the gradient of `⟨G, x ⋆ w⟩` with respect to `x`.
#[track_caller]
pub(crate) fn conv2d_input_grad<T: Element>(
    g: &Tensor<T>,
    w: &Tensor<T>,
    geom: &Conv2dGeometry,
) -> Result<Tensor<T>> {
    conv2d_input_grad_planned(g, w, geom, BatchPlan::new(geom))
}

#[track_caller]
fn conv2d_input_grad_planned<T: Element>(
    g: &Tensor<T>,
    w: &Tensor<T>,
    geom: &Conv2dGeometry,
    plan: BatchPlan,
) -> Result<Tensor<T>> {
    let op = "conv2d_input_grad";
    let len = geom.image_len();
    let shape = geom.input_shape();
    let mut dx = output_buffer(op, &shape)?;
    dx.resize(numel(&shape), T::zero());
    if !dx.is_empty() {
        let mut cols = plan.cols_buffers(op, geom)?;
        let per_worker = plan.images_per_worker * len;
        plan.run(&mut dx, per_worker, &mut cols, |first, chunk, cols| {
            for (n, dxn) in (first..).zip(chunk.chunks_exact_mut(len)) {
                let (wt, gn) = (
                    weight_operand(w.data(), geom, true),
                    output_operand(g.data(), n, geom),
                );
                if geom.is_pointwise() {
                    gemm_threads(wt, gn, dxn, false, plan.gemm_threads);
                } else {
                    gemm_threads(wt, gn, cols, false, plan.gemm_threads);
                    col2im_add(cols, geom, dxn);
                }
            }
        });
    }
    Ok(Tensor::from_parts(dx, Shape::from_slice(&shape)))
}

/// `W̄ = Σₙ Gₙ · im2col(xₙ)ᵀ`: the gradient of `⟨G, x ⋆ w⟩` with respect to `w`. With
/// several workers each sums its images into its own partial `W̄`, and the partials are
/// added at the end.
#[track_caller]
pub(crate) fn conv2d_weight_grad<T: Element>(
    g: &Tensor<T>,
    x: &Tensor<T>,
    geom: &Conv2dGeometry,
) -> Result<Tensor<T>> {
    conv2d_weight_grad_planned(g, x, geom, BatchPlan::new(geom))
}

#[track_caller]
fn conv2d_weight_grad_planned<T: Element>(
    g: &Tensor<T>,
    x: &Tensor<T>,
    geom: &Conv2dGeometry,
    plan: BatchPlan,
) -> Result<Tensor<T>> {
    let op = "conv2d_weight_grad";
    let (o, k, p) = (geom.out_channels, geom.col_rows(), geom.out_positions());
    let shape = geom.weight_shape();
    // One partial W̄ per worker: `[workers, O, C·kh·kw]`.
    let partials_shape = [plan.workers, o, k];
    let mut partials = output_buffer(op, &partials_shape)?;
    partials.resize(numel(&partials_shape), T::zero());
    if !partials.is_empty() {
        let mut cols = plan.cols_buffers(op, geom)?;
        plan.run(&mut partials, o * k, &mut cols, |first, dw, cols| {
            let last = (first + plan.images_per_worker).min(geom.batch);
            for n in first..last {
                let cols_t = Operand {
                    data: columns_of(x.data(), n, geom, cols),
                    rows: p,
                    cols: k,
                    transposed: true,
                };
                let gn = output_operand(g.data(), n, geom);
                gemm_threads(gn, cols_t, dw, n > first, plan.gemm_threads);
            }
        });
    }
    if o * k > 0 {
        let (dw, rest) = partials.split_at_mut(o * k);
        for part in rest.chunks_exact(o * k) {
            dw.iter_mut().zip(part).for_each(|(d, &x)| *d += x);
        }
    }
    partials.truncate(o * k);
    Ok(Tensor::from_parts(partials, Shape::from_slice(&shape)))
}

/// Max over each window, and the row-major input position of each maximum. A NaN in a
/// window is its maximum, at the window's last NaN (PyTorch's CPU kernel updates on every
/// NaN it meets); otherwise the first of equal maxima.
#[track_caller]
fn max_pool2d<T: Element>(
    x: &Tensor<T>,
    geom: &Conv2dGeometry,
) -> Result<(Tensor<T>, Arc<[usize]>)> {
    let ((h, w), (oh, ow)) = (geom.in_hw, geom.out_hw);
    let ((kh, kw), (sh, sw), (ph, pw)) = (geom.kernel, geom.stride, geom.padding);
    let planes = geom.batch * geom.in_channels;
    let shape = geom.output_shape();
    let mut values = output_buffer("max_pool2d", &shape)?;
    let mut argmax = output_buffer("max_pool2d", &shape)?;
    // The window of output `o` along an axis, clipped to the input: never empty, since the
    // padding is at most half the kernel and the input is not empty (`pool_geometry`).
    // `o·s + k ≤ len + 2·pad` fits: `o < (len + 2·pad − k)/s + 1`.
    let span = |o: usize, s: usize, p: usize, k: usize, len: usize| {
        let start = (o * s).saturating_sub(p);
        (start, (o * s + k).saturating_sub(p).min(len))
    };
    for plane in 0..planes {
        let base = plane * h * w;
        let data = &x.data()[base..base + h * w];
        for i in 0..oh {
            let (r0, r1) = span(i, sh, ph, kh, h);
            for j in 0..ow {
                let (c0, c1) = span(j, sw, pw, kw, w);
                // Scanned backwards: `>=` then ends on the first of equal maxima, and the
                // first NaN met is the window's last (PyTorch's choices, at the cost of
                // one comparison per element).
                let last = (r1 - 1) * w + c1 - 1;
                let (mut best, mut at) = (data[last], last);
                for r in (r0..r1).rev() {
                    for c in (c0..c1).rev() {
                        let v = data[r * w + c];
                        if v >= best || (v.is_nan() && !best.is_nan()) {
                            best = v;
                            at = r * w + c;
                        }
                    }
                }
                values.push(best);
                argmax.push(base + at);
            }
        }
    }
    let shape = Shape::from_slice(&shape);
    Ok((Tensor::from_parts(values, shape), argmax.into()))
}

/// The constant kernel `1/(kh·kw)` that makes a per-channel convolution an average
/// (allocated for `op`: a kernel too large for memory is an error).
#[track_caller]
fn averaging_kernel<T: Element>(op: &'static str, kernel: (usize, usize)) -> Result<Tensor<T>> {
    let n = T::of(kernel.0 as f64 * kernel.1 as f64);
    Tensor::filled(op, &[1, 1, kernel.0, kernel.1], T::one() / n)
}

/// Average pooling seen as a convolution of `N·C` one-channel images by
/// [`averaging_kernel`]: the geometry of that convolution, checked like a convolution's
/// (its kernel and column matrix are real buffers).
#[track_caller]
fn single_channel<T>(op: &'static str, geom: &Conv2dGeometry) -> Result<Conv2dGeometry> {
    let one = Conv2dGeometry {
        batch: geom.batch * geom.in_channels,
        in_channels: 1,
        out_channels: 1,
        ..*geom
    };
    check_conv_sizes::<T>(op, &one)?;
    Ok(one)
}

impl<T: Element> Tensor<T> {
    /// 2-d convolution (cross-correlation, as in every deep-learning library): `self`
    /// `[N, C, H, W]`, `w` `[O, C, kh, kw]`, optional `bias` `[O]`, zero padding on each
    /// side; the output is `[N, O, OH, OW]` with `OH = (H + 2·ph − kh)/sh + 1`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::<f64>::ones(&[1, 1, 3, 3]);
    /// let w = Tensor::ones(&[1, 1, 2, 2]);
    /// let y = x.conv2d(&w, None, (1, 1), (0, 0));
    /// assert_eq!(y.shape(), &[1, 1, 2, 2]);
    /// assert_eq!(y.to_vec(), vec![4.0; 4]);
    /// ```
    #[track_caller]
    pub fn try_conv2d(
        &self,
        w: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor<T>> {
        let geom = conv2d_geometry::<T>("conv2d", self.shape(), w.shape(), stride, padding)?;
        check_bias("conv2d", bias.map(Tensor::shape), geom.out_channels)?;
        conv2d(self, w, bias, &geom)
    }
    /// [`Tensor::try_conv2d`]; panics with its error.
    #[track_caller]
    pub fn conv2d(
        &self,
        w: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        or_panic(self.try_conv2d(w, bias, stride, padding))
    }

    /// For hand-written backward passes: the gradient of `⟨self, x ⋆ w⟩` with respect to
    /// the input `x` `[N, C, H, W]` (a transposed convolution), where `self` is the output
    /// gradient `[N, O, OH, OW]` and `input_hw = (H, W)`.
    #[track_caller]
    pub fn try_conv2d_input_grad(
        &self,
        w: &Tensor<T>,
        input_hw: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor<T>> {
        let op = "conv2d_input_grad";
        check_rank4(
            op,
            self.shape(),
            "an output gradient of rank 4 [N, O, OH, OW]",
        )?;
        check_rank4(op, w.shape(), "a weight of rank 4 [O, C, kh, kw]")?;
        let x = [self.shape()[0], w.shape()[1], input_hw.0, input_hw.1];
        let geom = conv2d_geometry::<T>(op, &x, w.shape(), stride, padding)?;
        check_output(op, self.shape(), &geom)?;
        conv2d_input_grad(self, w, &geom)
    }
    /// [`Tensor::try_conv2d_input_grad`]; panics with its error.
    #[track_caller]
    pub fn conv2d_input_grad(
        &self,
        w: &Tensor<T>,
        input_hw: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        or_panic(self.try_conv2d_input_grad(w, input_hw, stride, padding))
    }

    /// For hand-written backward passes: the gradient of `⟨self, x ⋆ w⟩` with respect to
    /// the weight `w` `[O, C, kh, kw]`, where `self` is the output gradient
    /// `[N, O, OH, OW]` and `kernel = (kh, kw)`.
    #[track_caller]
    pub fn try_conv2d_weight_grad(
        &self,
        x: &Tensor<T>,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor<T>> {
        let op = "conv2d_weight_grad";
        check_rank4(
            op,
            self.shape(),
            "an output gradient of rank 4 [N, O, OH, OW]",
        )?;
        check_rank4(op, x.shape(), "an input of rank 4 [N, C, H, W]")?;
        let w = [self.shape()[1], x.shape()[1], kernel.0, kernel.1];
        let geom = conv2d_geometry::<T>(op, x.shape(), &w, stride, padding)?;
        check_output(op, self.shape(), &geom)?;
        conv2d_weight_grad(self, x, &geom)
    }
    /// [`Tensor::try_conv2d_weight_grad`]; panics with its error.
    #[track_caller]
    pub fn conv2d_weight_grad(
        &self,
        x: &Tensor<T>,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        or_panic(self.try_conv2d_weight_grad(x, kernel, stride, padding))
    }

    /// Max pooling of `[N, C, H, W]` over `kernel` windows moved by `stride`; `padding`
    /// (at most half the kernel) is never chosen as a maximum.
    #[track_caller]
    pub fn try_max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor<T>> {
        let geom = pool_geometry::<T>("max_pool2d", self.shape(), kernel, stride, padding)?;
        Ok(max_pool2d(self, &geom)?.0)
    }
    /// [`Tensor::try_max_pool2d`]; panics with its error.
    #[track_caller]
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        or_panic(self.try_max_pool2d(kernel, stride, padding))
    }

    /// Average pooling of `[N, C, H, W]` over `kernel` windows moved by `stride`; zero
    /// `padding` (at most half the kernel) counts in the average, as PyTorch's default.
    #[track_caller]
    pub fn try_avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor<T>> {
        let op = "avg_pool2d";
        let geom = pool_geometry::<T>(op, self.shape(), kernel, stride, padding)?;
        let one = single_channel::<T>(op, &geom)?;
        let x = self.with_shape(&one.input_shape());
        let y = conv2d(&x, &averaging_kernel(op, kernel)?, None, &one)?;
        Ok(y.with_shape(&geom.output_shape()))
    }
    /// [`Tensor::try_avg_pool2d`]; panics with its error.
    #[track_caller]
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Tensor<T> {
        or_panic(self.try_avg_pool2d(kernel, stride, padding))
    }

    /// The mean of each channel: `[N, C, H, W] → [N, C]`.
    #[track_caller]
    pub fn try_global_avg_pool2d(&self) -> Result<Tensor<T>> {
        check_rank4(
            "global_avg_pool2d",
            self.shape(),
            "an input of rank 4 [N, C, H, W]",
        )?;
        let n = T::of((self.shape()[2] * self.shape()[3]) as f64);
        Ok(self.sum_axes(&[2, 3], false).map(|s| s / n))
    }
    /// [`Tensor::try_global_avg_pool2d`]; panics with its error.
    #[track_caller]
    pub fn global_avg_pool2d(&self) -> Tensor<T> {
        or_panic(self.try_global_avg_pool2d())
    }
}

/// Records `x ⋆ w (+ bias)` for a checked geometry (in a backward rule).
#[track_caller]
pub(crate) fn var_conv2d<'t, T: Element>(
    x: &Var<'t, T>,
    w: &Var<'t, T>,
    bias: Option<&Var<'t, T>>,
    geom: &Conv2dGeometry,
) -> Var<'t, T> {
    or_panic(try_var_conv2d(x, w, bias, geom))
}

/// Computes and records `x ⋆ w (+ bias)` for a checked geometry.
#[track_caller]
fn try_var_conv2d<'t, T: Element>(
    x: &Var<'t, T>,
    w: &Var<'t, T>,
    bias: Option<&Var<'t, T>>,
    geom: &Conv2dGeometry,
) -> Result<Var<'t, T>> {
    let value = conv2d(&x.value, &w.value, bias.map(|b| &b.value), geom)?;
    let op = || {
        Op::Conv(Box::new(ConvOp::Conv2d {
            x: x.value.clone(),
            w: w.value.clone(),
            geom: *geom,
        }))
    };
    Ok(match bias {
        Some(b) => x.tape.record(&[x, w, b], value, op),
        None => x.tape.record(&[x, w], value, op),
    })
}

/// Records the input gradient of a convolution (used by recorded backward).
#[track_caller]
pub(crate) fn var_conv2d_input_grad<'t, T: Element>(
    g: &Var<'t, T>,
    w: &Var<'t, T>,
    geom: &Conv2dGeometry,
) -> Var<'t, T> {
    let value = or_panic(conv2d_input_grad(&g.value, &w.value, geom));
    g.tape.record(&[g, w], value, || {
        Op::Conv(Box::new(ConvOp::InputGrad {
            g: g.value.clone(),
            w: w.value.clone(),
            geom: *geom,
        }))
    })
}

/// Records the weight gradient of a convolution (used by recorded backward).
#[track_caller]
pub(crate) fn var_conv2d_weight_grad<'t, T: Element>(
    g: &Var<'t, T>,
    x: &Var<'t, T>,
    geom: &Conv2dGeometry,
) -> Var<'t, T> {
    let value = or_panic(conv2d_weight_grad(&g.value, &x.value, geom));
    g.tape.record(&[g, x], value, || {
        Op::Conv(Box::new(ConvOp::WeightGrad {
            g: g.value.clone(),
            x: x.value.clone(),
            geom: *geom,
        }))
    })
}

impl<'t, T: Element> Var<'t, T> {
    /// 2-d convolution in one node: `self` `[N, C, H, W]`, `w` `[O, C, kh, kw]`, optional
    /// `bias` `[O]`, zero `padding` on each side (see [`Tensor::try_conv2d`]).
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::ones(&[2, 3, 8, 8]));
    /// let w = tape.var(Tensor::ones(&[4, 3, 3, 3]));
    /// let b = tape.var(Tensor::zeros(&[4]));
    /// let y = x.conv2d(&w, Some(&b), (2, 2), (1, 1));
    /// assert_eq!(y.shape(), &[2, 4, 4, 4]);
    /// let g = y.sum().backward();
    /// assert_eq!(g.wrt(&b).to_vec(), vec![2.0 * 16.0; 4]); // N·OH·OW per channel
    /// ```
    #[track_caller]
    pub fn try_conv2d(
        &self,
        w: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var<'t, T>> {
        self.same_tape("conv2d", &[w])?;
        if let Some(b) = bias {
            self.same_tape("conv2d", &[b])?;
        }
        let geom = conv2d_geometry::<T>("conv2d", self.shape(), w.shape(), stride, padding)?;
        check_bias("conv2d", bias.map(Var::shape), geom.out_channels)?;
        try_var_conv2d(self, w, bias, &geom)
    }
    /// [`Var::try_conv2d`]; panics with its error.
    #[track_caller]
    pub fn conv2d(
        &self,
        w: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var<'t, T> {
        or_panic(self.try_conv2d(w, bias, stride, padding))
    }

    /// Max pooling (see [`Tensor::try_max_pool2d`]); the gradient goes to each window's
    /// first arg-max.
    #[track_caller]
    pub fn try_max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var<'t, T>> {
        let geom = pool_geometry::<T>("max_pool2d", self.shape(), kernel, stride, padding)?;
        let (value, argmax) = max_pool2d(&self.value, &geom)?;
        Ok(self.tape.record(&[self], value, || {
            Op::Conv(Box::new(ConvOp::MaxPool2d {
                input: self.shape().into(),
                argmax,
            }))
        }))
    }
    /// [`Var::try_max_pool2d`]; panics with its error.
    #[track_caller]
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var<'t, T> {
        or_panic(self.try_max_pool2d(kernel, stride, padding))
    }

    /// Average pooling (see [`Tensor::try_avg_pool2d`]), recorded as a reshape to `N·C`
    /// one-channel images, a convolution by the constant kernel `1/(kh·kw)`, and a reshape
    /// back.
    #[track_caller]
    pub fn try_avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Var<'t, T>> {
        let op = "avg_pool2d";
        let geom = pool_geometry::<T>(op, self.shape(), kernel, stride, padding)?;
        let one = single_channel::<T>(op, &geom)?;
        let x = self.try_reshape(&one.input_shape())?;
        let w = self.tape.constant(averaging_kernel(op, kernel)?);
        try_var_conv2d(&x, &w, None, &one)?.try_reshape(&geom.output_shape())
    }
    /// [`Var::try_avg_pool2d`]; panics with its error.
    #[track_caller]
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Var<'t, T> {
        or_panic(self.try_avg_pool2d(kernel, stride, padding))
    }

    /// The mean of each channel, `[N, C, H, W] → [N, C]`: a mean over axes 2 and 3.
    #[track_caller]
    pub fn try_global_avg_pool2d(&self) -> Result<Var<'t, T>> {
        check_rank4(
            "global_avg_pool2d",
            self.shape(),
            "an input of rank 4 [N, C, H, W]",
        )?;
        self.try_mean_axes(&[2, 3], false)
    }
    /// [`Var::try_global_avg_pool2d`]; panics with its error.
    #[track_caller]
    pub fn global_avg_pool2d(&self) -> Var<'t, T> {
        or_panic(self.try_global_avg_pool2d())
    }
}

#[cfg(test)]
mod tests {
    use super::{
        BatchPlan, Conv2dGeometry, check_conv_sizes, conv2d_geometry, conv2d_input_grad_planned,
        conv2d_planned, conv2d_weight_grad_planned, var_conv2d_input_grad, var_conv2d_weight_grad,
    };
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
    }

    /// The definition: seven nested loops, zero outside the input.
    fn naive_conv(
        x: &Tensor<f64>,
        w: &Tensor<f64>,
        b: Option<&Tensor<f64>>,
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
    ) -> Tensor<f64> {
        let [n, c, h, wd] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        let [o, _, kh, kw] = [w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]];
        let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (wd + 2 * pw - kw) / sw + 1);
        let mut y = Tensor::zeros(&[n, o, oh, ow]);
        for ni in 0..n {
            for oi in 0..o {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b.get(&[oi]));
                        for ci in 0..c {
                            for p in 0..kh {
                                for q in 0..kw {
                                    let r = (i * sh + p) as isize - ph as isize;
                                    let s = (j * sw + q) as isize - pw as isize;
                                    if r >= 0 && s >= 0 && (r as usize) < h && (s as usize) < wd {
                                        acc += w.get(&[oi, ci, p, q])
                                            * x.get(&[ni, ci, r as usize, s as usize]);
                                    }
                                }
                            }
                        }
                        y.data_mut()[((ni * o + oi) * oh + i) * ow + j] = acc;
                    }
                }
            }
        }
        y
    }

    /// (input shape, weight shape, stride, padding, with bias)
    type Case = ([usize; 4], [usize; 4], (usize, usize), (usize, usize), bool);

    const CASES: [Case; 7] = [
        ([2, 3, 5, 4], [4, 3, 3, 3], (1, 1), (1, 1), true),
        ([1, 2, 7, 6], [3, 2, 3, 2], (2, 1), (1, 0), true),
        ([2, 3, 4, 4], [5, 3, 1, 1], (1, 1), (0, 0), true), // pointwise fast path
        ([2, 3, 5, 5], [2, 3, 1, 1], (2, 2), (0, 0), false), // strided projection
        ([3, 1, 6, 5], [2, 1, 3, 3], (2, 2), (1, 1), false),
        ([1, 2, 3, 3], [2, 2, 3, 3], (1, 1), (0, 0), true), // kernel = input
        ([2, 1, 2, 3], [1, 1, 4, 2], (3, 1), (2, 1), false), // more padding than input
    ];

    #[test]
    fn conv2d_matches_the_seven_loop_definition() {
        for (k, &(xs, ws, stride, padding, bias)) in CASES.iter().enumerate() {
            let seed = 10 * k as u64;
            let (x, w, b) = (
                rand(&xs, seed),
                rand(&ws, seed + 1),
                rand(&[ws[0]], seed + 2),
            );
            let b = bias.then_some(&b);
            let want = naive_conv(&x, &w, b, stride, padding);
            let got = x.conv2d(&w, b, stride, padding);
            assert!(got.max_abs_diff(&want) < 1e-13, "case {k}");
        }
        // A ResNet-like shape with batch > 1 in f32.
        let (x, w, b) = (
            rand(&[2, 8, 9, 7], 1),
            rand(&[6, 8, 3, 3], 2),
            rand(&[6], 3),
        );
        let want = naive_conv(&x, &w, Some(&b), (2, 2), (1, 1));
        let (xf, wf, bf) = (x.cast::<f32>(), w.cast::<f32>(), b.cast::<f32>());
        let got = xf.conv2d(&wf, Some(&bf), (2, 2), (1, 1)).cast::<f64>();
        assert!(got.max_abs_diff(&want) < 1e-5);
    }

    #[test]
    fn splitting_the_batch_over_workers_gives_the_same_results() {
        for (k, &(xs, ws, stride, padding, _)) in CASES.iter().enumerate() {
            let mut xs = xs;
            xs[0] = 5; // 5 images over 1, 2, 3 and 4 workers: uneven shares
            let geom = conv2d_geometry::<f64>("test", &xs, &ws, stride, padding).unwrap();
            let seed = 700 + 10 * k as u64;
            let (x, w, b) = (
                rand(&xs, seed),
                rand(&ws, seed + 1),
                rand(&[ws[0]], seed + 2),
            );
            let g = rand(&geom.output_shape(), seed + 3);
            let one = BatchPlan::with_workers(&geom, 1, 1);
            let y = conv2d_planned(&x, &w, Some(&b), &geom, one).unwrap();
            let dx = conv2d_input_grad_planned(&g, &w, &geom, one).unwrap();
            let dw = conv2d_weight_grad_planned(&g, &x, &geom, one).unwrap();
            for workers in 2..=4 {
                let plan = BatchPlan::with_workers(&geom, workers, 1);
                assert!(plan.workers > 1);
                assert_eq!(conv2d_planned(&x, &w, Some(&b), &geom, plan).unwrap(), y);
                assert_eq!(conv2d_input_grad_planned(&g, &w, &geom, plan).unwrap(), dx);
                let split = conv2d_weight_grad_planned(&g, &x, &geom, plan).unwrap();
                assert!(
                    split.max_abs_diff(&dw) < 1e-13,
                    "case {k}, {workers} workers"
                );
            }
        }
    }

    #[test]
    fn the_two_adjoints_are_adjoint() {
        // ⟨G, x ⋆ w⟩ = ⟨input_grad(G, w), x⟩ = ⟨weight_grad(G, x), w⟩.
        let dot = |a: &Tensor<f64>, b: &Tensor<f64>| -> f64 {
            a.data().iter().zip(b.data()).map(|(x, y)| x * y).sum()
        };
        for (k, &(xs, ws, stride, padding, _)) in CASES.iter().enumerate() {
            let (x, w) = (rand(&xs, 100 + k as u64), rand(&ws, 200 + k as u64));
            let y = x.conv2d(&w, None, stride, padding);
            let g = rand(y.shape(), 300 + k as u64);
            let dx = g.conv2d_input_grad(&w, (xs[2], xs[3]), stride, padding);
            let dw = g.conv2d_weight_grad(&x, (ws[2], ws[3]), stride, padding);
            assert_eq!(dx.shape(), x.shape());
            assert_eq!(dw.shape(), w.shape());
            assert!((dot(&g, &y) - dot(&dx, &x)).abs() < 1e-12, "case {k}");
            assert!((dot(&g, &y) - dot(&dw, &w)).abs() < 1e-12, "case {k}");
        }
    }

    #[test]
    fn gradients_of_conv2d() {
        for (k, &(xs, ws, stride, padding, bias)) in CASES.iter().enumerate() {
            let seed = 400 + 10 * k as u64;
            let (x, w, b) = (
                rand(&xs, seed),
                rand(&ws, seed + 1),
                rand(&[ws[0]], seed + 2),
            );
            if bias {
                check(
                    |v| v[0].conv2d(&v[1], Some(&v[2]), stride, padding).tanh(),
                    [x, w, b],
                );
            } else {
                check(|v| v[0].conv2d(&v[1], None, stride, padding).tanh(), [x, w]);
            }
        }
    }

    #[test]
    fn gradients_of_the_adjoint_ops() {
        for (k, &(xs, ws, stride, padding, _)) in CASES.iter().enumerate().take(5) {
            let geom = conv2d_geometry::<f64>("test", &xs, &ws, stride, padding).unwrap();
            let seed = 500 + 10 * k as u64;
            let (x, w, g) = (
                rand(&xs, seed),
                rand(&ws, seed + 1),
                rand(&geom.output_shape(), seed + 2),
            );
            check(
                |v| var_conv2d_input_grad(&v[0], &v[1], &geom).tanh(),
                [g.clone(), w],
            );
            check(
                |v| var_conv2d_weight_grad(&v[0], &v[1], &geom).tanh(),
                [g, x],
            );
        }
    }

    #[test]
    fn second_order_of_conv2d() {
        let tiny: [Case; 3] = [
            ([1, 2, 4, 3], [2, 2, 2, 2], (1, 2), (1, 1), true),
            ([2, 2, 2, 2], [3, 2, 1, 1], (1, 1), (0, 0), true), // pointwise
            ([1, 1, 5, 4], [2, 1, 3, 3], (2, 2), (1, 0), false),
        ];
        for (k, &(xs, ws, stride, padding, bias)) in tiny.iter().enumerate() {
            let seed = 600 + 10 * k as u64;
            let (x, w, b) = (
                rand(&xs, seed),
                rand(&ws, seed + 1),
                rand(&[ws[0]], seed + 2),
            );
            if bias {
                check_second_order(
                    |v| v[0].conv2d(&v[1], Some(&v[2]), stride, padding).tanh(),
                    [x, w, b],
                );
            } else {
                check_second_order(|v| v[0].conv2d(&v[1], None, stride, padding).tanh(), [x, w]);
            }
            // Third order of the convolution: the adjoint ops' recorded backward.
            let geom = conv2d_geometry::<f64>("test", &xs, &ws, stride, padding).unwrap();
            let g = rand(&geom.output_shape(), seed + 3);
            let (x, w) = (rand(&xs, seed + 4), rand(&ws, seed + 5));
            check_second_order(
                |v| var_conv2d_input_grad(&v[0], &v[1], &geom).tanh(),
                [g.clone(), w],
            );
            check_second_order(
                |v| var_conv2d_weight_grad(&v[0], &v[1], &geom).tanh(),
                [g, x],
            );
        }
    }

    #[test]
    fn recorded_backward_records_the_adjoint_ops() {
        let tape = Tape::new();
        let x = tape.var(rand(&[1, 2, 4, 4], 1));
        let w = tape.var(rand(&[3, 2, 3, 3], 2));
        let loss = x.conv2d(&w, None, (1, 1), (1, 1)).tanh().sum();
        let grads = loss.backward_create_graph();
        let names = tape.op_names();
        assert!(names.contains(&"conv2d_input_grad") && names.contains(&"conv2d_weight_grad"));
        let plain = loss.backward();
        assert!(grads.wrt(&x).value().max_abs_diff(&plain.wrt(&x)) < 1e-15);
        assert!(grads.wrt(&w).value().max_abs_diff(&plain.wrt(&w)) < 1e-15);
    }

    fn naive_pool(
        x: &Tensor<f64>,
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
        max: bool,
    ) -> Tensor<f64> {
        let [n, c, h, w] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
        let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
        Tensor::from_fn(&[n, c, oh, ow], |i| {
            let mut vals = Vec::new();
            for p in 0..kh {
                for q in 0..kw {
                    let r = (i[2] * sh + p) as isize - ph as isize;
                    let s = (i[3] * sw + q) as isize - pw as isize;
                    let inside = r >= 0 && s >= 0 && (r as usize) < h && (s as usize) < w;
                    if inside {
                        vals.push(x.get(&[i[0], i[1], r as usize, s as usize]));
                    } else if !max {
                        vals.push(0.0);
                    }
                }
            }
            if max {
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            } else {
                vals.iter().sum::<f64>() / (kh * kw) as f64
            }
        })
    }

    #[test]
    fn pooling_matches_its_definition_and_has_gradients() {
        let x = rand(&[2, 3, 6, 5], 7);
        for (kernel, stride, padding) in [
            ((2, 2), (2, 2), (0, 0)),
            ((3, 3), (2, 2), (1, 1)),
            ((3, 2), (1, 2), (1, 0)),
        ] {
            let mx = x.max_pool2d(kernel, stride, padding);
            assert_eq!(mx, naive_pool(&x, kernel, stride, padding, true));
            let av = x.avg_pool2d(kernel, stride, padding);
            assert!(av.max_abs_diff(&naive_pool(&x, kernel, stride, padding, false)) < 1e-15);
            check(
                |v| v[0].max_pool2d(kernel, stride, padding).tanh(),
                [x.clone()],
            );
            check(
                |v| v[0].avg_pool2d(kernel, stride, padding).tanh(),
                [x.clone()],
            );
        }
        let tape = Tape::new();
        let v = tape.var(x.clone());
        let y = v.avg_pool2d((2, 2), (2, 2), (0, 0));
        assert_eq!(y.value(), &x.avg_pool2d((2, 2), (2, 2), (0, 0)));
        let f32_pool = x.cast::<f32>().max_pool2d((2, 2), (1, 1), (0, 0));
        assert_eq!(f32_pool, x.max_pool2d((2, 2), (1, 1), (0, 0)).cast::<f32>());
    }

    #[test]
    fn global_average_pooling_is_the_channel_mean() {
        let x = rand(&[2, 3, 4, 5], 8);
        let want = Tensor::from_fn(&[2, 3], |i| {
            (0..20)
                .map(|k| x.get(&[i[0], i[1], k / 5, k % 5]))
                .sum::<f64>()
                / 20.0
        });
        assert!(x.global_avg_pool2d().max_abs_diff(&want) < 1e-15);
        check(|v| v[0].global_avg_pool2d().tanh(), [x]);
    }

    #[test]
    fn second_order_through_pooling() {
        let x = rand(&[1, 2, 4, 4], 9);
        check_second_order(
            |v| v[0].max_pool2d((2, 2), (2, 2), (0, 0)).tanh(),
            [x.clone()],
        );
        check_second_order(|v| v[0].avg_pool2d((3, 3), (1, 1), (1, 1)).tanh(), [x]);
    }

    #[test]
    fn bad_shapes_are_errors_naming_op_shapes_and_line() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2, 3, 5, 5]));
        let w = tape.var(Tensor::zeros(&[4, 3, 3, 3]));
        let rank3 = tape.var(Tensor::zeros(&[3, 5, 5]));
        let err = rank3.try_conv2d(&w, None, (1, 1), (0, 0)).unwrap_err();
        assert!(matches!(err, Error::Rank { op: "conv2d", .. }));
        assert!(err.to_string().contains("[3, 5, 5]") && err.to_string().contains("conv.rs"));
        assert!(matches!(
            x.try_conv2d(&rank3, None, (1, 1), (0, 0)),
            Err(Error::Rank { op: "conv2d", .. })
        ));
        let w2 = tape.var(Tensor::zeros(&[4, 2, 3, 3]));
        let msg = x
            .try_conv2d(&w2, None, (1, 1), (0, 0))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("3 channels") && msg.contains("[4, 2, 3, 3]"),
            "{msg}"
        );
        let bad_bias = tape.var(Tensor::zeros(&[3]));
        assert!(matches!(
            x.try_conv2d(&w, Some(&bad_bias), (1, 1), (0, 0)),
            Err(Error::ShapeMismatch { op: "conv2d", .. })
        ));
        let msg = x
            .try_conv2d(&w, None, (0, 1), (0, 0))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("stride (0, 1)"), "{msg}");
        let big = tape.var(Tensor::zeros(&[4, 3, 8, 3]));
        let msg = x
            .try_conv2d(&big, None, (1, 1), (1, 1))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("larger than the input [2, 3, 5, 5]"), "{msg}");
        assert!(x.try_conv2d(&big, None, (1, 1), (2, 2)).is_ok());
        let other = Tape::<f64>::new();
        let foreign = other.var(Tensor::zeros(&[4, 3, 3, 3]));
        assert!(matches!(
            x.try_conv2d(&foreign, None, (1, 1), (0, 0)),
            Err(Error::ForeignTape { op: "conv2d", .. })
        ));
        // Pooling.
        assert!(matches!(
            rank3.try_max_pool2d((2, 2), (2, 2), (0, 0)),
            Err(Error::Rank {
                op: "max_pool2d",
                ..
            })
        ));
        let msg = x
            .try_max_pool2d((2, 2), (2, 2), (2, 0))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("max_pool2d") && msg.contains("half the kernel"),
            "{msg}"
        );
        let msg = x
            .try_avg_pool2d((6, 2), (1, 1), (0, 0))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("avg_pool2d") && msg.contains("larger than"),
            "{msg}"
        );
        assert!(matches!(
            x.try_avg_pool2d((2, 2), (1, 0), (0, 0)),
            Err(Error::InvalidArgument {
                op: "avg_pool2d",
                ..
            })
        ));
        assert!(matches!(
            rank3.try_global_avg_pool2d(),
            Err(Error::Rank {
                op: "global_avg_pool2d",
                ..
            })
        ));
        // The hand-written-backward forms check the gradient's shape.
        let g = Tensor::<f64>::zeros(&[2, 4, 4, 4]);
        assert!(matches!(
            g.try_conv2d_input_grad(w.value(), (5, 5), (1, 1), (0, 0)),
            Err(Error::ShapeMismatch {
                op: "conv2d_input_grad",
                ..
            })
        ));
        assert!(matches!(
            g.try_conv2d_weight_grad(x.value(), (3, 3), (1, 1), (0, 0)),
            Err(Error::ShapeMismatch {
                op: "conv2d_weight_grad",
                ..
            })
        ));
        assert!(
            g.try_conv2d_input_grad(w.value(), (5, 5), (1, 1), (0, 0))
                .is_err()
        );
        assert!(
            g.try_conv2d_weight_grad(x.value(), (2, 2), (1, 1), (0, 0))
                .is_ok()
        );
    }

    #[test]
    fn a_column_matrix_that_cannot_be_addressed_is_an_error() {
        // Weight [1, 1, 2²⁰, 2²⁰] and output [1, 1, 2²⁰, 2²⁰] each fit, but one image's
        // column matrix [2⁴⁰, 2⁴⁰] does not: no tensor bounds its size.
        let geom = Conv2dGeometry {
            batch: 1,
            in_channels: 1,
            in_hw: (1, 1),
            out_channels: 1,
            kernel: (1 << 20, 1 << 20),
            stride: (1, 1),
            padding: (1 << 20, 1 << 20),
            out_hw: (1 << 20, 1 << 20),
        };
        let err = check_conv_sizes::<f32>("conv2d", &geom).unwrap_err();
        assert!(
            matches!(&err, Error::SizeOverflow { op: "conv2d", shape, .. } if shape[..] == [1 << 40, 1 << 40]),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_callers_line() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[1, 2, 4, 4]));
        let w = tape.var(Tensor::zeros(&[3, 5, 3, 3]));
        let at = |line: u32| format!("conv.rs:{line}:");
        let (err, line) = (x.try_conv2d(&w, None, (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let big = tape.var(Tensor::zeros(&[3, 2, 5, 5]));
        let (err, line) = (x.try_conv2d(&big, None, (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let (err, line) = (x.try_max_pool2d((5, 5), (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let (err, line) = (x.try_avg_pool2d((2, 2), (0, 0), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let v = tape.var(Tensor::zeros(&[4]));
        let (err, line) = (v.try_global_avg_pool2d(), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let (t, wt) = (x.value(), w.value());
        let (err, line) = (t.try_conv2d(wt, None, (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let (err, line) = (t.try_conv2d_input_grad(wt, (4, 4), (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
        let (err, line) = (t.try_conv2d_weight_grad(t, (3, 3), (1, 1), (0, 0)), line!());
        assert!(err.unwrap_err().to_string().contains(&at(line)));
    }

    #[test]
    #[should_panic(expected = "conv2d: the input [1, 2, 4, 4] has 2 channels")]
    fn the_panicking_form_says_the_same() {
        let x = Tensor::<f32>::zeros(&[1, 2, 4, 4]);
        let _ = x.conv2d(&Tensor::zeros(&[1, 3, 1, 1]), None, (1, 1), (0, 0));
    }
}
