//! Chapter 8 — What residuals cost.
//!
//! The notebook says skip connections cost memory (x must stay alive until F(x) is done)
//! and time (elementwise additions are bandwidth-bound). We measure both on the tape:
//! the bytes it saves per block with and without the skip, the peak memory of a training
//! step and of inference, and the share of a training step spent on the additions.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::timing::{human_seconds, median_seconds, median_seconds_alternating};
use super::{Chapter, Progress};
use crate::workloads::{ResMlp, autograd_step};
use autograd::alloc_meter::{human, peak_bytes};
use autograd::{Tape, Tensor, Var};
use nn::{Ctx, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 8,
    slug: "08_cost",
    title: "What residuals cost",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// The workload sizes, each with the number of timed steps.
    pub sizes: Vec<(ResMlp, usize)>,
}

impl Config {
    /// The tour's sizes: S, M and L of WORKLOADS.md.
    pub fn full() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 200), (ResMlp::M, 20), (ResMlp::L, 5)],
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 3)],
        }
    }
}

/// With or without the skip connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// The notebook's block: ReLU(F(x) + x).
    Residual,
    /// The same layers without the skip: ReLU(F(x)).
    Plain,
}

/// One block's forward pass, with or without the skip.
fn block_forward<'t>(
    block: &ResidualBlock<f32>,
    wiring: Wiring,
    cx: &Ctx<'t, f32>,
    x: &Var<'t, f32>,
) -> Var<'t, f32> {
    match wiring {
        Wiring::Residual => block.forward(cx, x),
        Wiring::Plain => {
            let h = block.linear1.forward(cx, x).relu();
            block.linear2.forward(cx, &h).relu()
        }
    }
}

/// Forward, MSE loss, backward and SGD, like [`autograd_step`] but for either wiring.
fn step(blocks: &[ResidualBlock<f32>], wiring: Wiring, x: &Tensor<f32>, y: &Tensor<f32>) -> f32 {
    if wiring == Wiring::Residual {
        return autograd_step(blocks, x, y, 0.01);
    }
    let (loss, grads) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let mut h = cx.input(x.clone());
        for block in blocks {
            h = block_forward(block, wiring, &cx, &h);
        }
        let diff = &h - &cx.input(y.clone());
        let loss = (&diff * &diff).mean();
        let grads = cx.param_grads(&loss.backward_leaves());
        (loss.item(), grads)
    };
    for block in blocks {
        for p in block.parameters() {
            if let Some(g) = grads.get(&p) {
                p.update(|w| {
                    w.iter_mut()
                        .zip(g.data())
                        .for_each(|(w, &g)| *w -= 0.01 * g)
                });
            }
        }
    }
    loss
}

/// The network's output in inference: evaluation mode, nothing recorded.
fn infer(blocks: &[ResidualBlock<f32>], wiring: Wiring, x: &Tensor<f32>) -> Tensor<f32> {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    tape.no_grad(|| {
        let mut h = cx.input(x.clone());
        for block in blocks {
            h = block_forward(block, wiring, &cx, &h);
        }
        h.value().clone()
    })
}

/// What the tape saves for one training step, by block and by op.
#[derive(Clone, Debug)]
pub struct TapeMemory {
    /// Bytes saved by each block's nodes (region `block{k}`).
    pub per_block: Vec<usize>,
    /// Bytes saved in total.
    pub total: usize,
    /// Bytes and node counts by op, largest first: (op, nodes, bytes).
    pub by_op: Vec<(String, usize, usize)>,
}

fn tape_memory(blocks: &[ResidualBlock<f32>], wiring: Wiring, size: ResMlp) -> TapeMemory {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let mut h = cx.input(size.input());
    for (k, block) in blocks.iter().enumerate() {
        h = tape.region(&format!("block{k}"), || {
            block_forward(block, wiring, &cx, &h)
        });
    }
    let diff = &h - &cx.input(size.target());
    let _loss = tape.region("loss", || (&diff * &diff).mean());
    let report = tape.memory_report();
    TapeMemory {
        per_block: (0..blocks.len())
            .map(|k| report.region(&format!("block{k}")).map_or(0, |r| r.bytes))
            .collect(),
        total: report.total_bytes,
        by_op: report
            .by_op
            .iter()
            .map(|u| (u.name.clone(), u.nodes, u.bytes))
            .collect(),
    }
}

/// The costs of one size, both wirings.
#[derive(Clone, Debug)]
pub struct Cost {
    /// The workload size.
    pub size: ResMlp,
    /// Tape memory with the skip.
    pub residual_tape: TapeMemory,
    /// Tape memory without it.
    pub plain_tape: TapeMemory,
    /// Peak bytes live during a training step, with and without the skip.
    pub train_peak: (Option<usize>, Option<usize>),
    /// Peak bytes live during inference (no tape), with and without the skip.
    pub infer_peak: (Option<usize>, Option<usize>),
    /// Median seconds per training step, with and without the skip.
    pub step_seconds: (f64, f64),
    /// Median seconds for the additions alone: N additions of two `[B, D]` tensors
    /// (forward) and N more (the backward's accumulation of the two contributions at x).
    pub add_seconds: f64,
}

impl Cost {
    /// The share of a residual training step that the skip adds, from the two step times.
    pub fn marginal_share(&self) -> f64 {
        (self.step_seconds.0 - self.step_seconds.1) / self.step_seconds.0
    }

    /// The additions' time as a share of a residual training step.
    pub fn add_share(&self) -> f64 {
        self.add_seconds / self.step_seconds.0
    }
}

fn measure(size: ResMlp, reps: usize, progress: &Progress) -> Cost {
    let (x, y) = (size.input(), size.target());
    let blocks = size.blocks();
    progress.say(&format!("size {}: memory", size.name));
    let peak = |wiring: Wiring| {
        // A fresh copy per measurement; one warm-up step first (the GEMM's packing buffers
        // are allocated once per thread).
        step(&size.blocks(), wiring, &x, &y);
        peak_bytes(|| step(&size.blocks(), wiring, &x, &y)).1
    };
    let infer_peak = |wiring: Wiring| peak_bytes(|| infer(&blocks, wiring, &x)).1;
    progress.say(&format!("size {}: timing {reps} steps each way", size.name));
    let residual_blocks = size.blocks();
    let plain_blocks = size.blocks();
    let step_seconds = median_seconds_alternating(
        reps,
        || {
            step(&residual_blocks, Wiring::Residual, &x, &y);
        },
        || {
            step(&plain_blocks, Wiring::Plain, &x, &y);
        },
    );
    let other = Tensor::<f32>::ones(&[size.batch, size.width]);
    let add_seconds = median_seconds(reps, || {
        for _ in 0..2 * size.blocks {
            std::hint::black_box(&x + &other);
        }
    });
    Cost {
        size,
        residual_tape: tape_memory(&blocks, Wiring::Residual, size),
        plain_tape: tape_memory(&blocks, Wiring::Plain, size),
        train_peak: (peak(Wiring::Residual), peak(Wiring::Plain)),
        infer_peak: (infer_peak(Wiring::Residual), infer_peak(Wiring::Plain)),
        step_seconds,
        add_seconds,
    }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct CostChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// One measurement per size.
    pub sizes: Vec<Cost>,
}

/// Runs the chapter.
pub fn run(config: &Config, progress: &Progress) -> CostChapter {
    CostChapter {
        config: config.clone(),
        sizes: config
            .sizes
            .iter()
            .map(|&(size, reps)| measure(size, reps, progress))
            .collect(),
    }
}

fn bytes_or_blank(b: Option<usize>) -> String {
    b.map_or_else(|| "not measured".to_string(), human)
}

impl CostChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(
            "The notebook warns that skip connections cost memory — x must stay alive until \
             F(x) is computed — and time — elementwise additions move a lot of memory for \
             little arithmetic. We measure both on the standard workload (WORKLOADS.md: N of \
             the notebook's blocks of width D on a batch of B rows, f32), once as it is and \
             once with the skip removed, ReLU(F(x)) instead of ReLU(F(x) + x): the same \
             layers, the same parameters.",
        );
        let Some(first) = self.sizes.first() else {
            return page;
        };
        let mut t = Table::new([
            "op",
            "nodes, with skip",
            "saved",
            "nodes, without skip",
            "saved",
        ]);
        for (op, nodes, bytes) in &first.residual_tape.by_op {
            let (plain_nodes, plain_bytes) = first
                .plain_tape
                .by_op
                .iter()
                .find(|(o, _, _)| o == op)
                .map_or((0, 0), |(_, n, b)| (*n, *b));
            t.row([
                op.clone(),
                nodes.to_string(),
                human(*bytes),
                plain_nodes.to_string(),
                human(plain_bytes),
            ]);
        }
        page.prose(format!(
            "First the tape's own accounting (Tape::memory_report, each block recorded in a \
             region of its own): the bytes each op keeps for backward in one training step of \
             size {} (B = {}, D = {}, N = {}).",
            first.size.name, first.size.batch, first.size.width, first.size.blocks
        ));
        page.table(t);
        let mut t = Table::new([
            "size",
            "saved per block, with skip",
            "without skip",
            "difference",
        ]);
        for c in &self.sizes {
            let (r, p) = (c.residual_tape.per_block[0], c.plain_tape.per_block[0]);
            t.row([
                c.size.name.to_string(),
                human(r),
                human(p),
                format!("{} B", r as i64 - p as i64),
            ]);
        }
        page.table(t);
        let add_bytes = first
            .residual_tape
            .by_op
            .iter()
            .find(|(op, _, _)| op == "add")
            .map_or(0, |(_, _, b)| *b);
        page.prose(format!(
            "The add node of the skip saves {} — its backward, g to both inputs, needs only \
             the shapes. And x is already kept: it is the saved input of the branch's first \
             linear. On a tape, a skip connection costs no saved memory: {}",
            human(add_bytes),
            if self
                .sizes
                .iter()
                .all(|c| c.residual_tape.total == c.plain_tape.total)
            {
                "at every size the two wirings save exactly the same bytes."
            } else {
                "the two wirings differ only by what their other ops save."
            }
        ));
        let mut t = Table::new([
            "size",
            "train step peak, with skip",
            "without",
            "inference peak, with skip",
            "without",
            "difference, in activations",
        ]);
        for c in &self.sizes {
            let activation = (c.size.batch * c.size.width * 4) as f64;
            let diff = match c.infer_peak {
                (Some(a), Some(b)) => sig((a as f64 - b as f64) / activation, 3),
                _ => "—".to_string(),
            };
            t.row([
                c.size.name.to_string(),
                bytes_or_blank(c.train_peak.0),
                bytes_or_blank(c.train_peak.1),
                bytes_or_blank(c.infer_peak.0),
                bytes_or_blank(c.infer_peak.1),
                diff,
            ]);
        }
        page.prose(
            "Peak heap bytes, from a counting allocator (tensor buffer cache off): during one \
             training step (forward, \
             backward, update), and during inference (evaluation mode, nothing recorded), \
             where the notebook's point applies — without the skip each activation can be \
             freed as soon as the next one is computed; with it, x lives until the add.",
        );
        page.table(t);
        if let (Some(with), Some(without)) = first.infer_peak {
            page.prose(format!(
                "In inference on size {} the skip raises the peak from {} to {}: the activation \
                 x held across the branch (one activation of B × D floats is {}; the last \
                 column counts the difference in those). In a training step the difference all \
                 but disappears: the tape keeps every layer's input for backward anyway.",
                first.size.name,
                human(without),
                human(with),
                human(first.size.batch * first.size.width * 4),
            ));
        }
        let mut t = Table::new([
            "size",
            "step, with skip",
            "step, without",
            "skip's share (difference)",
            "2N additions alone",
            "their share",
        ]);
        for c in &self.sizes {
            t.row([
                c.size.name.to_string(),
                human_seconds(c.step_seconds.0),
                human_seconds(c.step_seconds.1),
                format!("{:.1} %", 100.0 * c.marginal_share()),
                human_seconds(c.add_seconds),
                format!("{:.1} %", 100.0 * c.add_share()),
            ]);
        }
        page.prose(
            "Time: the median training step with and without the skip, and — measured \
             separately — 2N additions of two B × D tensors, the skip's whole arithmetic (N in \
             the forward pass, N more where the backward sums the two contributions at each \
             block's input).",
        );
        page.table(t);
        let shares: Vec<f64> = self.sizes.iter().map(Cost::add_share).collect();
        let margins: Vec<f64> = self.sizes.iter().map(Cost::marginal_share).collect();
        let percent = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{:.1} %", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        page.prose(format!(
            "The additions alone take {} of a residual training step on these sizes: each \
             reads two B × D arrays and writes one, against the B·D² multiply-adds of each of \
             the block's six matrix products per step. The difference between the two whole \
             steps ({}) is of the order of the run-to-run noise of wall-clock timing on a \
             shared machine — it can even come out negative — which is why the additions are \
             also timed alone. On this CPU the skip's arithmetic is nearly free; the \
             notebook's concern about memory bandwidth matters where matrix products are so \
             fast that moving data dominates.",
            percent(&shares),
            percent(&margins),
        ));
        page.figure(self.figure());
        page
    }

    /// Time per step with and without the skip, and the additions alone.
    pub fn figure(&self) -> Figure {
        let points = |f: fn(&Cost) -> f64| -> Vec<(f64, f64)> {
            self.sizes
                .iter()
                .map(|c| (c.size.flops_per_step() / 1e6, f(c) * 1e3))
                .collect()
        };
        let panel = Panel::new(
            "what the skip costs in time",
            "MFLOP per step",
            "milliseconds",
        )
        .log_x()
        .log_y()
        .with(
            Series::line("training step, with skip", points(|c| c.step_seconds.0), 0)
                .styled(Style::LinePoints),
        )
        .with(
            Series::line(
                "training step, without skip",
                points(|c| c.step_seconds.1),
                1,
            )
            .styled(Style::Dashed),
        )
        .with(
            Series::line("the 2N additions alone", points(|c| c.add_seconds), 3)
                .styled(Style::LinePoints),
        );
        Figure::single(
            "08_cost",
            "Time per training step with and without skip connections, and the time of the \
             additions alone (log–log)",
            panel,
        )
    }
}
