//! Pooling and flattening layers (no parameters): `MaxPool2d`, `AvgPool2d`,
//! `GlobalAvgPool`, `Flatten`.

use crate::module::{Ctx, Module, or_panic};
use crate::param::Param;
use autograd::{Element, Result, Var};

/// A pooling layer over `[N, C, H, W]`: its window geometry (`kernel`, `stride`,
/// `padding`), `new`, `with_padding`, and its `Module` impl (`try_forward`: the op `$op` on
/// the input). Each use states only what differs: the docs and the op.
macro_rules! pooling_layer {
    (
        $(#[$doc:meta])*
        $name:ident, op: $op:ident,
        padding: $padding_doc:literal,
        with_padding: $with_padding_doc:literal $(,)?
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Window size (height, width).
            pub kernel: (usize, usize),
            /// Step between windows (height, width).
            pub stride: (usize, usize),
            #[doc = $padding_doc]
            pub padding: (usize, usize),
        }

        impl $name {
            /// Windows of `kernel` moved by `stride`, no padding.
            pub fn new(kernel: (usize, usize), stride: (usize, usize)) -> Self {
                $name {
                    kernel,
                    stride,
                    padding: (0, 0),
                }
            }

            #[doc = $with_padding_doc]
            pub fn with_padding(mut self, padding: (usize, usize)) -> Self {
                self.padding = padding;
                self
            }
        }

        impl<T: Element> Module<T> for $name {
            /// # Panics
            /// Where [`Module::try_forward`] returns an error, with its message.
            #[track_caller]
            fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
                or_panic(self.try_forward(cx, x))
            }

            /// The forward pass, with shape errors returned.
            #[track_caller]
            fn try_forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
                x.$op(self.kernel, self.stride, self.padding)
            }

            fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                Vec::new()
            }
        }
    };
}

pooling_layer!(
    /// Max pooling over `[N, C, H, W]`: the largest value of each `kernel` window, windows
    /// moved by `stride`; the gradient goes to each window's arg-max.
    MaxPool2d, op: try_max_pool2d,
    padding: " Padding on each side, never chosen as a maximum; at most half the kernel.",
    with_padding: " The same pooling with padding (e.g. ResNet's stem: 3×3, stride 2, padding 1).",
);

pooling_layer!(
    /// Average pooling over `[N, C, H, W]`: the mean of each `kernel` window, windows moved by
    /// `stride`; zero padding counts in the mean (PyTorch's default).
    AvgPool2d, op: try_avg_pool2d,
    padding: " Zero padding on each side; at most half the kernel.",
    with_padding: " The same pooling with zero padding.",
);

/// The mean of each channel, `[N, C, H, W] → [N, C]`: the head of a ResNet, before its
/// `Linear` classifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool;

impl<T: Element> Module<T> for GlobalAvgPool {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The forward pass; an error if the input is not of rank 4.
    #[track_caller]
    fn try_forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        x.try_global_avg_pool2d()
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}

/// Keeps the first axis and flattens the rest: `[N, d₁, …, dₖ] → [N, d₁·…·dₖ]` (a
/// reshape: no copy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten;

impl<T: Element> Module<T> for Flatten {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The forward pass; an error for a 0-d input.
    #[track_caller]
    fn try_forward<'t>(&self, _cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        match x.shape().split_first() {
            Some((&n, rest)) => x.try_reshape(&[n, rest.iter().product()]),
            None => Err(autograd::Error::Rank {
                op: "flatten",
                expected: "rank 1 or more",
                got: x.shape().into(),
                at: autograd::Caller::here(),
            }),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }
}
