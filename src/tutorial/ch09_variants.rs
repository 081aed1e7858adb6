//! Chapter 9 — Variants.
//!
//! Pre-activation blocks and stochastic depth, and the notebook's claim that the many paths
//! of a residual network make it prone to overfitting, tested with controls: on a small
//! noisy training set, deep residual networks against a plain network with the same layers
//! and a shallow wide one with the same number of parameters; train and test loss in the
//! same (evaluation) mode, three seeds each; and the decision boundaries.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Field, Figure, Legend, Panel, Series, Style};
use super::seeds::SeedRange;
use super::training::{
    self, Evaluation, OptimizerKind, evaluate, probability_field, train_observed,
};
use super::{Chapter, Progress};
use autograd::{Tape, seeded_rng};
use nn::builder::Branch;
use nn::data::{Dataset, two_spirals};
use nn::{
    Activation, Ctx, Init, Linear, MlpConfig, Module, Normalization, PreActBlock, Residual,
    ResidualUnit, Sequential, StochasticDepth,
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 9,
    slug: "09_variants",
    title: "Variants",
    source: source!("ch09_variants.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of residual blocks.
    pub depth: usize,
    /// Width of every block.
    pub width: usize,
    /// Training points per class (few, so that a network can memorise them).
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
    /// Seeds of the weights and of the training noise; every model trains once per seed.
    pub seeds: Vec<u64>,
    /// Cells per side of the decision-boundary grid.
    pub grid: usize,
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
            steps: 600,
            optimizer: OptimizerKind::Adam { lr: 0.005 },
            max_drop: 0.5,
            seeds: vec![0, 1, 2],
            grid: 72,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            depth: 8,
            width: 16,
            test_per_class: 200,
            steps: 300,
            grid: 12,
            ..Self::full()
        }
    }
}

/// The residual block designs compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// The notebook's post-activation block ReLU(F(h)/√L + h).
    PostActivation,
    /// He et al. 2016's pre-activation block h + F(h), F = BN → ReLU → Linear → BN → ReLU →
    /// Linear, nothing after the sum.
    PreActivation,
}

/// A model of the overfitting experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// A residual network of `depth` blocks, with or without stochastic depth.
    Residual {
        /// The block design.
        design: Design,
        /// Whether blocks are dropped at random while training.
        stochastic_depth: bool,
    },
    /// The post-activation network's layers without the skips: `2·depth` hidden layers,
    /// the same parameter count.
    PlainSameLayers,
    /// Two hidden layers, as wide as it takes to match the residual network's parameters.
    ShallowWide,
}

impl Model {
    /// The notebook's post-activation network.
    pub const POST: Model = Model::Residual {
        design: Design::PostActivation,
        stochastic_depth: false,
    };
    /// The post-activation network with stochastic depth.
    pub const POST_SD: Model = Model::Residual {
        design: Design::PostActivation,
        stochastic_depth: true,
    };
    /// The pre-activation network.
    pub const PRE: Model = Model::Residual {
        design: Design::PreActivation,
        stochastic_depth: false,
    };
    /// The pre-activation network with stochastic depth.
    pub const PRE_SD: Model = Model::Residual {
        design: Design::PreActivation,
        stochastic_depth: true,
    };

    /// Every model, in the order of the tables.
    pub const ALL: [Model; 6] = [
        Model::POST,
        Model::POST_SD,
        Model::PRE,
        Model::PRE_SD,
        Model::PlainSameLayers,
        Model::ShallowWide,
    ];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match *self {
            Model::POST => "residual, post-activation",
            Model::POST_SD => "residual, post-activation + stochastic depth",
            Model::PRE => "residual, pre-activation",
            Model::PRE_SD => "residual, pre-activation + stochastic depth",
            Model::PlainSameLayers => "plain, the same layers (no skips)",
            Model::ShallowWide => "plain, 2 wide hidden layers, same parameters",
        }
    }
}

/// The residual network of `design`: input layer, `depth` blocks (each wrapped in
/// stochastic depth with drop probability `(l+1)/depth · max_drop` when `max_drop > 0`),
/// output layer; He initialisation throughout.
pub fn residual_network(
    design: Design,
    config: &Config,
    max_drop: f64,
    seed: u64,
) -> Sequential<f32> {
    let (w, depth) = (config.width, config.depth);
    let rng = &mut seeded_rng(seed);
    let mut net = Sequential::new().push(Linear::<f32>::with_init(2, w, true, Init::he(), rng));
    for l in 0..depth {
        let drop = max_drop * (l + 1) as f64 / depth as f64;
        net = match design {
            Design::PreActivation => {
                let block = PreActBlock::<f32>::new(w, Normalization::Batch, Init::he(), rng);
                with_stochastic_depth(net, block, drop)
            }
            Design::PostActivation => {
                let branch = Branch {
                    linear1: Linear::with_init(w, w, true, Init::he(), rng),
                    norm1: None,
                    activation: Activation::Relu,
                    linear2: Linear::with_init(w, w, true, Init::he(), rng),
                    norm2: None,
                };
                let block = Residual::new(branch)
                    .with_activation(Activation::Relu)
                    .with_scale(1.0 / (depth as f64).sqrt());
                with_stochastic_depth(net, block, drop)
            }
        };
    }
    net.push(Linear::<f32>::with_init(w, 2, true, Init::he(), rng))
}

/// Appends block l of L, with drop probability `drop = (l/L)·max_drop`.
fn with_stochastic_depth<U: ResidualUnit<f32> + 'static>(
    net: Sequential<f32>,
    block: U,
    drop: f64,
) -> Sequential<f32> {
    // cell: stochastic_depth
    // In a training step the block drops its branch with probability `drop` (it computes
    // σ(x) or x); at test time the branch is kept, scaled by its survival probability.
    if drop > 0.0 {
        net.push(StochasticDepth::new(block, drop))
    } else {
        net.push(block)
    }
    // end cell
}

/// Builds one model.
pub fn build(model: Model, config: &Config, seed: u64) -> Box<dyn Module<f32>> {
    let residual_parameters =
        residual_network(Design::PostActivation, config, 0.0, seed).num_parameters();
    match model {
        Model::Residual {
            design,
            stochastic_depth,
        } => {
            let max_drop = if stochastic_depth {
                config.max_drop
            } else {
                0.0
            };
            Box::new(residual_network(design, config, max_drop, seed))
        }
        Model::PlainSameLayers | Model::ShallowWide => {
            // cell: controls
            let (w, depth) = (config.width, config.depth);
            let recipe = match model {
                // The residual network's 2·depth linear layers, without the skips.
                Model::PlainSameLayers => MlpConfig::plain(2, w, 2, 2 * depth),
                // Linear(2 → v), two hidden layers v → v, Linear(v → 2): 2v² + 7v + 2
                // parameters, v chosen to match the residual network's.
                _ => {
                    let p = residual_parameters as f64;
                    let v = ((49.0 + 8.0 * (p - 2.0)).sqrt() - 7.0) / 4.0;
                    MlpConfig::plain(2, v.round() as usize, 2, 2)
                }
            };
            Box::new(
                recipe
                    .activation(Activation::Relu)
                    .init(Init::he())
                    .build::<f32>(&mut seeded_rng(seed)),
            )
            // end cell
        }
    }
}

/// One model trained on one seed.
#[derive(Clone, Debug)]
pub struct VariantRun {
    /// The model.
    pub model: Model,
    /// The seed.
    pub seed: u64,
    /// Its number of parameters.
    pub parameters: usize,
    /// Evaluation on the training set after training (evaluation mode).
    pub train: Evaluation,
    /// Evaluation on the test set after training (evaluation mode).
    pub test: Evaluation,
    /// Training and test loss in evaluation mode along the way: `(step, train, test)`
    /// (first seed only).
    pub curve: Vec<(f64, f64, f64)>,
    /// P(class 1) on a grid (first seed only).
    pub field: Option<Field>,
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
    /// One run per model and seed.
    pub runs: Vec<VariantRun>,
    /// The training points, for the figures.
    pub train_set: Dataset<f32>,
}

/// The training and test sets: the same spirals, independent noise.
pub fn data_sets(config: &Config, seed: u64) -> (Dataset<f32>, Dataset<f32>) {
    (
        two_spirals(config.train_per_class, config.noise, seed + 100),
        two_spirals(config.test_per_class, config.noise, seed + 200),
    )
}

/// Trains every model on every seed.
pub fn run(config: &Config, progress: &Progress) -> VariantsChapter {
    let eval_every = (config.steps / 30).max(1);
    let mut runs = Vec::new();
    for &seed in &config.seeds {
        let (train_set, test_set) = data_sets(config, seed);
        let first = Some(&seed) == config.seeds.first();
        for model in Model::ALL {
            let net = build(model, config, seed);
            let mut curve = Vec::new();
            // cell: experiment
            let mut observe = |step: usize| {
                if first && step.is_multiple_of(eval_every) {
                    // Both sets in evaluation mode: no blocks dropped, running statistics.
                    curve.push((
                        step as f64,
                        evaluate(&*net, &train_set).loss,
                        evaluate(&*net, &test_set).loss,
                    ));
                }
            };
            train_observed(
                &*net,
                &train_set,
                config.optimizer,
                config.steps,
                seed,
                progress,
                model.describe(),
                &mut observe,
            );
            let (train, test) = (evaluate(&*net, &train_set), evaluate(&*net, &test_set));
            // end cell
            let field = first.then(|| {
                probability_field(config.grid, |grid| {
                    let tape = Tape::new();
                    let cx = Ctx::eval(&tape);
                    net.forward(&cx, &cx.input(grid.clone())).value().clone()
                })
            });
            runs.push(VariantRun {
                model,
                seed,
                parameters: net.num_parameters(),
                train,
                test,
                curve,
                field,
            });
        }
    }
    VariantsChapter {
        config: config.clone(),
        runs,
        train_set: data_sets(config, config.seeds.first().copied().unwrap_or(0)).0,
    }
}

impl VariantsChapter {
    /// The runs of one model, one per seed.
    pub fn of(&self, model: Model) -> Vec<&VariantRun> {
        self.runs.iter().filter(|r| r.model == model).collect()
    }

    /// Median, lowest and highest of `f` over the seeds of one model.
    pub fn stat(&self, model: Model, f: impl Fn(&VariantRun) -> f64) -> SeedRange {
        SeedRange::of(self.of(model).into_iter().map(f).collect())
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "two, compared: the notebook's post-activation block ReLU(F(h)/√L + h), and the \
             pre-activation block h + F(h), F = BN → ReLU → Linear → BN → ReLU → Linear (He \
             et al., 2016), whose skip path is a pure identity from input to output — chapter \
             4's lesson built into the design.",
        );
        page.prose(format!(
            "The notebook warns that the many paths of a residual network make it prone to \
             overfitting small data sets, and names stochastic depth (Huang et al., 2016) as a \
             remedy: in each training step, block l of L drops its branch with probability \
             l/L·{} and the network trains as a shallower one; at test time every branch is \
             kept, scaled by its survival probability:",
            c.max_drop
        ));
        page.cell("stochastic_depth");
        let post = Model::POST;
        let params = self.of(post).first().map_or(0, |r| r.parameters);
        page.prose(format!(
            "To test whether the *paths* cause the overfitting, the residual networks need \
             controls with the same capacity: a plain network with exactly the same layers \
             and no skips, and a shallow wide network with the same number of parameters \
             ({params}):",
        ));
        page.cell("controls");
        page.prose(format!(
            "The data: {} noisy training points (noise σ = {}) of the two spirals, {} test \
             points from the same distribution; {} blocks of width {}, {} full-batch steps of \
             {}, {} seeds (each with its own noise draw). Training and test loss are measured \
             the same way — evaluation mode, so stochastic depth drops nothing and batch norm \
             uses its running statistics:",
            2 * c.train_per_class,
            c.noise,
            2 * c.test_per_class,
            c.depth,
            c.width,
            c.steps,
            c.optimizer.describe(),
            c.seeds.len()
        ));
        page.cell("experiment");
        page.cell_from(training::SOURCE, "evaluate");
        let mut t = Table::new([
            "model",
            "parameters",
            "train loss",
            "test loss",
            "gap",
            "train accuracy",
            "test accuracy",
        ]);
        for model in Model::ALL {
            t.row([
                model.describe().to_string(),
                self.of(model)
                    .first()
                    .map_or(0, |r| r.parameters)
                    .to_string(),
                self.stat(model, |r| r.train.loss).show(2),
                self.stat(model, |r| r.test.loss).show(3),
                self.stat(model, VariantRun::gap).show(3),
                self.stat(model, |r| r.train.accuracy).percent(),
                self.stat(model, |r| r.test.accuracy).percent(),
            ]);
        }
        page.prose("Median over the seeds, lowest–highest in brackets:");
        page.table(t);
        let gap = |m: Model| self.stat(m, VariantRun::gap).median;
        let acc = |m: Model| self.stat(m, |r| r.test.accuracy).median;
        let post_sd = Model::POST_SD;
        let pre = Model::PRE;
        let pre_sd = Model::PRE_SD;
        let controls = [Model::PlainSameLayers, Model::ShallowWide];
        let control_gap = controls
            .iter()
            .map(|&m| gap(m))
            .fold(f64::NEG_INFINITY, f64::max);
        let paths_worse = gap(post) > 1.5 * control_gap && gap(pre) > 1.5 * control_gap;
        let sd_helps = gap(post_sd) < gap(post) && gap(pre_sd) < gap(pre);
        let sd_each_seed = [(post, post_sd), (pre, pre_sd)].iter().all(|&(a, b)| {
            self.of(a)
                .iter()
                .zip(self.of(b))
                .all(|(x, y)| y.gap() < x.gap())
        });
        page.prose(format!(
            "Every network drives its training loss far below its test loss: the data set is \
             small and noisy, and all of them memorise it. The question is whether the residual \
             networks memorise *more*. Their median gap between test and training loss is {} \
             (post-activation) and {} (pre-activation); the controls with the same capacity \
             have {} (same layers, no skips) and {} (shallow and wide). {} Stochastic depth \
             {} the gap — {} → {} and {} → {}{} — and moves the test accuracy from {:.1} to \
             {:.1} % and from {:.1} to {:.1} %.",
            sig(gap(post), 3),
            sig(gap(pre), 3),
            sig(gap(Model::PlainSameLayers), 3),
            sig(gap(Model::ShallowWide), 3),
            if paths_worse {
                "The residual networks overfit clearly more than networks of the same size without paths: this data supports the notebook's claim."
            } else {
                "The residual networks do not overfit more than the controls with the same number of parameters: the overfitting here comes from capacity against a small data set, not from the many paths."
            },
            if sd_helps { "narrows" } else { "does not consistently narrow" },
            sig(gap(post), 3),
            sig(gap(post_sd), 3),
            sig(gap(pre), 3),
            sig(gap(pre_sd), 3),
            if sd_each_seed { ", on every seed" } else { ", though not on every seed" },
            100.0 * acc(post),
            100.0 * acc(post_sd),
            100.0 * acc(pre),
            100.0 * acc(pre_sd),
        ));
        page.figure(self.curves_figure());
        page.prose(
            "Where the decisions fall (first seed; the training points on top): memorising \
             shows as a boundary that bends around single noisy points.",
        );
        page.figure(self.boundary_figure());
        page.claim(
            "The many paths of residual networks make them prone to structural overfitting on \
             small data sets",
            format!(
                "test − train loss (median of {} seeds): residual {} / {}, plain same layers {}, \
                 shallow wide same parameters {}",
                c.seeds.len(),
                sig(gap(post), 3),
                sig(gap(pre), 3),
                sig(gap(Model::PlainSameLayers), 3),
                sig(gap(Model::ShallowWide), 3)
            ),
            if paths_worse {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "Stochastic depth regularises residual networks",
            format!(
                "gap {} → {} (post-activation), {} → {} (pre-activation); test accuracy {:.1} → \
                 {:.1} %, {:.1} → {:.1} %",
                sig(gap(post), 3),
                sig(gap(post_sd), 3),
                sig(gap(pre), 3),
                sig(gap(pre_sd), 3),
                100.0 * acc(post),
                100.0 * acc(post_sd),
                100.0 * acc(pre),
                100.0 * acc(pre_sd)
            ),
            if sd_helps && sd_each_seed {
                Verdict::Confirmed
            } else if sd_helps {
                Verdict::Depends
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            "Test a claim about architecture against controls with the same capacity: here a \
             plain network with the same layers and a shallow one with the same parameters."
                .to_string(),
            if paths_worse {
                "The residual networks overfit more than the controls.".to_string()
            } else {
                "The residual networks did not overfit more than the controls: small noisy data \
                 overfits any network of this size."
                    .to_string()
            },
            format!(
                "Stochastic depth {} the gap between test and training loss, measured both in \
                 evaluation mode.",
                if sd_helps {
                    "narrows"
                } else {
                    "does not narrow"
                }
            ),
        ]);
        page
    }

    /// Training and test loss in evaluation mode along the way, first seed.
    pub fn curves_figure(&self) -> Figure {
        let panels = [Design::PostActivation, Design::PreActivation]
            .iter()
            .enumerate()
            .map(|(k, &design)| {
                let mut panel = Panel::new(
                    match design {
                        Design::PostActivation => "post-activation blocks",
                        Design::PreActivation => "pre-activation blocks",
                    },
                    "step",
                    "cross-entropy",
                )
                .log_y();
                let models = [
                    (
                        Model::Residual {
                            design,
                            stochastic_depth: false,
                        },
                        0,
                        "residual",
                    ),
                    (
                        Model::Residual {
                            design,
                            stochastic_depth: true,
                        },
                        1,
                        "residual + stochastic depth",
                    ),
                    (Model::ShallowWide, 2, "shallow wide, same parameters"),
                ];
                for (model, color, name) in models {
                    if let Some(r) = self.of(model).first() {
                        panel = panel
                            .with(
                                Series::line(
                                    format!("train, {name}"),
                                    r.curve.iter().map(|p| (p.0, p.1)).collect(),
                                    color,
                                )
                                .styled(Style::Dashed),
                            )
                            .with(Series::line(
                                format!("test, {name}"),
                                r.curve.iter().map(|p| (p.0, p.2)).collect(),
                                color,
                            ));
                    }
                }
                if k == 0 {
                    panel.legend(Legend::Hidden)
                } else {
                    panel
                }
            })
            .collect();
        Figure::grid(
            "09_stochastic_depth",
            "Training loss (dashed) and test loss (solid), both in evaluation mode, with and \
             without stochastic depth, and the shallow control (first seed, log scale)",
            2,
            panels,
        )
        .share_y()
    }

    /// Decision boundaries of the post-activation network with and without stochastic depth
    /// and of the two controls, first seed.
    pub fn boundary_figure(&self) -> Figure {
        let points = |class: usize| -> Vec<(f64, f64)> {
            (0..self.train_set.len())
                .filter(|&r| self.train_set.labels[r] == class)
                .map(|r| {
                    (
                        self.train_set.x.get(&[r, 0]) as f64,
                        self.train_set.x.get(&[r, 1]) as f64,
                    )
                })
                .collect()
        };
        let models = [
            Model::POST,
            Model::POST_SD,
            Model::PlainSameLayers,
            Model::ShallowWide,
        ];
        let panels = models
            .iter()
            .filter_map(|&m| {
                let r = self.of(m).into_iter().next()?;
                let field = r.field.clone()?;
                Some(
                    Panel::new(m.describe(), "x₁", "x₂")
                        .with_field(field)
                        .with(Series::line("class 0", points(0), 0).styled(Style::Points))
                        .with(Series::line("class 1", points(1), 1).styled(Style::Points))
                        .legend(Legend::Hidden),
                )
            })
            .collect();
        Figure::grid(
            "09_boundaries",
            "Decision boundaries after training on the 80 noisy points (first seed): the residual \
             network without and with stochastic depth, and the two controls",
            2,
            panels,
        )
    }
}
