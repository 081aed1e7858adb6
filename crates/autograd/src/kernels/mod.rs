//! Numeric kernels on plain slices: GEMM and strided loops. Nothing here knows the tape.

pub(crate) mod matmul;
pub(crate) mod strided;

pub use matmul::{num_threads, set_num_threads};
