//! # The tutorial: residual connections, measured
//!
//! The notebook on residual connections (`/docs/tutorial`), chapter by chapter, with every
//! claim computed. Each chapter is a module `chNN_name` holding:
//!
//! - a `Config` of problem sizes — `Config::full()` for the tour, `Config::smoke()` for the
//!   tests — and a `run(&Config, &Progress)` that computes the chapter and returns its
//!   numbers in a result struct (what the tests assert on);
//! - the computation itself as short functions on the public `autograd`/`nn` API, with the
//!   regions a reader should see marked as code cells (`// cell: name` … `// end cell`,
//!   see [`cell`]);
//! - the result's `page()`: prose, code cells cut from the chapter's own source, tables and
//!   [`plot::Figure`]s, a [`page::Page`], plus the claims of the notebook it tested;
//! - a [`Chapter`] constant, which the chapter's example and the tour hand to [`cli::main`].
//!
//! ```sh
//! cargo run --release --example tour            # every chapter, figures in target/tutorial
//! cargo run --release --example 05_degradation  # one chapter
//! ```

/// The [`Source`] of a file of `src/tutorial/`, read with `include_str!` when the tutorial
/// is compiled: `source!("ch04_shortcuts.rs")`.
macro_rules! source {
    ($file:literal) => {
        $crate::tutorial::cell::Source {
            path: concat!("src/tutorial/", $file),
            text: include_str!($file),
        }
    };
}

pub mod cell;
pub mod cli;
pub mod data;
pub mod memory;
pub mod page;
pub mod plot;
pub mod progress;
pub mod seeds;
pub mod timing;
pub mod training;

pub mod ch01_tape;
pub mod ch02_depth;
pub mod ch03_block;
pub mod ch04_shortcuts;
pub mod ch05_degradation;
pub mod ch06_unraveled;
pub mod ch07_shapes;
pub mod ch08_cost;
pub mod ch09_variants;
pub mod ch10_manual;
pub mod ch11_digits;

pub use cell::Source;
pub use page::Page;

pub use progress::Progress;

/// Which problem sizes a chapter runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The sizes of the tour (each chapter under a minute in release on 2 cores).
    Full,
    /// Small sizes for the smoke tests (fast in the dev profile).
    Smoke,
}

impl Size {
    /// `full()` at the tour's sizes, `smoke()` at the tests': a chapter's
    /// `size.pick(Config::full, Config::smoke)`.
    pub fn pick<C>(self, full: impl FnOnce() -> C, smoke: impl FnOnce() -> C) -> C {
        match self {
            Size::Full => full(),
            Size::Smoke => smoke(),
        }
    }
}

/// A chapter as the examples and the tour see it.
#[derive(Clone, Copy)]
pub struct Chapter {
    /// Its number in the tour.
    pub number: usize,
    /// The example's name, also the Markdown page's name (`05_degradation`).
    pub slug: &'static str,
    /// The title.
    pub title: &'static str,
    /// The chapter's source file, which its page's code cells are cut from.
    pub source: Source,
    /// Runs the chapter at a size and lays out its page.
    pub page: fn(Size, &Progress) -> Page,
}

/// Every chapter, in order.
pub fn chapters() -> Vec<Chapter> {
    vec![
        ch01_tape::CHAPTER,
        ch02_depth::CHAPTER,
        ch03_block::CHAPTER,
        ch04_shortcuts::CHAPTER,
        ch05_degradation::CHAPTER,
        ch06_unraveled::CHAPTER,
        ch07_shapes::CHAPTER,
        ch08_cost::CHAPTER,
        ch09_variants::CHAPTER,
        ch10_manual::CHAPTER,
        ch11_digits::CHAPTER,
    ]
}
