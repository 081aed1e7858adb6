//! The integration tests of `nn`, one module per theme, built as one test binary (one
//! link instead of one per file). Tests that install a global allocator live in their own
//! binaries beside this one.

mod analysis;
mod blocks;
mod checkpoint;
mod conv;
mod crosscheck;
mod depth;
mod io;
mod layer_errors;
mod layers;
mod manual;
mod mlp;
mod optim;
mod pytorch;
mod threads;
mod training;
