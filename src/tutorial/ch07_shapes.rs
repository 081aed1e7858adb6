//! Chapter 7 — Shapes that change.
//!
//! `F(x) + x` needs F(x) and x of one shape. When a block changes the width (or the number
//! of channels and the resolution of an image), the shortcut becomes a learnable
//! projection: a `Linear`, or a 1×1 convolution. And because every block adds into the
//! same stream, pruning is constrained: a block's output width cannot shrink on its own;
//! only its hidden width can (an "hourglass" block), or the whole stream at once.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::seeds::SeedRange;
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
    source: source!("ch07_shapes.rs"),
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
    /// Seeds: each trains a network that is then pruned every way.
    pub seeds: Vec<u64>,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            width: 32,
            depth: 8,
            points_per_class: 256,
            steps: 300,
            fine_tune: 100,
            optimizer: OptimizerKind::Adam { lr: 0.01 },
            kept: vec![32, 16, 8, 4, 2, 1],
            seeds: vec![0, 1, 2],
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
            seeds: vec![0, 1, 2],
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
    /// The seed of the network it was cut from.
    pub seed: u64,
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
    /// The trained networks before pruning, one per seed.
    pub unpruned: Vec<Evaluation>,
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
            // cell: hourglass
            // Score hidden unit i by ‖row i of W₁‖·‖column i of W₂‖; keep the `keep` best.
            let scores: Vec<f64> = norms(&w1, 0)
                .iter()
                .zip(norms(&w2, 1))
                .map(|(a, c)| a * c)
                .collect();
            let kept = top(&scores, keep);
            let linear1 = slice(&b.branch.linear1, Some(&kept), None); // fewer outputs
            let linear2 = slice(&b.branch.linear2, None, Some(&kept)); // fewer inputs
            // end cell
            rebuild(b, linear1, linear2)
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
    let mut rng = seeded_rng(7);
    let mismatch_error = {
        let tape = Tape::<f64>::new();
        let cx = Ctx::eval(&tape);
        // cell: mismatch
        let x = cx.input(Tensor::ones(&[4, 16]));
        let widen = Linear::<f64>::with_init(16, 32, true, Init::he(), &mut rng);
        let sum = widen.forward(&cx, &x).try_add(&x); // F(x) is [4, 32], x is [4, 16]
        // end cell
        sum.err()
            .map_or_else(|| "no error".to_string(), |e| e.to_string())
    };
    // cell: projection
    let block = ProjectionBlock::<f64>::new(16, 32, Init::he(), &mut rng); // H = ReLU(F(x) + P·x)
    let (x, y) = (
        Tensor::uniform(&[8, 16], -1.0, 1.0, &mut rng),
        Tensor::uniform(&[8, 32], -1.0, 1.0, &mut rng),
    );
    let report = crosscheck_layers(&[&block], &x, &y)
        .unwrap_or_else(|e| panic!("cross-check of the projection block: {e}"));
    // end cell
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
    let image = Tensor::uniform(&[2, 8, 16, 16], -1.0, 1.0, &mut rng);
    let (conv_block, conv_shares) = {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        // cell: conv_block
        // ResNet's basic block, 8 → 16 channels at stride 2: the shortcut is a 1×1 convolution
        let conv = BasicConvBlock::<f64>::new(8, 16, 2, &mut rng);
        let xv = cx.tracked_input(image.clone());
        let out = conv.forward(&cx, &xv);
        tape.track_contributions(&xv);
        let grads = (&out * &out).mean().backward();
        // end cell
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

    // Pruning trained residual MLPs.
    let data = two_spirals::<f64>(config.points_per_class, 0.0, 0);
    let recipe = MlpConfig::residual(2, config.width, 2, config.depth)
        .activation(Activation::Relu)
        .init(Init::he())
        .branch_scale(Some(1.0 / (config.depth as f64).sqrt()));
    let mut pruned = Vec::new();
    let mut unpruned = Vec::new();
    let mut lone = String::new();
    let mut parameters = 0;
    for &seed in &config.seeds {
        let net = recipe.build::<f64>(&mut seeded_rng(seed));
        let label = format!("residual {} × {}, seed {seed}", config.depth, config.width);
        let run = train(
            &net,
            &data,
            config.optimizer,
            config.steps,
            seed,
            progress,
            &label,
        );
        // cell: prune
        for cut in [Cut::Hourglass, Cut::Stream] {
            for &keep in &config.kept {
                let small = match cut {
                    Cut::Hourglass => prune_hourglass(&net, keep),
                    Cut::Stream => prune_stream(&net, keep),
                };
                let before = evaluate(&small, &data);
                let tuned = train(
                    &small,
                    &data,
                    config.optimizer,
                    config.fine_tune,
                    seed,
                    progress,
                    "fine-tuning",
                )
                .last;
                pruned.push(Pruned {
                    seed,
                    cut,
                    kept: keep,
                    parameters: small.num_parameters(),
                    pruned: before,
                    tuned,
                });
            }
        }
        // end cell
        unpruned.push(run.last);
        lone = lone_cut_error(&net, &data);
        parameters = net.num_parameters();
    }
    ShapesChapter {
        config: config.clone(),
        mismatch_error,
        linear_projection,
        linear_projection_max_rel: report.max_rel(),
        conv_block,
        conv_shares,
        lone_cut_error: lone,
        unpruned,
        unpruned_parameters: parameters,
        pruned,
    }
}

impl ShapesChapter {
    /// The pruned networks of one cut, widest first.
    pub fn cut(&self, cut: Cut) -> Vec<&Pruned> {
        self.pruned.iter().filter(|p| p.cut == cut).collect()
    }

    /// Median, lowest and highest accuracy over the seeds of one cut and width, right after
    /// the cut (`tuned = false`) or after fine-tuning.
    pub fn accuracy(&self, cut: Cut, kept: usize, tuned: bool) -> SeedRange {
        SeedRange::of(
            self.cut(cut)
                .iter()
                .filter(|p| p.kept == kept)
                .map(|p| {
                    if tuned {
                        p.tuned.accuracy
                    } else {
                        p.pruned.accuracy
                    }
                })
                .collect(),
        )
    }

    /// The parameters of the networks of one cut and width.
    pub fn parameters(&self, cut: Cut, kept: usize) -> usize {
        self.cut(cut)
            .iter()
            .find(|p| p.kept == kept)
            .map_or(0, |p| p.parameters)
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's block with a projection shortcut when the width changes, \
             ReLU(F(x) + P·x); ResNet's basic convolutional block for images; and for pruning \
             the ReLU(F(h)/√L + h) block of chapters 5 and 6, whose stream every block shares.",
        );
        page.prose(
            "H(x) = F(x) + x adds two tensors, so they must have one shape. A branch that \
             widens its input from 16 to 32 features cannot be added to that input:",
        );
        page.cell("mismatch");
        page.prose("The tape refuses, naming the op, both shapes and the line:");
        page.output(self.mismatch_error.clone());
        let (i, o, branch, projection) = self.linear_projection;
        page.prose(format!(
            "The notebook's fix is a learnable shortcut: H(x) = ReLU(F(x) + P·x), P a \
             bias-free Linear {i} → {o} (nn::ProjectionBlock), checked against its hand-written \
             backward, dR + Pᵀ·d (nn::manual):",
        ));
        page.cell("projection");
        page.prose(format!(
            "The branch has {branch} parameters and the projection {projection} more ({:.0} % \
             of the block); tape and hand-written gradients agree to a relative {}.",
            100.0 * projection as f64 / (branch + projection) as f64,
            sig(self.linear_projection_max_rel, 2),
        ));
        let (inp, out, branch, projection) = &self.conv_block;
        page.prose(
            "For images the projection is a 1×1 convolution, with a stride when the resolution \
             halves (nn::BasicConvBlock: two 3×3 convolutions with batch norm, and \
             nn::ConvProjection on the shortcut):",
        );
        page.cell("conv_block");
        page.prose(format!(
            "It maps {inp:?} to {out:?}. The 1×1 convolution and its batch norm have \
             {projection} parameters, the branch {branch}. Two convolutions read x, and the \
             tape sums their contributions: ‖·‖ = {} through the branch, {} through the \
             projection shortcut.",
            sig(self.conv_shares.0, 3),
            sig(self.conv_shares.1, 3),
        ));
        page.heading("Pruning");
        let acc = SeedRange::of(self.unpruned.iter().map(|e| e.accuracy).collect());
        page.prose(format!(
            "The same constraint binds pruning. Train a residual MLP of {} blocks on a stream \
             of width {} ({} parameters; training accuracy {} over {} seeds, median and range), \
             then try to narrow one block's output on its own — half its output units — and \
             the add fails:",
            c.depth,
            c.width,
            self.unpruned_parameters,
            acc.percent(),
            c.seeds.len()
        ));
        page.output(self.lone_cut_error.clone());
        page.prose(format!(
            "Two cuts remain. Prune inside the blocks only — the hidden units between each \
             block's two layers — and the blocks become hourglasses, {w} → k → {w}:",
            w = c.width,
        ));
        page.cell("hourglass");
        page.prose(format!(
            "Or prune the stream itself: the same channels in the input layer, in every block \
             and in the output layer at once. Every trained network is cut both ways at every \
             width, then fine-tuned for {} steps:",
            c.fine_tune
        ));
        page.cell("prune");
        let mut t = Table::new([
            "cut",
            "width kept",
            "parameters",
            "accuracy after the cut",
            "after fine-tuning",
        ]);
        for cut in [Cut::Hourglass, Cut::Stream] {
            for &kept in &c.kept {
                t.row([
                    match cut {
                        Cut::Hourglass => "hourglass".to_string(),
                        Cut::Stream => "stream".to_string(),
                    },
                    kept.to_string(),
                    self.parameters(cut, kept).to_string(),
                    self.accuracy(cut, kept, false).percent(),
                    self.accuracy(cut, kept, true).percent(),
                ]);
            }
        }
        page.prose(format!(
            "Training accuracy, median over the {} seeds (lowest–highest):",
            c.seeds.len()
        ));
        page.table(t);
        let narrowest = c.kept.iter().copied().min().unwrap_or(1);
        // The narrowest waist at which every seed's fine-tuned hourglass network stays within
        // one point of its own unpruned accuracy.
        let harmless = |kept: usize| {
            c.seeds.iter().zip(&self.unpruned).all(|(&seed, full)| {
                self.cut(Cut::Hourglass)
                    .iter()
                    .find(|p| p.kept == kept && p.seed == seed)
                    .is_some_and(|p| p.tuned.accuracy >= full.accuracy - 0.01)
            })
        };
        let harmless_waist = c.kept.iter().copied().filter(|&k| harmless(k)).min();
        let h = self.accuracy(Cut::Hourglass, narrowest, true);
        let s_n = self.accuracy(Cut::Stream, narrowest, true);
        let h_cut = self.accuracy(Cut::Hourglass, c.width / 2, false);
        let h_min = self.parameters(Cut::Hourglass, narrowest);
        let rival = c
            .kept
            .iter()
            .copied()
            .filter(|&k| self.parameters(Cut::Stream, k) >= h_min)
            .min_by_key(|&k| self.parameters(Cut::Stream, k));
        page.prose(format!(
            "Right after the cut, keeping {} of {} hidden units, the hourglass networks are at \
             a median {:.1} %{}. The \
             notebook warns that hourglass blocks, with their narrow waist, \"may hurt \
             performance\"; here they do not: {} With a waist of {narrowest} the fine-tuned \
             hourglass networks reach {}. The stream and its skips carry the function past \
             every waist. Hourglass pruning stops at {} parameters — the stream's layers stay \
             whole; narrowing the stream goes further ({} parameters at width {narrowest}, {} \
             after fine-tuning), and it is one decision for every block at once: the rigidity \
             the notebook describes.{}",
            c.width / 2,
            c.width,
            100.0 * h_cut.median,
            if h_cut.median < 0.9 {
                " — weight magnitude is a poor guide to what a smaller network needs — and \
                 fine-tuning recovers them"
            } else {
                ""
            },
            match harmless_waist {
                Some(k) => format!(
                    "at every seed, hourglass blocks with a waist as narrow as {k} of {} units \
                     end within one point of the unpruned network's accuracy.",
                    c.width
                ),
                None => "at no waist do all seeds stay within one point of the unpruned network."
                    .to_string(),
            },
            h.percent(),
            self.parameters(Cut::Hourglass, narrowest),
            self.parameters(Cut::Stream, narrowest),
            s_n.percent(),
            match rival {
                Some(k) => format!(
                    " At a similar budget the hourglass cut {}: {h_min} parameters with a \
                     waist of {narrowest} reach {}, the stream cut to width {k} ({} parameters) \
                     reaches {}.",
                    if h.median > self.accuracy(Cut::Stream, k, true).median {
                        "wins"
                    } else {
                        "does not win"
                    },
                    h.percent(),
                    self.parameters(Cut::Stream, k),
                    self.accuracy(Cut::Stream, k, true).percent()
                ),
                None => String::new(),
            },
        ));
        page.figure(self.figure());
        page.claim(
            "When shapes differ, a learnable projection (a Linear or a 1×1 convolution) \
             aligns the shortcut",
            format!(
                "projection block: tape vs hand-written backward, relative {}; conv block {:?} → \
                 {:?}, gradient through both paths",
                sig(self.linear_projection_max_rel, 2),
                inp,
                out
            ),
            if self.linear_projection_max_rel < 1e-10
                && self.conv_shares.0 > 0.0
                && self.conv_shares.1 > 0.0
            {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "Pruning one block's output breaks the identity shortcut; pruning decisions cannot \
             be made per layer",
            "narrowing one block's output: the add is refused (shape error)".to_string(),
            if self.lone_cut_error.contains("add") {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "Pruning only the hidden layers gives hourglass blocks whose narrow waist may hurt \
             performance",
            format!(
                "after fine-tuning, waist {narrowest} of {}: {} training accuracy over {} seeds \
                 (unpruned {})",
                c.width,
                h.percent(),
                c.seeds.len(),
                acc.percent()
            ),
            match harmless_waist {
                Some(k) if k <= c.width / 4 => Verdict::Refuted,
                Some(_) => Verdict::Depends,
                None => Verdict::Confirmed,
            },
        );
        page.takeaways([
            "A skip needs F(x) and x of one shape; when the width or the resolution changes, a \
             Linear or a 1×1 convolution on the shortcut makes the sum valid."
                .to_string(),
            "A block's output cannot be pruned alone: every block adds into the same stream, \
             so the stream is pruned everywhere at once or not at all."
                .to_string(),
            match harmless_waist {
                Some(k) => format!(
                    "Hourglass blocks did not hurt here: after fine-tuning, waists down to {k} \
                     of {} units kept every seed within a point of the unpruned accuracy.",
                    c.width
                ),
                None => "Hourglass blocks cost accuracy here at every waist tried.".to_string(),
            },
        ]);
        page
    }

    /// Accuracy against parameters for both cuts, before and after fine-tuning (medians
    /// over the seeds, bars from the lowest to the highest).
    pub fn figure(&self) -> Figure {
        let series = |cut: Cut, tuned: bool, label: &str, color: usize, style: Style| {
            let kept = &self.config.kept;
            let points = kept
                .iter()
                .map(|&k| {
                    (
                        self.parameters(cut, k) as f64,
                        100.0 * self.accuracy(cut, k, tuned).median,
                    )
                })
                .collect();
            let bars = kept.iter().map(|&k| {
                let r = self.accuracy(cut, k, tuned);
                (100.0 * r.low, 100.0 * r.high)
            });
            Series::line(label, points, color)
                .styled(style)
                .with_errors(bars.collect())
        };
        let panel = Panel::new(
            "pruning a trained residual MLP",
            "parameters left",
            "training accuracy (%)",
        )
        .log_x()
        .with(series(
            Cut::Hourglass,
            false,
            "hourglass, right after the cut",
            0,
            Style::DashedPoints,
        ))
        .with(series(
            Cut::Hourglass,
            true,
            "hourglass, fine-tuned",
            0,
            Style::LinePoints,
        ))
        .with(series(
            Cut::Stream,
            false,
            "stream, right after the cut",
            1,
            Style::DashedPoints,
        ))
        .with(series(
            Cut::Stream,
            true,
            "stream, fine-tuned",
            1,
            Style::LinePoints,
        ));
        Figure::single(
            "07_pruning",
            "Pruning inside the blocks (hourglass) against pruning the residual stream: training \
             accuracy against parameters left (log scale; median over seeds, bars from the lowest \
             to the highest)",
            panel,
        )
    }
}
