//! Buffers: state a module keeps between steps that is not learned by gradient descent
//! (batch norm's running mean and variance).
//!
//! A [`Buffer`] is a shared handle like [`Param`](crate::Param), but it is never bound to a
//! tape and never handed to an optimizer: the module updates it itself during training
//! steps. It is saved and loaded with the parameters (PyTorch's `state_dict` holds both), so
//! a model trained with batch norm evaluates the same after a round trip.

use autograd::{Element, Tensor};
use std::fmt;
use std::sync::{Arc, RwLock};

/// A non-learnable tensor a module updates in place, shared by every clone of the handle.
#[derive(Clone)]
pub struct Buffer<T: Element = f32> {
    value: Arc<RwLock<Tensor<T>>>,
}

impl<T: Element> Buffer<T> {
    /// A new buffer holding `value`.
    pub fn new(value: Tensor<T>) -> Self {
        Buffer {
            value: Arc::new(RwLock::new(value)),
        }
    }

    /// The current value (shares the buffer; no copy).
    pub fn value(&self) -> Tensor<T> {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .shape()
            .to_vec()
    }

    /// Replaces the value.
    pub fn set(&self, value: Tensor<T>) {
        *self.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl<T: Element> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer{:?}", self.shape())
    }
}
