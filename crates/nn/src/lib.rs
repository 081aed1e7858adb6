//! # nn
//!
//! Neural-network layers for wengert, written as forward passes only: their backward
//! comes from the tape.
#![deny(missing_docs)]

pub use autograd;
