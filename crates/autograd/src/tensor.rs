//! `Tensor<T>`: an n-d array, row-major, with shared storage.
//!
//! Cloning a tensor, handing it to the tape, or saving it for backward never copies its
//! data: the buffer is behind an `Arc`. Writing through [`Tensor::data_mut`] copies only
//! when the buffer is shared (copy-on-write). A tensor of one element (a scalar) is held
//! inline, with no allocation at all: scalar-by-scalar programs on the tape (micrograd
//! style) pay for no heap traffic per value.
//!
//! The arithmetic of tensors (no gradients) lives beside the differentiable op of the same
//! name in [`crate::ops`]; this file holds the type, its constructors and accessors.

use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::shape::{Shape, checked_len, numel, strides};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array in row-major order. `T` is `f32` or `f64` for arithmetic
/// ([`Element`]); `Tensor<usize>` holds indices (for [`Tensor::gather`]).
///
/// ```
/// use autograd::Tensor;
/// let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// assert_eq!(m.shape(), &[2, 2]);
/// assert_eq!(m.get(&[1, 0]), 3.0);
/// let s = Tensor::scalar(2.5f32);
/// assert_eq!(s.rank(), 0);
/// ```
#[derive(Clone)]
pub struct Tensor<T> {
    storage: Storage<T>,
    shape: Shape,
}

/// The elements: one inline value, or a shared buffer.
#[derive(Clone)]
enum Storage<T> {
    One(T),
    Shared(Arc<Buffer<T>>),
}

/// A tensor's buffer. When the last tensor using it is dropped, the buffer goes back to
/// the thread's [`buffer_pool`](crate::buffer_pool) for the next tensor of its size.
struct Buffer<T>(Vec<T>);

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        crate::buffer_pool::give(std::mem::take(&mut self.0));
    }
}

impl<T: Copy> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Buffer(crate::buffer_pool::copied(&self.0))
    }
}

impl<T> Tensor<T> {
    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        match &self.storage {
            Storage::One(x) => std::slice::from_ref(x),
            Storage::Shared(v) => &v.0,
        }
    }
}

/// An empty buffer with room for the elements of a tensor of `shape`, the result of `op`:
/// [`Error::SizeOverflow`] when the shape is too large to address, [`Error::Alloc`] when the
/// system cannot allocate it (no abort). Ops allocate their results through this.
#[track_caller]
pub(crate) fn output_buffer<T: Copy>(op: &'static str, shape: &[usize]) -> Result<Vec<T>> {
    let len = checked_len::<T>(op, shape)?;
    let at = Caller::here(); // outside the closure: closures do not track the caller
    crate::buffer_pool::try_with_capacity(len).ok_or_else(|| Error::Alloc {
        op,
        shape: shape.into(),
        bytes: len * std::mem::size_of::<T>(), // fits: checked by `checked_len`
        at,
    })
}

impl<T: Copy> Tensor<T> {
    /// A tensor from row-major data; errors if `data.len()` does not match the shape, or
    /// if the shape is too large to address ([`Error::SizeOverflow`]).
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        let expected = checked_len::<T>("from_vec", shape)?;
        if data.len() != expected {
            return Err(Error::DataLength {
                op: "from_vec",
                len: data.len(),
                shape: shape.into(),
                expected,
                at: Caller::here(),
            });
        }
        Ok(Self::from_parts(data, shape.into()))
    }

    /// A tensor of the given shape, every element `value`.
    ///
    /// # Panics
    /// Where [`Tensor::try_full`] returns an error, with its message.
    #[track_caller]
    pub fn full(shape: &[usize], value: T) -> Self {
        or_panic(Self::try_full(shape, value))
    }

    /// A tensor of the given shape, every element `value`; [`Error::SizeOverflow`] for a
    /// shape too large to address, [`Error::Alloc`] when the memory cannot be allocated.
    ///
    /// ```
    /// use autograd::{Error, Tensor};
    /// assert_eq!(Tensor::try_full(&[2], 1.5f32).unwrap().to_vec(), vec![1.5, 1.5]);
    /// let huge = Tensor::try_full(&[1 << 40, 1 << 40], 0.0f32);
    /// assert!(matches!(huge, Err(Error::SizeOverflow { op: "full", .. })));
    /// ```
    #[track_caller]
    pub fn try_full(shape: &[usize], value: T) -> Result<Self> {
        Self::filled("full", shape, value)
    }

    /// A tensor of `shape` filled with `value`, allocated for `op`.
    #[track_caller]
    pub(crate) fn filled(op: &'static str, shape: &[usize], value: T) -> Result<Self> {
        let mut data = output_buffer(op, shape)?;
        data.resize(numel(shape), value);
        Ok(Self::from_parts(data, shape.into()))
    }

    /// A tensor whose element at each multi-index `idx` is `f(idx)`.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let t = Tensor::from_fn(&[2, 3], |i| (10 * i[0] + i[1]) as f64);
    /// assert_eq!(t.to_vec(), vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
    /// ```
    ///
    /// # Panics
    /// Where [`Tensor::try_from_fn`] returns an error, with its message.
    #[track_caller]
    pub fn from_fn(shape: &[usize], f: impl FnMut(&[usize]) -> T) -> Self {
        or_panic(Self::try_from_fn(shape, f))
    }

    /// [`Tensor::from_fn`]; [`Error::SizeOverflow`] for a shape too large to address,
    /// [`Error::Alloc`] when the memory cannot be allocated.
    #[track_caller]
    pub fn try_from_fn(shape: &[usize], f: impl FnMut(&[usize]) -> T) -> Result<Self> {
        Self::filled_with("from_fn", shape, f)
    }

    /// A tensor of `shape` whose element at `idx` is `f(idx)`, allocated for `op`.
    #[track_caller]
    fn filled_with(
        op: &'static str,
        shape: &[usize],
        mut f: impl FnMut(&[usize]) -> T,
    ) -> Result<Self> {
        let mut data = output_buffer(op, shape)?;
        let n = numel(shape);
        let mut idx: Shape = smallvec::smallvec![0; shape.len()];
        for _ in 0..n {
            data.push(f(&idx));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(Self::from_parts(data, shape.into()))
    }

    /// A 0-d tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Self::one(value, Shape::new())
    }

    /// A tensor of `shape` holding `data`.
    ///
    /// # Panics
    /// If `data.len()` is not the shape's element count — in release builds too: every
    /// kernel relies on it, and a tensor whose buffer is shorter than its shape would let
    /// the matrix kernels read past its end.
    #[track_caller]
    pub(crate) fn from_parts(data: Vec<T>, shape: Shape) -> Self {
        assert!(
            crate::shape::checked_numel(&shape) == Some(data.len()),
            "tensor: {} elements for shape {shape:?}",
            data.len()
        );
        let storage = match data.as_slice() {
            [one] => Storage::One(*one),
            _ => Storage::Shared(Arc::new(Buffer(data))),
        };
        Tensor { storage, shape }
    }

    /// A one-element tensor of the given shape, without allocating.
    pub(crate) fn one(value: T, shape: Shape) -> Self {
        debug_assert_eq!(numel(&shape), 1);
        Tensor {
            storage: Storage::One(value),
            shape,
        }
    }

    /// The single element, if this tensor holds exactly one.
    pub(crate) fn as_one(&self) -> Option<T> {
        match self.storage {
            Storage::One(x) => Some(x),
            Storage::Shared(_) => None,
        }
    }

    /// The single element, writable in place, if this tensor holds exactly one.
    pub(crate) fn as_one_mut(&mut self) -> Option<&mut T> {
        match &mut self.storage {
            Storage::One(x) => Some(x),
            Storage::Shared(_) => None,
        }
    }

    /// The value of a 0-d tensor (`None` for any other rank, one-element ones included):
    /// the tape's light path for scalar programs, which skips shape handling.
    pub(crate) fn as_scalar(&self) -> Option<T> {
        match self.storage {
            Storage::One(x) if self.shape.is_empty() => Some(x),
            _ => None,
        }
    }

    /// [`Tensor::as_scalar`], writable in place.
    pub(crate) fn as_scalar_mut(&mut self) -> Option<&mut T> {
        match &mut self.storage {
            Storage::One(x) if self.shape.is_empty() => Some(x),
            _ => None,
        }
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions (0 for a scalar).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data().len()
    }

    /// Mutable access to the elements; copies the buffer first if it is shared.
    pub fn data_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::One(x) => std::slice::from_mut(x),
            Storage::Shared(v) => Arc::make_mut(v).0.as_mut_slice(),
        }
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }

    /// The elements, without a copy when this tensor holds the only reference.
    pub fn into_vec(self) -> Vec<T> {
        match self.storage {
            Storage::One(x) => vec![x],
            Storage::Shared(v) => match Arc::try_unwrap(v) {
                Ok(mut only) => std::mem::take(&mut only.0),
                Err(shared) => shared.0.clone(),
            },
        }
    }

    /// The element at a multi-index; panics if the index does not fit the shape.
    #[track_caller]
    pub fn get(&self, index: &[usize]) -> T {
        or_panic(self.try_get(index))
    }

    /// The element at a multi-index, or an error naming the index and shape.
    #[track_caller]
    pub fn try_get(&self, index: &[usize]) -> Result<T> {
        if index.len() != self.rank() {
            return Err(Error::ShapeMismatch {
                op: "get",
                expected: self.shape().into(),
                got: index.into(),
                at: Caller::here(),
            });
        }
        let mut offset = 0;
        for ((&i, &d), s) in index.iter().zip(&self.shape).zip(strides(&self.shape)) {
            if i >= d {
                return Err(Error::Index {
                    op: "get",
                    index: i,
                    len: d,
                    at: Caller::here(),
                });
            }
            offset += i * s;
        }
        Ok(self.data()[offset])
    }

    /// The single value of a tensor with one element (a scalar, or shape `[1]`, `[1, 1]`…).
    #[track_caller]
    pub fn item(&self) -> T {
        or_panic(self.try_item())
    }

    /// [`Tensor::item`], as a `Result`.
    #[track_caller]
    pub fn try_item(&self) -> Result<T> {
        if let [one] = self.data() {
            Ok(*one)
        } else {
            Err(Error::ShapeMismatch {
                op: "item",
                expected: Box::new([]),
                got: self.shape().into(),
                at: Caller::here(),
            })
        }
    }

    /// Whether two tensors share one buffer (no copy was made between them). One-element
    /// tensors hold their value inline and share nothing.
    pub fn shares_storage(&self, other: &Self) -> bool {
        match (&self.storage, &other.storage) {
            (Storage::Shared(a), Storage::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Bytes of element data this tensor refers to.
    pub fn bytes(&self) -> usize {
        self.numel() * std::mem::size_of::<T>()
    }

    /// The same data viewed with another shape of equal element count (no copy).
    pub(crate) fn with_shape(&self, shape: &[usize]) -> Self {
        debug_assert_eq!(numel(shape), self.numel());
        Tensor {
            storage: self.storage.clone(),
            shape: Shape::from_slice(shape),
        }
    }
}

impl<T: Element> Tensor<T> {
    /// All zeros.
    ///
    /// # Panics
    /// Where [`Tensor::try_zeros`] returns an error, with its message.
    #[track_caller]
    pub fn zeros(shape: &[usize]) -> Self {
        or_panic(Self::try_zeros(shape))
    }

    /// All zeros; [`Error::SizeOverflow`] for a shape too large to address,
    /// [`Error::Alloc`] when the memory cannot be allocated.
    ///
    /// ```
    /// use autograd::{Error, Tensor};
    /// // 2⁵⁰ elements (4 PiB): refused by the system, reported as an error.
    /// let err = Tensor::<f32>::try_zeros(&[1 << 25, 1 << 25]).unwrap_err();
    /// assert!(matches!(err, Error::Alloc { op: "zeros", .. }), "{err}");
    /// ```
    #[track_caller]
    pub fn try_zeros(shape: &[usize]) -> Result<Self> {
        Self::filled("zeros", shape, T::zero())
    }

    /// All ones.
    ///
    /// # Panics
    /// Where [`Tensor::try_ones`] returns an error, with its message.
    #[track_caller]
    pub fn ones(shape: &[usize]) -> Self {
        or_panic(Self::try_ones(shape))
    }

    /// All ones; errors as [`Tensor::try_zeros`].
    #[track_caller]
    pub fn try_ones(shape: &[usize]) -> Result<Self> {
        Self::filled("ones", shape, T::one())
    }

    /// The `n × n` identity matrix.
    ///
    /// # Panics
    /// Where [`Tensor::try_eye`] returns an error, with its message.
    #[track_caller]
    pub fn eye(n: usize) -> Self {
        or_panic(Self::try_eye(n))
    }

    /// The `n × n` identity matrix; errors as [`Tensor::try_zeros`] (`n²` may overflow).
    #[track_caller]
    pub fn try_eye(n: usize) -> Result<Self> {
        Self::filled_with("eye", &[n, n], |i| {
            if i[0] == i[1] { T::one() } else { T::zero() }
        })
    }

    /// `[0, 1, …, n−1]` as a 1-d tensor.
    ///
    /// # Panics
    /// Where [`Tensor::try_arange`] returns an error, with its message.
    #[track_caller]
    pub fn arange(n: usize) -> Self {
        or_panic(Self::try_arange(n))
    }

    /// `[0, 1, …, n−1]`; errors as [`Tensor::try_zeros`].
    #[track_caller]
    pub fn try_arange(n: usize) -> Result<Self> {
        let mut data = output_buffer("arange", &[n])?;
        data.extend((0..n).map(|i| T::of(i as f64)));
        Ok(Self::from_parts(data, Shape::from_slice(&[n])))
    }

    /// Independent samples from the uniform distribution on `[low, high)`.
    ///
    /// ```
    /// use autograd::{Tensor, seeded_rng};
    /// let mut rng = seeded_rng(7);
    /// let t = Tensor::<f32>::uniform(&[3, 4], -1.0, 1.0, &mut rng);
    /// assert!(t.data().iter().all(|&x| (-1.0..1.0).contains(&x)));
    /// ```
    ///
    /// # Panics
    /// Where [`Tensor::try_uniform`] returns an error, with its message.
    #[track_caller]
    pub fn uniform(shape: &[usize], low: T, high: T, rng: &mut impl Rng) -> Self {
        or_panic(Self::try_uniform(shape, low, high, rng))
    }

    /// [`Tensor::uniform`]; errors as [`Tensor::try_zeros`].
    #[track_caller]
    pub fn try_uniform(shape: &[usize], low: T, high: T, rng: &mut impl Rng) -> Result<Self> {
        let mut data = output_buffer("uniform", shape)?;
        let n = numel(shape);
        let (lo, hi) = (low.to_f64().unwrap_or(0.0), high.to_f64().unwrap_or(0.0));
        match Uniform::new(lo, hi) {
            Ok(dist) => data.extend((0..n).map(|_| T::of(dist.sample(rng)))),
            Err(_) => data.resize(n, low), // empty range: every sample is `low`
        }
        Ok(Self::from_parts(data, shape.into()))
    }

    /// Independent samples from the normal distribution with this mean and standard
    /// deviation.
    ///
    /// # Panics
    /// Where [`Tensor::try_normal`] returns an error, with its message.
    #[track_caller]
    pub fn normal(shape: &[usize], mean: T, std: T, rng: &mut impl Rng) -> Self {
        or_panic(Self::try_normal(shape, mean, std, rng))
    }

    /// [`Tensor::normal`]; errors as [`Tensor::try_zeros`].
    #[track_caller]
    pub fn try_normal(shape: &[usize], mean: T, std: T, rng: &mut impl Rng) -> Result<Self> {
        let mut data = output_buffer("normal", shape)?;
        let n = numel(shape);
        let (m, s) = (mean.to_f64().unwrap_or(0.0), std.to_f64().unwrap_or(0.0));
        match Normal::new(m, s.abs()) {
            Ok(dist) => data.extend((0..n).map(|_| T::of(dist.sample(rng)))),
            Err(_) => data.resize(n, mean),
        }
        Ok(Self::from_parts(data, shape.into()))
    }

    /// The largest absolute difference between two tensors of the same shape (`inf` if the
    /// shapes differ, NaN if a NaN on either side makes a difference NaN: a NaN is never
    /// "close").
    pub fn max_abs_diff(&self, other: &Self) -> T {
        if self.shape != other.shape {
            return T::infinity();
        }
        self.data()
            .iter()
            .zip(other.data())
            .fold(T::zero(), |m, (&a, &b)| nan_max(m, (a - b).abs()))
    }

    /// The Euclidean (Frobenius) norm of all elements.
    pub fn norm(&self) -> T {
        self.data().iter().map(|&x| x * x).sum::<T>().sqrt()
    }

    /// Converts every element to another element type.
    ///
    /// # Panics
    /// When the memory for the result cannot be allocated.
    #[track_caller]
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        let mut data = or_panic(output_buffer("cast", &self.shape));
        data.extend(
            self.data()
                .iter()
                .map(|&x| U::of(x.to_f64().unwrap_or(f64::NAN))),
        );
        Tensor::from_parts(data, self.shape.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape.as_slice())
            .field("data", &self.data())
            .finish()
    }
}

/// Prints nested brackets like NumPy, at most 6 entries per axis.
impl<T: fmt::Display + Copy> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn go<T: fmt::Display + Copy>(
            f: &mut fmt::Formatter<'_>,
            data: &[T],
            shape: &[usize],
        ) -> fmt::Result {
            let Some((&n, rest)) = shape.split_first() else {
                return match f.precision() {
                    Some(p) => write!(f, "{:.*}", p, data[0]),
                    None => write!(f, "{}", data[0]),
                };
            };
            let step = numel(rest);
            write!(f, "[")?;
            // Only the entries shown are visited: an empty tensor's leading dimension may
            // be enormous.
            let (head, tail) = if n > 6 { (3, n - 3) } else { (n, n) };
            for (k, i) in (0..head).chain(tail..n).enumerate() {
                if k > 0 {
                    write!(f, ", ")?;
                }
                if i == tail && tail > head {
                    write!(f, "…, ")?;
                }
                go(f, &data[i * step..(i + 1) * step], rest)?;
            }
            write!(f, "]")
        }
        go(f, self.data(), &self.shape)
    }
}

impl<T: PartialEq> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}

impl<T: Element + approx::AbsDiffEq<Epsilon = T>> approx::AbsDiffEq for Tensor<T> {
    type Epsilon = T;
    fn default_epsilon() -> T {
        T::default_epsilon()
    }
    fn abs_diff_eq(&self, other: &Self, epsilon: T) -> bool {
        self.shape == other.shape
            && self
                .data()
                .iter()
                .zip(other.data())
                .all(|(a, b)| a.abs_diff_eq(b, epsilon))
    }
}

impl<T: Element + approx::RelativeEq<Epsilon = T>> approx::RelativeEq for Tensor<T> {
    fn default_max_relative() -> T {
        T::default_max_relative()
    }
    fn relative_eq(&self, other: &Self, epsilon: T, max_relative: T) -> bool {
        self.shape == other.shape
            && self
                .data()
                .iter()
                .zip(other.data())
                .all(|(a, b)| a.relative_eq(b, epsilon, max_relative))
    }
}

/// The larger of two values, NaN if either is NaN (IEEE 754 `maximum`, what PyTorch's
/// `max`, `maximum` and `clamp` do; `Float::max` would return the other value instead).
pub(crate) fn nan_max<T: Element>(a: T, b: T) -> T {
    if a > b || a.is_nan() { a } else { b }
}

/// The smaller of two values, NaN if either is NaN.
pub(crate) fn nan_min<T: Element>(a: T, b: T) -> T {
    if a < b || a.is_nan() { a } else { b }
}

/// A seeded random-number generator for reproducible tensors and initialisation.
pub fn seeded_rng(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_in_f32_and_f64() {
        assert_eq!(Tensor::<f32>::zeros(&[2, 3]).to_vec(), vec![0.0; 6]);
        assert_eq!(Tensor::<f64>::ones(&[4]).to_vec(), vec![1.0; 4]);
        assert_eq!(Tensor::full(&[2], 7.5f32).to_vec(), vec![7.5, 7.5]);
        assert_eq!(Tensor::<f64>::eye(2).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
        assert_eq!(Tensor::<f32>::arange(3).to_vec(), vec![0.0, 1.0, 2.0]);
        assert_eq!(Tensor::scalar(3.0f64).shape(), &[] as &[usize]);
        assert_eq!(Tensor::scalar(3.0f64).item(), 3.0);
    }

    #[test]
    fn from_vec_checks_length() {
        let err = Tensor::from_vec(vec![1.0f64; 5], &[2, 3]).unwrap_err();
        assert!(matches!(
            err,
            Error::DataLength {
                len: 5,
                expected: 6,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("from_vec") && msg.contains("[2, 3]") && msg.contains("tensor.rs"));
    }

    #[test]
    #[should_panic(expected = "tensor: 1 elements for shape [1, 3, 12297829382473034411]")]
    fn a_buffer_that_does_not_fill_its_shape_is_refused_in_release_too() {
        // The invariant the matrix kernels' unsafe code relies on: a tensor's buffer holds
        // exactly its shape's element count (checked without wrapping).
        let _ = Tensor::from_parts(
            vec![1.0f32],
            Shape::from_slice(&[1, 3, 0xAAAA_AAAA_AAAA_AAAB]),
        );
    }

    #[test]
    fn display_shows_at_most_six_entries_per_axis() {
        let t = Tensor::<f64>::arange(10);
        assert_eq!(t.to_string(), "[0, 1, 2, …, 7, 8, 9]");
        let m = Tensor::<f64>::arange(6).reshape(&[2, 3]);
        assert_eq!(format!("{m:.1}"), "[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]");
        assert_eq!(Tensor::<f32>::zeros(&[0]).to_string(), "[]");
        // An empty tensor with an enormous leading dimension prints at once.
        let empty = Tensor::<f32>::zeros(&[1 << 40, 0]);
        assert_eq!(empty.to_string(), "[[], [], [], …, [], [], []]");
    }

    #[test]
    fn max_abs_diff_sees_nan() {
        let a = Tensor::from_vec(vec![1.0f64, f64::NAN, 3.0], &[3]).unwrap();
        let b = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).unwrap();
        assert!(a.max_abs_diff(&b).is_nan());
        assert!(b.max_abs_diff(&a).is_nan());
        assert_eq!(b.max_abs_diff(&b), 0.0);
    }

    #[test]
    fn random_tensors_are_seeded() {
        let a = Tensor::<f64>::normal(&[100], 0.0, 1.0, &mut seeded_rng(1));
        let b = Tensor::<f64>::normal(&[100], 0.0, 1.0, &mut seeded_rng(1));
        assert_eq!(a, b);
        let mean: f64 = a.data().iter().sum::<f64>() / 100.0;
        assert!(mean.abs() < 0.3);
        let u = Tensor::<f32>::uniform(&[1000], 2.0, 3.0, &mut seeded_rng(2));
        assert!(u.data().iter().all(|&x| (2.0..3.0).contains(&x)));
    }

    #[test]
    fn clones_share_storage_and_writes_copy() {
        let a = Tensor::<f64>::ones(&[3]);
        let mut b = a.clone();
        assert!(a.shares_storage(&b));
        b.data_mut()[0] = 5.0;
        assert!(!a.shares_storage(&b));
        assert_eq!(a.get(&[0]), 1.0);
    }

    #[test]
    fn get_and_item_report_bad_indices() {
        let t = Tensor::<f64>::zeros(&[2, 2]);
        assert!(matches!(
            t.try_get(&[2, 0]),
            Err(Error::Index {
                index: 2,
                len: 2,
                ..
            })
        ));
        assert!(matches!(t.try_get(&[0]), Err(Error::ShapeMismatch { .. })));
        assert!(matches!(t.try_item(), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn display_is_nested() {
        let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        assert_eq!(format!("{t}"), "[[1, 2], [3, 4]]");
    }
}
