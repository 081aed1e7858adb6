//! # nn
//!
//! Neural-network layers for wengert, written as **forward passes only**: their backward
//! comes from the tape.
//!
//! A training loop:
//!
//! ```
//! use nn::{Init, Module, Optimizer, ResidualBlock, Sgd, loss};
//! use autograd::{Tensor, seeded_rng};
//!
//! let model = ResidualBlock::<f32>::new(8, Init::he(), &mut seeded_rng(0));
//! let mut opt = Sgd::new(model.parameters(), 0.05);
//! let (x, y) = (Tensor::ones(&[4, 8]), Tensor::zeros(&[4, 8]));
//! for step in 0..10 {
//!     let (loss, grads) = nn::value_and_grad(step, |cx| {
//!         let out = model.forward(cx, &cx.input(x.clone()));
//!         loss::mse(&out, &cx.input(y.clone()))
//!     });
//!     opt.step(&grads);
//!     println!("step {step}: loss {loss:.4}");
//! }
//! ```
//!
//! [`value_and_grad`] records the closure on a fresh tape, sweeps backward once and returns
//! the loss and the gradients after the tape is gone, so `opt.step` updates every
//! parameter in place.
//!
//! - [`Module`]: `forward` plus the list of parameters; nothing about gradients.
//! - [`Param`]: a learnable tensor living outside any tape, shared by its module and the
//!   optimizer; [`Ctx`] binds it to a step's tape without copying it, and
//!   [`Ctx::param_grads`] returns the gradients as pairs ([`ParamGrads`]: parameter,
//!   gradient). [`value_and_grad`] does both for a training step.
//! - [`ResidualBlock`]: the notebook's block, H(x) = ReLU(F(x) + x); [`ProjectionBlock`],
//!   [`Residual`] (any module made residual), [`PreActBlock`], [`StochasticDepth`].
//! - Layers: [`Linear`], activations, [`BatchNorm1d`], [`BatchNorm2d`], [`LayerNorm`],
//!   [`Dropout`], [`Sequential`], [`Stack`]; losses in [`loss`], optimizers in [`optim`],
//!   initialisation in [`init`], the tutorial's network builder in [`builder`], parameter
//!   files in [`io`] (safetensors, PyTorch's `state_dict` names both ways), data sets and
//!   seeded minibatches in [`data`].
//! - Every module is `Send + Sync`, has a fallible [`Module::try_forward`] whose errors name
//!   the caller's line (and, in a [`Sequential`] or [`Stack`], the failing layer), and
//!   [`Module::predict`] for inference without a tape.
//! - Activation checkpointing ([`checkpoint`]): [`Checkpoint`] runs a module as a segment
//!   recomputed in backward, [`Segmented`] a [`Stack`] in segments of k blocks — O(√N)
//!   memory for a deep network, for one more forward pass, with the same gradients.
//! - Images: [`Conv2d`], [`MaxPool2d`], [`AvgPool2d`], [`GlobalAvgPool`], [`Flatten`], and
//!   the ResNet [`BasicConvBlock`] (identity or [`ConvProjection`] shortcut).
//! - [`manual`]: the same layers with hand-written `backward`, using plain tensor kernels
//!   only, and [`crosscheck`]: run both on the same parameters and report, layer by layer,
//!   where they disagree.
//! - [`analysis`]: the exact gradient through paths of each length (the unraveled view of
//!   a residual network) and lesioning.
#![deny(missing_docs)]

pub mod activation;
pub mod analysis;
pub mod buffer;
pub mod builder;
pub mod checkpoint;
pub mod conv;
pub mod conv_block;
pub mod crosscheck;
pub mod data;
pub mod dropout;
pub mod init;
pub mod io;
pub mod linear;
pub mod loss;
pub mod manual;
pub mod module;
pub mod norm;
pub mod optim;
pub mod param;
pub mod pool;
pub mod residual;
pub mod residual_variants;
pub mod sequential;
pub mod stack;
pub mod training;

pub use activation::{Activation, Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use autograd;
pub use buffer::Buffer;
pub use builder::{Architecture, HiddenUnit, Mlp, MlpConfig};
pub use checkpoint::{Checkpoint, Segmented};
pub use conv::Conv2d;
pub use conv_block::{BasicConvBlock, ConvProjection};
pub use dropout::{Dropout, StochasticDepth};
pub use init::{Fan, Init};
pub use io::IoError;
pub use linear::Linear;
pub use module::{Ctx, Module, prefixed};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, LayerNorm, NormLayer, Normalization};
pub use optim::{Adam, AdamW, IntoParams, Optimizer, Sgd, clip_grad_norm, try_clip_grad_norm};
pub use param::{Param, ParamGrads};
pub use pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};
pub use residual::{ProjectionBlock, ResidualBlock, ResidualUnit};
pub use residual_variants::{PreActBlock, Residual};
pub use sequential::Sequential;
pub use stack::Stack;
pub use training::{try_value_and_grad, value_and_grad};
