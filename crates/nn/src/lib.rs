//! # nn
//!
//! Neural-network layers for wengert, written as **forward passes only**: their backward
//! comes from the tape.
//!
//! - [`Module`]: `forward` plus the list of parameters; nothing about gradients.
//! - [`Param`]: a learnable tensor living outside any tape, shared by its module and the
//!   optimizer; [`Ctx`] binds it to a step's tape without copying it, and
//!   [`Ctx::param_grads`] returns the gradients keyed by parameter.
//! - [`ResidualBlock`]: the notebook's block, H(x) = ReLU(F(x) + x).
#![deny(missing_docs)]

pub mod activation;
pub mod conv;
pub mod conv_block;
pub mod init;
pub mod linear;
pub mod module;
pub mod param;
pub mod pool;
pub mod residual;
pub mod sequential;

pub use activation::{Activation, Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use autograd;
pub use conv::Conv2d;
pub use conv_block::{BasicConvBlock, ConvProjection};
pub use init::{Fan, Init};
pub use linear::Linear;
pub use module::{Ctx, Module, prefixed};
pub use param::{Param, ParamGrads};
pub use pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};
pub use residual::{ProjectionBlock, ResidualBlock, ResidualUnit};
pub use sequential::Sequential;
