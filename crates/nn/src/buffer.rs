//! Buffers: state a module keeps between steps that is not learned by gradient descent
//! (batch norm's running mean and variance, and its count of batches).
//!
//! A [`Buffer`] is a shared handle like [`Param`](crate::Param), but it is never bound to a
//! tape and never handed to an optimizer: the module updates it itself during training
//! steps. It is saved and loaded with the parameters (PyTorch's `state_dict` holds both), so
//! a model trained with batch norm evaluates the same after a round trip.
//!
//! A buffer holds a tensor of the module's element type, or — made with
//! [`Buffer::counter`] — an integer count, which parameter files store as a 0-d `I64`
//! tensor as PyTorch stores `num_batches_tracked`.

use autograd::{Element, Tensor};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// A non-learnable tensor (or integer count) a module updates in place, shared by every
/// clone of the handle.
#[derive(Clone)]
pub struct Buffer<T: Element = f32> {
    value: Value<T>,
}

/// What a buffer holds.
#[derive(Clone)]
enum Value<T> {
    Tensor(Arc<RwLock<Tensor<T>>>),
    Count(Arc<AtomicI64>),
}

impl<T: Element> Buffer<T> {
    /// A new buffer holding `value`.
    pub fn new(value: Tensor<T>) -> Self {
        Buffer {
            value: Value::Tensor(Arc::new(RwLock::new(value))),
        }
    }

    /// A new integer count starting at `start` (a 0-d tensor of `I64` in parameter files,
    /// like PyTorch's `num_batches_tracked`).
    ///
    /// ```
    /// let steps = nn::Buffer::<f32>::counter(0);
    /// steps.add_to_count(3);
    /// assert_eq!(steps.count(), Some(3));
    /// assert_eq!(steps.value().item(), 3.0);
    /// assert_eq!(steps.shape(), Vec::<usize>::new());
    /// // Past 2²⁴ an f32 value rounds; the count and a snapshot stay exact.
    /// steps.set_count((1 << 24) + 1);
    /// let kept = steps.snapshot();
    /// steps.add_to_count(5);
    /// steps.restore(&kept);
    /// assert_eq!(steps.count(), Some((1 << 24) + 1));
    /// ```
    pub fn counter(start: i64) -> Self {
        Buffer {
            value: Value::Count(Arc::new(AtomicI64::new(start))),
        }
    }

    /// The current value (shares the buffer; no copy). A counter's is a 0-d tensor holding
    /// the count (rounded to the element type beyond 2²⁴ for `f32`; [`Buffer::count`] is
    /// exact).
    pub fn value(&self) -> Tensor<T> {
        match &self.value {
            Value::Tensor(t) => t.read().unwrap_or_else(|e| e.into_inner()).clone(),
            Value::Count(c) => Tensor::scalar(T::of(c.load(Ordering::Relaxed) as f64)),
        }
    }

    /// The value's shape (`[]` for a counter).
    pub fn shape(&self) -> Vec<usize> {
        match &self.value {
            Value::Tensor(t) => t.read().unwrap_or_else(|e| e.into_inner()).shape().to_vec(),
            Value::Count(_) => Vec::new(),
        }
    }

    /// Replaces the value. For a counter, the count becomes the tensor's first element
    /// rounded to an integer (0 for an empty tensor or a NaN); use [`Buffer::set_count`]
    /// to set it exactly.
    pub fn set(&self, value: Tensor<T>) {
        match &self.value {
            Value::Tensor(t) => *t.write().unwrap_or_else(|e| e.into_inner()) = value,
            Value::Count(c) => {
                let first = value.data().first().and_then(|v| v.round().to_i64());
                c.store(first.unwrap_or(0), Ordering::Relaxed);
            }
        }
    }

    /// The count, for a buffer made with [`Buffer::counter`]; `None` for a tensor.
    pub fn count(&self) -> Option<i64> {
        match &self.value {
            Value::Tensor(_) => None,
            Value::Count(c) => Some(c.load(Ordering::Relaxed)),
        }
    }

    /// Sets the count (nothing happens to a tensor buffer).
    pub fn set_count(&self, count: i64) {
        if let Value::Count(c) = &self.value {
            c.store(count, Ordering::Relaxed);
        }
    }

    /// Adds `n` to the count, wrapping on overflow as PyTorch's `int64` does (nothing
    /// happens to a tensor buffer).
    pub fn add_to_count(&self, n: i64) {
        if let Value::Count(c) = &self.value {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A copy of the current state, shared with no one (for putting it back later with
    /// [`Buffer::restore`]; exact for a counter, whose [`Buffer::value`] may round).
    pub fn snapshot(&self) -> Buffer<T> {
        match &self.value {
            Value::Tensor(_) => Buffer::new(self.value()),
            Value::Count(c) => Buffer::counter(c.load(Ordering::Relaxed)),
        }
    }

    /// Puts back a state taken with [`Buffer::snapshot`] (a count into a counter, a tensor
    /// into a tensor buffer; a snapshot of the other kind is ignored).
    pub fn restore(&self, snapshot: &Buffer<T>) {
        match (&self.value, &snapshot.value) {
            (Value::Tensor(_), Value::Tensor(_)) => self.set(snapshot.value()),
            (Value::Count(c), Value::Count(s)) => {
                c.store(s.load(Ordering::Relaxed), Ordering::Relaxed)
            }
            _ => {}
        }
    }

    /// Whether this buffer is an integer count.
    pub fn is_counter(&self) -> bool {
        matches!(self.value, Value::Count(_))
    }
}

impl<T: Element> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.count() {
            Some(n) => write!(f, "Buffer(count {n})"),
            None => write!(f, "Buffer{:?}", self.shape()),
        }
    }
}
