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
            shape: shape.into(),
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

/// An axis of a tensor: counted from the front (`0` is the first axis) or, when negative,
/// from the back (`-1` is the last), as in PyTorch and NumPy. Every op that takes an axis
/// takes any integer type, so `x.sum_axes(&[1], false)`, `x.softmax(-1)` and
/// `x.narrow(axis, 0, 2)` with `axis: usize` all compile without casts.
///
/// A tensor of rank `r` has the axes `0..r`, also named `-r..=-1`; anything else is an
/// [`Error::Axis`] naming the axis as given.
///
/// ```
/// use autograd::{Axis, Tensor};
/// assert_eq!((-1).resolve(3), Some(2));
/// assert_eq!(0usize.resolve(3), Some(0));
/// assert_eq!((-4i64).resolve(3), None);
/// let x = Tensor::<f32>::ones(&[2, 3]);
/// assert_eq!(x.sum_axes(&[-1], false).shape(), &[2]);
/// assert_eq!(x.sum_axes(&[0usize], false).shape(), &[3]);
/// ```
///
/// Implemented for every primitive integer type up to 64 bits (and `isize`, `usize`); the
/// trait is sealed.
pub trait Axis: Copy + sealed::Sealed {
    /// The axis as given, widened without loss (for error messages).
    fn given(self) -> i128;

    /// The axis of a tensor of rank `rank`, counted from the front; `None` when it is out of
    /// range (`axis < -rank` or `axis >= rank`).
    fn resolve(self, rank: usize) -> Option<usize> {
        let (axis, rank) = (self.given(), rank as i128); // a rank fits i128 without loss
        let from_front = if axis < 0 { axis + rank } else { axis };
        (0..rank)
            .contains(&from_front)
            .then_some(from_front as usize)
    }
}

mod sealed {
    /// Seals [`Axis`](super::Axis): it is implemented for the integer types only.
    pub trait Sealed {}
}

macro_rules! integer_axis {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Axis for $t {
            fn given(self) -> i128 {
                self as i128 // lossless: every type here has at most 64 bits
            }
        }
    )*};
}

integer_axis!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// The axis `axis` of `shape`, counted from the front, or [`Error::Axis`] for `op`.
#[track_caller]
pub(crate) fn resolve_axis(op: &'static str, axis: impl Axis, shape: &[usize]) -> Result<usize> {
    resolve_axis_of_rank(op, axis, shape.len(), shape)
}

/// The axis `axis` among `rank` axes (e.g. one more than `shape` has, for `stack`), counted
/// from the front, or [`Error::Axis`] for `op` naming `shape`.
#[track_caller]
pub(crate) fn resolve_axis_of_rank(
    op: &'static str,
    axis: impl Axis,
    rank: usize,
    shape: &[usize],
) -> Result<usize> {
    let at = Caller::here(); // outside the closure: closures do not track the caller
    axis.resolve(rank).ok_or_else(|| Error::Axis {
        op,
        axis: axis.given(),
        shape: shape.into(),
        at,
    })
}

/// The axes `axes` of `shape`, counted from the front and sorted. [`Error::Axis`] for an
/// axis out of range, and [`Error::InvalidArgument`] for an axis named twice (`[1, 1]`, or
/// `[1, -1]` of a matrix): PyTorch refuses both.
#[track_caller]
pub(crate) fn resolve_axes(
    op: &'static str,
    axes: &[impl Axis],
    shape: &[usize],
) -> Result<SmallVec<[usize; 4]>> {
    let mut resolved: SmallVec<[usize; 4]> = SmallVec::with_capacity(axes.len());
    for &a in axes {
        resolved.push(resolve_axis(op, a, shape)?);
    }
    resolved.sort_unstable();
    if let Some(w) = resolved.windows(2).find(|w| w[0] == w[1]) {
        let given: Vec<i128> = axes.iter().map(|a| a.given()).collect();
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "axis {} is named twice in {given:?} (shape {shape:?})",
                w[0]
            ),
            at: Caller::here(),
        });
    }
    Ok(resolved)
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

    #[test]
    fn axes_count_from_the_back_when_negative() {
        for (axis, want) in [(0i64, Some(0)), (2, Some(2)), (3, None), (-1, Some(2))] {
            assert_eq!(axis.resolve(3), want, "{axis}");
        }
        assert_eq!((-3i32).resolve(3), Some(0));
        assert_eq!((-4i32).resolve(3), None);
        assert_eq!(0u8.resolve(0), None);
        assert_eq!(usize::MAX.resolve(3), None);
        assert_eq!(usize::MAX.given(), u64::MAX as i128);
        assert_eq!(isize::MIN.resolve(3), None);
        let e = resolve_axes("sum", &[1, -1], &[2, 3]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sum: axis 1 is named twice in [1, -1] (shape [2, 3])"),
            "{e}"
        );
        assert_eq!(
            resolve_axes("sum", &[-1, 0], &[2, 3]).unwrap().to_vec(),
            vec![0, 1]
        );
        let e = resolve_axis("max", -3, &[2, 3]).unwrap_err();
        assert!(matches!(e, Error::Axis { axis: -3, .. }), "{e:?}");
    }
}
