//! Chapter 3 — The residual block.
//!
//! The notebook's `ResidualBlock` twice: as a forward pass on the tape, and with its
//! hand-written backward (`nn::manual`). Their gradients agree to rounding; the two
//! contributions at the merge, `d` and `dR`, are the two terms of
//! ∂L/∂x = ∂L/∂H·(∂F/∂x + I); and when the branch's Jacobian is made tiny, the skip still
//! carries the gradient.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::{Chapter, Progress};
use autograd::{Tape, Tensor, seeded_rng};
use nn::crosscheck::{CrosscheckReport, crosscheck_layers};
use nn::manual::{self, Layer};
use nn::{Ctx, Init, Linear, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 3,
    slug: "03_block",
    title: "The residual block",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Width of the block.
    pub width: usize,
    /// Rows of the input.
    pub batch: usize,
    /// Factors the branch's weights are multiplied by, largest first.
    pub branch_scales: Vec<f64>,
    /// Seed of the weights and data.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            width: 16,
            batch: 32,
            branch_scales: (0..=6).map(|k| 10f64.powi(-k)).collect(),
            seed: 3,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            width: 6,
            batch: 8,
            branch_scales: vec![1.0, 1e-2, 1e-4],
            ..Self::full()
        }
    }
}

/// The gradient at the block's input, split at the merge.
#[derive(Clone, Debug)]
pub struct MergeGradients {
    /// d = ∂L/∂(F(x) + x): what the add node sends to both of its inputs; the skip's
    /// contribution to ∂L/∂x.
    pub d: Tensor<f64>,
    /// dR = d·∂F/∂x: the branch's contribution to ∂L/∂x.
    pub d_r: Tensor<f64>,
    /// ∂L/∂x as the sweep accumulated it.
    pub dx: Tensor<f64>,
}

/// ‖·‖ of the gradients at one branch scale.
#[derive(Clone, Debug)]
pub struct ScaledBranch {
    /// The factor on W₁ and W₂.
    pub scale: f64,
    /// ‖d‖: through the skip.
    pub d: f64,
    /// ‖dR‖: through the branch.
    pub d_r: f64,
    /// ‖∂L/∂x‖ of the residual block.
    pub dx: f64,
    /// ‖∂L/∂x‖ of the same layers without the skip, ReLU(F(x)).
    pub dx_without_skip: f64,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct BlockChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// Tape against manual backward, every gradient compared.
    pub report: CrosscheckReport,
    /// The split of ∂L/∂x on the tape (contributions at x).
    pub tape: MergeGradients,
    /// The same split, by the notebook's backward written out with the manual layers.
    pub manual: MergeGradients,
    /// The gradients as the branch's weights shrink.
    pub scaled: Vec<ScaledBranch>,
}

/// The MSE loss of `h` against `target`, as the cross-check uses it.
fn mse<'t>(h: &autograd::Var<'t, f64>, target: &Tensor<f64>) -> autograd::Var<'t, f64> {
    let diff = h - &h.tape().constant(target.clone());
    (&diff * &diff).mean()
}

/// d, dR and ∂L/∂x on the tape: x's contributions, from the add (skip) and the first
/// linear (branch).
pub fn tape_merge(
    block: &ResidualBlock<f64>,
    x: &Tensor<f64>,
    target: &Tensor<f64>,
) -> MergeGradients {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.tracked_input(x.clone());
    let loss = mse(&block.forward(&cx, &xv), target);
    tape.track_contributions(&xv);
    let grads = loss.backward();
    let from = |op: &str| {
        grads
            .contributions(&xv)
            .iter()
            .find(|c| c.op == op)
            .map_or_else(|| Tensor::zeros(x.shape()), |c| c.tensor.clone())
    };
    MergeGradients {
        d: from("add"),
        d_r: from("linear"),
        dx: grads.wrt(&xv),
    }
}

/// The notebook's `backward`, written out with the manual layers: `d = relu2.backward(dY)`,
/// `dR` through linear2 → relu1 → linear1, and `dR + d`.
pub fn manual_merge(
    block: &ResidualBlock<f64>,
    x: &Tensor<f64>,
    target: &Tensor<f64>,
) -> MergeGradients {
    let mut m = manual::ResidualBlock::from_autograd(block);
    let mut loss = manual::MSELoss::new();
    loss.forward(&m.forward(x), target);
    let d_y = loss.backward();
    let d = m.relu2.backward(&d_y);
    let d_r = m.linear2.backward(&d);
    let d_r = m.relu1.backward(&d_r);
    let d_r = m.linear1.backward(&d_r);
    let dx = &d_r + &d;
    MergeGradients { d, d_r, dx }
}

/// ‖∂L/∂x‖ of the block's layers without the skip: ReLU(W₂·ReLU(W₁·x + b₁) + b₂).
fn without_skip(block: &ResidualBlock<f64>, x: &Tensor<f64>, target: &Tensor<f64>) -> f64 {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.tracked_input(x.clone());
    let h = block.linear1.forward(&cx, &xv).relu();
    let h = block.linear2.forward(&cx, &h).relu();
    mse(&h, target).backward().wrt(&xv).norm()
}

/// A copy of `block` with both weight matrices multiplied by `scale` (biases kept).
fn scaled_block(block: &ResidualBlock<f64>, scale: f64) -> ResidualBlock<f64> {
    let layer = |l: &Linear<f64>| {
        Linear::from_tensors(
            l.weight.value().map(|w| w * scale),
            l.bias.as_ref().map(|b| b.value()),
        )
    };
    ResidualBlock::from_layers(layer(&block.linear1), layer(&block.linear2))
}

/// Runs the chapter.
pub fn run(config: &Config, _progress: &Progress) -> BlockChapter {
    let mut rng = seeded_rng(config.seed);
    let block = ResidualBlock::<f64>::new(config.width, Init::he(), &mut rng);
    let x = Tensor::uniform(&[config.batch, config.width], -1.0, 1.0, &mut rng);
    let target = Tensor::uniform(&[config.batch, config.width], -1.0, 1.0, &mut rng);
    let report = crosscheck_layers(&[&block], &x, &target)
        .unwrap_or_else(|e| panic!("cross-check of the chapter's block: {e}"));
    let scaled = config
        .branch_scales
        .iter()
        .map(|&scale| {
            let b = scaled_block(&block, scale);
            let m = tape_merge(&b, &x, &target);
            ScaledBranch {
                scale,
                d: m.d.norm(),
                d_r: m.d_r.norm(),
                dx: m.dx.norm(),
                dx_without_skip: without_skip(&b, &x, &target),
            }
        })
        .collect();
    BlockChapter {
        config: config.clone(),
        tape: tape_merge(&block, &x, &target),
        manual: manual_merge(&block, &x, &target),
        report,
        scaled,
    }
}

impl BlockChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "The notebook writes its ResidualBlock twice over: a forward pass, and a backward \
             pass by hand — d = relu2.backward(dY), then dR through linear2 → relu1 → linear1, \
             then dR + d. On the tape only the forward pass is written (nn::ResidualBlock); \
             nn::manual::ResidualBlock is the notebook's class with its hand-written backward. \
             We run both on the same block (width {}, He initialisation), the same {}×{} input \
             and the loss L = mean((H(x) − y)²), and compare every gradient: each parameter's, \
             each layer's output, ∂L/∂x. \"relative\" is max|tape − manual| / max|value|.",
            c.width, c.batch, c.width
        ));
        let mut t = Table::new(["quantity", "max |tape − manual|", "relative"]);
        for (name, diff) in self.report.comparisons() {
            t.row([name, sig(diff.max_abs, 2), sig(diff.max_rel, 2)]);
        }
        page.table(t);
        page.prose(format!(
            "The cross-check's verdict at a relative tolerance of {}: {}; the largest relative \
             difference is {}. The two backward passes are different code — one generic rule \
             per op, summed by the tape, against the notebook's hand-ordered calls — and agree \
             to the rounding of f64.",
            sig(self.report.tolerance, 2),
            if self.report.passed(self.report.tolerance) {
                "they agree"
            } else {
                "they DISAGREE"
            },
            sig(self.report.max_rel(), 2),
        ));
        let diff = |a: &Tensor<f64>, b: &Tensor<f64>| sig(a.max_abs_diff(b), 2);
        let mut t = Table::new(["", "norm", "max |tape − manual|"]);
        t.row([
            "d = ∂L/∂H (the skip's share)".to_string(),
            sig(self.tape.d.norm(), 4),
            diff(&self.tape.d, &self.manual.d),
        ]);
        t.row([
            "dR = d·∂F/∂x (the branch's share)".to_string(),
            sig(self.tape.d_r.norm(), 4),
            diff(&self.tape.d_r, &self.manual.d_r),
        ]);
        t.row([
            "∂L/∂x".to_string(),
            sig(self.tape.dx.norm(), 4),
            diff(&self.tape.dx, &self.manual.dx),
        ]);
        page.prose(
            "The backward formula ∂L/∂x = ∂L/∂H·(∂F/∂x + I) = d·∂F/∂x + d, term by term. On the \
             tape, d and dR are the two contributions that arrive at x — from the add node (the \
             skip) and from the branch's first linear — before the sweep sums them; on the \
             manual side they are the notebook's variables d and dR:",
        );
        page.table(t);
        let sum = &self.tape.d + &self.tape.d_r;
        page.prose(format!(
            "Largest difference between d + dR and the tape's ∂L/∂x: {}.",
            sig(sum.max_abs_diff(&self.tape.dx), 2)
        ));
        let mut t = Table::new([
            "branch weight scale",
            "‖dR‖ (branch)",
            "‖d‖ (skip)",
            "‖∂L/∂x‖ with skip",
            "‖∂L/∂x‖ without skip",
        ]);
        for s in &self.scaled {
            t.row([
                sig(s.scale, 2),
                sig(s.d_r, 3),
                sig(s.d, 3),
                sig(s.dx, 3),
                sig(s.dx_without_skip, 3),
            ]);
        }
        page.prose(
            "Now shrink the branch: multiply W₁ and W₂ by a factor, so that ∂F/∂x — which \
             contains both — shrinks with its square. The branch's share dR vanishes with it. \
             The skip's share d does not: it is ∂L/∂H itself, and ∂L/∂x keeps its size. The \
             same two layers without the skip, ReLU(F(x)), pass back only dR, and their input \
             gradient vanishes:",
        );
        page.table(t);
        if let (Some(first), Some(last)) = (self.scaled.first(), self.scaled.last()) {
            page.prose(format!(
                "From scale {} to {}, ‖∂L/∂x‖ with the skip goes from {} to {}; without it, from \
                 {} to {}. \"Even if the gradient through the residual branch becomes very \
                 small, the residual connection still provides a direct path\" — measured.",
                sig(first.scale, 2),
                sig(last.scale, 2),
                sig(first.dx, 3),
                sig(last.dx, 3),
                sig(first.dx_without_skip, 3),
                sig(last.dx_without_skip, 3),
            ));
        }
        page.figure(self.figure());
        page
    }

    /// The norms against the branch scale, log–log.
    pub fn figure(&self) -> Figure {
        let series = |f: fn(&ScaledBranch) -> f64| -> Vec<(f64, f64)> {
            self.scaled.iter().map(|s| (s.scale, f(s))).collect()
        };
        let panel = Panel::new(
            "gradient at the block's input as the branch shrinks",
            "scale of the branch weights W₁, W₂",
            "norm",
        )
        .log_x()
        .log_y()
        .with(Series::line("‖∂L/∂x‖ with skip", series(|s| s.dx), 0).styled(Style::LinePoints))
        .with(Series::line("‖d‖ (skip)", series(|s| s.d), 1).styled(Style::Dashed))
        .with(Series::line("‖dR‖ (branch)", series(|s| s.d_r), 2).styled(Style::LinePoints))
        .with(
            Series::line("‖∂L/∂x‖ without skip", series(|s| s.dx_without_skip), 3)
                .styled(Style::LinePoints),
        );
        Figure::single(
            "03_shrinking_branch",
            "The two shares of ∂L/∂x as the branch's weights shrink (log–log): dR vanishes \
             quadratically, d and ∂L/∂x stay",
            panel,
        )
    }
}
