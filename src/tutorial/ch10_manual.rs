//! Chapter 10 — Autograd vs manual backprop.
//!
//! The notebook's network — a stack of its residual blocks — trained both ways: backward
//! from the tape, and backward written by hand (`nn::manual`). Gradient agreement, time per
//! step and memory, for the three sizes of the project's standard workload.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::timing::{human_seconds, median_seconds_alternating};
use super::{Chapter, Progress};
use crate::workloads::{ResMlp, autograd_step, manual_blocks, manual_step};
use autograd::Tape;
use autograd::alloc_meter::{human, peak_bytes};
use nn::crosscheck::{Difference, crosscheck_layers};
use nn::manual::Layer;
use nn::{Ctx, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 10,
    slug: "10_manual",
    title: "Autograd vs manual backprop",
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
            sizes: vec![(ResMlp::S, 100), (ResMlp::M, 20), (ResMlp::L, 5)],
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
    /// Median seconds per training step, autograd.
    pub autograd_seconds: f64,
    /// Median seconds per training step, manual backward.
    pub manual_seconds: f64,
    /// Bytes the tape keeps for backward in one step (its own accounting).
    pub tape_saved: usize,
    /// Peak bytes live during one autograd step (`None` if not measured).
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
    // Lockstep: the same SGD steps both ways, from the same start.
    let (a_blocks, mut m_blocks) = (size.blocks(), manual_blocks(&size.blocks()));
    let lockstep_rel = (0..lockstep)
        .map(|_| {
            let a = autograd_step(&a_blocks, &x, &y, 0.01) as f64;
            let m = manual_step(&mut m_blocks, &x, &y, 0.01) as f64;
            (a - m).abs() / m.abs().max(f64::MIN_POSITIVE)
        })
        .fold(0.0, f64::max);
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
    let (autograd_seconds, manual_seconds) = median_seconds_alternating(
        reps,
        || {
            autograd_step(&a_blocks, &x, &y, 0.01);
        },
        || {
            manual_step(&mut m_blocks, &x, &y, 0.01);
        },
    );
    // Peak memory of one step from a fresh start, as the workload's bench measures it: the
    // manual layers keep their caches between steps, which a fresh copy does not have yet.
    let fresh = size.blocks();
    let mut fresh_manual = manual_blocks(&size.blocks());
    let (_, autograd_peak) = peak_bytes(|| autograd_step(&fresh, &x, &y, 0.01));
    let (_, manual_peak) = peak_bytes(|| manual_step(&mut fresh_manual, &x, &y, 0.01));
    Comparison {
        size,
        max_rel_grad: report.max_rel_parameters(),
        input_grad_rel: report.input.max_rel,
        lockstep_rel,
        lockstep_param_rel,
        autograd_seconds,
        manual_seconds,
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

impl ManualChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "The notebook ends by noting that frameworks make a dedicated backward unnecessary: \
             the forward pass, recorded, defines the backward. What does that cost? We train \
             the project's standard workload (WORKLOADS.md, resmlp-step: N of the notebook's \
             blocks of width D on a batch of B rows, MSE loss, SGD with lr 0.01, f32, \
             closed-form initialisation) both ways — backward from the tape, and the notebook's \
             hand-written backward (nn::manual, the same matrix kernels, no tape) — on {}.",
            match self.threads {
                1 => "one thread".to_string(),
                n => format!("{n} threads"),
            }
        ));
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
        page.prose(
            "Agreement: the cross-check compares every parameter's gradient after one \
             backward pass (relative to the tensor's largest entry), then both sides take the \
             same SGD steps from the same start and we compare the loss at every step.",
        );
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
        ]);
        let peak = |p: Option<usize>| p.map_or_else(|| "not measured".to_string(), human);
        for c in &self.sizes {
            let mflop = c.size.flops_per_step() / 1e6;
            t.row([
                c.size.name.to_string(),
                sig(mflop, 3),
                human_seconds(c.autograd_seconds),
                human_seconds(c.manual_seconds),
                sig(c.autograd_seconds / c.manual_seconds, 3),
                sig(mflop / 1e3 / c.autograd_seconds, 3),
                human(c.tape_saved),
                peak(c.autograd_peak),
                peak(c.manual_peak),
            ]);
        }
        page.prose(
            "Cost: median wall-clock time per training step (forward, backward, SGD) after a \
             warm-up; the bytes the tape keeps for backward by its own accounting; and the \
             peak heap bytes live during one step, from a counting allocator (the examples \
             install it; the tensor buffer cache is off while it counts, so every buffer \
             the step needs is counted).",
        );
        page.table(t);
        let ratios: Vec<f64> = self
            .sizes
            .iter()
            .map(|c| c.autograd_seconds / c.manual_seconds)
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let peaks: Vec<f64> = self
            .sizes
            .iter()
            .filter_map(|c| Some(c.autograd_peak? as f64 / c.manual_peak? as f64))
            .collect();
        let span = |lo: f64, hi: f64| {
            if hi - lo <= 1e-3 * lo.abs() {
                format!("{}×", sig(lo, 3))
            } else {
                format!("{}× to {}×", sig(lo, 3), sig(hi, 3))
            }
        };
        page.prose(format!(
            "Across the sizes, a step with the tape takes {} the time of the hand-written \
             one{}. Both spend their time in the same matrix products; what the tape adds — a \
             node per op, the saved state in its op's enum variant, a store of gradients — is \
             a fixed cost per op, {} (Wall-clock times on a shared 2-core machine vary by tens \
             of percent between runs; regenerate them on yours.) Writing only the forward pass \
             costs little, and the gradients are the same.",
            span(lo, hi),
            if peaks.is_empty() {
                String::new()
            } else {
                format!(
                    ", and peaks at {} its memory",
                    span(
                        peaks.iter().copied().fold(f64::INFINITY, f64::min),
                        peaks.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                    )
                )
            },
            if ratios.first() > ratios.last() {
                "which weighs most beside the smallest matrices."
            } else {
                "yet here the ratio does not fall with size: at these sizes the differences \
                 are of the order of the timer's run-to-run noise."
            },
        ));
        page.figure(self.figure());
        page
    }

    /// Time per step against work per step, both ways (log–log).
    pub fn figure(&self) -> Figure {
        let points = |f: fn(&Comparison) -> f64| -> Vec<(f64, f64)> {
            self.sizes
                .iter()
                .map(|c| (c.size.flops_per_step() / 1e6, f(c) * 1e3))
                .collect()
        };
        let panel = Panel::new(
            "resmlp-step: time per training step",
            "MFLOP per step",
            "milliseconds per step",
        )
        .log_x()
        .log_y()
        .with(
            Series::line("autograd (tape)", points(|c| c.autograd_seconds), 0)
                .styled(Style::LinePoints),
        )
        .with(
            Series::line("manual backward", points(|c| c.manual_seconds), 1)
                .styled(Style::LinePoints),
        );
        Figure::single(
            "10_autograd_vs_manual",
            "Time per training step of the standard workload, autograd against the \
             hand-written backward (log–log)",
            panel,
        )
    }
}
