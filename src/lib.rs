//! # wengert
//!
//! Reverse-mode automatic differentiation on a Wengert tape ([`autograd`]), neural-network
//! layers whose backward comes from the tape ([`nn`]), and a tutorial on residual
//! connections (the `examples/`).
#![deny(missing_docs)]

pub use autograd;
pub use nn;

pub mod tutorial;
