//! The integration tests of `autograd`, one module per theme, built as one test binary (one
//! link instead of one per file). Tests that install a global allocator live in their own
//! binaries beside this one.

mod anomaly;
mod buffer_pool;
mod checkpoint;
mod hooks;
mod inspect;
mod misuse;
mod nan;
mod numerics;
mod op_program;
mod op_programs;
mod random_graphs;
mod sizes;
mod steps;
mod tape;
mod zero_size;
