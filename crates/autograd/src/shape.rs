//! Shapes: row-major dimensions stored inline for ranks up to 4, and NumPy broadcasting.

use crate::error::{Caller, Error, Result};
use smallvec::SmallVec;

/// The dimensions of a tensor, outermost first (row-major). Inline up to rank 4.
pub type Shape = SmallVec<[usize; 4]>;

/// A copy of `dims` as a [`Shape`] (the empty shape of a scalar costs nothing).
pub(crate) fn copy(dims: &[usize]) -> Shape {
    if dims.is_empty() {
        Shape::new()
    } else {
        Shape::from_slice(dims)
    }
}

/// Number of elements a shape holds (1 for the empty shape of a scalar, 0 as soon as one
/// dimension is 0).
///
/// ```
/// assert_eq!(autograd::numel(&[2, 3, 4]), 24);
/// assert_eq!(autograd::numel(&[]), 1);
/// assert_eq!(autograd::numel(&[0, 5]), 0);
/// ```
///
/// # Panics
/// If the product overflows `usize` (no tensor has such a shape; see [`checked_numel`]).
#[track_caller]
pub fn numel(shape: &[usize]) -> usize {
    match checked_numel(shape) {
        Some(n) => n,
        None => panic!("numel: the dimensions of {shape:?} multiply beyond usize::MAX"),
    }
}

/// Number of elements a shape holds, or `None` when the product overflows `usize` (the
/// same in debug and release builds: the arithmetic is checked, never wrapping).
///
/// ```
/// use autograd::checked_numel;
/// assert_eq!(checked_numel(&[1, 3, 1 << 40]), Some(3 << 40));
/// assert_eq!(checked_numel(&[1, 3, 0xAAAA_AAAA_AAAA_AAAB]), None);
/// assert_eq!(checked_numel(&[usize::MAX, usize::MAX, 0]), Some(0));
/// ```
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The product of the nonzero dimensions of `shape`, checked: it bounds every partial
/// product of the shape (a stride, a block of a split, an offset), so when it fits, no
/// arithmetic on the shape can overflow — also for a shape that holds no element.
fn nonzero_product(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The number of elements of a tensor of `shape` with elements of `T`, checked for `op`:
/// [`Error::SizeOverflow`] unless the product of its nonzero dimensions, in bytes, fits in
/// `isize::MAX` (the most a Rust allocation can hold). Every tensor's shape passes this
/// check, so that every product of its dimensions, strides and offsets included, fits.
#[track_caller]
pub(crate) fn checked_len<T>(op: &'static str, shape: &[usize]) -> Result<usize> {
    let fits = nonzero_product(shape)
        .and_then(|n| n.checked_mul(size_of::<T>().max(1)))
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    match checked_numel(shape) {
        Some(n) if fits => Ok(n),
        _ => Err(Error::SizeOverflow {
            op,
            shape: copy(shape),
            at: Caller::here(),
        }),
    }
}

/// Row-major strides of a contiguous tensor of this shape.
///
/// # Panics
/// If a stride overflows `usize` (no tensor has such a shape).
#[track_caller]
pub fn strides(shape: &[usize]) -> Shape {
    let mut s: Shape = SmallVec::from_elem(1, shape.len());
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = match s[i + 1].checked_mul(shape[i + 1]) {
            Some(stride) => stride,
            None => panic!("strides: the dimensions of {shape:?} multiply beyond usize::MAX"),
        };
    }
    s
}

/// The shape two operands broadcast to under NumPy's rules (align trailing dimensions;
/// each pair must be equal or contain a 1).
#[track_caller]
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    if a == b {
        return Ok(copy(a));
    }
    let rank = a.len().max(b.len());
    let mut out: Shape = SmallVec::with_capacity(rank);
    for i in 0..rank {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::Broadcast {
                    op,
                    lhs: a.into(),
                    rhs: b.into(),
                    at: Caller::here(),
                });
            }
        });
    }
    Ok(out)
}

/// Whether `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && (0..from.len()).all(|i| {
            let f = from[from.len() - 1 - i];
            f == 1 || f == to[to.len() - 1 - i]
        })
}

/// The strides with which a contiguous tensor of shape `from` is read as if it had the
/// (broadcast) shape `to`: 0 along every broadcast dimension.
pub(crate) fn broadcast_strides(from: &[usize], to: &[usize]) -> Shape {
    let own = strides(from);
    let offset = to.len() - from.len();
    (0..to.len())
        .map(|i| {
            if i < offset || from[i - offset] == 1 {
                0
            } else {
                own[i - offset]
            }
        })
        .collect()
}

fn dim_from_right(shape: &[usize], i: usize) -> usize {
    if i < shape.len() {
        shape[shape.len() - 1 - i]
    } else {
        1
    }
}

/// Checks `axis < rank`.
#[track_caller]
pub(crate) fn check_axis(op: &'static str, axis: usize, shape: &[usize]) -> Result<()> {
    if axis < shape.len() {
        Ok(())
    } else {
        Err(Error::Axis {
            op,
            axis,
            shape: shape.into(),
            at: Caller::here(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |a: &[usize], b: &[usize]| broadcast_shapes("t", a, b).map(|s| s.to_vec());
        assert_eq!(s(&[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(s(&[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
        assert_eq!(s(&[], &[5]).unwrap(), vec![5]);
        assert!(s(&[2, 3], &[2]).is_err());
        assert!(broadcasts_to(&[1, 3], &[4, 3]));
        assert!(!broadcasts_to(&[2, 3], &[4, 3]));
        assert_eq!(
            broadcast_strides(&[3, 1], &[2, 3, 4]).to_vec(),
            vec![0, 1, 0]
        );
        assert_eq!(strides(&[2, 3, 4]).to_vec(), vec![12, 4, 1]);
    }
}
