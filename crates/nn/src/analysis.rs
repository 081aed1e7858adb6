//! Taking a residual stack apart: the gradient carried by paths of each length (the
//! unraveled view), and lesioning (removing blocks' branches).
//!
//! # The unraveled view, exactly
//!
//! Veit, Wilber & Belongie (2016, "Residual networks behave like ensembles of relatively
//! shallow networks") unravel a stack of `n` residual blocks `h ← F(h) + h` into `2ⁿ` paths
//! — at each block the path either takes the branch `F` or the skip — and ask how much of
//! the gradient each path length carries. They could only sample paths. Because the
//! backward pass through a block is *linear* in the upstream gradient, the gradient can be
//! split exactly: carry `n + 1` buckets backwards, bucket `j` holding the summed
//! contribution of every path that took exactly `j` branches above the current point.
//! Through a block without a post-activation,
//!
//! ```text
//! g_in[j] = S_Jᵀ·g_out[j] + J_Fᵀ·g_out[j−1]
//! ```
//!
//! (`J_F` the branch's Jacobian, `S_J` the shortcut's: the identity or a projection).
//! With an activation σ after the sum (the notebook's ReLU), both terms first pass through
//! σ'(z) at the block's pre-activation `z = F(x) + S(x)`:
//! `g_mid[j] = σ'(z) ⊙ g_out[j]`, then `g_in[j] = S_Jᵀ·g_mid[j] + J_Fᵀ·g_mid[j−1]`.
//! Every product `J_Fᵀ·v` is one vector–Jacobian product from the tape
//! ([`Var::backward_with`](autograd::Var::backward_with)) on a small tape holding the
//! block alone. The buckets sum to ∂L/∂x.
//!
//! The linearization is taken along the trained network's actual forward pass (the ReLU
//! masks are those of the full network), as in Veit et al.'s gradient analysis.
//!
//! # Lesioning
//!
//! [`lesioned_loss`] evaluates the stack with chosen blocks' branches removed
//! ([`ResidualUnit::forward_without_branch`]): Veit et al.'s experiment of deleting single
//! blocks from a trained residual network, which barely hurts it, while deleting a layer
//! from a plain network ruins it.
//!
//! All passes here run in evaluation mode ([`Ctx::eval`]).
//!
//! ```
//! use autograd::{Tensor, seeded_rng};
//! use nn::analysis::{lesioned_loss, path_gradients_mse};
//! use nn::{Init, ResidualBlock, ResidualUnit, Stack};
//!
//! let mut rng = seeded_rng(0);
//! let stack: Stack<dyn ResidualUnit<f64>> = (0..6)
//!     .map(|_| Box::new(ResidualBlock::new(4, Init::he(), &mut rng)) as Box<dyn ResidualUnit<f64>>)
//!     .collect();
//! let x = Tensor::uniform(&[8, 4], -1.0, 1.0, &mut rng);
//! let y = Tensor::zeros(&[8, 4]);
//! let paths = path_gradients_mse(&stack.layers, &x, &y).unwrap();
//! assert_eq!(paths.by_length.len(), 7); // path lengths 0..=6
//! assert_eq!(paths.path_counts()[3], 20.0); // C(6, 3) paths take three branches
//! let _dl_dx = paths.total(); // = ∂L/∂x
//! let intact = lesioned_loss(&stack.layers, &x, &y, &[]).unwrap();
//! let without_block_2 = lesioned_loss(&stack.layers, &x, &y, &[2]).unwrap();
//! assert_ne!(intact, without_block_2);
//! ```

use crate::module::Ctx;
use crate::residual::ResidualUnit;
use autograd::{Caller, Element, Error, Result, Tape, Tensor};

/// ∂L/∂x split by path length: `by_length[j]` is the summed gradient of every path from
/// the input to the output that passes through exactly `j` residual branches.
#[derive(Clone, Debug)]
pub struct PathGradients<T: Element> {
    /// One tensor of the input's shape per path length `0..=n` (`n` the number of blocks).
    pub by_length: Vec<Tensor<T>>,
}

impl<T: Element> PathGradients<T> {
    /// The number of blocks `n` (path lengths run `0..=n`).
    pub fn depth(&self) -> usize {
        self.by_length.len().saturating_sub(1)
    }

    /// The sum over all lengths: the full ∂L/∂x.
    pub fn total(&self) -> Tensor<T> {
        let mut iter = self.by_length.iter();
        let Some(first) = iter.next() else {
            return Tensor::zeros(&[0]);
        };
        let mut total = first.clone();
        for g in iter {
            for (t, &v) in total.data_mut().iter_mut().zip(g.data()) {
                *t += v;
            }
        }
        total
    }

    /// The Euclidean norm of each length's gradient.
    pub fn norms(&self) -> Vec<T> {
        self.by_length.iter().map(Tensor::norm).collect()
    }

    /// How many paths have each length: the binomial coefficients `C(n, j)`.
    pub fn path_counts(&self) -> Vec<f64> {
        let n = self.depth();
        let mut counts = Vec::with_capacity(n + 1);
        let mut c = 1.0f64;
        for j in 0..=n {
            counts.push(c);
            c = c * (n - j) as f64 / (j + 1) as f64;
        }
        counts
    }
}

/// The values `h₀ = x, h₁, …, hₙ` of an evaluation-mode forward pass, block by block.
#[track_caller]
pub fn block_outputs<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
) -> Vec<Tensor<T>> {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    tape.no_grad(|| {
        let mut h = cx.input(x.clone());
        let mut hs = vec![x.clone()];
        for block in blocks {
            h = block.forward(&cx, &h);
            hs.push(h.value().clone());
        }
        hs
    })
}

/// ∂L/∂x split by path length (see the [module docs](self)), for the upstream gradient
/// `d_out = ∂L/∂hₙ` at the stack's output.
///
/// # Errors
/// If `d_out`'s shape is not the stack's output shape.
#[track_caller]
pub fn path_gradients<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
    d_out: &Tensor<T>,
) -> Result<PathGradients<T>> {
    let hs = block_outputs(blocks, x);
    expect_shape(
        "path_gradients (d_out against the output)",
        &hs[blocks.len()],
        d_out,
    )?;
    let mut buckets = vec![d_out.clone()];
    for (block, h) in blocks.iter().zip(&hs[..blocks.len()]).rev() {
        buckets = buckets_through_block(&**block, h, &buckets);
    }
    Ok(PathGradients { by_length: buckets })
}

/// [`path_gradients`] of the MSE loss `mean((stack(x) − target)²)`.
///
/// # Errors
/// If `target`'s shape is not the stack's output shape.
#[track_caller]
pub fn path_gradients_mse<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<PathGradients<T>> {
    let out = block_outputs(blocks, x).pop().unwrap_or_else(|| x.clone());
    expect_shape(
        "path_gradients_mse (target against the output)",
        &out,
        target,
    )?;
    let scale = T::of(2.0) / T::of(out.numel().max(1) as f64);
    let d_out = (&out - target) * scale;
    path_gradients(blocks, x, &d_out)
}

/// One block's backward step on the buckets: `g_out` has one bucket per number of branches
/// taken above this block; the result has one more.
fn buckets_through_block<T: Element, U: ResidualUnit<T> + ?Sized>(
    block: &U,
    h_in: &Tensor<T>,
    g_out: &[Tensor<T>],
) -> Vec<Tensor<T>> {
    // The block alone on its own small tape: each VJP sweeps only these few nodes.
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let h = cx.tracked_input(h_in.clone());
    let branch = block.branch(&cx, &h);
    let shortcut = block.shortcut(&cx, &h);
    // σ'(z) ⊙ g for each bucket, z = F(x) + S(x) the pre-activation.
    let g_mid: Vec<Tensor<T>> = match block.post_activation() {
        None => g_out.to_vec(),
        Some(act) => {
            let z = cx.tracked_input(branch.value() + shortcut.value());
            let a = act.apply(&z);
            g_out
                .iter()
                .map(|g| a.backward_with(g.clone()).wrt(&z))
                .collect()
        }
    };
    let vjp = |out: &autograd::Var<'_, T>, g: &Tensor<T>| out.backward_with(g.clone()).wrt(&h);
    (0..=g_mid.len())
        .map(|j| {
            // Paths that skip this block keep their count j; those through its branch
            // had j − 1 above it.
            let skip = g_mid.get(j).map(|g| vjp(&shortcut, g));
            let through = j.checked_sub(1).map(|k| vjp(&branch, &g_mid[k]));
            match (skip, through) {
                (Some(s), Some(t)) => s + t,
                (Some(s), None) => s,
                (None, Some(t)) => t,
                (None, None) => Tensor::zeros(h_in.shape()),
            }
        })
        .collect()
}

/// The stack's output with the branches of the blocks in `removed` taken out (each such
/// block computes `σ(S(x))`), in evaluation mode.
///
/// # Errors
/// If an index in `removed` is not a block of the stack.
#[track_caller]
pub fn lesioned_output<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
    removed: &[usize],
) -> Result<Tensor<T>> {
    if let Some(&bad) = removed.iter().find(|&&i| i >= blocks.len()) {
        return Err(Error::Index {
            op: "lesioned_output (a removed block)",
            index: bad,
            len: blocks.len(),
            at: Caller::here(),
        });
    }
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    Ok(tape.no_grad(|| {
        let mut h = cx.input(x.clone());
        for (i, block) in blocks.iter().enumerate() {
            h = if removed.contains(&i) {
                block.forward_without_branch(&cx, &h)
            } else {
                block.forward(&cx, &h)
            };
        }
        h.value().clone()
    }))
}

/// The MSE loss `mean((output − target)²)` of the stack with the branches of the blocks in
/// `removed` taken out (see [`lesioned_output`]); `removed = &[]` gives the intact loss.
///
/// # Errors
/// If an index is out of range, or `target`'s shape is not the output's.
#[track_caller]
pub fn lesioned_loss<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
    target: &Tensor<T>,
    removed: &[usize],
) -> Result<T> {
    let out = lesioned_output(blocks, x, removed)?;
    expect_shape("lesioned_loss (target against the output)", &out, target)?;
    let diff = &out - target;
    let sum_sq: T = diff.data().iter().map(|&d| d * d).sum();
    Ok(sum_sq / T::of(out.numel().max(1) as f64))
}

/// For each block `i`, the loss with block `i`'s branch removed (Veit et al.'s single-block
/// deletion).
///
/// # Errors
/// If `target`'s shape is not the output's.
#[track_caller]
pub fn single_lesion_losses<T: Element, U: ResidualUnit<T> + ?Sized>(
    blocks: &[Box<U>],
    x: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<Vec<T>> {
    (0..blocks.len())
        .map(|i| lesioned_loss(blocks, x, target, &[i]))
        .collect()
}

#[track_caller]
fn expect_shape<T: Element>(op: &'static str, want: &Tensor<T>, got: &Tensor<T>) -> Result<()> {
    if want.shape() == got.shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: want.shape().into(),
            got: got.shape().into(),
            at: Caller::here(),
        })
    }
}
