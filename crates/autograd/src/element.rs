//! The element types a tensor can hold.

use num_traits::{Float, FromPrimitive, NumAssign};
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point element type: `f32` or `f64`.
///
/// Everything in `autograd` is generic over [`num_traits::Float`] through this trait; it
/// adds what the kernels need (thread safety, `'static` for the GEMM dispatch) and is
/// sealed, so it is implemented exactly for the two types the GEMM kernels support.
pub trait Element:
    Float
    + FromPrimitive
    + NumAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// The type's name, as printed in tape tables ("f32" or "f64").
    const NAME: &'static str;

    /// Converts an `f64` constant (rounding for `f32`).
    fn of(x: f64) -> Self;
}

impl Element for f32 {
    const NAME: &'static str = "f32";
    fn of(x: f64) -> Self {
        x as f32
    }
}

impl Element for f64 {
    const NAME: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}
