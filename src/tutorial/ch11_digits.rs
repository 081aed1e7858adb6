//! Chapter 11 — Real images: handwritten digits.
//!
//! The UCI handwritten digits (1,797 images of 8×8 pixels, ten classes): a small plain
//! convolutional network and a small residual one — ResNet's basic block, batch norm, a
//! projection shortcut where the resolution halves — at three depths, three seeds each,
//! on a fixed train/test split; then blocks of the trained networks deleted one at a time.

use super::data::{digits, subset};
use super::page::{Page, Table, Verdict};
use super::plot::{Figure, Legend, Panel, Series, Style};
use super::seeds::{SeedRange, median};
use super::training::{Evaluation, evaluate};
use super::{Chapter, Progress};
use autograd::rand::seq::SliceRandom;
use autograd::{Tape, Var, seeded_rng};
use nn::data::Dataset;
use nn::loss::cross_entropy;
use nn::{
    Activation, Adam, BasicConvBlock, BatchNorm2d, Conv2d, Ctx, Linear, Module, Optimizer, Param,
    ResidualUnit, Sequential,
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 11,
    slug: "11_digits",
    title: "Real images: handwritten digits",
    source: source!("ch11_digits.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Channels of the first stage (the second has twice as many).
    pub channels: usize,
    /// Blocks per stage, one network per entry.
    pub depths: Vec<usize>,
    /// Images held out for testing (the rest train).
    pub test_images: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seeds of the weights and of the batch order.
    pub seeds: Vec<u64>,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            channels: 8,
            depths: vec![1, 3],
            test_images: 500,
            epochs: 5,
            batch: 64,
            lr: 0.005,
            seeds: vec![0, 1, 2],
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            channels: 4,
            depths: vec![1],
            epochs: 3,
            seeds: vec![0],
            ..Self::full()
        }
    }
}

/// Plain or residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// conv → BN → ReLU → conv → BN → ReLU per block.
    Plain,
    /// ResNet's basic block: the same, plus the shortcut before the last ReLU.
    Residual,
}

impl Kind {
    /// Both kinds.
    pub const ALL: [Kind; 2] = [Kind::Plain, Kind::Residual];

    /// "plain" or "residual".
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Residual => "residual",
        }
    }
}

/// One block of a network.
pub enum Block {
    /// Two convolutions with batch norm, no shortcut.
    Plain(Sequential<f32>),
    /// ResNet's basic block (identity shortcut, or a 1×1 convolution and batch norm where the
    /// shape changes).
    Residual(Box<BasicConvBlock<f32>>),
}

/// A block `cin → cout` whose first convolution has `stride`.
pub fn block(
    kind: Kind,
    cin: usize,
    cout: usize,
    stride: usize,
    rng: &mut impl autograd::rand::Rng,
) -> Block {
    // cell: blocks
    match kind {
        Kind::Residual => Block::Residual(Box::new(BasicConvBlock::new(cin, cout, stride, rng))),
        Kind::Plain => Block::Plain(
            Sequential::new()
                .push(Conv2d::conv3x3(cin, cout, stride, rng))
                .push(BatchNorm2d::new(cout))
                .push(Activation::Relu)
                .push(Conv2d::conv3x3(cout, cout, 1, rng))
                .push(BatchNorm2d::new(cout))
                .push(Activation::Relu),
        ),
    }
    // end cell
}

/// A small convolutional network for `[N, 1, 8, 8]` images: a 3×3 stem, `n` blocks at 8×8
/// with `c` channels, `n` blocks at 4×4 with `2c` (the first of them halves the resolution),
/// global average pooling and a linear classifier.
pub struct ConvNet {
    /// conv3×3(1 → c) → BN → ReLU.
    pub stem: Sequential<f32>,
    /// The blocks, first applied first.
    pub blocks: Vec<Block>,
    /// `2c → 10`.
    pub head: Linear<f32>,
}

impl ConvNet {
    /// A network of `kind` with `n` blocks per stage and `c` channels in the first stage.
    pub fn new(kind: Kind, n: usize, c: usize, seed: u64) -> Self {
        let rng = &mut seeded_rng(seed);
        // cell: network
        let stem = Sequential::new()
            .push(Conv2d::conv3x3(1, c, 1, rng))
            .push(BatchNorm2d::new(c))
            .push(Activation::Relu);
        let mut blocks: Vec<Block> = (0..n).map(|_| block(kind, c, c, 1, rng)).collect(); // 8×8, c channels
        blocks.push(block(kind, c, 2 * c, 2, rng)); // to 4×4, 2c channels: the shortcut projects
        blocks.extend((1..n).map(|_| block(kind, 2 * c, 2 * c, 1, rng)));
        let head = Linear::new(2 * c, 10, true, rng); // after global average pooling
        // end cell
        ConvNet { stem, blocks, head }
    }

    /// The logits, with the blocks in `deleted` deleted: a residual block keeps its
    /// shortcut (ReLU(S(x))), a plain block whose input and output shapes agree becomes the
    /// identity.
    pub fn forward_with_lesions<'t>(
        &self,
        cx: &Ctx<'t, f32>,
        x: &Var<'t, f32>,
        deleted: &[usize],
    ) -> Var<'t, f32> {
        let mut h = self.stem.forward(cx, x);
        for (i, b) in self.blocks.iter().enumerate() {
            h = match (b, deleted.contains(&i)) {
                (Block::Residual(r), true) => r.forward_without_branch(cx, &h),
                (Block::Residual(r), false) => r.forward(cx, &h),
                (Block::Plain(_), true) => h,
                (Block::Plain(p), false) => p.forward(cx, &h),
            };
        }
        self.head.forward(cx, &h.global_avg_pool2d())
    }

    /// Whether deleting block `i` keeps the shapes valid (always for a residual block).
    pub fn deletable(&self, i: usize) -> bool {
        match &self.blocks[i] {
            Block::Residual(_) => true,
            Block::Plain(_) => i != self.downsampling_block(),
        }
    }

    /// The index of the block that halves the resolution.
    pub fn downsampling_block(&self) -> usize {
        self.blocks.len() / 2
    }

    /// Convolution layers (the stem's, two per block, and the 1×1 projection).
    pub fn conv_layers(&self) -> usize {
        1 + self
            .blocks
            .iter()
            .map(|b| match b {
                Block::Plain(_) => 2,
                Block::Residual(r) => 2 + usize::from(r.projection.is_some()),
            })
            .sum::<usize>()
    }
}

impl Module<f32> for ConvNet {
    fn forward<'t>(&self, cx: &Ctx<'t, f32>, x: &Var<'t, f32>) -> Var<'t, f32> {
        self.forward_with_lesions(cx, x, &[])
    }

    fn named_parameters(&self) -> Vec<(String, Param<f32>)> {
        let mut v = nn::prefixed("stem", self.stem.named_parameters());
        for (i, b) in self.blocks.iter().enumerate() {
            let params = match b {
                Block::Plain(p) => p.named_parameters(),
                Block::Residual(r) => r.named_parameters(),
            };
            v.extend(nn::prefixed(&format!("blocks.{i}"), params));
        }
        v.extend(nn::prefixed("head", self.head.named_parameters()));
        v
    }

    fn named_buffers(&self) -> Vec<(String, nn::Buffer<f32>)> {
        let mut v = nn::prefixed("stem", self.stem.named_buffers());
        for (i, b) in self.blocks.iter().enumerate() {
            let buffers = match b {
                Block::Plain(p) => p.named_buffers(),
                Block::Residual(r) => r.named_buffers(),
            };
            v.extend(nn::prefixed(&format!("blocks.{i}"), buffers));
        }
        v
    }
}

/// Trains `net` on `train` with Adam in minibatches; returns the mean training-mode loss
/// of each epoch.
pub fn train_epochs(
    net: &ConvNet,
    train: &Dataset<f32>,
    config: &Config,
    seed: u64,
    progress: &Progress,
    label: &str,
) -> Vec<f64> {
    let mut adam = Adam::new(net.parameters(), config.lr);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = seeded_rng(seed + 1000);
    let mut epoch_losses = Vec::new();
    let mut step = 0u64;
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        let mut losses = Vec::new();
        // cell: epoch
        for rows in order.chunks(config.batch) {
            let batch = subset(train, rows);
            let (loss, grads) = nn::value_and_grad(step, |cx| {
                cross_entropy(&net.forward(cx, &cx.input(batch.x.clone())), &batch.labels)
            });
            adam.step(&grads);
            losses.push(loss as f64);
            step += 1;
        }
        // end cell
        let mean = losses.iter().sum::<f64>() / losses.len().max(1) as f64;
        progress.tick(|| {
            format!(
                "{label}: epoch {}/{}, loss {mean:.3}",
                epoch + 1,
                config.epochs
            )
        });
        epoch_losses.push(mean);
    }
    epoch_losses
}

/// One trained network.
#[derive(Clone, Debug)]
pub struct DigitsRun {
    /// Plain or residual.
    pub kind: Kind,
    /// Blocks per stage.
    pub depth: usize,
    /// The seed.
    pub seed: u64,
    /// Learnable scalars.
    pub parameters: usize,
    /// Convolution layers.
    pub conv_layers: usize,
    /// Mean training loss per epoch (training mode).
    pub epoch_losses: Vec<f64>,
    /// On the training images, evaluation mode.
    pub train: Evaluation,
    /// On the test images, evaluation mode.
    pub test: Evaluation,
    /// Test accuracy with each block deleted alone (`None` where a plain block cannot be
    /// deleted: it changes the shape).
    pub lesions: Vec<Option<f64>>,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct DigitsChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// Training and test images.
    pub sizes: (usize, usize),
    /// Every run.
    pub runs: Vec<DigitsRun>,
}

/// The fixed split: a seeded permutation of the 1,797 images, the last `test_images` held out.
pub fn split(config: &Config) -> (Dataset<f32>, Dataset<f32>) {
    let all = digits();
    // cell: split
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut seeded_rng(1797)); // one fixed permutation for every run
    let (train_rows, test_rows) = order.split_at(all.len() - config.test_images);
    // end cell
    (subset(&all, train_rows), subset(&all, test_rows))
}

/// Test accuracy of `net` with block `i` deleted.
fn lesioned_accuracy(net: &ConvNet, test: &Dataset<f32>, i: usize) -> f64 {
    // cell: lesion
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let logits = tape.no_grad(|| net.forward_with_lesions(&cx, &cx.input(test.x.clone()), &[i]));
    nn::loss::accuracy(logits.value(), &test.labels)
    // end cell
}

/// Trains every network.
pub fn run(config: &Config, progress: &Progress) -> DigitsChapter {
    let (train, test) = split(config);
    let mut runs = Vec::new();
    for &depth in &config.depths {
        for kind in Kind::ALL {
            for &seed in &config.seeds {
                let label = format!(
                    "{} conv net, {depth} blocks per stage, seed {seed}",
                    kind.name()
                );
                let net = ConvNet::new(kind, depth, config.channels, seed);
                let epoch_losses = train_epochs(&net, &train, config, seed, progress, &label);
                let lesions = (0..net.blocks.len())
                    .map(|i| net.deletable(i).then(|| lesioned_accuracy(&net, &test, i)))
                    .collect();
                runs.push(DigitsRun {
                    kind,
                    depth,
                    seed,
                    parameters: net.num_parameters(),
                    conv_layers: net.conv_layers(),
                    epoch_losses,
                    train: evaluate(&net, &train),
                    test: evaluate(&net, &test),
                    lesions,
                });
            }
        }
    }
    DigitsChapter {
        config: config.clone(),
        sizes: (train.len(), test.len()),
        runs,
    }
}

/// "1 block" or "3 blocks".
fn per_stage(n: usize) -> String {
    if n == 1 {
        "1 block".to_string()
    } else {
        format!("{n} blocks")
    }
}

impl DigitsChapter {
    /// The runs of one kind and depth, one per seed.
    pub fn of(&self, kind: Kind, depth: usize) -> Vec<&DigitsRun> {
        self.runs
            .iter()
            .filter(|r| r.kind == kind && r.depth == depth)
            .collect()
    }

    /// Median, lowest and highest test accuracy of one kind and depth.
    pub fn test_accuracy(&self, kind: Kind, depth: usize) -> SeedRange {
        SeedRange::of(
            self.of(kind, depth)
                .iter()
                .map(|r| r.test.accuracy)
                .collect(),
        )
    }

    /// Median, lowest and highest training accuracy of one kind and depth.
    pub fn train_accuracy(&self, kind: Kind, depth: usize) -> SeedRange {
        SeedRange::of(
            self.of(kind, depth)
                .iter()
                .map(|r| r.train.accuracy)
                .collect(),
        )
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "ResNet's basic block for images — conv3×3 → BN → ReLU → conv3×3 → BN, plus the \
             shortcut, then ReLU — with a 1×1 convolution and batch norm on the shortcut where \
             the resolution halves: the block He et al. used, on real data.",
        );
        page.prose(format!(
            "Every chapter so far used made-up data. This one uses the UCI handwritten digits \
             (Alpaydin & Kaynak, 1998; CC BY 4.0; the file scikit-learn ships, committed under \
             data/digits/): 1,797 grey images of 8×8 pixels, each pixel the count (0–16) of \
             ink in a 4×4 patch of a 32×32 scan, labelled 0 to 9. One fixed split: {} images \
             to train on, {} held out.",
            self.sizes.0, self.sizes.1
        ));
        page.cell("split");
        page.prose(
            "Two kinds of block with the same convolutions and batch norms; the residual one \
             adds its input back before the last ReLU:",
        );
        page.cell("blocks");
        page.prose(format!(
            "A network stacks them in two stages — {} channels at 8×8, then {} at 4×4 — and \
             classifies the channels' averages. The block between the stages halves the \
             resolution and doubles the channels, so its shortcut is a strided 1×1 convolution \
             (nn::ConvProjection):",
            c.channels,
            2 * c.channels
        ));
        page.cell("network");
        page.prose(format!(
            "Training: {} epochs of Adam (lr {}) over minibatches of {} images, {} seeds per \
             network; accuracies in evaluation mode (batch norm's running statistics):",
            c.epochs,
            c.lr,
            c.batch,
            c.seeds.len()
        ));
        page.cell("epoch");
        let mut t = Table::new([
            "network",
            "blocks per stage",
            "conv layers",
            "parameters",
            "train accuracy",
            "test accuracy",
        ]);
        for &depth in &c.depths {
            for kind in Kind::ALL {
                let first = self.of(kind, depth).into_iter().next();
                t.row([
                    kind.name().to_string(),
                    depth.to_string(),
                    first.map_or(0, |r| r.conv_layers).to_string(),
                    first.map_or(0, |r| r.parameters).to_string(),
                    self.train_accuracy(kind, depth).percent(),
                    self.test_accuracy(kind, depth).percent(),
                ]);
            }
        }
        page.prose("Median over the seeds (lowest–highest):");
        page.table(t);
        let deepest = c.depths.iter().copied().max().unwrap_or(1);
        let shallowest = c.depths.iter().copied().min().unwrap_or(1);
        let (pd, rd) = (
            self.test_accuracy(Kind::Plain, deepest),
            self.test_accuracy(Kind::Residual, deepest),
        );
        let (ps, rs) = (
            self.test_accuracy(Kind::Plain, shallowest),
            self.test_accuracy(Kind::Residual, shallowest),
        );
        let residual_ahead = c
            .depths
            .iter()
            .filter(|&&d| {
                self.test_accuracy(Kind::Residual, d).median
                    > self.test_accuracy(Kind::Plain, d).median
            })
            .count();
        page.prose(format!(
            "Chance is 10 %. With {} per stage the plain network reaches a \
             median test accuracy of {:.1} % and the residual one {:.1} %; with {deepest}, \
             {:.1} % and {:.1} %. The residual network is ahead at {residual_ahead} of {} \
             depths. {}",
            per_stage(shallowest),
            100.0 * ps.median,
            100.0 * rs.median,
            100.0 * pd.median,
            100.0 * rd.median,
            c.depths.len(),
            if pd.median < ps.median && rd.median >= rs.median {
                "Going deeper costs the plain network accuracy and not the residual one: \
                 chapter 5's degradation, on real images, in a short training budget."
            } else if rd.median > pd.median {
                "The gap is widest at the deepest setting."
            } else {
                "At these depths the shortcut does not decide the accuracy."
            }
        ));
        page.figure(self.figure());
        page.heading("Deleting a block");
        page.prose(
            "As in chapter 6: delete one block of a trained network and measure the test \
             accuracy. A residual block keeps its shortcut; a plain block becomes the identity \
             (impossible for the block that changes the shape):",
        );
        page.cell("lesion");
        let mut t = Table::new(
            std::iter::once("network".to_string())
                .chain((0..2 * deepest).map(|i| format!("block {} deleted", i + 1)))
                .chain(["intact".to_string()]),
        );
        for kind in Kind::ALL {
            let runs = self.of(kind, deepest);
            let mut row = vec![format!("{}, {deepest} per stage", kind.name())];
            for i in 0..2 * deepest {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.lesions.get(i).copied().flatten())
                    .collect();
                row.push(if values.is_empty() {
                    "—".to_string()
                } else {
                    format!("{:.1} %", 100.0 * median(values))
                });
            }
            row.push(format!(
                "{:.1} %",
                100.0 * self.test_accuracy(kind, deepest).median
            ));
            t.row(row);
        }
        page.prose("Median test accuracy over the seeds:");
        page.table(t);
        let lesion_values = |kind: Kind| -> Vec<f64> {
            self.of(kind, deepest)
                .iter()
                .flat_map(|r| r.lesions.iter().flatten().copied())
                .collect()
        };
        let (res_l, plain_l) = (lesion_values(Kind::Residual), lesion_values(Kind::Plain));
        page.prose(format!(
            "Over all single deletions and seeds, the residual network keeps a median test \
             accuracy of {:.1} % (worst {:.1} %), the plain network {:.1} % (worst {:.1} %).",
            100.0 * median(res_l.clone()),
            100.0 * res_l.iter().copied().fold(f64::INFINITY, f64::min),
            100.0 * median(plain_l.clone()),
            100.0 * plain_l.iter().copied().fold(f64::INFINITY, f64::min),
        ));
        page.claim(
            "Residual connections make deeper networks easier to train, on real images",
            format!(
                "digits, test accuracy (median of {} seeds): plain {:.1} → {:.1} %, residual \
                 {:.1} → {:.1} % from {shallowest} to {deepest} blocks per stage",
                c.seeds.len(),
                100.0 * ps.median,
                100.0 * pd.median,
                100.0 * rs.median,
                100.0 * rd.median
            ),
            if rd.median > pd.median && rd.median >= rs.median - 0.01 {
                Verdict::Confirmed
            } else if rd.median > pd.median {
                Verdict::Depends
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            format!(
                "On the digits, the residual conv net reaches a median {:.1} % test accuracy at \
                 {} per stage, the plain one {:.1} % (chance: 10 %).",
                100.0 * rd.median,
                per_stage(deepest),
                100.0 * pd.median
            ),
            "Where the resolution halves, a strided 1×1 convolution on the shortcut keeps the \
             sum valid; everything else is the notebook's F(x) + x."
                .to_string(),
            format!(
                "Deleting one block of the trained residual net leaves a median {:.1} % test \
                 accuracy; deleting one from the plain net, {:.1} %.",
                100.0 * median(res_l),
                100.0 * median(plain_l)
            ),
        ]);
        page
    }

    /// Test accuracy against depth, and the training loss per epoch of the deepest networks.
    pub fn figure(&self) -> Figure {
        let c = &self.config;
        let mut accuracy = Panel::new("test accuracy", "blocks per stage", "test accuracy (%)")
            .legend(Legend::Hidden);
        let mut curves =
            Panel::new("training loss, deepest networks", "epoch", "cross-entropy").log_y();
        let deepest = c.depths.iter().copied().max().unwrap_or(1);
        for (kind, color) in [(Kind::Plain, 3), (Kind::Residual, 0)] {
            let points = c
                .depths
                .iter()
                .map(|&d| (d as f64, 100.0 * self.test_accuracy(kind, d).median))
                .collect();
            let bars = c.depths.iter().map(|&d| {
                let r = self.test_accuracy(kind, d);
                (100.0 * r.low, 100.0 * r.high)
            });
            accuracy = accuracy.with(
                Series::line(kind.name(), points, color)
                    .styled(Style::LinePoints)
                    .with_errors(bars.collect()),
            );
            for (k, r) in self.of(kind, deepest).iter().enumerate() {
                let label = if k == 0 {
                    kind.name().to_string()
                } else {
                    String::new()
                };
                let points = r
                    .epoch_losses
                    .iter()
                    .enumerate()
                    .map(|(e, &l)| ((e + 1) as f64, l))
                    .collect();
                curves = curves.with(Series::line(label, points, color));
            }
        }
        Figure::grid(
            "11_digits",
            "Handwritten digits: test accuracy of the plain and residual conv nets by depth (median \
             over seeds, bars from the lowest to the highest), and the training loss per epoch of \
             the deepest networks (every seed)",
            2,
            vec![accuracy, curves],
        )
    }
}
