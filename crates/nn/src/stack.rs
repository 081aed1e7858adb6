//! `Stack`: layers applied one after another, like [`Sequential`](crate::Sequential), but
//! generic over the kind of layer it holds.
//!
//! A `Stack<dyn ResidualUnit<T>>` can be taken apart block by block (the unraveled view and
//! lesioning in [`crate::analysis`]); a `Stack<dyn Mirrored<T>>` can be cross-checked
//! against its manual-backward twin ([`crate::crosscheck`]); a
//! `Stack<dyn MirroredUnit<T>>` allows both. As a [`Module`] it is exactly a `Sequential`:
//! the same forward and the same parameter names (`"0.linear1.weight"`, …).
//!
//! [`Mirrored`]: crate::crosscheck::Mirrored
//! [`MirroredUnit`]: crate::crosscheck::MirroredUnit
//! [`ResidualUnit`]: crate::ResidualUnit
//!
//! ```
//! use autograd::seeded_rng;
//! use nn::{Init, Module, ProjectionBlock, ResidualBlock, ResidualUnit, Stack};
//!
//! let mut rng = seeded_rng(0);
//! let stack = Stack::<dyn ResidualUnit<f32>>::new()
//!     .push(Box::new(ResidualBlock::new(4, Init::he(), &mut rng)))
//!     .push(Box::new(ProjectionBlock::new(4, 6, Init::he(), &mut rng)));
//! assert_eq!(stack.named_parameters()[4].0, "1.linear1.weight");
//! ```

use crate::buffer::Buffer;
use crate::module::{Ctx, Module, chain, or_panic};
use crate::param::Param;
use autograd::{Element, Result, Var};

/// Boxed layers of one kind `L` (usually a trait object), applied in order.
pub struct Stack<L: ?Sized> {
    /// The layers, first applied first.
    pub layers: Vec<Box<L>>,
}

impl<L: ?Sized> Default for Stack<L> {
    fn default() -> Self {
        Stack { layers: Vec::new() }
    }
}

impl<L: ?Sized> Stack<L> {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer (builder style).
    pub fn push(mut self, layer: Box<L>) -> Self {
        self.layers.push(layer);
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<L: ?Sized> FromIterator<Box<L>> for Stack<L> {
    fn from_iter<I: IntoIterator<Item = Box<L>>>(iter: I) -> Self {
        Stack {
            layers: iter.into_iter().collect(),
        }
    }
}

impl<T: Element, L: Module<T> + ?Sized> Module<T> for Stack<L> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// Each layer applied to the previous one's output. A layer's error comes back as
    /// [`Error::InLayer`](autograd::Error::InLayer): `"Stack layer 2 (Linear<f32>): …"`,
    /// naming the line that called this method.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        chain::try_forward("Stack", self.layers.iter().map(|l| l.as_ref()), cx, x)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        chain::named_parameters(self.layers.iter().map(|l| l.as_ref()))
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        chain::named_buffers(self.layers.iter().map(|l| l.as_ref()))
    }
}
