//! Chapter 9 — Variants.
//!
//! Pre-activation blocks, batch norm inside blocks, and stochastic depth as a regulariser:
//! on a small noisy training set a deep residual network overfits; dropping whole blocks
//! at random while training narrows the gap between training and test loss.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::training::{Evaluation, OptimizerKind, TrainingRun, evaluate, train_observed};
use super::{Chapter, Progress};
use autograd::seeded_rng;
use nn::builder::Branch;
use nn::data::{Dataset, two_spirals};
use nn::{
    Activation, Init, Linear, Module, Normalization, PreActBlock, Residual, ResidualUnit,
    Sequential, StochasticDepth,
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 9,
    slug: "09_variants",
    title: "Variants",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of residual blocks.
    pub depth: usize,
    /// Width of every block.
    pub width: usize,
    /// Training points per class (few, so that the network can memorise them).
    pub train_per_class: usize,
    /// Test points per class, from the same distribution.
    pub test_per_class: usize,
    /// Standard deviation of the noise added to the spirals.
    pub noise: f64,
    /// Full-batch steps.
    pub steps: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Drop probability of the last block under stochastic depth (block l of L drops with
    /// probability l/L times this: Huang et al.'s linear decay).
    pub max_drop: f64,
    /// Seed of the weights and of the training noise.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            depth: 16,
            width: 32,
            train_per_class: 40,
            test_per_class: 500,
            noise: 0.08,
            steps: 800,
            optimizer: OptimizerKind::Adam { lr: 0.005 },
            max_drop: 0.5,
            seed: 0,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            depth: 8,
            width: 16,
            test_per_class: 200,
            steps: 300,
            ..Self::full()
        }
    }
}

/// The residual block designs compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// The notebook's post-activation block σ(s·F(h) + h), s = 1/√L.
    PostActivation,
    /// The post-activation block with batch norm after each branch layer (s = 1).
    PostActivationBatchNorm,
    /// He et al. 2016's pre-activation block h + F(h), F = BN → ReLU → Linear → BN → ReLU →
    /// Linear, nothing after the sum.
    PreActivation,
}

impl Design {
    /// Every design.
    pub const ALL: [Design; 3] = [
        Design::PostActivation,
        Design::PostActivationBatchNorm,
        Design::PreActivation,
    ];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Design::PostActivation => "post-activation, s = 1/√L",
            Design::PostActivationBatchNorm => "post-activation + batch norm",
            Design::PreActivation => "pre-activation (BN → ReLU → Linear)",
        }
    }
}

/// Builds a residual network of `design`: input layer, `depth` blocks (each wrapped in
/// stochastic depth with drop probability `(l+1)/depth · max_drop` when `max_drop > 0`),
/// output layer; He initialisation throughout.
pub fn build(design: Design, config: &Config, max_drop: f64) -> Sequential<f32> {
    let (w, depth) = (config.width, config.depth);
    let rng = &mut seeded_rng(config.seed);
    let mut net = Sequential::new().push(Linear::<f32>::with_init(2, w, true, Init::he(), rng));
    for l in 0..depth {
        let drop = max_drop * (l + 1) as f64 / depth as f64;
        net = match design {
            Design::PreActivation => {
                let block = PreActBlock::<f32>::new(w, Normalization::Batch, Init::he(), rng);
                with_stochastic_depth(net, block, drop)
            }
            Design::PostActivation | Design::PostActivationBatchNorm => {
                let norm = match design {
                    Design::PostActivationBatchNorm => Normalization::Batch,
                    _ => Normalization::None,
                };
                let branch = Branch {
                    linear1: Linear::with_init(w, w, true, Init::he(), rng),
                    norm1: norm.layer(w),
                    activation: Activation::Relu,
                    linear2: Linear::with_init(w, w, true, Init::he(), rng),
                    norm2: norm.layer(w),
                };
                let block = Residual::new(branch).with_activation(Activation::Relu);
                let block = match design {
                    Design::PostActivation => block.with_scale(1.0 / (depth as f64).sqrt()),
                    _ => block,
                };
                with_stochastic_depth(net, block, drop)
            }
        };
    }
    net.push(Linear::<f32>::with_init(w, 2, true, Init::he(), rng))
}

/// Appends `block`, wrapped in stochastic depth when `drop > 0`.
fn with_stochastic_depth<U: ResidualUnit<f32> + 'static>(
    net: Sequential<f32>,
    block: U,
    drop: f64,
) -> Sequential<f32> {
    if drop > 0.0 {
        net.push(StochasticDepth::new(block, drop))
    } else {
        net.push(block)
    }
}

/// One network trained and evaluated.
#[derive(Clone, Debug)]
pub struct VariantRun {
    /// The block design.
    pub design: Design,
    /// Whether stochastic depth was on.
    pub stochastic_depth: bool,
    /// The training curve.
    pub training: TrainingRun,
    /// Evaluation on the training set after training.
    pub train: Evaluation,
    /// Evaluation on the test set after training.
    pub test: Evaluation,
    /// Test loss every `eval_every` steps, for the figure: `(step, loss)`.
    pub test_curve: Vec<(f64, f64)>,
}

impl VariantRun {
    /// Test loss minus training loss.
    pub fn gap(&self) -> f64 {
        self.test.loss - self.train.loss
    }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct VariantsChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// One run per design, without and with stochastic depth.
    pub runs: Vec<VariantRun>,
}

/// The training and test sets: the same spirals, independent noise.
pub fn data_sets(config: &Config) -> (Dataset<f32>, Dataset<f32>) {
    (
        two_spirals(config.train_per_class, config.noise, config.seed + 100),
        two_spirals(config.test_per_class, config.noise, config.seed + 200),
    )
}

/// Trains every design with and without stochastic depth.
pub fn run(config: &Config, progress: &Progress) -> VariantsChapter {
    let (train_set, test_set) = data_sets(config);
    let eval_every = (config.steps / 40).max(1);
    let mut runs = Vec::new();
    for design in Design::ALL {
        for stochastic_depth in [false, true] {
            let max_drop = if stochastic_depth {
                config.max_drop
            } else {
                0.0
            };
            let net = build(design, config, max_drop);
            let label = format!(
                "{}{}",
                design.describe(),
                if stochastic_depth {
                    " + stochastic depth"
                } else {
                    ""
                }
            );
            let mut test_curve = vec![(0.0, evaluate(&net, &test_set).loss)];
            let training = train_observed(
                &net,
                &train_set,
                config.optimizer,
                config.steps,
                config.seed,
                progress,
                &label,
                &mut |step| {
                    if step % eval_every == 0 {
                        test_curve.push((step as f64, evaluate(&net, &test_set).loss));
                    }
                },
            );
            runs.push(VariantRun {
                design,
                stochastic_depth,
                train: training.last,
                test: evaluate(&net, &test_set),
                training,
                test_curve,
            });
        }
    }
    VariantsChapter {
        config: config.clone(),
        runs,
    }
}

impl VariantsChapter {
    /// The run of one design, with or without stochastic depth.
    ///
    /// # Panics
    /// If that combination was not run.
    pub fn get(&self, design: Design, stochastic_depth: bool) -> &VariantRun {
        self.runs
            .iter()
            .find(|r| r.design == design && r.stochastic_depth == stochastic_depth)
            .unwrap_or_else(|| panic!("no run for {design:?}, stochastic depth {stochastic_depth}"))
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "The notebook's block is one of several designs. The pre-activation block of He et \
             al. (2016) moves normalisation and activation into the branch, h + F(h) with F = \
             BN → ReLU → Linear → BN → ReLU → Linear, so that the path through the shortcuts is \
             a pure identity from input to output. Batch norm can also sit inside the notebook's \
             post-activation block. And because a residual network is an ensemble of many paths \
             (chapter 6), it can be regularised by stochastic depth (Huang et al., 2016): in \
             each training step, block l of L drops its branch with probability l/L·{} and the \
             network trains as a shallower one; at test time every branch is kept, scaled by \
             its survival probability.",
            c.max_drop
        ));
        page.prose(format!(
            "The notebook warns that the many paths make deep residual networks prone to \
             overfitting small data sets. Here is one: {} noisy training points (noise σ = {}) \
             of the two spirals, {} test points from the same distribution, residual networks \
             of {} blocks of width {} ({} parameters in the first design), {} full-batch steps \
             of {}.",
            2 * c.train_per_class,
            c.noise,
            2 * c.test_per_class,
            c.depth,
            c.width,
            build(Design::PostActivation, c, 0.0).num_parameters(),
            c.steps,
            c.optimizer.describe(),
        ));
        let mut table = Table::new([
            "block",
            "stochastic depth",
            "train loss",
            "test loss",
            "gap",
            "train acc.",
            "test acc.",
        ]);
        for r in &self.runs {
            table.row([
                r.design.describe().to_string(),
                if r.stochastic_depth { "yes" } else { "no" }.to_string(),
                sig(r.train.loss, 2),
                sig(r.test.loss, 3),
                sig(r.gap(), 3),
                format!("{:.1} %", 100.0 * r.train.accuracy),
                format!("{:.1} %", 100.0 * r.test.accuracy),
            ]);
        }
        page.table(table);
        let helped = Design::ALL
            .iter()
            .filter(|&&d| self.get(d, true).gap() < self.get(d, false).gap())
            .count();
        let post = (
            self.get(Design::PostActivation, false),
            self.get(Design::PostActivation, true),
        );
        let worst_train = Design::ALL
            .iter()
            .map(|&d| self.get(d, false).train.loss)
            .fold(0.0, f64::max);
        let lower = Design::ALL
            .iter()
            .filter(|&&d| self.get(d, true).test.loss < self.get(d, false).test.loss)
            .count();
        let lowest = post
            .0
            .test_curve
            .iter()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min);
        let accuracy_changes: Vec<String> = Design::ALL
            .iter()
            .map(|&d| {
                format!(
                    "{:.1} → {:.1} %",
                    100.0 * self.get(d, false).test.accuracy,
                    100.0 * self.get(d, true).test.accuracy
                )
            })
            .collect();
        page.prose(format!(
            "Without stochastic depth every design drives the training loss to {} or below \
             while the network memorises the noise: for the post-activation block the training \
             loss ends at {} and the test loss at {}, {}× its lowest value during training. With \
             stochastic depth the gap between test and training loss is smaller for {helped} of \
             the {} designs (post-activation: {} instead of {}), and the test loss is lower for \
             {lower} of them. The regulariser costs training loss — a network that must work \
             with random blocks missing cannot fit every noisy point — and its predictions on \
             unseen points are less overconfident. The test accuracy moves much less ({}): on \
             this data set stochastic depth mostly tempers confidence rather than changing \
             decisions.",
            sig(worst_train, 2),
            sig(post.0.train.loss, 2),
            sig(post.0.test.loss, 2),
            sig(post.0.test.loss / lowest, 2),
            Design::ALL.len(),
            sig(post.1.gap(), 2),
            sig(post.0.gap(), 2),
            accuracy_changes.join(", "),
        ));
        page.figure(self.figure());
        page
    }

    /// Training and test loss curves, one panel per design.
    pub fn figure(&self) -> Figure {
        let panels = Design::ALL
            .iter()
            .map(|&design| {
                let mut panel = Panel::new(design.describe(), "step", "cross-entropy").log_y();
                for (color, sd) in [(0, false), (1, true)] {
                    let r = self.get(design, sd);
                    let name = if sd { "with SD" } else { "without SD" };
                    let window = (self.config.steps / 40).max(1);
                    panel = panel
                        .with(
                            Series::line(
                                format!("train, {name}"),
                                r.training.smoothed_curve(window),
                                color,
                            )
                            .styled(Style::Dashed),
                        )
                        .with(Series::line(
                            format!("test, {name}"),
                            r.test_curve.clone(),
                            color,
                        ));
                }
                panel
            })
            .collect();
        Figure::grid(
            "09_stochastic_depth",
            format!(
                "Training loss (dashed, mean over windows of {} steps) and test loss (solid), \
                 with and without stochastic depth (SD), log scale",
                (self.config.steps / 40).max(1)
            ),
            3,
            panels,
        )
    }
}
