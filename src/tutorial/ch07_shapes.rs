//! Chapter 7 — Shapes that change.
//!
//! `F(x) + x` needs F(x) and x of one shape. When a block changes the width (or the number
//! of channels and the resolution of an image), the shortcut becomes a learnable
//! projection: a `Linear`, or a 1×1 convolution. And because every block adds into the
//! same stream, pruning is constrained: a block's output width cannot shrink on its own;
//! only its hidden width can (an "hourglass" block), or the whole stream at once.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Legend, Panel, Series, Style};
use super::training::{Evaluation, OptimizerKind, evaluate, train};
use super::{Chapter, Progress};
use autograd::{Tape, Tensor, seeded_rng};
use nn::builder::Branch;
use nn::conv_block::BasicConvBlock;
use nn::crosscheck::crosscheck_layers;
use nn::data::{Dataset, two_spirals};
use nn::{
    Activation, Ctx, HiddenUnit, Init, Linear, Mlp, MlpConfig, Module, ProjectionBlock, Residual,
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 7,
    slug: "07_shapes",
    title: "Shapes that change",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Width of the residual stream of the pruned network.
    pub width: usize,
    /// Number of residual blocks.
    pub depth: usize,
    /// Points per class of the two spirals.
    pub points_per_class: usize,
    /// Training steps before pruning.
    pub steps: usize,
    /// Fine-tuning steps after pruning.
    pub fine_tune: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Widths kept when pruning (hidden width of every block, or the stream's width).
    pub kept: Vec<usize>,
    /// Seed of the weights.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            width: 32,
            depth: 8,
            points_per_class: 256,
            steps: 400,
            fine_tune: 100,
            optimizer: OptimizerKind::Adam { lr: 0.01 },
            kept: vec![32, 24, 16, 12, 8, 6, 4, 3, 2, 1],
            seed: 0,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            width: 16,
            depth: 4,
            points_per_class: 64,
            steps: 200,
            fine_tune: 30,
            kept: vec![16, 8, 2],
            ..Self::full()
        }
    }
}

/// How a pruned network was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Every block's hidden width (between its two layers) cut to the kept width; the
    /// stream keeps its width: hourglass blocks.
    Hourglass,
    /// The stream's width cut to the kept width in every block at once (and in the input
    /// and output layers): the only way to narrow a block's output.
    Stream,
}

impl Cut {
    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Cut::Hourglass => "hidden width of every block (hourglass)",
            Cut::Stream => "the stream, in every block at once",
        }
    }
}

/// One pruned network.
#[derive(Clone, Debug)]
pub struct Pruned {
    /// How it was cut.
    pub cut: Cut,
    /// The width kept.
    pub kept: usize,
    /// Its number of parameters.
    pub parameters: usize,
    /// Right after pruning.
    pub pruned: Evaluation,
    /// After fine-tuning.
    pub tuned: Evaluation,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct ShapesChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The error `x + F(x)` gives when F changes the width.
    pub mismatch_error: String,
    /// Shapes and parameter counts of the Linear projection block: (in, out, branch
    /// parameters, projection parameters).
    pub linear_projection: (usize, usize, usize, usize),
    /// Its cross-check against the manual backward: the largest relative difference.
    pub linear_projection_max_rel: f64,
    /// The image block: input shape, output shape, parameters of the branch and of the 1×1
    /// projection.
    pub conv_block: (Vec<usize>, Vec<usize>, usize, usize),
    /// ‖∂L/∂x‖ through the conv block's branch and through its projection shortcut.
    pub conv_shares: (f64, f64),
    /// The error when one block's output is pruned alone.
    pub lone_cut_error: String,
    /// The trained network before pruning.
    pub unpruned: Evaluation,
    /// Its number of parameters.
    pub unpruned_parameters: usize,
    /// Every pruned network.
    pub pruned: Vec<Pruned>,
}

/// The indices of the `keep` largest scores, in increasing index order.
fn top(scores: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(keep);
    order.sort_unstable();
    order
}

/// Row norms (axis 0) or column norms (axis 1) of a matrix.
fn norms(m: &Tensor<f64>, axis: usize) -> Vec<f64> {
    let (rows, cols) = (m.shape()[0], m.shape()[1]);
    let (n, len) = if axis == 0 {
        (rows, cols)
    } else {
        (cols, rows)
    };
    (0..n)
        .map(|i| {
            (0..len)
                .map(|j| {
                    let v = if axis == 0 {
                        m.get(&[i, j])
                    } else {
                        m.get(&[j, i])
                    };
                    v * v
                })
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// A `Linear` with the given rows (outputs) and columns (inputs) of `l` kept.
fn slice(l: &Linear<f64>, rows: Option<&[usize]>, cols: Option<&[usize]>) -> Linear<f64> {
    let mut w = l.weight.value();
    let mut b = l.bias.as_ref().map(|b| b.value());
    if let Some(r) = rows {
        w = w.index_select(0, r);
        b = b.map(|b| b.index_select(0, r));
    }
    if let Some(c) = cols {
        w = w.index_select(1, c);
    }
    Linear::from_tensors(w, b)
}

/// The blocks of a residual [`Mlp`], with their branch scale.
fn blocks(net: &Mlp<f64>) -> Vec<&Residual<Branch<f64>, f64>> {
    net.hidden
        .iter()
        .filter_map(|u| match u {
            HiddenUnit::Residual(r) => Some(r),
            HiddenUnit::Plain(_) => None,
        })
        .collect()
}

/// A block rebuilt from two layers, with `like`'s activation and scale.
fn rebuild(
    like: &Residual<Branch<f64>, f64>,
    linear1: Linear<f64>,
    linear2: Linear<f64>,
) -> HiddenUnit<f64> {
    let branch = Branch {
        linear1,
        norm1: None,
        activation: like.branch.activation,
        linear2,
        norm2: None,
    };
    let mut block = Residual::new(branch).with_activation(Activation::Relu);
    if let Some(s) = like.scale {
        block = block.with_scale(s);
    }
    HiddenUnit::Residual(block)
}

/// Every block's hidden units cut to the `keep` with the largest ‖W₁ row‖·‖W₂ column‖.
pub fn prune_hourglass(net: &Mlp<f64>, keep: usize) -> Mlp<f64> {
    let hidden = blocks(net)
        .into_iter()
        .map(|b| {
            let (w1, w2) = (
                b.branch.linear1.weight.value(),
                b.branch.linear2.weight.value(),
            );
            let scores: Vec<f64> = norms(&w1, 0)
                .iter()
                .zip(norms(&w2, 1))
                .map(|(a, c)| a * c)
                .collect();
            let kept = top(&scores, keep);
            rebuild(
                b,
                slice(&b.branch.linear1, Some(&kept), None),
                slice(&b.branch.linear2, None, Some(&kept)),
            )
        })
        .collect();
    Mlp {
        input: slice(&net.input, None, None),
        hidden,
        output: slice(&net.output, None, None),
    }
}

/// The stream cut to the `keep` channels with the largest weights touching them, in the
/// input layer, every block (its first layer's inputs and its second layer's outputs) and
/// the output layer.
pub fn prune_stream(net: &Mlp<f64>, keep: usize) -> Mlp<f64> {
    let blocks = blocks(net);
    let mut score: Vec<f64> = norms(&net.input.weight.value(), 0)
        .iter()
        .map(|v| v * v)
        .collect();
    let mut add = |v: Vec<f64>| score.iter_mut().zip(v).for_each(|(s, x)| *s += x * x);
    add(norms(&net.output.weight.value(), 1));
    for b in &blocks {
        add(norms(&b.branch.linear1.weight.value(), 1));
        add(norms(&b.branch.linear2.weight.value(), 0));
    }
    let kept = top(&score, keep);
    Mlp {
        input: slice(&net.input, Some(&kept), None),
        hidden: blocks
            .iter()
            .map(|b| {
                rebuild(
                    b,
                    slice(&b.branch.linear1, None, Some(&kept)),
                    slice(&b.branch.linear2, Some(&kept), None),
                )
            })
            .collect(),
        output: slice(&net.output, None, Some(&kept)),
    }
}

/// The error of adding a block output pruned on its own to its input.
fn lone_cut_error(net: &Mlp<f64>, data: &Dataset<f64>) -> String {
    let Some(b) = blocks(net).into_iter().next() else {
        return String::new();
    };
    let width = b.branch.linear2.out_features();
    let kept: Vec<usize> = (0..width / 2).collect();
    let linear2 = slice(&b.branch.linear2, Some(&kept), None);
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let h = net.input.forward(&cx, &cx.input(data.x.clone()));
    let f = linear2.forward(&cx, &b.branch.linear1.forward(&cx, &h).relu());
    match f.try_add(&h) {
        Ok(sum) => format!("no error: the sum has shape {:?}", sum.shape()),
        Err(e) => e.to_string(),
    }
}

/// Runs the chapter.
pub fn run(config: &Config, progress: &Progress) -> ShapesChapter {
    let mut rng = seeded_rng(config.seed);
    // The mismatch: a branch 16 → 32 cannot be added to its 16-wide input.
    let mismatch_error = {
        let tape = Tape::<f64>::new();
        let cx = Ctx::eval(&tape);
        let x = cx.input(Tensor::ones(&[4, 16]));
        let wide = Linear::<f64>::with_init(16, 32, true, Init::he(), &mut rng);
        match wide.forward(&cx, &x).try_add(&x) {
            Ok(_) => "no error".to_string(),
            Err(e) => e.to_string(),
        }
    };
    // The Linear projection block, checked against its manual twin.
    let block = ProjectionBlock::<f64>::new(16, 32, Init::he(), &mut rng);
    let x = Tensor::uniform(&[8, 16], -1.0, 1.0, &mut rng);
    let y = Tensor::uniform(&[8, 32], -1.0, 1.0, &mut rng);
    let report = crosscheck_layers(&[&block], &x, &y)
        .unwrap_or_else(|e| panic!("cross-check of the projection block: {e}"));
    let count = |params: Vec<(String, nn::Param<f64>)>| -> usize {
        params
            .iter()
            .map(|(_, p)| p.shape().iter().product::<usize>())
            .sum()
    };
    let branch_params =
        count(block.linear1.named_parameters()) + count(block.linear2.named_parameters());
    let linear_projection = (
        16,
        32,
        branch_params,
        count(block.projection.named_parameters()),
    );
    // The image block: 8 → 16 channels, stride 2, 1×1 convolution on the shortcut.
    let conv = BasicConvBlock::<f64>::new(8, 16, 2, &mut rng);
    let image = Tensor::uniform(&[2, 8, 16, 16], -1.0, 1.0, &mut rng);
    let (conv_block, conv_shares) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let xv = cx.tracked_input(image.clone());
        let out = conv.forward(&cx, &xv);
        let loss = (&out * &out).mean();
        tape.track_contributions(&xv);
        let grads = loss.backward();
        let proj = conv
            .projection
            .as_ref()
            .map_or(0, |p| count(p.named_parameters()));
        // Two convolutions read x: the branch's first (recorded first) and the projection.
        let mut arrivals = grads.contributions(&xv);
        arrivals.sort_by_key(|c| c.from);
        let norm = |k: usize| arrivals.get(k).map_or(0.0, |c| c.norm());
        (
            (
                image.shape().to_vec(),
                out.shape().to_vec(),
                count(conv.named_parameters()) - proj,
                proj,
            ),
            (norm(0), norm(1)),
        )
    };

    // Pruning a trained residual MLP.
    let data = two_spirals::<f64>(config.points_per_class, 0.0, 0);
    let recipe = MlpConfig::residual(2, config.width, 2, config.depth)
        .activation(Activation::Relu)
        .init(Init::he())
        .branch_scale(Some(1.0 / (config.depth as f64).sqrt()));
    let net = recipe.build::<f64>(&mut seeded_rng(config.seed));
    let label = format!("residual {} × {}", config.depth, config.width);
    let run = train(
        &net,
        &data,
        config.optimizer,
        config.steps,
        config.seed,
        progress,
        &label,
    );
    let mut pruned = Vec::new();
    for cut in [Cut::Hourglass, Cut::Stream] {
        for &keep in &config.kept {
            let small = match cut {
                Cut::Hourglass => prune_hourglass(&net, keep),
                Cut::Stream => prune_stream(&net, keep),
            };
            let before = evaluate(&small, &data);
            let label = format!("fine-tuning, {} cut to {keep}", cut.describe());
            let tuned = train(
                &small,
                &data,
                config.optimizer,
                config.fine_tune,
                config.seed,
                progress,
                &label,
            );
            pruned.push(Pruned {
                cut,
                kept: keep,
                parameters: small.num_parameters(),
                pruned: before,
                tuned: tuned.last,
            });
        }
    }
    ShapesChapter {
        config: config.clone(),
        mismatch_error,
        linear_projection,
        linear_projection_max_rel: report.max_rel(),
        conv_block,
        conv_shares,
        lone_cut_error: lone_cut_error(&net, &data),
        unpruned: run.last,
        unpruned_parameters: net.num_parameters(),
        pruned,
    }
}

impl ShapesChapter {
    /// The pruned networks of one cut, widest first.
    pub fn cut(&self, cut: Cut) -> Vec<&Pruned> {
        self.pruned.iter().filter(|p| p.cut == cut).collect()
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(
            "H(x) = F(x) + x adds two tensors, so they must have one shape. A branch that \
             widens its input from 16 to 32 features cannot be added to that input; the tape \
             refuses, naming the op, both shapes and the line:",
        );
        page.code(self.mismatch_error.clone());
        let (i, o, branch, projection) = self.linear_projection;
        page.prose(format!(
            "The notebook's fix is a learnable shortcut: H(x) = ReLU(F(x) + P·x), P a \
             bias-free Linear {i} → {o} (nn::ProjectionBlock). Its branch has {branch} \
             parameters and the projection {projection} more ({:.0} % of the block). Its \
             backward on the tape matches the hand-written one, dR + Pᵀ·d (nn::manual), to a \
             relative {}.",
            100.0 * projection as f64 / (branch + projection) as f64,
            sig(self.linear_projection_max_rel, 2),
        ));
        let (inp, out, branch, projection) = &self.conv_block;
        page.prose(format!(
            "For images the projection is a 1×1 convolution, with a stride when the \
             resolution halves: the ResNet basic block (nn::conv_block::BasicConvBlock, two 3×3 \
             convolutions with batch norm) from 8 to 16 channels at stride 2 maps {inp:?} to \
             {out:?}. The 1×1 convolution (and its batch norm) has {projection} parameters, \
             the branch {branch}. Two convolutions read x, and the tape sums their \
             contributions: ‖·‖ = {} through the branch, {} through the projection shortcut.",
            sig(self.conv_shares.0, 3),
            sig(self.conv_shares.1, 3),
        ));
        page.prose(format!(
            "The same constraint binds pruning. Train a residual MLP of {} blocks on a stream \
             of width {} ({} parameters; training loss {}, accuracy {:.1} %), then try to \
             narrow one block's output on its own — half its output units — and the add \
             fails:",
            c.depth,
            c.width,
            self.unpruned_parameters,
            sig(self.unpruned.loss, 2),
            100.0 * self.unpruned.accuracy
        ));
        page.code(self.lone_cut_error.clone());
        page.prose(format!(
            "Two cuts remain. Prune inside the blocks only — the hidden units between each \
             block's two layers, keeping those with the largest ‖W₁ row‖·‖W₂ column‖ — and the \
             blocks become hourglasses, {w} → k → {w}. Or prune the stream itself: the same \
             channels in the input layer, in every block and in the output layer at once. \
             Below, the training loss right after each cut and after {} steps of fine-tuning:",
            c.fine_tune,
            w = c.width,
        ));
        let mut t = Table::new([
            "cut",
            "width kept",
            "parameters",
            "loss after cut",
            "accuracy",
            "after fine-tuning",
            "accuracy",
        ]);
        for p in &self.pruned {
            t.row([
                match p.cut {
                    Cut::Hourglass => "hourglass".to_string(),
                    Cut::Stream => "stream".to_string(),
                },
                p.kept.to_string(),
                p.parameters.to_string(),
                sig(p.pruned.loss, 3),
                format!("{:.1} %", 100.0 * p.pruned.accuracy),
                sig(p.tuned.loss, 3),
                format!("{:.1} %", 100.0 * p.tuned.accuracy),
            ]);
        }
        page.table(t);
        let narrowest = |cut| self.cut(cut).into_iter().min_by_key(|p| p.kept);
        let second = |cut| {
            let mut widths: Vec<&Pruned> = self.cut(cut);
            widths.sort_by_key(|p| std::cmp::Reverse(p.kept));
            widths.get(1).copied()
        };
        if let (Some(h), Some(s), Some(h2), Some(s2)) = (
            narrowest(Cut::Hourglass),
            narrowest(Cut::Stream),
            second(Cut::Hourglass),
            second(Cut::Stream),
        ) {
            page.prose(format!(
                "Right after the cut neither network survives intact: keeping {} of {} units, \
                 the hourglass network drops to {:.1} % and the narrower stream to {:.1} % — \
                 weight magnitude is a poor guide to what a small network needs. Fine-tuning \
                 for {} steps recovers both, differently. Hourglass blocks reach {:.1} % even \
                 with a waist of {}: the stream and its skips carry the function through every \
                 waist. But hourglass pruning cannot go below {} parameters — the stream's \
                 layers stay untouched. Narrowing the stream goes further ({} parameters at \
                 width {}) at a price ({:.1} % after fine-tuning), and it is one decision for \
                 every block at once, not a choice per layer: the rigidity the notebook \
                 describes.",
                h2.kept,
                c.width,
                100.0 * h2.pruned.accuracy,
                100.0 * s2.pruned.accuracy,
                c.fine_tune,
                100.0 * h.tuned.accuracy,
                h.kept,
                h.parameters,
                s.parameters,
                s.kept,
                100.0 * s.tuned.accuracy,
            ));
        }
        page.figure(self.figure());
        page
    }

    /// Accuracy against parameters for both cuts, before and after fine-tuning.
    pub fn figure(&self) -> Figure {
        let points = |cut: Cut, tuned: bool| -> Vec<(f64, f64)> {
            self.cut(cut)
                .iter()
                .map(|p| {
                    let e = if tuned { p.tuned } else { p.pruned };
                    (p.parameters as f64, 100.0 * e.accuracy)
                })
                .collect()
        };
        let panel = Panel::new(
            "pruning a trained residual MLP",
            "parameters left",
            "training accuracy (%)",
        )
        .log_x()
        .headroom(0.5)
        .legend(Legend::UpperRight)
        .with(
            Series::line(
                "hourglass, right after the cut",
                points(Cut::Hourglass, false),
                0,
            )
            .styled(Style::Dashed),
        )
        .with(
            Series::line("hourglass, fine-tuned", points(Cut::Hourglass, true), 0)
                .styled(Style::LinePoints),
        )
        .with(
            Series::line("stream, right after the cut", points(Cut::Stream, false), 1)
                .styled(Style::Dashed),
        )
        .with(
            Series::line("stream, fine-tuned", points(Cut::Stream, true), 1)
                .styled(Style::LinePoints),
        );
        Figure::single(
            "07_pruning",
            "Pruning inside the blocks (hourglass) against pruning the residual stream: \
             training accuracy against parameters left (log scale)",
            panel,
        )
    }
}
