//! The ResNet basic block for images (He et al. 2016, "Deep Residual Learning for Image
//! Recognition", Fig. 2 and §4.2), written as a forward pass only:
//!
//! ```text
//! out = ReLU( N₂(conv3×3(ReLU(N₁(conv3×3ₛ(x))))) + S(x) )
//! ```
//!
//! where `S` is the identity when the block keeps the shape, and a 1×1 convolution with
//! stride `s` (followed by a normalisation) when it changes the number of channels or the
//! resolution: option (B) of the paper.
//!
//! The normalisation is [`BatchNorm2d`] by default ([`BasicConvBlock::new`]); the block is
//! generic over it (any [`Module`] `N`, made by a closure from the number of channels with
//! [`BasicConvBlock::with_norm`]), e.g. `|_| Activation::Identity` for a block without
//! normalisation.

use crate::activation::{Activation, Relu};
use crate::buffer::Buffer;
use crate::conv::Conv2d;
use crate::module::{Ctx, Module, at_caller, or_panic, prefixed};
use crate::norm::BatchNorm2d;
use crate::param::Param;
use crate::residual::ResidualUnit;
use autograd::rand::Rng;
use autograd::{Element, Result, Var};

/// A projection shortcut for images: a 1×1 convolution with stride (no bias), then an
/// optional normalisation. Maps `[N, in, H, W]` to `[N, out, H/s, W/s]` so that it can be
/// added to a branch that changed the channels or the resolution.
pub struct ConvProjection<T: Element = f32, N = BatchNorm2d<T>> {
    /// The 1×1 convolution.
    pub conv: Conv2d<T>,
    /// The normalisation after it, if any.
    pub norm: Option<N>,
}

impl<T: Element, N: Module<T>> ConvProjection<T, N> {
    /// A projection `in_channels → out_channels` with the given stride, Kaiming-initialised.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        norm: Option<N>,
        rng: &mut impl Rng,
    ) -> Self {
        ConvProjection {
            conv: Conv2d::conv1x1(in_channels, out_channels, stride, rng),
            norm,
        }
    }
}

impl<T: Element, N: Module<T>> Module<T> for ConvProjection<T, N> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// `norm(conv(x))`; an error (naming the caller's line) if `x` does not fit.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            let out = self.conv.try_forward(cx, x)?;
            match &self.norm {
                Some(norm) => norm.try_forward(cx, &out),
                None => Ok(out),
            }
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("conv", self.conv.named_parameters());
        if let Some(norm) = &self.norm {
            v.extend(prefixed("norm", norm.named_parameters()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        match &self.norm {
            Some(norm) => prefixed("norm", norm.named_buffers()),
            None => Vec::new(),
        }
    }
}

/// The ResNet basic block: conv3×3 (stride `s`) → norm → ReLU → conv3×3 → norm, plus the
/// shortcut (identity, or [`ConvProjection`] when channels or stride change), then ReLU.
///
/// ```
/// use autograd::{Tape, Tensor, seeded_rng};
/// use nn::{Activation, BasicConvBlock, Ctx, Module};
///
/// let mut rng = seeded_rng(0);
/// // The paper's block, with batch norm: 4 → 8 channels and stride 2, so the shortcut is
/// // a 1×1 convolution + batch norm.
/// let block = BasicConvBlock::<f32>::new(4, 8, 2, &mut rng);
/// assert!(block.projection.is_some());
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let y = block.forward(&cx, &cx.input(Tensor::ones(&[2, 4, 8, 8])));
/// assert_eq!(y.shape(), &[2, 8, 4, 4]);
///
/// // Without normalisation: the identity takes the norm layers' place.
/// let plain = BasicConvBlock::<f32, Activation>::with_norm(8, 8, 1, |_| Activation::Identity, &mut rng);
/// assert!(plain.projection.is_none());
/// assert_eq!(plain.forward(&cx, &y).shape(), &[2, 8, 4, 4]);
/// ```
pub struct BasicConvBlock<T: Element = f32, N = BatchNorm2d<T>> {
    /// First 3×3 convolution, `in → out` channels, with the block's stride.
    pub conv1: Conv2d<T>,
    /// Normalisation after `conv1`.
    pub norm1: N,
    /// Activation inside the branch.
    pub relu1: Relu,
    /// Second 3×3 convolution, `out → out`, stride 1.
    pub conv2: Conv2d<T>,
    /// Normalisation after `conv2` (the branch's last layer).
    pub norm2: N,
    /// The shortcut's projection, present when channels or resolution change.
    pub projection: Option<ConvProjection<T, N>>,
    /// Activation after the addition.
    pub relu2: Relu,
}

impl<T: Element> BasicConvBlock<T, BatchNorm2d<T>> {
    /// The paper's block `in_channels → out_channels`, first convolution with `stride`,
    /// with [`BatchNorm2d`] after each convolution (and in the projection shortcut, present
    /// when `in_channels ≠ out_channels` or `stride ≠ 1`).
    pub fn new(in_channels: usize, out_channels: usize, stride: usize, rng: &mut impl Rng) -> Self {
        Self::with_norm(in_channels, out_channels, stride, BatchNorm2d::new, rng)
    }
}

impl<T: Element, N: Module<T>> BasicConvBlock<T, N> {
    /// A block `in_channels → out_channels` whose first convolution has `stride`; `norm`
    /// makes each normalisation layer from its number of channels (e.g.
    /// `BatchNorm2d::new`). The shortcut projects (1×1 convolution + norm) exactly when
    /// `in_channels ≠ out_channels` or `stride ≠ 1`.
    pub fn with_norm(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        mut norm: impl FnMut(usize) -> N,
        rng: &mut impl Rng,
    ) -> Self {
        let conv1 = Conv2d::conv3x3(in_channels, out_channels, stride, rng);
        let norm1 = norm(out_channels);
        let conv2 = Conv2d::conv3x3(out_channels, out_channels, 1, rng);
        let norm2 = norm(out_channels);
        let projection = (in_channels != out_channels || stride != 1).then(|| {
            ConvProjection::new(
                in_channels,
                out_channels,
                stride,
                Some(norm(out_channels)),
                rng,
            )
        });
        BasicConvBlock {
            conv1,
            norm1,
            relu1: Relu,
            conv2,
            norm2,
            projection,
            relu2: Relu,
        }
    }
}

impl<T: Element, N: Module<T>> Module<T> for BasicConvBlock<T, N> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The block; an error (naming the caller's line) if `x` is not `[N, in, H, W]` with
    /// this block's `in` channels.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        at_caller(|| {
            // The residual branch F(x) …
            let out = self.try_branch(cx, x)?;
            // … plus the shortcut (x itself, or its projection) …
            let out = out.try_add(&self.try_shortcut(cx, x)?)?;
            // … and the activation after the addition.
            Ok(self.relu2.forward(cx, &out))
        })
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = prefixed("conv1", self.conv1.named_parameters());
        v.extend(prefixed("norm1", self.norm1.named_parameters()));
        v.extend(prefixed("conv2", self.conv2.named_parameters()));
        v.extend(prefixed("norm2", self.norm2.named_parameters()));
        if let Some(p) = &self.projection {
            v.extend(prefixed("projection", p.named_parameters()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Buffer<T>)> {
        let mut v = prefixed("norm1", self.norm1.named_buffers());
        v.extend(prefixed("norm2", self.norm2.named_buffers()));
        if let Some(p) = &self.projection {
            v.extend(prefixed("projection", p.named_buffers()));
        }
        v
    }
}

impl<T: Element, N: Module<T>> ResidualUnit<T> for BasicConvBlock<T, N> {
    /// The branch conv3×3 → norm → ReLU → conv3×3 → norm.
    fn try_branch<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let out = self.conv1.try_forward(cx, x)?;
        let out = self.norm1.try_forward(cx, &out)?;
        let out = self.relu1.forward(cx, &out);
        let out = self.conv2.try_forward(cx, &out)?;
        self.norm2.try_forward(cx, &out)
    }

    /// The shortcut: `x`, or its projection.
    fn try_shortcut<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        match &self.projection {
            Some(p) => p.try_forward(cx, x),
            None => Ok(x.clone()),
        }
    }

    fn post_activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}
