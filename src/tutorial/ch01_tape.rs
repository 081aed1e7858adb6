//! Chapter 1 — The tape.
//!
//! `y = (a + b)·a` and the notebook's residual block recorded on a Wengert tape: the list
//! itself, and the reverse sweep over it, where a value used twice receives two
//! contributions that are summed.

use super::page::{Page, Table, sig};
use super::{Chapter, Progress, Size};
use autograd::{Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 1,
    slug: "01_tape",
    title: "The tape",
    page: |size, progress| run(&Config::of(size), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Values of `a` and `b` in `y = (a + b)·a`.
    pub a: f64,
    /// See `a`.
    pub b: f64,
    /// Width of the residual block.
    pub width: usize,
    /// Rows of the block's input.
    pub batch: usize,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            a: 3.0,
            b: 4.0,
            width: 3,
            batch: 2,
        }
    }

    /// The tests' sizes (the same: the chapter is tiny).
    pub fn smoke() -> Self {
        Self::full()
    }

    /// The sizes for `size`.
    pub fn of(size: Size) -> Self {
        match size {
            Size::Full => Self::full(),
            Size::Smoke => Self::smoke(),
        }
    }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct TapeChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The Wengert list of `y = (a + b)·a`, as the tape prints it.
    pub scalar_listing: String,
    /// y.
    pub y: f64,
    /// ∂y/∂a from the tape.
    pub grad_a: f64,
    /// ∂y/∂b from the tape.
    pub grad_b: f64,
    /// Each node's adjoint ∂y/∂node after the sweep, by node id.
    pub scalar_adjoints: Vec<(usize, String, f64)>,
    /// The Wengert list of the residual block.
    pub block_listing: String,
    /// Number of nodes the block recorded.
    pub block_nodes: usize,
    /// ∂L/∂x of the block, L = Σ H(x).
    pub block_grad_x: Vec<f64>,
}

/// Records both computations and sweeps them.
pub fn run(config: &Config, _progress: &Progress) -> TapeChapter {
    // y = (a + b)·a: `a` is used twice.
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::scalar(config.a));
    let b = tape.var(Tensor::scalar(config.b));
    let s = &a + &b;
    let y = &s * &a;
    let grads = y.backward();
    let names = ["a", "b", "s = a + b", "y = s·a"];
    let scalar_adjoints = names
        .iter()
        .enumerate()
        .map(|(id, name)| {
            let g = grads.by_id(id).map_or(0.0, |g| g.item());
            (id, name.to_string(), g)
        })
        .collect();

    // The notebook's block: H(x) = ReLU(W2·ReLU(W1·x + b1) + b2 + x), L = Σ H.
    let mut rng = seeded_rng(1);
    let block = ResidualBlock::<f64>::new(config.width, Init::he(), &mut rng);
    let block_tape = Tape::<f64>::new();
    let cx = Ctx::train(&block_tape, 0);
    let x = cx.tracked_input(Tensor::uniform(
        &[config.batch, config.width],
        -1.0,
        1.0,
        &mut rng,
    ));
    let loss = block.forward(&cx, &x).sum();
    let block_grads = loss.backward();

    TapeChapter {
        config: config.clone(),
        scalar_listing: tape.to_string(),
        y: y.item(),
        grad_a: grads.wrt(&a).item(),
        grad_b: grads.wrt(&b).item(),
        scalar_adjoints,
        block_listing: block_tape.to_string(),
        block_nodes: block_tape.len(),
        block_grad_x: block_grads.wrt(&x).to_vec(),
    }
}

impl TapeChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(
            "Every operation on a tracked value appends one node to a flat list, the Wengert \
             list: the op, the ids of its inputs, the shape of its result and what its backward \
             rule needs. Backward is one loop over that list from the end, accumulating \
             adjoints ∂y/∂node. Here is y = (a + b)·a:",
        );
        page.code(self.scalar_listing.clone());
        let mut t = Table::new(["node", "value", "adjoint ∂y/∂node"]);
        for (id, name, g) in &self.scalar_adjoints {
            t.row([format!("%{id} {name}"), String::new(), sig(*g, 4)]);
        }
        page.table(t);
        page.prose(format!(
            "With a = {}, b = {}: y = {}, ∂y/∂a = {} (= 2a + b) and ∂y/∂b = {} (= a).",
            c.a, c.b, self.y, self.grad_a, self.grad_b
        ));
        page.prose(
            "The notebook's residual block, H(x) = ReLU(W₂·ReLU(W₁·x + b₁) + b₂ + x), records \
             the same way; the skip connection is the `add` node whose second input is x itself:",
        );
        page.code(self.block_listing.clone());
        page
    }
}
