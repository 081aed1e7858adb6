//! Chapter 10 — Autograd vs manual backprop.
//!
//! The notebook's network — a stack of its residual blocks — trained both ways: backward
//! from the tape, and backward written by hand (`nn::manual`). Gradient agreement, time per
//! step and memory, for the three sizes of the project's standard workload.

use super::memory::step_peak;
use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::timing::{Alternated, Spread, human_seconds};
use super::{Chapter, Progress, Source};
use crate::workloads::{ResMlp, autograd_step, manual_blocks, manual_step};
use autograd::Tape;
use autograd::alloc_meter::human;
use nn::crosscheck::{Difference, crosscheck_layers};
use nn::manual::Layer;
use nn::{Ctx, Module, ResidualBlock};

/// The standard workloads' source, whose training steps this chapter shows.
pub const WORKLOADS: Source = Source {
    path: "src/workloads.rs",
    text: include_str!("../workloads.rs"),
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 10,
    slug: "10_manual",
    title: "Autograd vs manual backprop",
    source: source!("ch10_manual.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// The workload sizes, each with the number of timed steps.
    pub sizes: Vec<(ResMlp, usize)>,
    /// SGD steps taken both ways to compare the loss trajectories.
    pub lockstep: usize,
}

impl Config {
    /// The tour's sizes: S, M and L of WORKLOADS.md.
    pub fn full() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 200), (ResMlp::M, 20), (ResMlp::L, 4)],
            lockstep: 5,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            sizes: vec![(ResMlp::S, 3)],
            lockstep: 3,
        }
    }
}

/// Both ways on one size.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The workload size.
    pub size: ResMlp,
    /// Largest relative difference of a parameter gradient (cross-check, one step).
    pub max_rel_grad: f64,
    /// Relative difference of ∂L/∂x.
    pub input_grad_rel: f64,
    /// Largest relative difference of the loss over `lockstep` SGD steps taken both ways.
    pub lockstep_rel: f64,
    /// Largest relative difference of a parameter after those steps.
    pub lockstep_param_rel: f64,
    /// Training steps, autograd first, timed alternately.
    pub time: Alternated,
    /// Bytes the tape keeps for backward in one step (its own accounting).
    pub tape_saved: usize,
    /// Peak bytes of one autograd step (chapter 8's definition; `None` if not measured).
    pub autograd_peak: Option<usize>,
    /// Peak bytes live during one manual step.
    pub manual_peak: Option<usize>,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct ManualChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The matrix kernels' thread count during the run.
    pub threads: usize,
    /// One comparison per size.
    pub sizes: Vec<Comparison>,
}

/// Bytes saved on the tape by one forward pass and loss of `blocks`.
fn tape_saved_bytes(blocks: &[ResidualBlock<f32>], size: ResMlp) -> usize {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let mut h = cx.input(size.input());
    for block in blocks {
        h = block.forward(&cx, &h);
    }
    let diff = &h - &cx.input(size.target());
    let _loss = (&diff * &diff).mean();
    tape.saved_bytes()
}

/// Compares the two on one size.
fn compare(size: ResMlp, reps: usize, lockstep: usize, progress: &Progress) -> Comparison {
    let (x, y) = (size.input(), size.target());
    progress.say(&format!("size {}: cross-check", size.name));
    let blocks = size.blocks();
    let refs: Vec<&ResidualBlock<f32>> = blocks.iter().collect();
    let report = crosscheck_layers(&refs, &x, &y)
        .unwrap_or_else(|e| panic!("cross-check of resmlp {}: {e}", size.name));
    // cell: lockstep
    // The same SGD steps both ways, from the same start; the largest relative difference.
    let (a_blocks, mut m_blocks) = (size.blocks(), manual_blocks(&size.blocks()));
    let lockstep_rel = (0..lockstep)
        .map(|_| {
            let a = autograd_step(&a_blocks, &x, &y, 0.01) as f64;
            let m = manual_step(&mut m_blocks, &x, &y, 0.01) as f64;
            (a - m).abs() / m.abs().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max);
    // end cell
    let lockstep_param_rel = a_blocks
        .iter()
        .zip(&m_blocks)
        .flat_map(|(a, m)| {
            let manual = m.named_parameters();
            a.named_parameters()
                .into_iter()
                .map(move |(name, p)| {
                    manual
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or(f64::INFINITY, |(_, q)| {
                            Difference::between(&p.value(), &q.value).max_rel
                        })
                })
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max);
    progress.say(&format!("size {}: timing {reps} steps each way", size.name));
    // cell: compare
    let time = Alternated::run(
        reps,
        || _ = autograd_step(&a_blocks, &x, &y, 0.01),
        || _ = manual_step(&mut m_blocks, &x, &y, 0.01),
    );
    let autograd_peak = step_peak(|| size.blocks(), |b| _ = autograd_step(b, &x, &y, 0.01));
    let manual_peak = step_peak(
        || manual_blocks(&size.blocks()),
        |b| _ = manual_step(b, &x, &y, 0.01),
    );
    // end cell
    Comparison {
        size,
        max_rel_grad: report.max_rel_parameters(),
        input_grad_rel: report.input.max_rel,
        lockstep_rel,
        lockstep_param_rel,
        time,
        tape_saved: tape_saved_bytes(&a_blocks, size),
        autograd_peak,
        manual_peak,
    }
}

/// Runs the chapter.
pub fn run(config: &Config, progress: &Progress) -> ManualChapter {
    ManualChapter {
        config: config.clone(),
        threads: autograd::num_threads(),
        sizes: config
            .sizes
            .iter()
            .map(|&(size, reps)| compare(size, reps, config.lockstep, progress))
            .collect(),
    }
}

impl Comparison {
    /// Median seconds per autograd step.
    pub fn autograd_seconds(&self) -> f64 {
        self.time.first().median
    }

    /// Median seconds per manual step.
    pub fn manual_seconds(&self) -> f64 {
        self.time.second().median
    }
}

impl ManualChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's block, ReLU(F(x) + x), stacked N times: the standard workload, \
             once with backward from the tape and once with the notebook's hand-written \
             backward.",
        );
        page.prose(format!(
            "The notebook ends by noting that frameworks make a dedicated backward unnecessary: \
             the forward pass, recorded, defines the backward. What does that cost? We train \
             the project's standard workload (WORKLOADS.md, resmlp-step: N of the notebook's \
             blocks of width D on a batch of B rows, MSE loss, SGD with lr 0.01, f32, \
             closed-form initialisation) both ways, on {}. With the tape, a step is the \
             forward pass and one call:",
            match self.threads {
                1 => "one thread".to_string(),
                n => format!("{n} threads"),
            }
        ));
        page.cell_from(WORKLOADS, "autograd_step");
        page.prose(
            "By hand, the notebook's way — every block's `backward()` called in reverse, \
             nn::manual's layers, the same matrix kernels, no tape:",
        );
        page.cell_from(WORKLOADS, "manual_step");
        page.heading("Do they agree?");
        page.prose(
            "The cross-check compares every parameter's gradient after one backward pass \
             (relative to the tensor's largest entry); then both sides take the same SGD steps \
             from the same start:",
        );
        page.cell("lockstep");
        let mut t = Table::new([
            "size",
            "B × D × N",
            "max rel. diff, ∂L/∂θ",
            "∂L/∂x",
            format!("loss, {} steps", self.config.lockstep).as_str(),
            "parameters after them",
        ]);
        for c in &self.sizes {
            t.row([
                c.size.name.to_string(),
                format!("{} × {} × {}", c.size.batch, c.size.width, c.size.blocks),
                sig(c.max_rel_grad, 2),
                sig(c.input_grad_rel, 2),
                sig(c.lockstep_rel, 2),
                sig(c.lockstep_param_rel, 2),
            ]);
        }
        page.table(t);
        let worst_grad = self
            .sizes
            .iter()
            .map(|c| c.max_rel_grad)
            .fold(0.0, f64::max);
        let worst_param = self
            .sizes
            .iter()
            .map(|c| c.lockstep_param_rel)
            .fold(0.0, f64::max);
        let worst_loss = self
            .sizes
            .iter()
            .map(|c| c.lockstep_rel)
            .fold(0.0, f64::max);
        let identical = worst_grad == 0.0 && worst_param == 0.0;
        page.prose(format!(
            "The largest relative gradient difference over all sizes is {}, and after the \
             lockstep steps the parameters differ by at most {} (relative){}. The losses differ \
             by at most {}: {}",
            sig(worst_grad, 2),
            sig(worst_param, 2),
            if identical {
                " — the two backward passes produce bit-identical gradients, since they call the \
                 same kernels on the same operands in the same order"
            } else {
                ""
            },
            sig(worst_loss, 2),
            if identical {
                "with identical parameters, that is the loss itself, the mean of B·D squared \
                 errors summed in a different order (f32 keeps about 7 digits, ε ≈ 1.2e-7)."
            } else {
                "f32 keeps about 7 digits (ε ≈ 1.2e-7), and sums taken in different orders \
                 differ at that level."
            },
        ));
        page.heading("What the tape costs");
        page.prose(
            "Time per training step, both ways alternately (medians with the interquartile \
             range, and the ratio over the pairs of runs), the bytes the tape keeps for \
             backward by its own accounting, and the peak memory of a step as chapter 8 \
             defines it (the most bytes live at once above those live before the step):",
        );
        page.cell("compare");
        let mut t = Table::new([
            "size",
            "MFLOP/step",
            "autograd / step",
            "manual / step",
            "autograd ÷ manual",
            "GFLOP/s (autograd)",
            "tape saved",
            "peak, autograd",
            "peak, manual",
            "peak ratio",
        ]);
        let peak = |p: Option<usize>| p.map_or_else(|| "not measured".to_string(), human);
        for c in &self.sizes {
            let mflop = c.size.flops_per_step() / 1e6;
            t.row([
                c.size.name.to_string(),
                sig(mflop, 3),
                c.time.first().show(human_seconds),
                c.time.second().show(human_seconds),
                c.time.ratio().show(|v| sig(v, 3)),
                sig(mflop / 1e3 / c.autograd_seconds(), 3),
                human(c.tape_saved),
                peak(c.autograd_peak),
                peak(c.manual_peak),
                match (c.autograd_peak, c.manual_peak) {
                    (Some(a), Some(m)) => sig(a as f64 / m as f64, 3),
                    _ => "—".to_string(),
                },
            ]);
        }
        page.table(t);
        let ratios: Vec<Spread> = self.sizes.iter().map(|c| c.time.ratio()).collect();
        let lo = ratios
            .iter()
            .map(|r| r.median)
            .fold(f64::INFINITY, f64::min);
        let hi = ratios
            .iter()
            .map(|r| r.median)
            .fold(f64::NEG_INFINITY, f64::max);
        let noise: Vec<&str> = self
            .sizes
            .iter()
            .filter(|c| c.time.ratio().contains(1.0))
            .map(|c| c.size.name)
            .collect();
        let peaks: Vec<f64> = self
            .sizes
            .iter()
            .filter_map(|c| Some(c.autograd_peak? as f64 / c.manual_peak? as f64))
            .collect();
        page.prose(format!(
            "Across the sizes a step with the tape takes {}× to {}× the time of the \
             hand-written one (medians of the paired ratios){}{}. Both spend their time in the \
             same matrix products; what the tape adds — a node per op, the saved state in its \
             op's enum variant, a store of gradients — is a fixed cost per op, which weighs \
             most beside the smallest matrices. Writing only the forward pass costs little, and \
             the gradients are the same.",
            sig(lo, 3),
            sig(hi, 3),
            if noise.is_empty() {
                String::new()
            } else {
                format!("; on {} the ratio's interquartile range contains 1, so the difference there is within the noise", noise.join(", "))
            },
            if peaks.is_empty() {
                String::new()
            } else {
                format!(
                    ", and its peak memory is {}× to {}× the hand-written step's",
                    sig(peaks.iter().copied().fold(f64::INFINITY, f64::min), 3),
                    sig(peaks.iter().copied().fold(f64::NEG_INFINITY, f64::max), 3)
                )
            },
        ));
        page.figure(self.figure());
        page.claim(
            "The forward pass alone is sufficient: the backward pass can be derived \
             automatically",
            format!(
                "gradients of the tape vs the hand-written backward, largest relative \
                 difference {}; parameters after {} lockstep steps: {}",
                sig(worst_grad, 2),
                self.config.lockstep,
                sig(worst_param, 2)
            ),
            if worst_grad < 1e-5 {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            "The tape's gradients equal the notebook's hand-written backward to the last bit \
             here: same kernels, same operands, same order."
                .to_string(),
            format!(
                "The tape costs {}× to {}× the hand-written step's time on these sizes — most \
                 at the smallest, where per-op overhead is not hidden behind the products.",
                sig(lo, 3),
                sig(hi, 3)
            ),
            "Compare costs as paired ratios with their spread: on a shared machine, two \
             medians alone do not say which is faster."
                .to_string(),
        ]);
        page
    }

    /// Autograd ÷ manual, for time and peak memory, against the work per step.
    pub fn figure(&self) -> Figure {
        let x = |c: &Comparison| c.size.flops_per_step() / 1e6;
        let time = Series::line(
            "time per step",
            self.sizes
                .iter()
                .map(|c| (x(c), c.time.ratio().median))
                .collect(),
            0,
        )
        .styled(Style::LinePoints)
        .with_errors(
            self.sizes
                .iter()
                .map(|c| (c.time.ratio().q1, c.time.ratio().q3))
                .collect(),
        );
        let memory = Series::line(
            "peak memory per step",
            self.sizes
                .iter()
                .filter_map(|c| Some((x(c), c.autograd_peak? as f64 / c.manual_peak? as f64)))
                .collect(),
            2,
        )
        .styled(Style::DashedPoints);
        let one = Series::line(
            "1 (same cost)",
            self.sizes.iter().map(|c| (x(c), 1.0)).collect(),
            7,
        )
        .styled(Style::Dashed);
        let panel = Panel::new(
            "resmlp-step: autograd ÷ manual backward",
            "MFLOP per step",
            "ratio",
        )
        .log_x()
        .with(one)
        .with(time)
        .with(memory);
        Figure::single(
            "10_autograd_vs_manual",
            "What the tape costs: time and peak memory of a training step with autograd divided \
             by the hand-written backward's, sizes S, M and L (time: median of paired ratios, \
             bars from the first to the third quartile)",
            panel,
        )
    }
}
