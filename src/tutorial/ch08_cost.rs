//! Chapter 8 — What residuals cost.
//!
//! The notebook says skip connections cost memory (x must stay alive until F(x) is done)
//! and time (elementwise additions are bandwidth-bound, so inference may be slower). We
//! measure both on the tape, with and without the skip: the bytes the tape saves per block
//! (activations and the weights it references, apart), the peak memory of a training step
//! and of inference, and the time of both, as ratios with their spread.

use super::memory::{self, step_peak};
use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::timing::{Alternated, Spread, human_seconds, repeated};
use super::{Chapter, Progress, Source};
use crate::checkpoint_cost::{Plan, narrow, step};
use crate::workloads::ResMlp;
use autograd::alloc_meter::human;
use autograd::{Tape, Tensor, Var};
use nn::{Ctx, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 8,
    slug: "08_cost",
    title: "What residuals cost",
    source: source!("ch08_cost.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// The workload sizes, each with the number of timed alternations.
    pub sizes: Vec<(ResMlp, usize)>,
    /// Depths of the checkpointing experiment (blocks of the workload's S width and batch),
    /// each with the number of timed alternations.
    pub checkpoint_depths: Vec<(usize, usize)>,
}

impl Config {
    /// The tour's sizes: S, M and L of WORKLOADS.md.
    pub fn full() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 200), (ResMlp::M, 20), (ResMlp::L, 4)],
            checkpoint_depths: vec![(16, 40), (64, 12), (256, 4)],
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 5)],
            checkpoint_depths: vec![(4, 2), (16, 2)],
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

/// One block's forward pass, with or without the skip. It takes `x` by value, so that a
/// block that no longer needs its input can free it.
pub fn block_forward<'t>(
    block: &ResidualBlock<f32>,
    wiring: Wiring,
    cx: &Ctx<'t, f32>,
    x: Var<'t, f32>,
) -> Var<'t, f32> {
    // cell: wiring
    let hidden = block.linear1.forward(cx, &x).relu();
    match wiring {
        // x is needed again after the branch: it stays alive until the add.
        Wiring::Residual => (&block.linear2.forward(cx, &hidden) + &x).relu(),
        Wiring::Plain => {
            drop(x); // nothing reads x any more; in inference its buffer is freed here
            block.linear2.forward(cx, &hidden).relu()
        }
    }
    // end cell
}

/// One training step of the workload: forward, MSE, backward, SGD (lr 0.01) in place.
pub fn train_step(
    blocks: &[ResidualBlock<f32>],
    wiring: Wiring,
    x: &Tensor<f32>,
    y: &Tensor<f32>,
) -> f32 {
    // cell: train_step
    let (loss, grads) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let mut h = cx.input(x.clone());
        for block in blocks {
            h = block_forward(block, wiring, &cx, h);
        }
        let diff = &h - &cx.input(y.clone());
        let loss = (&diff * &diff).mean();
        (loss.item(), cx.param_grads(&loss.backward_leaves()))
    }; // the tape is dropped here: the update below needs no copy of the weights
    for p in blocks.iter().flat_map(|b| b.parameters()) {
        if let Some(g) = grads.get(&p) {
            p.update(|w| {
                w.iter_mut()
                    .zip(g.data())
                    .for_each(|(w, &g)| *w -= 0.01 * g)
            });
        }
    }
    // end cell
    loss
}

/// The network's output in inference: evaluation mode, nothing recorded.
pub fn infer(blocks: &[ResidualBlock<f32>], wiring: Wiring, x: &Tensor<f32>) -> Tensor<f32> {
    // cell: infer
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    tape.no_grad(|| {
        let mut h = cx.input(x.clone());
        for block in blocks {
            h = block_forward(block, wiring, &cx, h);
        }
        h.value().clone()
    })
    // end cell
}

/// What the tape saves for one training step.
#[derive(Clone, Debug)]
pub struct TapeMemory {
    /// Bytes saved by the first block's nodes (region `block0`).
    pub first_block: usize,
    /// Bytes saved in total.
    pub total: usize,
    /// Bytes and node counts by op, largest first: (op, nodes, bytes).
    pub by_op: Vec<(String, usize, usize)>,
}

/// The tape's own accounting of one forward pass and loss, each block in a region.
fn tape_memory(blocks: &[ResidualBlock<f32>], wiring: Wiring, size: ResMlp) -> TapeMemory {
    // cell: saved
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let mut h = cx.input(size.input());
    for (k, block) in blocks.iter().enumerate() {
        h = tape.region(&format!("block{k}"), || {
            block_forward(block, wiring, &cx, h)
        });
    }
    let diff = &h - &cx.input(size.target());
    let _loss = (&diff * &diff).mean();
    let report = tape.memory_report(); // bytes each node keeps for backward, by op and region
    // end cell
    TapeMemory {
        first_block: report.region("block0").map_or(0, |r| r.bytes),
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
    /// Bytes of one block's two weight matrices (which the linear nodes reference).
    pub block_weights: usize,
    /// Peak bytes of a training step, with and without the skip.
    pub train_peak: (Option<usize>, Option<usize>),
    /// Peak bytes of inference, with and without the skip.
    pub infer_peak: (Option<usize>, Option<usize>),
    /// Training steps, with the skip first, timed alternately.
    pub train_time: Alternated,
    /// Inference passes, with the skip first, timed alternately.
    pub infer_time: Alternated,
    /// The 2N additions alone (N in the forward pass, N where the backward sums the two
    /// contributions at each block's input).
    pub add_time: Spread,
}

impl Cost {
    /// Bytes of one activation `[B, D]` of f32.
    pub fn activation_bytes(&self) -> usize {
        self.size.batch * self.size.width * 4
    }
}

fn measure(size: ResMlp, reps: usize, progress: &Progress) -> Cost {
    let (x, y) = (size.input(), size.target());
    progress.say(&format!("size {}: memory", size.name));
    let blocks = size.blocks();
    // cell: measure
    let train_peak = |w| step_peak(|| size.blocks(), |b| _ = train_step(b, w, &x, &y));
    let infer_peak = |w| step_peak(|| size.blocks(), |b| _ = infer(b, w, &x));
    let (with, without) = (size.blocks(), size.blocks());
    let train_time = Alternated::run(
        reps,
        || _ = train_step(&with, Wiring::Residual, &x, &y),
        || _ = train_step(&without, Wiring::Plain, &x, &y),
    );
    let infer_time = Alternated::run(
        2 * reps,
        || _ = infer(&with, Wiring::Residual, &x),
        || _ = infer(&without, Wiring::Plain, &x),
    );
    // end cell
    progress.say(&format!("size {}: timed {reps} alternations", size.name));
    let other = Tensor::<f32>::ones(&[size.batch, size.width]);
    let add_time = repeated(reps, || {
        for _ in 0..2 * size.blocks {
            std::hint::black_box(&x + &other);
        }
    });
    Cost {
        size,
        residual_tape: tape_memory(&blocks, Wiring::Residual, size),
        plain_tape: tape_memory(&blocks, Wiring::Plain, size),
        block_weights: 2 * size.width * size.width * 4,
        train_peak: (train_peak(Wiring::Residual), train_peak(Wiring::Plain)),
        infer_peak: (infer_peak(Wiring::Residual), infer_peak(Wiring::Plain)),
        train_time,
        infer_time,
        add_time,
    }
}

/// The source of the checkpointing measurements, whose plans this chapter shows.
pub const CHECKPOINT_COST: Source = Source {
    path: "src/checkpoint_cost.rs",
    text: include_str!("../checkpoint_cost.rs"),
};

/// Checkpointing at one depth.
#[derive(Clone, Debug)]
pub struct CheckpointCost {
    /// Number of blocks.
    pub depth: usize,
    /// Peak bytes of a training step for each setting, in the order of [`Plan::ALL`].
    pub peak: Vec<Option<usize>>,
    /// Training steps timed alternately: no checkpointing against every block, and against
    /// every √N blocks.
    pub time: Vec<Alternated>,
}

fn measure_checkpointing(depth: usize, reps: usize, progress: &Progress) -> CheckpointCost {
    progress.say(&format!("checkpointing, {depth} blocks"));
    let size = narrow(depth);
    let (x, y) = (size.input(), size.target());
    let peak = Plan::ALL
        .iter()
        .map(|c| step_peak(|| c.model(&size), |m| _ = step(&**m, &x, &y, 0.01)))
        .collect();
    let plain = Plan::None.model(&size);
    let time = [Plan::EveryBlock, Plan::Sqrt]
        .iter()
        .map(|c| {
            let other = c.model(&size);
            Alternated::run(
                reps,
                || _ = step(&*other, &x, &y, 0.01),
                || _ = step(&*plain, &x, &y, 0.01),
            )
        })
        .collect();
    CheckpointCost { depth, peak, time }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct CostChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// One measurement per size.
    pub sizes: Vec<Cost>,
    /// One checkpointing measurement per depth.
    pub checkpointing: Vec<CheckpointCost>,
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
        checkpointing: config
            .checkpoint_depths
            .iter()
            .map(|&(depth, reps)| measure_checkpointing(depth, reps, progress))
            .collect(),
    }
}

fn bytes_or_blank(b: Option<usize>) -> String {
    b.map_or_else(|| "not measured".to_string(), human)
}

/// A ratio with its interquartile range, and whether 1 lies inside it.
fn ratio_text(r: &Spread) -> String {
    format!(
        "{}{}",
        r.show(|v| sig(v, 3)),
        if r.contains(1.0) {
            " (1 within the spread: noise)"
        } else {
            ""
        }
    )
}

impl CostChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's block, ReLU(F(x) + x), on the project's standard workload (N blocks \
             of width D on a batch of B rows, f32), against the same layers without the skip, \
             ReLU(F(x)): the same parameters, the same arithmetic minus the additions.",
        );
        page.prose(
            "The notebook warns that skip connections cost memory — \"during training, x must \
             remain stored in memory until the computation of F(x) is completed\" — and time: \
             additions move a lot of memory for little arithmetic, so \"residual networks may \
             experience slower inference\". We measure both, on the standard workload \
             (WORKLOADS.md), with and without the skip:",
        );
        page.cell("wiring");
        let Some(first) = self.sizes.first() else {
            return page;
        };
        page.heading("What the tape keeps");
        page.prose(format!(
            "First the tape's own accounting: each block recorded in a region of its own, and \
             the bytes each node keeps for its backward rule (size {}: B = {}, D = {}, N = {}).",
            first.size.name, first.size.batch, first.size.width, first.size.blocks
        ));
        page.cell("saved");
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
        page.table(t);
        let mut t = Table::new([
            "size",
            "saved per block, with skip",
            "without skip",
            "difference",
            "of which weights (referenced)",
            "activations",
        ]);
        for c in &self.sizes {
            let (r, p) = (c.residual_tape.first_block, c.plain_tape.first_block);
            t.row([
                c.size.name.to_string(),
                human(r),
                human(p),
                format!("{} B", r as i64 - p as i64),
                human(c.block_weights),
                human(r.saturating_sub(c.block_weights)),
            ]);
        }
        let add_bytes = first
            .residual_tape
            .by_op
            .iter()
            .find(|(op, _, _)| op == "add")
            .map_or(0, |(_, _, b)| *b);
        page.prose(format!(
            "A linear node's saved bytes include the weight it multiplied by: the tape holds \
             a reference to the parameter's buffer, not a copy, so those bytes exist once, with \
             or without the tape. Per block, split into the weights referenced and the \
             activations kept. The skip's add node saves {}: its backward, g to both inputs, \
             needs only the shapes. And x is kept anyway — it is the saved input of the \
             branch's first linear.",
            human(add_bytes)
        ));
        page.table(t);
        let same = self
            .sizes
            .iter()
            .all(|c| c.residual_tape.total == c.plain_tape.total);
        page.prose(if same {
            "At every size the two wirings save exactly the same bytes: on a tape, a skip \
             connection costs no memory for backward."
        } else {
            "The two wirings save different bytes: see the table."
        });
        page.heading("Peak memory");
        page.prose(
            "The tape's accounting is not the whole story: temporaries, gradients and the \
             forward values that nothing saves come and go. The peak of a step, as chapters 8 \
             and 10 both define it — the most heap bytes live at once during the step, above \
             those live before it (the model and its inputs), from a counting allocator:",
        );
        page.cell_from(memory::SOURCE, "peak");
        page.cell("measure");
        let mut t = Table::new([
            "size",
            "train step, with skip",
            "without",
            "ratio",
            "inference, with skip",
            "without",
            "ratio",
            "difference in activations",
        ]);
        let ratio = |a: Option<usize>, b: Option<usize>| match (a, b) {
            (Some(a), Some(b)) => sig(a as f64 / b as f64, 4),
            _ => "—".to_string(),
        };
        for c in &self.sizes {
            let diff = match c.infer_peak {
                (Some(a), Some(b)) => sig((a as f64 - b as f64) / c.activation_bytes() as f64, 3),
                _ => "—".to_string(),
            };
            t.row([
                c.size.name.to_string(),
                bytes_or_blank(c.train_peak.0),
                bytes_or_blank(c.train_peak.1),
                ratio(c.train_peak.0, c.train_peak.1),
                bytes_or_blank(c.infer_peak.0),
                bytes_or_blank(c.infer_peak.1),
                ratio(c.infer_peak.0, c.infer_peak.1),
                diff,
            ]);
        }
        page.table(t);
        let measured = first.train_peak.0.is_some();
        if measured {
            let (tw, two) = first.train_peak;
            let (iw, iwo) = first.infer_peak;
            page.prose(format!(
                "In a training step the skip changes the peak by {} on size {}: the tape keeps \
                 every layer's input for backward anyway, so holding x until the add costs \
                 nothing extra. In inference it can: without the skip a block's input is freed \
                 as soon as its first layer has read it; with the skip, x lives until the add. \
                 The peak goes from {} to {} on size {} — the last column counts the \
                 difference in activations of B × D floats ({} each).",
                human((tw.unwrap_or(0) as i64 - two.unwrap_or(0) as i64).unsigned_abs() as usize),
                first.size.name,
                human(iwo.unwrap_or(0)),
                human(iw.unwrap_or(0)),
                first.size.name,
                human(first.activation_bytes()),
            ));
        } else {
            page.prose("This run did not install the counting allocator: memory was not measured.");
        }
        page.heading("Time");
        page.prose(
            "Time, of a training step and of inference, each wiring alternately with the \
             other so that both see the same load; medians with the interquartile range in \
             brackets, and the ratio with-skip ÷ without over the pairs of runs. A ratio whose \
             range contains 1 cannot be told from noise. The additions alone — 2N adds of two \
             B × D tensors, the skip's whole arithmetic in a training step — are timed \
             separately.",
        );
        let mut t = Table::new([
            "size",
            "train step, with skip",
            "without",
            "ratio",
            "inference, with skip",
            "without",
            "ratio",
            "2N additions alone",
        ]);
        for c in &self.sizes {
            t.row([
                c.size.name.to_string(),
                c.train_time.first().show(human_seconds),
                c.train_time.second().show(human_seconds),
                ratio_text(&c.train_time.ratio()),
                c.infer_time.first().show(human_seconds),
                c.infer_time.second().show(human_seconds),
                ratio_text(&c.infer_time.ratio()),
                human_seconds(c.add_time.median),
            ]);
        }
        page.table(t);
        let shares: Vec<String> = self
            .sizes
            .iter()
            .map(|c| {
                format!(
                    "{:.1} %",
                    100.0 * c.add_time.median / c.train_time.first().median
                )
            })
            .collect();
        let noise = self
            .sizes
            .iter()
            .filter(|c| c.infer_time.ratio().contains(1.0))
            .count();
        let slower = self
            .sizes
            .iter()
            .filter(|c| c.infer_time.ratio().q1 > 1.0)
            .map(|c| c.size.name)
            .collect::<Vec<_>>();
        page.prose(format!(
            "The additions alone take {} of a residual training step on sizes {}: each reads \
             two B × D arrays and writes one, against the B·D² multiply-adds of each of the \
             block's matrix products. Inference with the skip is {} — the interquartile range \
             of the ratio contains 1 on {noise} of {} sizes{}. On this CPU the skip's arithmetic \
             is nearly free; the notebook's concern about memory bandwidth matters where matrix \
             products are so fast that moving data dominates.",
            shares.join(", "),
            self.sizes
                .iter()
                .map(|c| c.size.name)
                .collect::<Vec<_>>()
                .join(", "),
            if slower.is_empty() {
                "not measurably slower".to_string()
            } else {
                format!("measurably slower on {}", slower.join(", "))
            },
            self.sizes.len(),
            if slower.is_empty() {
                String::new()
            } else {
                format!(
                    ", and on {} the whole range is above 1 (by {})",
                    slower.join(", "),
                    self.sizes
                        .iter()
                        .filter(|c| c.infer_time.ratio().q1 > 1.0)
                        .map(|c| format!("{:.1} %", 100.0 * (c.infer_time.ratio().median - 1.0)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
        page.figure(self.figure());
        page.heading("Activation checkpointing");
        page.prose(format!(
            "Where a skip does cost memory is depth itself: a training step keeps every \
             block's activations until backward. Activation checkpointing trades that memory \
             for time: a checkpointed segment keeps only its input, and when the reverse sweep \
             reaches it, recomputes its forward pass on a scratch tape and backpropagates \
             through that (Tape::checkpoint; nn::Stack::checkpoint_every and \
             checkpoint_sqrt). Gradients are bit-identical. Checkpointing drops activations, \
             not the weights or their gradients, so the experiment takes a batch large against \
             the width: the notebook's blocks of width {}, a batch of {} (the workload's \
             initialisation), {} blocks:",
            narrow(1).width,
            narrow(1).batch,
            self.checkpointing
                .iter()
                .map(|c| c.depth.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        page.cell_from(CHECKPOINT_COST, "checkpoint");
        let mut t = Table::new([
            "blocks",
            "peak, no checkpointing",
            "every block",
            "every √N blocks",
            "time ÷ none, every block",
            "time ÷ none, every √N",
        ]);
        for c in &self.checkpointing {
            t.row([
                c.depth.to_string(),
                bytes_or_blank(c.peak[0]),
                bytes_or_blank(c.peak[1]),
                bytes_or_blank(c.peak[2]),
                c.time[0].ratio().show(|v| sig(v, 3)),
                c.time[1].ratio().show(|v| sig(v, 3)),
            ]);
        }
        page.prose("Peak memory of a training step (the definition above), and the time ratio against no checkpointing (median [IQR] of paired runs):");
        page.table(t);
        if let Some(deep) = self.checkpointing.last()
            && let (Some(none), Some(every), Some(sqrt)) =
                (deep.peak[0], deep.peak[1], deep.peak[2])
        {
            page.prose(format!(
                "At {} blocks, checkpointing every block cuts the peak to {:.0} % of the \
                 uncheckpointed step's and every √N blocks to {:.0} %, for {}× and {}× the time — \
                 about one extra forward pass.",
                deep.depth,
                100.0 * every as f64 / none as f64,
                100.0 * sqrt as f64 / none as f64,
                sig(deep.time[0].ratio().median, 3),
                sig(deep.time[1].ratio().median, 3),
            ));
            page.figure(self.checkpoint_figure());
        }
        if measured {
            let train_same = self.sizes.iter().all(|c| match c.train_peak {
                (Some(a), Some(b)) => (a as f64 - b as f64).abs() <= 0.01 * b as f64,
                _ => false,
            });
            page.claim(
                "During training, x must stay in memory until F(x) is computed, increasing \
                 memory consumption substantially",
                format!(
                    "saved for backward, per block: {} B more with the skip; training-step peak \
                     ratio with ÷ without: {}",
                    first.residual_tape.first_block as i64 - first.plain_tape.first_block as i64,
                    self.sizes
                        .iter()
                        .map(|c| ratio(c.train_peak.0, c.train_peak.1))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                if train_same && same {
                    Verdict::Refuted
                } else {
                    Verdict::Depends
                },
            );
            page.claim(
                "Skip connections hold x alive, which costs memory (in inference)",
                format!(
                    "inference peak ratio with ÷ without: {}",
                    self.sizes
                        .iter()
                        .map(|c| ratio(c.infer_peak.0, c.infer_peak.1))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                {
                    let more = |c: &&Cost| matches!(c.infer_peak, (Some(a), Some(b)) if a > b);
                    match self.sizes.iter().filter(more).count() {
                        n if n == self.sizes.len() => Verdict::Confirmed,
                        0 => Verdict::Refuted,
                        _ => Verdict::Depends,
                    }
                },
            );
        }
        page.claim(
            "Element-wise additions are bandwidth-bound, so residual networks may be slower in \
             inference",
            format!(
                "inference time ratio with ÷ without (median [IQR]): {}",
                self.sizes
                    .iter()
                    .map(|c| format!(
                        "{} {}",
                        c.size.name,
                        c.infer_time.ratio().show(|v| sig(v, 3))
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            if slower.is_empty() {
                Verdict::Refuted
            } else if slower.len() == self.sizes.len() {
                Verdict::Confirmed
            } else {
                Verdict::Depends
            },
        );
        page.takeaways([
            "On a tape, a skip connection saves nothing for backward: the add keeps only \
             shapes, and x is already kept as the branch's input.",
            "In inference the skip holds x across the branch: one activation more at the peak.",
            "The additions are a few percent of a step or less; whether inference is slower is \
             decided by the ratio's spread, not by two medians.",
        ]);
        page
    }

    /// Peak memory of a training step against depth, for each checkpointing setting.
    pub fn checkpoint_figure(&self) -> Figure {
        let mut panel = Panel::new(
            "activation checkpointing",
            "blocks N",
            "peak bytes of a training step",
        )
        .log_x()
        .log_y();
        for (k, setting) in Plan::ALL.iter().enumerate() {
            let points = self
                .checkpointing
                .iter()
                .filter_map(|c| Some((c.depth as f64, c.peak[k]? as f64)))
                .collect();
            panel = panel.with(Series::line(setting.name(), points, k).styled(Style::LinePoints));
        }
        Figure::single(
            "08_checkpointing",
            "Peak memory of a training step against depth: without checkpointing it grows in \
             proportion to N; checkpointed, more slowly (log–log)",
            panel,
        )
    }

    /// With-skip ÷ without, for time and memory, against the work per step.
    pub fn figure(&self) -> Figure {
        let x = |c: &Cost| c.size.flops_per_step() / 1e6;
        let time = |f: fn(&Cost) -> Spread, label: &str, color: usize| {
            let points = self.sizes.iter().map(|c| (x(c), f(c).median)).collect();
            let bars = self.sizes.iter().map(|c| (f(c).q1, f(c).q3)).collect();
            Series::line(label, points, color)
                .styled(Style::LinePoints)
                .with_errors(bars)
        };
        let memory = |f: fn(&Cost) -> (Option<usize>, Option<usize>), label: &str, color: usize| {
            let points = self
                .sizes
                .iter()
                .filter_map(|c| match f(c) {
                    (Some(a), Some(b)) => Some((x(c), a as f64 / b as f64)),
                    _ => None,
                })
                .collect();
            Series::line(label, points, color).styled(Style::DashedPoints)
        };
        let one = self.sizes.iter().map(|c| (x(c), 1.0)).collect();
        let panel = Panel::new(
            "with the skip ÷ without",
            "MFLOP per training step",
            "ratio",
        )
        .log_x()
        .with(Series::line("1 (no cost)", one, 7).styled(Style::Dashed))
        .with(time(|c| c.train_time.ratio(), "time, training step", 0))
        .with(time(|c| c.infer_time.ratio(), "time, inference", 1))
        .with(memory(|c| c.train_peak, "peak memory, training step", 2))
        .with(memory(|c| c.infer_peak, "peak memory, inference", 3));
        Figure::single(
            "08_cost",
            "What the skip costs: time and peak memory with the skip divided by without, for \
             sizes S, M and L (time: median of the paired ratios, bars from the first to the \
             third quartile)",
            panel,
        )
    }
}
