//! `Sequential`: modules applied one after another.

use crate::buffer::Buffer;
use crate::module::{Ctx, Module, chain, or_panic};
use crate::param::Param;
use autograd::{Element, Result, Var};

/// Applies its modules in order; parameter names are prefixed with each module's index
/// (`"0.weight"`, `"1.linear1.bias"`, …) as in PyTorch.
pub struct Sequential<T: Element = f32> {
    /// The modules, first applied first.
    pub layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Element> Default for Sequential<T> {
    fn default() -> Self {
        Sequential { layers: Vec::new() }
    }
}

impl<T: Element> Sequential<T> {
    /// An empty sequence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module (builder style).
    pub fn push(mut self, layer: impl Module<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<T: Element> Module<T> for Sequential<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// Each layer applied to the previous one's output. A layer's error comes back as
    /// [`Error::InLayer`](autograd::Error::InLayer): `"Sequential layer 2 (Linear<f32>): …"`,
    /// naming the line that called this method.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        chain::try_forward("Sequential", self.layers.iter().map(|l| l.as_ref()), cx, x)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        chain::named_parameters(self.layers.iter().map(|l| l.as_ref()))
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        chain::named_buffers(self.layers.iter().map(|l| l.as_ref()))
    }
}
