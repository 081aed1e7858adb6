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

/// Number of elements a shape holds (1 for the empty shape of a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn strides(shape: &[usize]) -> Shape {
    let mut s: Shape = SmallVec::from_elem(1, shape.len());
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
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
