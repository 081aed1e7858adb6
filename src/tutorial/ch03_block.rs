//! Chapter 3 — The residual block.
//!
//! The notebook's `ResidualBlock` twice: as a forward pass on the tape, and with its
//! hand-written backward (`nn::manual`). Their gradients agree to rounding; the two
//! contributions at the merge, `d` and `dR`, are the two terms of
//! ∂L/∂x = ∂L/∂H·(∂F/∂x + I); and when the branch's Jacobian is made tiny, the skip still
//! carries the gradient.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Panel, Series, Shape, Style};
use super::{Chapter, Progress};
use autograd::{Tape, Tensor, Var, seeded_rng};
use nn::crosscheck::{CrosscheckReport, crosscheck_layers};
use nn::manual::{self, Layer};
use nn::{Ctx, Init, Linear, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 3,
    slug: "03_block",
    title: "The residual block",
    source: source!("ch03_block.rs"),
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
    /// The largest difference between [`notebook_forward`] and `nn::ResidualBlock`'s
    /// forward on the chapter's input.
    pub forward_difference: f64,
    /// The ops the notebook's forward records, in order.
    pub forward_ops: Vec<&'static str>,
    /// The smallest output of the block (≥ 0: the last op is a ReLU).
    pub min_output: f64,
}

/// The notebook's `forward()`, line by line, with the layers of an `nn::ResidualBlock`.
pub fn notebook_forward<'t>(
    block: &ResidualBlock<f64>,
    cx: &Ctx<'t, f64>,
    x: &Var<'t, f64>,
) -> Var<'t, f64> {
    // cell: forward
    // Pass input through all layers in block
    let out = block.linear1.forward(cx, x);
    let out = out.relu();
    let out = block.linear2.forward(cx, &out);
    // Combine layer output with initial input
    let out = &out + x;
    // Pass combined output through final activation function (a ReLU, not a linear layer)
    out.relu()
    // end cell
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
    // cell: tape_split
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.tracked_input(x.clone());
    let loss = mse(&block.forward(&cx, &xv), target);
    tape.track_contributions(&xv);
    let grads = loss.backward();
    // x feeds two nodes: the add (the skip) and the branch's first linear.
    let from = |op: &str| {
        let arrived = grads.contributions(&xv).into_iter().find(|c| c.op == op);
        arrived.map_or_else(|| Tensor::zeros(x.shape()), |c| c.tensor.clone())
    };
    let (d, d_r, dx) = (from("add"), from("linear"), grads.wrt(&xv));
    // end cell
    MergeGradients { d, d_r, dx }
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
    // cell: backward
    let d_y = loss.backward();
    // Gradient through final ReLU
    let d = m.relu2.backward(&d_y);
    // residual branch backward
    let d_r = m.linear2.backward(&d);
    let d_r = m.relu1.backward(&d_r);
    let d_r = m.linear1.backward(&d_r);
    // Combine gradients from skip and residual paths
    let dx = &d_r + &d;
    // end cell
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
    // cell: shrink
    let mut scaled = Vec::new();
    for &scale in &config.branch_scales {
        let small = scaled_block(&block, scale); // W₁ and W₂ multiplied by `scale`
        let m = tape_merge(&small, &x, &target);
        let (d, d_r, dx) = (m.d.norm(), m.d_r.norm(), m.dx.norm());
        let dx_without_skip = without_skip(&small, &x, &target);
        scaled.push(ScaledBranch {
            scale,
            d,
            d_r,
            dx,
            dx_without_skip,
        });
    }
    // end cell
    let (forward_difference, forward_ops, min_output) = {
        let tape = Tape::new();
        let cx = Ctx::eval(&tape);
        let xv = cx.input(x.clone());
        let ours = notebook_forward(&block, &cx, &xv);
        let before = tape.len();
        let theirs = block.forward(&cx, &xv);
        let ops = tape.op_names()[before..].to_vec();
        let min = ours
            .value()
            .data()
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        (ours.value().max_abs_diff(theirs.value()), ops, min)
    };
    BlockChapter {
        config: config.clone(),
        tape: tape_merge(&block, &x, &target),
        manual: manual_merge(&block, &x, &target),
        report,
        scaled,
        forward_difference,
        forward_ops,
        min_output,
    }
}

impl BlockChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's block ReLU(F(x) + x), F = Linear → ReLU → Linear, width \
             unchanged: the chapter checks the notebook's own forward and backward code.",
        );
        page.prose(
            "The notebook's block adds the input x to the output of a small branch F and \
             applies the final activation after the sum:",
        );
        page.figure(self.diagram());
        page.prose(format!(
            "Its `forward()`, line by line, on the layers of an `nn::ResidualBlock` (width {}, He \
             initialisation). It records the ops {} — the same as the library's block, whose \
             output it matches to {}:",
            c.width,
            self.forward_ops.join(" → "),
            sig(self.forward_difference, 2),
        ));
        page.cell("forward");
        page.prose(format!(
            "One slip in the notebook's prose: its description of `forward()` says the sum \
             \"is then passed through the second linear layer\". The code — the notebook's and \
             this one — passes it through the final ReLU (`relu2`): the last op recorded is \
             `{}`, and no output is negative (smallest: {}).",
            self.forward_ops.last().copied().unwrap_or("?"),
            sig(self.min_output, 2)
        ));
        page.heading("The backward pass, by hand and by the tape");
        page.prose(
            "The notebook also writes the block's `backward()` by hand. nn::manual holds its \
             layers with hand-written backward rules; here is the notebook's method, on the same \
             block, the same input and the loss L = mean((H(x) − y)²):",
        );
        page.cell("backward");
        page.prose(
            "On the tape only the forward pass is written. The two shares of ∂L/∂x are the two \
             contributions that arrive at x before the sweep sums them:",
        );
        page.cell("tape_split");
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
        page.table(t);
        let sum = &self.tape.d + &self.tape.d_r;
        page.prose(format!(
            "That is the notebook's formula ∂L/∂x = ∂L/∂H·(∂F/∂x + I) = d·∂F/∂x + d, term by \
             term (largest difference between d + dR and the tape's ∂L/∂x: {}). nn::crosscheck \
             compares every other gradient too — each parameter's, each layer's output — \
             \"relative\" being max|tape − manual| / max|value|:",
            sig(sum.max_abs_diff(&self.tape.dx), 2)
        ));
        let mut t = Table::new(["quantity", "max |tape − manual|", "relative"]);
        for (name, d) in self.report.comparisons() {
            t.row([name, sig(d.max_abs, 2), sig(d.max_rel, 2)]);
        }
        page.table(t);
        let agree = self.report.passed(self.report.tolerance);
        page.prose(format!(
            "Verdict at a relative tolerance of {}: {}; the largest relative difference is {}. \
             One generic rule per op, summed by the tape, against the notebook's hand-ordered \
             calls: they agree to the rounding of f64.",
            sig(self.report.tolerance, 2),
            if agree { "they agree" } else { "they DISAGREE" },
            sig(self.report.max_rel(), 2),
        ));
        page.heading("When the branch's gradient is tiny");
        page.prose(
            "Shrink the branch: multiply W₁ and W₂ by a factor, so that ∂F/∂x — which contains \
             both — shrinks with its square. The same two layers without the skip, ReLU(F(x)), \
             for comparison:",
        );
        page.cell("shrink");
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
        page.table(t);
        let (first, last) = (self.scaled.first(), self.scaled.last());
        if let (Some(first), Some(last)) = (first, last) {
            page.prose(format!(
                "The branch's share dR vanishes with the weights; the skip's share d is ∂L/∂H \
                 itself and does not. From scale {} to {}, ‖∂L/∂x‖ with the skip goes from {} to \
                 {}; without it, from {} to {}.",
                sig(first.scale, 2),
                sig(last.scale, 2),
                sig(first.dx, 3),
                sig(last.dx, 3),
                sig(first.dx_without_skip, 3),
                sig(last.dx_without_skip, 3),
            ));
        }
        page.figure(self.figure());
        page.claim(
            "The hand-written backward (d = relu2.backward(dY), dR through the branch, dR + d) \
             computes ∂L/∂x = ∂L/∂H·∂F/∂x + ∂L/∂H",
            format!(
                "largest relative difference to the tape, over every gradient: {}",
                sig(self.report.max_rel(), 2)
            ),
            if agree {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "forward() passes the sum \"through the second linear layer\" (the notebook's \
             description of its code)",
            format!(
                "the last op of the block is `{}`; smallest output {}",
                self.forward_ops.last().copied().unwrap_or("?"),
                sig(self.min_output, 2)
            ),
            if self.forward_ops.last() == Some(&"relu") {
                Verdict::Refuted
            } else {
                Verdict::Confirmed
            },
        );
        if let (Some(first), Some(last)) = (first, last) {
            let kept = last.dx > 0.1 * first.dx;
            page.claim(
                "Even if ∂F/∂x becomes very small, the skip still provides a direct path for \
                 the gradient",
                format!(
                    "branch scaled by {}: ‖∂L/∂x‖ = {} with the skip, {} without (scale 1: {} \
                     and {})",
                    sig(last.scale, 2),
                    sig(last.dx, 3),
                    sig(last.dx_without_skip, 3),
                    sig(first.dx, 3),
                    sig(first.dx_without_skip, 3)
                ),
                if kept {
                    Verdict::Confirmed
                } else {
                    Verdict::Refuted
                },
            );
        }
        page.takeaways([
            "The notebook's block is four lines of forward pass; the `+ x` is the whole skip \
             connection, and the final ReLU comes after it.",
            "The hand-written backward and the tape's agree to f64 rounding: d (through the \
             skip) plus dR (through the branch) is ∂L/∂x.",
            "When the branch's Jacobian shrinks, dR vanishes but d does not: the skip keeps \
             the input's gradient alive.",
        ]);
        page
    }

    /// The block as a diagram: x → Linear₁ → ReLU → Linear₂ → (+) → ReLU → H(x), and the
    /// skip from x to the sum.
    pub fn diagram(&self) -> Figure {
        let boxed = |x0: f64, label: &str, color: usize| Shape::Box {
            from: (x0, -0.45),
            to: (x0 + 1.5, 0.45),
            label: label.to_string(),
            color,
        };
        let arrow = |from: f64, to: f64| Shape::Arrow {
            points: vec![(from, 0.0), (to, 0.0)],
            color: 7,
            dashed: false,
        };
        let panel = Panel::diagram("the notebook's residual block")
            .shape(Shape::Box {
                from: (1.3, -0.75),
                to: (7.2, 0.75),
                label: String::new(),
                color: 7,
            })
            .shape(boxed(1.5, "Linear₁", 0))
            .shape(boxed(3.6, "ReLU", 2))
            .shape(boxed(5.5, "Linear₂", 0))
            .shape(boxed(9.2, "ReLU", 2))
            .shape(arrow(0.4, 1.5))
            .shape(arrow(3.0, 3.6))
            .shape(arrow(5.1, 5.5))
            .shape(arrow(7.0, 7.75))
            .shape(arrow(8.25, 9.2))
            .shape(arrow(10.7, 11.6))
            .shape(Shape::Arrow {
                points: vec![(0.4, 0.0), (0.8, 1.6), (7.6, 1.6), (8.0, 0.3)],
                color: 1,
                dashed: false,
            })
            .shape(Shape::Node {
                at: (8.0, 0.0),
                radius: 14,
                label: "+".to_string(),
            })
            .note(0.1, 0.0, "x")
            .note(12.2, 0.0, "H(x)")
            .note(4.25, -1.05, "residual branch F(x)")
            .note(4.25, 1.95, "skip connection: x itself (identity)")
            .note(8.0, -0.75, "F(x) + x")
            .y_limits(-1.5, 2.4)
            .x_limits(-0.3, 12.8);
        Figure::single(
            "03_block_diagram",
            "The notebook's residual block: the branch F = Linear → ReLU → Linear, the skip \
             carrying x to the sum, and the final ReLU after the sum",
            panel,
        )
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
