//! `Conv2d`: a 2-d convolution layer, one node on the tape.

use crate::init::Init;
use crate::module::{Ctx, Module, or_panic};
use crate::param::Param;
use autograd::rand::Rng;
use autograd::{Element, Result, Tensor, Var};

/// A 2-d convolution over `[N, C, H, W]` inputs: `y = W ⋆ x + b` with `W` of shape
/// `[out_channels, in_channels, kh, kw]` (PyTorch's layout), zero padding, and an optional
/// bias `[out_channels]`.
///
/// ```
/// use autograd::{Tape, Tensor, seeded_rng};
/// use nn::{Conv2d, Ctx, Module};
///
/// let conv = Conv2d::<f32>::new(3, 8, (3, 3), true, &mut seeded_rng(0)).with_padding((1, 1));
/// let tape = Tape::new();
/// let cx = Ctx::train(&tape, 0);
/// let y = conv.forward(&cx, &cx.input(Tensor::ones(&[2, 3, 16, 16])));
/// assert_eq!(y.shape(), &[2, 8, 16, 16]);
/// ```
pub struct Conv2d<T: Element = f32> {
    /// `[out_channels, in_channels, kh, kw]`.
    pub weight: Param<T>,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param<T>>,
    /// Step of the kernel along (height, width).
    pub stride: (usize, usize),
    /// Zeros added on each side along (height, width).
    pub padding: (usize, usize),
}

impl<T: Element> Conv2d<T> {
    /// A convolution with stride 1 and no padding, initialised as PyTorch's `nn.Conv2d`:
    /// weight and bias (if `bias`) uniform in ±1/√fan-in, fan-in = `in_channels·kh·kw`
    /// (`kaiming_uniform_(a=√5)`, [`Init::PyTorchDefault`]). The same arguments and defaults
    /// as [`Linear::new`](crate::Linear::new); change stride and padding with
    /// [`Conv2d::with_stride`] and [`Conv2d::with_padding`].
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        bias: bool,
        rng: &mut impl Rng,
    ) -> Self {
        Self::with_init(
            in_channels,
            out_channels,
            kernel,
            bias,
            Init::PyTorchDefault,
            rng,
        )
    }

    /// A convolution (stride 1, no padding) whose weight is drawn with `init`, fans
    /// counted as PyTorch does: fan-in `in·kh·kw`, fan-out `out·kh·kw`. The bias starts at
    /// zero, except for `Init::PyTorchDefault` (uniform in ±1/√fan-in), as for
    /// [`Linear::with_init`](crate::Linear::with_init).
    pub fn with_init(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        bias: bool,
        init: Init,
        rng: &mut impl Rng,
    ) -> Self {
        let area = kernel.0.saturating_mul(kernel.1);
        let (fan_in, fan_out) = (
            in_channels.saturating_mul(area),
            out_channels.saturating_mul(area),
        );
        let shape = [out_channels, in_channels, kernel.0, kernel.1];
        let weight = init.weight::<T>(&shape, fan_in, fan_out, rng);
        let bias = bias.then(|| Param::new(init.bias::<T>(out_channels, fan_in, rng)));
        Conv2d {
            weight: Param::new(weight),
            bias,
            stride: (1, 1),
            padding: (0, 0),
        }
    }

    /// The ResNet 3×3 convolution: padding 1 (size kept at stride 1), no bias (a
    /// normalisation follows), initialised as torchvision's ResNet initialises its
    /// convolutions: normal with std √2/√fan-out (`kaiming_normal_(mode="fan_out",
    /// nonlinearity="relu")`, [`Init::resnet`]).
    pub fn conv3x3(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        rng: &mut impl Rng,
    ) -> Self {
        Self::with_init(
            in_channels,
            out_channels,
            (3, 3),
            false,
            Init::resnet(),
            rng,
        )
        .with_stride((stride, stride))
        .with_padding((1, 1))
    }

    /// The ResNet 1×1 convolution (a projection shortcut): no padding, no bias, initialised
    /// as [`Conv2d::conv3x3`].
    pub fn conv1x1(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        rng: &mut impl Rng,
    ) -> Self {
        Self::with_init(
            in_channels,
            out_channels,
            (1, 1),
            false,
            Init::resnet(),
            rng,
        )
        .with_stride((stride, stride))
    }

    /// A layer with the given weight `[out, in, kh, kw]` and optional bias `[out]`.
    pub fn from_tensors(
        weight: Tensor<T>,
        bias: Option<Tensor<T>>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Self {
        Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            stride,
            padding,
        }
    }

    /// The same layer with another stride.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Self {
        self.stride = stride;
        self
    }

    /// The same layer with another padding.
    pub fn with_padding(mut self, padding: (usize, usize)) -> Self {
        self.padding = padding;
        self
    }

    /// The same layer without its bias.
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Kernel size (height, width).
    pub fn kernel(&self) -> (usize, usize) {
        let s = self.weight.shape();
        (s[2], s[3])
    }
}

impl<T: Element> Module<T> for Conv2d<T> {
    /// # Panics
    /// Where [`Module::try_forward`] returns an error, with its message.
    #[track_caller]
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        or_panic(self.try_forward(cx, x))
    }

    /// The forward pass, with shape errors (rank, channels, kernel larger than the padded
    /// input) returned rather than panicking.
    #[track_caller]
    fn try_forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Result<Var<'t, T>> {
        let w = cx.param(&self.weight);
        let b = self.bias.as_ref().map(|b| cx.param(b));
        x.try_conv2d(&w, b.as_ref(), self.stride, self.padding)
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
