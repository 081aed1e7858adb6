//! Parameters: learnable tensors that live outside any tape.
//!
//! A [`Param`] is a shared handle (cloning it does not copy the tensor): the module that
//! owns it, the optimizer that updates it, and the [`Ctx`](crate::Ctx) that binds it to a
//! tape for one step all refer to the same value. Binding a parameter to a tape shares its
//! buffer; nothing is copied.

use autograd::{Element, Tensor};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(0);

/// A learnable tensor, shared between its module, the optimizer and the tape of a step.
#[derive(Clone)]
pub struct Param<T: Element = f32> {
    inner: Arc<ParamInner<T>>,
}

struct ParamInner<T> {
    id: u64,
    value: RwLock<Tensor<T>>,
}

impl<T: Element> Param<T> {
    /// A new parameter holding `value`.
    pub fn new(value: Tensor<T>) -> Self {
        Param {
            inner: Arc::new(ParamInner {
                id: NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed),
                value: RwLock::new(value),
            }),
        }
    }

    /// A process-unique id: gradients and optimizer state are found by it.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The current value (shares the buffer; no copy).
    pub fn value(&self) -> Tensor<T> {
        self.inner
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The value's shape.
    pub fn shape(&self) -> Vec<usize> {
        self.inner
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .shape()
            .to_vec()
    }

    /// Replaces the value.
    pub fn set(&self, value: Tensor<T>) {
        *self.inner.value.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Updates the value in place (copying the buffer first only if a tape still shares it).
    pub fn update(&self, f: impl FnOnce(&mut [T])) {
        let mut guard = self.inner.value.write().unwrap_or_else(|e| e.into_inner());
        f(guard.data_mut());
    }

    /// Whether two handles refer to the same parameter.
    pub fn same(&self, other: &Param<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T: Element> fmt::Debug for Param<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Param#{}{:?}", self.id(), self.shape())
    }
}

/// The gradient of a loss with respect to each parameter bound during a step, found by the
/// parameter (not by position).
pub struct ParamGrads<T: Element = f32> {
    pub(crate) by_id: HashMap<u64, Tensor<T>>,
}

impl<T: Element> ParamGrads<T> {
    /// The gradient for `p`, or `None` if `p` was not used (or did not affect the loss).
    pub fn get(&self, p: &Param<T>) -> Option<&Tensor<T>> {
        self.by_id.get(&p.id())
    }

    /// The gradient for `p`, zeros when it has none.
    pub fn wrt(&self, p: &Param<T>) -> Tensor<T> {
        self.get(p)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(&p.shape()))
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Mutable access to `p`'s gradient (for clipping or scaling before a step).
    pub fn get_mut(&mut self, p: &Param<T>) -> Option<&mut Tensor<T>> {
        self.by_id.get_mut(&p.id())
    }

    /// All gradients, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Tensor<T>> {
        self.by_id.values_mut()
    }
}
