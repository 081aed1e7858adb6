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
    use crate::kernels::matmul::GemmFn;

    /// Seals [`Element`](super::Element), and carries what only the kernels may see.
    pub trait Sealed: Sized {
        /// The `gemm` family's kernel for this type (chosen for the CPU on first use).
        fn gemm_fn() -> GemmFn<Self>;
        /// The error function erf x = 2/√π ∫₀ˣ e^(−t²) dt, from `libm` (FreeBSD's `s_erf.c`
        /// and `s_erff.c`, accurate to within 1 ulp).
        fn erf(self) -> Self;
    }

    impl Sealed for f32 {
        fn gemm_fn() -> GemmFn<f32> {
            gemm_f32::gemm::f32::get_gemm_fn()
        }
        fn erf(self) -> f32 {
            libm::erff(self)
        }
    }

    impl Sealed for f64 {
        fn gemm_fn() -> GemmFn<f64> {
            gemm_f64::gemm::f64::get_gemm_fn()
        }
        fn erf(self) -> f64 {
            libm::erf(self)
        }
    }
}
