//! Strided loops: one walker serves broadcasting, reductions, `broadcast_to` and `permute`.
//! These kernels know nothing of the tape.
//!
//! Every kernel writes its result into `out`, an empty buffer with room for it that the
//! caller allocated (fallibly, so that a result too large for memory is an error and not
//! an abort). Shapes are those of existing tensors, or output shapes already checked: all
//! their products fit in `usize` (see `shape::checked_len`), and safe indexing guards the
//! rest.

use crate::shape::{Shape, broadcast_strides, numel, strides};
use num_traits::Zero;

/// Visits every element of `shape` in row-major order, calling `f(i, a, b)` with the
/// element's linear index and its offsets in two strided views (`sa`, `sb`; a stride of 0
/// repeats an element along a broadcast dimension). The innermost dimension is a tight loop.
pub(crate) fn walk2(
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let n = numel(shape);
    if n == 0 {
        return;
    }
    let rank = shape.len();
    if rank == 0 {
        f(0, 0, 0);
        return;
    }
    let inner = shape[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut index: Shape = smallvec::smallvec![0; rank - 1];
    let (mut oa, mut ob) = (0usize, 0usize);
    let mut i = 0;
    loop {
        for k in 0..inner {
            f(i + k, oa + k * ia, ob + k * ib);
        }
        i += inner;
        // Advance the outer multi-index like an odometer, updating both offsets.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if index[d] < shape[d] {
                break;
            }
            oa -= sa[d] * shape[d];
            ob -= sb[d] * shape[d];
            index[d] = 0;
        }
    }
}

/// `out[i] = f(a[i'], b[i''])` over the broadcast shape `out_shape`.
pub(crate) fn zip_broadcast<T: Copy>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    mut out: Vec<T>,
    f: impl Fn(T, T) -> T,
) -> Vec<T> {
    if a_shape == b_shape {
        out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
        return out;
    }
    if let ([y], true) = (b, a_shape == out_shape) {
        out.extend(a.iter().map(|&x| f(x, *y)));
        return out;
    }
    if let ([x], true) = (a, b_shape == out_shape) {
        out.extend(b.iter().map(|&y| f(*x, y)));
        return out;
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    walk2(out_shape, &sa, &sb, |_, ia, ib| out.push(f(a[ia], b[ib])));
    out
}

/// Reads `x` (shape `from`) as the broadcast shape `to`, materialised into `out`.
pub(crate) fn broadcast_to<T: Copy>(
    x: &[T],
    from: &[usize],
    to: &[usize],
    mut out: Vec<T>,
) -> Vec<T> {
    let sx = broadcast_strides(from, to);
    walk2(to, &sx, &sx, |_, ix, _| out.push(x[ix]));
    out
}

/// Sums `x` (shape `from`) down to `to`, a shape of the same rank with 1 on every reduced
/// dimension (the `keepdim` shape), into `out`.
pub(crate) fn sum_keepdim<T: Copy + Zero + std::ops::AddAssign>(
    x: &[T],
    from: &[usize],
    to: &[usize],
    mut out: Vec<T>,
) -> Vec<T> {
    out.resize(numel(to), T::zero());
    // A sum of everything first, so that an [N, 1] column is summed pairwise too.
    if to.iter().all(|&d| d == 1) {
        out[0] = pairwise_sum(x);
        return out;
    }
    if from.len() == 2 && to[0] == 1 && to[1] == from[1] {
        // Column sums of a matrix (a bias gradient): rows added into one accumulator row.
        for row in x.chunks_exact(from[1].max(1)) {
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        return out;
    }
    let so = broadcast_strides(to, from);
    let sx = strides(from);
    walk2(from, &so, &sx, |_, io, ix| out[io] += x[ix]);
    out
}

/// Sum with pairwise (cascade) summation: rounding error grows like log n instead of n,
/// which matters for `f32` means over large tensors.
pub(crate) fn pairwise_sum<T: Copy + Zero + std::ops::AddAssign>(x: &[T]) -> T {
    const BLOCK: usize = 128;
    if x.len() <= BLOCK {
        let mut s = T::zero();
        for &v in x {
            s += v;
        }
        return s;
    }
    let (a, b) = x.split_at(x.len() / 2);
    let mut s = pairwise_sum(a);
    s += pairwise_sum(b);
    s
}

/// The shape of `shape` with its axes permuted: output axis `i` is input axis `perm[i]`.
pub(crate) fn permuted(shape: &[usize], perm: &[usize]) -> Shape {
    perm.iter().map(|&p| shape[p]).collect()
}

/// Permutes the axes of `x` into `out`: output axis `i` is input axis `perm[i]`.
pub(crate) fn permute<T: Copy>(
    x: &[T],
    shape: &[usize],
    perm: &[usize],
    mut out: Vec<T>,
) -> Vec<T> {
    let own = strides(shape);
    let sx: Shape = perm.iter().map(|&p| own[p]).collect();
    walk2(&permuted(shape, perm), &sx, &sx, |_, ix, _| out.push(x[ix]));
    out
}

/// Splits a shape around `axis` into (outer, len, inner) element counts, so that a
/// contiguous tensor is an `[outer, len, inner]` block — with `outer = 0` for a tensor
/// that holds no element: its blocks are all empty, and a loop over `outer` must not count
/// through the enormous dimensions an empty tensor may have (`[2⁴⁰, 0]` has 2⁴⁰ empty
/// rows, hours of doing nothing).
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = if shape.contains(&0) {
        0
    } else {
        numel(&shape[..axis])
    };
    (outer, shape[axis], numel(&shape[axis + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_broadcast_matches_manual_indexing() {
        let a: Vec<f64> = (0..6).map(f64::from).collect(); // [2, 3]
        let b = vec![10.0, 20.0]; // [2, 1]
        let out = zip_broadcast(&a, &[2, 3], &b, &[2, 1], &[2, 3], Vec::new(), |x, y| x + y);
        assert_eq!(out, vec![10.0, 11.0, 12.0, 23.0, 24.0, 25.0]);
    }

    #[test]
    fn sum_keepdim_over_each_axis() {
        let x: Vec<f64> = (0..6).map(f64::from).collect(); // [2, 3]
        let sum = |x: &[f64], from: &[usize], to: &[usize]| sum_keepdim(x, from, to, Vec::new());
        assert_eq!(sum(&x, &[2, 3], &[1, 3]), vec![3.0, 5.0, 7.0]);
        assert_eq!(sum(&x, &[2, 3], &[2, 1]), vec![3.0, 12.0]);
        assert_eq!(sum(&x, &[2, 3], &[1, 1]), vec![15.0]);
        // A single column is a sum of everything: pairwise, like a flat vector's.
        let column: Vec<f32> = (0..100_000).map(|i| 0.1 + (i % 7) as f32).collect();
        let flat = sum_keepdim(&column, &[100_000], &[1], Vec::new());
        assert_eq!(
            sum_keepdim(&column, &[100_000, 1], &[1, 1], Vec::new()),
            flat
        );
        let y: Vec<f64> = (0..24).map(f64::from).collect(); // [2, 3, 4]
        let s = sum(&y, &[2, 3, 4], &[2, 1, 4]);
        assert_eq!(s[0], 0.0 + 4.0 + 8.0);
        assert_eq!(s[7], 15.0 + 19.0 + 23.0);
    }

    #[test]
    fn permute_transposes() {
        let x: Vec<f64> = (0..6).map(f64::from).collect(); // [2, 3]
        let t = permute(&x, &[2, 3], &[1, 0], Vec::new());
        assert_eq!(permuted(&[2, 3], &[1, 0]).to_vec(), vec![3, 2]);
        assert_eq!(t, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
