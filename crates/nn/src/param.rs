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
        self.with_value_mut(|value| f(value.data_mut()))
    }

    /// Runs `f` on the value, read-only, without cloning the handle to it.
    pub(crate) fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(&self.inner.value.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the value with write access (its shape and its elements).
    pub(crate) fn with_value_mut<R>(&self, f: impl FnOnce(&mut Tensor<T>) -> R) -> R {
        f(&mut self.inner.value.write().unwrap_or_else(|e| e.into_inner()))
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

/// The gradient of a loss with respect to each parameter bound during a step: pairs
/// (parameter, gradient) in the order the parameters were first used, found by parameter
/// (not by position).
///
/// ```
/// use nn::{Linear, Module};
/// use autograd::{Tensor, seeded_rng};
///
/// let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
/// let (_, grads) = nn::value_and_grad(0, |cx| {
///     layer.forward(cx, &cx.input(Tensor::ones(&[4, 3]))).sum()
/// });
/// for (param, grad) in &grads {
///     assert_eq!(grad.shape(), param.shape());
/// }
/// assert_eq!(grads.wrt(&layer.weight).shape(), &[2, 3]);
/// ```
pub struct ParamGrads<T: Element = f32> {
    /// (parameter, gradient), in the order the parameters were bound.
    pairs: Vec<(Param<T>, Tensor<T>)>,
    /// Position in `pairs` of each parameter, by id.
    index: HashMap<u64, usize>,
}

impl<T: Element> ParamGrads<T> {
    /// The gradient for `p`, or `None` if `p` was not used (or did not affect the loss).
    pub fn get(&self, p: &Param<T>) -> Option<&Tensor<T>> {
        self.index.get(&p.id()).map(|&i| &self.pairs[i].1)
    }

    /// The gradient for `p`, zeros when it has none.
    pub fn wrt(&self, p: &Param<T>) -> Tensor<T> {
        self.get(p)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(&p.shape()))
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Mutable access to `p`'s gradient (for clipping or scaling before a step).
    pub fn get_mut(&mut self, p: &Param<T>) -> Option<&mut Tensor<T>> {
        self.index.get(&p.id()).map(|&i| &mut self.pairs[i].1)
    }

    /// The pairs (parameter, gradient), in the order the parameters were first used.
    pub fn iter(&self) -> impl Iterator<Item = (&Param<T>, &Tensor<T>)> {
        self.pairs.iter().map(|(p, g)| (p, g))
    }

    /// The pairs (parameter, gradient) with the gradients writable (for clipping or
    /// scaling before a step), in the order the parameters were first used.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Param<T>, &mut Tensor<T>)> {
        self.pairs.iter_mut().map(|(p, g)| (&*p, g))
    }
}

/// Gradients from pairs (parameter, gradient), e.g. computed outside a tape; a later pair
/// for the same parameter replaces an earlier one.
///
/// ```
/// use nn::{Optimizer, Param, ParamGrads, Sgd};
/// use autograd::Tensor;
///
/// let p = Param::new(Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap());
/// let grads: ParamGrads<f64> = [(p.clone(), Tensor::ones(&[2]))].into_iter().collect();
/// Sgd::new(vec![p.clone()], 0.5).step(&grads);
/// assert_eq!(p.value().to_vec(), vec![0.5, 1.5]);
/// ```
impl<T: Element> FromIterator<(Param<T>, Tensor<T>)> for ParamGrads<T> {
    fn from_iter<I: IntoIterator<Item = (Param<T>, Tensor<T>)>>(pairs: I) -> Self {
        let mut grads = ParamGrads {
            pairs: Vec::new(),
            index: HashMap::new(),
        };
        for (p, g) in pairs {
            match grads.index.get(&p.id()) {
                Some(&i) => grads.pairs[i].1 = g,
                None => {
                    grads.index.insert(p.id(), grads.pairs.len());
                    grads.pairs.push((p, g));
                }
            }
        }
        grads
    }
}

impl<'a, T: Element> IntoIterator for &'a ParamGrads<T> {
    type Item = (&'a Param<T>, &'a Tensor<T>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Param<T>, Tensor<T>)>,
        fn(&'a (Param<T>, Tensor<T>)) -> (&'a Param<T>, &'a Tensor<T>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter().map(|(p, g)| (p, g))
    }
}

impl<'a, T: Element> IntoIterator for &'a mut ParamGrads<T> {
    type Item = (&'a Param<T>, &'a mut Tensor<T>);
    type IntoIter = std::iter::Map<
        std::slice::IterMut<'a, (Param<T>, Tensor<T>)>,
        fn(&'a mut (Param<T>, Tensor<T>)) -> (&'a Param<T>, &'a mut Tensor<T>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter_mut().map(|(p, g)| (&*p, g))
    }
}

impl<T: Element> IntoIterator for ParamGrads<T> {
    type Item = (Param<T>, Tensor<T>);
    type IntoIter = std::vec::IntoIter<(Param<T>, Tensor<T>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

impl<T: Element> fmt::Debug for ParamGrads<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.pairs.iter().map(|(p, g)| (p, g.shape())))
            .finish()
    }
}
