#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub use autograd;
pub use nn;

pub mod checkpoint_cost;
pub mod machine_peak;
#[cfg(feature = "tutorial")]
pub mod tutorial;
pub mod workloads;

/// docs/design.md, whose Rust blocks (the training loop) are compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/design.md")]
mod design_doc {}
