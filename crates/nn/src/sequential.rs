//! `Sequential`: modules applied one after another.

use crate::buffer::Buffer;
use crate::module::{Ctx, Module, chain};
use crate::param::Param;
use autograd::{Element, Var};

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
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        chain::forward(self.layers.iter().map(|l| l.as_ref()), cx, x)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        chain::named_parameters(self.layers.iter().map(|l| l.as_ref()))
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        chain::named_buffers(self.layers.iter().map(|l| l.as_ref()))
    }
}
