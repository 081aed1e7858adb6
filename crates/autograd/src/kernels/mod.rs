//! Numeric kernels on plain slices: GEMM, strided loops and im2col. Nothing here knows the
//! tape.

pub(crate) mod conv;
pub(crate) mod matmul;
pub(crate) mod sgemm;
pub(crate) mod spin_pool;
pub(crate) mod strided;

pub use matmul::{F32Kernel, bench_gemm_f32, num_threads, set_f32_kernel, set_num_threads};
