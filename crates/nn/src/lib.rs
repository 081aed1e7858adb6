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
pub mod analysis;
pub mod crosscheck;
pub mod init;
pub mod linear;
pub mod manual;
pub mod module;
pub mod param;
pub mod residual;
pub mod sequential;
pub mod stack;

pub use activation::{Activation, Gelu, LeakyRelu, Relu, Sigmoid, Tanh};
pub use autograd;
pub use init::{Fan, Init};
pub use linear::Linear;
pub use module::{Ctx, Module, prefixed};
pub use param::{Param, ParamGrads};
pub use residual::{ProjectionBlock, ResidualBlock, ResidualUnit};
pub use sequential::Sequential;
pub use stack::Stack;
