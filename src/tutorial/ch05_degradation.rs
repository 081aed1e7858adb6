//! Chapter 5 — Degradation.
//!
//! First the premise of residual learning, measured: a block that starts at F ≈ 0 already
//! is the identity, while a plain block must learn it. Then He et al.'s degradation
//! experiment made graded and fair: plain networks with and without batch norm against
//! residual networks, at equal numbers of linear layers from 2 to 64, each family at its
//! best learning rate from a small grid, three seeds each; final training loss against
//! depth, and dead ReLU units where a network collapses.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Legend, Panel, Series, Style};
use super::seeds::median;
use super::training::{self, OptimizerKind, TrainingRun, train};
use super::{Chapter, Progress};
use autograd::{Tape, Tensor, Var, seeded_rng};
use nn::data::{Dataset, two_spirals};
use nn::loss::mse;
use nn::{
    Activation, Adam, Ctx, Init, Linear, Mlp, MlpConfig, Module, Normalization, Optimizer, Param,
};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 5,
    slug: "05_degradation",
    title: "Degradation",
    source: source!("ch05_degradation.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Width of the identity experiment's representation.
    pub identity_width: usize,
    /// Rows of its input.
    pub identity_batch: usize,
    /// Numbers of blocks of the identity experiment.
    pub identity_depths: Vec<usize>,
    /// Its largest number of Adam steps.
    pub identity_steps: usize,
    /// The loss it counts the steps to.
    pub identity_threshold: f64,
    /// Numbers of hidden linear layers compared (a residual block has two).
    pub layers: Vec<usize>,
    /// Width of every hidden unit.
    pub width: usize,
    /// Points per class of the training set.
    pub points_per_class: usize,
    /// Full-batch steps per run.
    pub steps: usize,
    /// The learning rates tried for each family and depth (Adam), on the first seed.
    pub learning_rates: Vec<f64>,
    /// Seeds of the weights: the first picks the rate, every seed trains at it.
    pub seeds: Vec<u64>,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            identity_width: 16,
            identity_batch: 256,
            identity_depths: vec![1, 8],
            identity_steps: 500,
            identity_threshold: 1e-3,
            layers: vec![2, 4, 8, 16, 32, 64],
            width: 16,
            points_per_class: 128,
            steps: 300,
            learning_rates: vec![0.001, 0.003, 0.01],
            seeds: vec![0, 1, 2],
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            identity_batch: 64,
            identity_depths: vec![1, 4],
            identity_steps: 200,
            layers: vec![4, 32],
            points_per_class: 64,
            steps: 200,
            learning_rates: vec![0.003, 0.01],
            ..Self::full()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identity is easy

/// What the identity experiment's network must learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// y = x.
    Identity,
    /// y = x + 0.1·tanh(x·A), A random.
    NearIdentity,
}

impl Target {
    /// Both targets.
    pub const ALL: [Target; 2] = [Target::Identity, Target::NearIdentity];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Target::Identity => "y = x",
            Target::NearIdentity => "y = x + 0.1·tanh(x·A)",
        }
    }
}

/// How the identity experiment's blocks start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// x + F(x) with F's last layer at zero: F ≈ 0, the block is the identity.
    ResidualZero,
    /// x + F(x) with every layer He-initialised.
    ResidualHe,
    /// F(x) alone, He-initialised: a plain block learning from scratch.
    PlainHe,
}

impl Start {
    /// Every start.
    pub const ALL: [Start; 3] = [Start::ResidualZero, Start::ResidualHe, Start::PlainHe];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Start::ResidualZero => "residual, F ≈ 0 at the start",
            Start::ResidualHe => "residual, He start",
            Start::PlainHe => "plain, He start",
        }
    }
}

/// A block of the identity experiment: F = Linear(d → 2d) → ReLU → Linear(2d → d), with or
/// without the skip. (Width 2d lets the plain block represent the identity exactly:
/// x = ReLU(x) − ReLU(−x).)
pub struct IdentityBlock {
    /// `d → 2d`.
    pub linear1: Linear<f64>,
    /// `2d → d`.
    pub linear2: Linear<f64>,
    /// Whether the input is added back.
    pub skip: bool,
}

impl IdentityBlock {
    /// A block of width `d` with the given start.
    pub fn new(start: Start, d: usize, rng: &mut impl autograd::rand::Rng) -> Self {
        let block = IdentityBlock {
            linear1: Linear::with_init(d, 2 * d, true, Init::he(), rng),
            linear2: Linear::with_init(2 * d, d, true, Init::he(), rng),
            skip: start != Start::PlainHe,
        };
        if start == Start::ResidualZero {
            block.linear2.weight.set(Tensor::zeros(&[d, 2 * d]));
        }
        block
    }

    /// The block's forward pass.
    pub fn forward<'t>(&self, cx: &Ctx<'t, f64>, h: &Var<'t, f64>) -> Var<'t, f64> {
        // cell: identity_block
        let f = self
            .linear2
            .forward(cx, &self.linear1.forward(cx, h).relu());
        if self.skip { &f + h } else { f }
        // end cell
    }
}

/// One network of the identity experiment, trained.
#[derive(Clone, Debug)]
pub struct IdentityRun {
    /// The target.
    pub target: Target,
    /// The start.
    pub start: Start,
    /// Number of blocks.
    pub depth: usize,
    /// The seed.
    pub seed: u64,
    /// The MSE before each step (and after the last, at the end).
    pub losses: Vec<f64>,
    /// The first step at which the loss was below the threshold, if any.
    pub steps_to_threshold: Option<usize>,
}

/// Trains a stack of `depth` blocks to map `x` to `y` with Adam; stops at the threshold.
fn train_identity(
    start: Start,
    depth: usize,
    x: &Tensor<f64>,
    y: &Tensor<f64>,
    config: &Config,
    seed: u64,
) -> (Vec<f64>, Option<usize>) {
    let rng = &mut seeded_rng(seed);
    let blocks: Vec<IdentityBlock> = (0..depth)
        .map(|_| IdentityBlock::new(start, config.identity_width, rng))
        .collect();
    let params: Vec<Param<f64>> = blocks
        .iter()
        .flat_map(|b| [b.linear1.parameters(), b.linear2.parameters()].concat())
        .collect();
    let mut adam = Adam::new(params, 1e-2);
    let mut losses = Vec::new();
    // cell: identity_train
    for step in 0..=config.identity_steps {
        let (loss, grads) = nn::value_and_grad(0, |cx| {
            let out = blocks
                .iter()
                .fold(cx.input(x.clone()), |h, block| block.forward(cx, &h));
            mse(&out, &cx.input(y.clone()))
        });
        losses.push(loss);
        if loss < config.identity_threshold {
            return (losses, Some(step)); // reached: `step` updates were needed
        }
        adam.step(&grads);
    }
    // end cell
    (losses, None)
}

/// The identity experiment's input and its two targets.
fn identity_data(config: &Config) -> (Tensor<f64>, Vec<(Target, Tensor<f64>)>) {
    let d = config.identity_width;
    let rng = &mut seeded_rng(55);
    let x = Tensor::normal(&[config.identity_batch, d], 0.0, 1.0, rng);
    let a = Tensor::normal(&[d, d], 0.0, 1.0 / (d as f64).sqrt(), rng);
    let tape = Tape::new();
    let (xv, av) = (tape.constant(x.clone()), tape.constant(a));
    let near = &xv + &(xv.matmul(&av).tanh() * 0.1);
    (
        x.clone(),
        vec![
            (Target::Identity, x),
            (Target::NearIdentity, near.value().clone()),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Degradation

/// The three families of the degradation experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Hidden layers Linear → ReLU.
    Plain,
    /// Hidden layers Linear → BatchNorm → ReLU (He et al.'s plain networks had batch norm).
    PlainNorm,
    /// Blocks ReLU(F(h)/√L + h), F = Linear → ReLU → Linear: two linear layers per block.
    Residual,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 3] = [Family::Plain, Family::PlainNorm, Family::Residual];

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Plain => "plain",
            Family::PlainNorm => "plain + batch norm",
            Family::Residual => "residual",
        }
    }

    /// The network with `layers` hidden linear layers (`layers / 2` residual blocks).
    pub fn recipe(&self, width: usize, layers: usize) -> MlpConfig {
        // cell: families
        let recipe = match self {
            Family::Plain => MlpConfig::plain(2, width, 2, layers),
            Family::PlainNorm => MlpConfig::plain(2, width, 2, layers).norm(Normalization::Batch),
            Family::Residual => {
                let blocks = (layers / 2).max(1); // two linear layers per block
                MlpConfig::residual(2, width, 2, blocks)
                    .branch_scale(Some(1.0 / (blocks as f64).sqrt()))
            }
        };
        recipe.activation(Activation::Relu).init(Init::he())
        // end cell
    }
}

/// One training run of the degradation experiment.
#[derive(Clone, Debug)]
pub struct DegradationRun {
    /// The family.
    pub family: Family,
    /// Hidden linear layers.
    pub layers: usize,
    /// The learning rate.
    pub lr: f64,
    /// The seed.
    pub seed: u64,
    /// Learnable scalars.
    pub parameters: usize,
    /// The loss curve and final evaluation.
    pub run: TrainingRun,
    /// Hidden units whose ReLU output is zero on every training point, after training.
    pub dead_units: usize,
    /// Hidden units in total (width × hidden units of the network).
    pub units: usize,
}

/// The number of units among the network's hidden representations h₁ … h_L that are zero on
/// every point of `data`, and the number of such units in total.
pub fn dead_units(net: &Mlp<f32>, data: &Dataset<f32>) -> (usize, usize) {
    // cell: dead
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let (_, states) = tape.no_grad(|| net.forward_with_states(&cx, &cx.input(data.x.clone())));
    let mut dead = 0;
    let mut total = 0;
    for h in &states[1..] {
        let (rows, cols) = (h.shape()[0], h.shape()[1]);
        let values = h.value().data();
        dead += (0..cols)
            .filter(|&j| (0..rows).all(|i| values[i * cols + j] <= 0.0))
            .count();
        total += cols;
    }
    // end cell
    (dead, total)
}

/// Everything the chapter computed.
#[derive(Clone, Debug)]
pub struct DegradationChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The identity experiment.
    pub identity: Vec<IdentityRun>,
    /// Every degradation run.
    pub runs: Vec<DegradationRun>,
}

/// Runs both experiments.
pub fn run(config: &Config, progress: &Progress) -> DegradationChapter {
    let (x, targets) = identity_data(config);
    let mut identity = Vec::new();
    for (target, y) in &targets {
        for start in Start::ALL {
            for &depth in &config.identity_depths {
                for &seed in &config.seeds {
                    let (losses, steps_to_threshold) =
                        train_identity(start, depth, &x, y, config, seed);
                    identity.push(IdentityRun {
                        target: *target,
                        start,
                        depth,
                        seed,
                        losses,
                        steps_to_threshold,
                    });
                }
            }
        }
    }
    progress.say("identity experiment done; degradation grid");
    let data = two_spirals::<f32>(config.points_per_class, 0.0, 0);
    let mut runs = Vec::new();
    let (first, others) = config
        .seeds
        .split_first()
        .unwrap_or_else(|| panic!("chapter 5 needs a seed"));
    // cell: grid
    for family in Family::ALL {
        for &layers in &config.layers {
            // Every rate of the grid on the first seed; the other seeds at the best of them.
            let grid: Vec<DegradationRun> = config
                .learning_rates
                .iter()
                .map(|&lr| train_one(family, layers, lr, *first, &data, config, progress))
                .collect();
            let best = grid
                .iter()
                .min_by(|a, b| rank(a.run.last.loss).total_cmp(&rank(b.run.last.loss)));
            let lr = best.map_or(config.learning_rates[0], |r| r.lr);
            runs.extend(grid);
            runs.extend(
                others
                    .iter()
                    .map(|&seed| train_one(family, layers, lr, seed, &data, config, progress)),
            );
        }
    }
    // end cell
    DegradationChapter {
        config: config.clone(),
        identity,
        runs,
    }
}

/// Builds one network, trains it and counts its dead units.
fn train_one(
    family: Family,
    layers: usize,
    lr: f64,
    seed: u64,
    data: &Dataset<f32>,
    config: &Config,
    progress: &Progress,
) -> DegradationRun {
    let label = format!("{} {layers} layers, lr {lr}, seed {seed}", family.name());
    // cell: train_one
    let net = family
        .recipe(config.width, layers)
        .build::<f32>(&mut seeded_rng(seed));
    let run = train(
        &net,
        data,
        OptimizerKind::Adam { lr },
        config.steps,
        seed,
        progress,
        &label,
    );
    let (dead_units, units) = dead_units(&net, data);
    // end cell
    DegradationRun {
        family,
        layers,
        lr,
        seed,
        parameters: net.num_parameters(),
        run,
        dead_units,
        units,
    }
}

/// A final loss for ranking: NaN (divergence) counts as infinitely bad.
fn rank(loss: f64) -> f64 {
    if loss.is_nan() { f64::INFINITY } else { loss }
}

/// The result of one family at one depth, at its best learning rate.
#[derive(Clone, Debug)]
pub struct Best {
    /// The learning rate with the lowest median final loss.
    pub lr: f64,
    /// That median.
    pub median: f64,
    /// The lowest and highest final loss over the seeds at that rate.
    pub range: (f64, f64),
    /// The median final accuracy at that rate.
    pub accuracy: f64,
    /// The runs at that rate, one per seed.
    pub runs: Vec<DegradationRun>,
}

impl DegradationChapter {
    /// The runs of one family, depth and rate, one per seed.
    pub fn runs_of(&self, family: Family, layers: usize, lr: f64) -> Vec<&DegradationRun> {
        self.runs
            .iter()
            .filter(|r| r.family == family && r.layers == layers && r.lr == lr)
            .collect()
    }

    /// One family at one depth, at the rate whose final loss (evaluation mode, after the
    /// last step) was lowest on the first seed — the rate every seed then trained at.
    pub fn best(&self, family: Family, layers: usize) -> Best {
        let (lr, _) = self
            .grid(family, layers)
            .into_iter()
            .min_by(|a, b| rank(a.1).total_cmp(&rank(b.1)))
            .unwrap_or_else(|| panic!("no run of {family:?} at {layers} layers"));
        let runs = self.runs_of(family, layers, lr);
        let losses: Vec<f64> = runs.iter().map(|r| r.run.last.loss).collect();
        Best {
            lr,
            median: median(losses.iter().map(|&l| rank(l)).collect()),
            range: (
                losses.iter().copied().fold(f64::INFINITY, f64::min),
                losses.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            accuracy: median(runs.iter().map(|r| r.run.last.accuracy).collect()),
            runs: runs.into_iter().cloned().collect(),
        }
    }

    /// The first seed's final loss at each rate of the grid.
    pub fn grid(&self, family: Family, layers: usize) -> Vec<(f64, f64)> {
        let first = self.config.seeds.first().copied().unwrap_or(0);
        self.config
            .learning_rates
            .iter()
            .filter_map(|&lr| {
                let run = self
                    .runs_of(family, layers, lr)
                    .into_iter()
                    .find(|r| r.seed == first);
                run.map(|r| (lr, r.run.last.loss))
            })
            .collect()
    }

    /// The identity runs of one target, start and depth.
    pub fn identity_of(&self, target: Target, start: Start, depth: usize) -> Vec<&IdentityRun> {
        self.identity
            .iter()
            .filter(|r| r.target == target && r.start == start && r.depth == depth)
            .collect()
    }

    /// The share of hidden units dead after training, over the seeds at the chosen rate.
    pub fn dead_share(&self, family: Family, layers: usize) -> f64 {
        let b = self.best(family, layers);
        let dead: usize = b.runs.iter().map(|r| r.dead_units).sum();
        let total: usize = b.runs.iter().map(|r| r.units).sum();
        dead as f64 / total.max(1) as f64
    }

    /// Whether a family's best final loss at the deepest setting is clearly above its best
    /// over all depths: more than 0.05 nats (7 % of the chance level ln 2) and 1.5× worse.
    pub fn degrades(&self, family: Family) -> bool {
        let deepest = self.config.layers.iter().copied().max().unwrap_or(0);
        let deep = self.best(family, deepest).median;
        let best = self
            .config
            .layers
            .iter()
            .map(|&l| self.best(family, l).median)
            .fold(f64::INFINITY, f64::min);
        deep > best + 0.05 && deep > 1.5 * best
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's block ReLU(F(h)/√L + h) with the branch scaled by 1/√L (chapter 4: \
             without the scale a deep stack's signal grows by a constant factor per block), \
             against plain chains with the same number of linear layers. The identity \
             experiment uses x + F(x) with nothing after the sum, so that the block can be \
             exactly the identity.",
        );
        page.prose(
            "More layers can represent more, so a deeper network should fit its training set at \
             least as well as a shallower one: the extra layers could just learn the identity. \
             He et al. (2016) found that plain networks get *worse* with depth — on the training \
             set, so it is optimisation, not overfitting — and called it degradation. Residual \
             learning rests on a premise: the identity is easy for a block x + F(x), which only \
             needs F ≈ 0, and hard for a plain block, which must build it from its weights.",
        );
        page.heading("Is the identity easy?");
        page.prose(format!(
            "A stack of blocks F = Linear({d} → {}) → ReLU → Linear({} → {d}) — wide enough that \
             even the plain block can represent the identity exactly, as ReLU(x) − ReLU(−x) — \
             trained with Adam (lr 0.01) on {} random Gaussian inputs to reproduce them (y = x) \
             or a near-identity map. Three starts: the residual block with its last layer at zero \
             (F = 0), the residual block fully He-initialised, and the plain block (no skip), He:",
            2 * c.identity_width,
            2 * c.identity_width,
            c.identity_batch,
            d = c.identity_width,
        ));
        page.cell("identity_block");
        page.cell("identity_train");
        let mut t = Table::new([
            "target",
            "blocks",
            "start",
            "loss at step 0",
            &format!("steps to loss < {}", sig(c.identity_threshold, 2)),
        ]);
        for target in Target::ALL {
            for &depth in &c.identity_depths {
                for start in Start::ALL {
                    let runs = self.identity_of(target, start, depth);
                    let first = median(runs.iter().map(|r| r.losses[0]).collect());
                    let steps: Vec<String> = runs
                        .iter()
                        .map(|r| {
                            r.steps_to_threshold
                                .map_or(format!("> {}", c.identity_steps), |s| s.to_string())
                        })
                        .collect();
                    t.row([
                        target.describe().to_string(),
                        depth.to_string(),
                        start.describe().to_string(),
                        sig(first, 3),
                        steps.join(", "),
                    ]);
                }
            }
        }
        page.prose(format!(
            "Steps to the threshold, one number per seed ({} seeds):",
            c.seeds.len()
        ));
        page.table(t);
        let deepest_id = c.identity_depths.iter().copied().max().unwrap_or(1);
        let steps_median = |target, start| {
            median(
                self.identity_of(target, start, deepest_id)
                    .iter()
                    .map(|r| r.steps_to_threshold.map_or(f64::INFINITY, |s| s as f64))
                    .collect(),
            )
        };
        let show = |v: f64| {
            if v.is_finite() {
                sig(v, 3)
            } else {
                format!("more than {}", c.identity_steps)
            }
        };
        let zero_near = steps_median(Target::NearIdentity, Start::ResidualZero);
        let plain_id = steps_median(Target::Identity, Start::PlainHe);
        let plain_near = steps_median(Target::NearIdentity, Start::PlainHe);
        let he_id = steps_median(Target::Identity, Start::ResidualHe);
        page.prose(format!(
            "With F = 0 the residual stack *is* the identity: it meets the threshold at step 0, \
             at any depth, and the near-identity map takes it {} steps at {deepest_id} blocks. The \
             plain stack of {deepest_id} blocks needs {} steps for the identity and {} for the \
             near-identity map; the residual stack with a He start, whose branches begin far \
             from zero, {} for the identity. The skip makes the identity available; a small \
             branch at the start makes it the starting point.",
            show(zero_near),
            show(plain_id),
            show(plain_near),
            show(he_id),
        ));
        page.figure(self.identity_figure());

        page.heading("Degradation, graded");
        page.prose(format!(
            "Now the experiment itself, on the {} points of two spirals. Three families, each \
             with He initialisation and ReLU, compared at equal numbers of hidden linear layers — \
             {} — so a residual network has half as many blocks as the plain one has layers:",
            2 * c.points_per_class,
            c.layers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        page.cell("families");
        page.prose(format!(
            "Each network trains for {} full-batch steps of Adam. Adam divides every \
             parameter's step by a running estimate of its gradient's size, which removes most \
             of the depth-dependent scale of the gradients, so that one grid of rates suits \
             every depth. The learning rate \
             comes from the grid {{{}}}: every rate on seed {}, then the best of them for the \
             other seeds ({} seeds in all):",
            c.steps,
            c.learning_rates
                .iter()
                .map(|l| sig(*l, 2))
                .collect::<Vec<_>>()
                .join(", "),
            c.seeds.first().copied().unwrap_or(0),
            c.seeds.len()
        ));
        page.cell("grid");
        page.prose("One run, and the training step every chapter uses:");
        page.cell("train_one");
        page.cell_from(training::SOURCE, "training_step");
        let mut t = Table::new([
            "family",
            "linear layers",
            "parameters",
            "loss per rate (first seed)",
            "best lr",
            "final loss, median",
            "seed range",
            "accuracy",
            "dead units per seed",
        ]);
        for family in Family::ALL {
            for &layers in &c.layers {
                let b = self.best(family, layers);
                let dead: Vec<String> = b.runs.iter().map(|r| r.dead_units.to_string()).collect();
                let total = b.runs.first().map_or(0, |r| r.units);
                let grid: Vec<String> = self
                    .grid(family, layers)
                    .iter()
                    .map(|(_, l)| sig(*l, 2))
                    .collect();
                t.row([
                    family.name().to_string(),
                    layers.to_string(),
                    b.runs.first().map_or(0, |r| r.parameters).to_string(),
                    grid.join(" / "),
                    sig(b.lr, 2),
                    sig(b.median, 3),
                    format!("{}–{}", sig(b.range.0, 2), sig(b.range.1, 2)),
                    format!("{:.1} %", 100.0 * b.accuracy),
                    format!("{} of {total}", dead.join(", ")),
                ]);
            }
        }
        page.prose(format!(
            "Final training loss (evaluation mode, after the last step) at the chosen rate, \
             median and range over the seeds. A residual block has two linear layers, so at \
             equal layer counts both kinds have the same parameters (batch norm adds its scale \
             and shift). \"Dead units\" are hidden units whose ReLU output is zero on every \
             training point. The chance level is ln 2 = {:.3}.",
            std::f64::consts::LN_2
        ));
        page.table(t);
        page.cell("dead");
        let deepest = c.layers.iter().copied().max().unwrap_or(0);
        let shallowest = c.layers.iter().copied().min().unwrap_or(0);
        let best_depth = |f: Family| {
            c.layers
                .iter()
                .copied()
                .min_by(|&a, &b| self.best(f, a).median.total_cmp(&self.best(f, b).median))
                .unwrap_or(0)
        };
        let at = |f: Family, l: usize| self.best(f, l).median;
        let chance = std::f64::consts::LN_2;
        let collapsed: Vec<String> = Family::ALL
            .iter()
            .flat_map(|&f| c.layers.iter().map(move |&l| (f, l)))
            .filter(|&(f, l)| at(f, l) > 0.9 * chance)
            .map(|(f, l)| {
                let b = self.best(f, l);
                let dead: usize = b.runs.iter().map(|r| r.dead_units).sum();
                let total: usize = b.runs.iter().map(|r| r.units).sum();
                format!(
                    "{} at {l} layers ({dead} of {total} units dead over the seeds)",
                    f.name()
                )
            })
            .collect();
        let (plain_deg, norm_deg, res_deg) = (
            self.degrades(Family::Plain),
            self.degrades(Family::PlainNorm),
            self.degrades(Family::Residual),
        );
        page.prose(format!(
            "Plain without normalisation: best at {} layers (loss {}), {} at {deepest}. Plain \
             with batch norm: best at {} layers ({}), {} at {deepest}. Residual: best at {} \
             layers ({}), {} at {deepest}. {}{}",
            best_depth(Family::Plain),
            sig(at(Family::Plain, best_depth(Family::Plain)), 2),
            sig(at(Family::Plain, deepest), 2),
            best_depth(Family::PlainNorm),
            sig(at(Family::PlainNorm, best_depth(Family::PlainNorm)), 2),
            sig(at(Family::PlainNorm, deepest), 2),
            best_depth(Family::Residual),
            sig(at(Family::Residual, best_depth(Family::Residual)), 2),
            sig(at(Family::Residual, deepest), 2),
            if collapsed.is_empty() {
                "No network ends at the chance level. ".to_string()
            } else {
                format!(
                    "At the chance level (collapsed): {}. ",
                    collapsed.join("; ")
                )
            },
            match (norm_deg, res_deg) {
                (true, false) => format!(
                    "This is He et al.'s degradation: the batch-normalised plain network's best \
                     training loss grows with depth beyond {} layers{}, while the residual \
                     network's does not.",
                    best_depth(Family::PlainNorm),
                    if self.dead_share(Family::PlainNorm, deepest) < 0.05 {
                        " — with almost no dead units, so the cause is optimisation, not a dead \
                         network"
                    } else {
                        ""
                    }
                ),
                (false, false) => format!(
                    "The normalised plain network does not degrade at these depths and this \
                     budget{}: He et al.'s finding is not reproduced here.",
                    if plain_deg {
                        " (the unnormalised one does)"
                    } else {
                        ""
                    }
                ),
                (_, true) => "The residual network degrades too at these settings: the \
                              experiment does not support the claim."
                    .to_string(),
            }
        ));
        let _ = shallowest;
        page.figure(self.degradation_figure());
        page.claim(
            "Deeper plain networks can train worse than shallower ones (degradation); residual \
             networks do not",
            format!(
                "best final training loss at {deepest} vs its best depth: plain {} vs {}, plain + \
                 batch norm {} vs {}, residual {} vs {}",
                sig(at(Family::Plain, deepest), 2),
                sig(at(Family::Plain, best_depth(Family::Plain)), 2),
                sig(at(Family::PlainNorm, deepest), 2),
                sig(at(Family::PlainNorm, best_depth(Family::PlainNorm)), 2),
                sig(at(Family::Residual, deepest), 2),
                sig(at(Family::Residual, best_depth(Family::Residual)), 2),
            ),
            match (norm_deg, res_deg) {
                (true, false) => Verdict::Confirmed,
                (false, false) if plain_deg => Verdict::Depends,
                _ => Verdict::Refuted,
            },
        );
        page.claim(
            "If the best behaviour is close to the identity, a residual block can learn it \
             easily: F(x) ≈ 0",
            format!(
                "{deepest_id} blocks: steps to MSE < {}: residual from F = 0: 0 (identity), {} \
                 (near-identity); plain: {} and {}",
                sig(c.identity_threshold, 2),
                show(zero_near),
                show(plain_id),
                show(plain_near)
            ),
            if zero_near < plain_near {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            format!(
                "A residual block whose branch starts at zero is the identity before any \
                 training; a plain block of the same shape needs {} Adam steps to learn it.",
                show(plain_id)
            ),
            format!(
                "Plain ReLU chains end at a loss of {} at {deepest} layers without \
                 normalisation and {} with batch norm — {} their best ({} at {} layers).",
                sig(at(Family::Plain, deepest), 2),
                sig(at(Family::PlainNorm, deepest), 2),
                if norm_deg { "worse than" } else { "close to" },
                sig(at(Family::PlainNorm, best_depth(Family::PlainNorm)), 2),
                best_depth(Family::PlainNorm)
            ),
            format!(
                "The residual network at {deepest} linear layers ends at {} — depth costs it {}.",
                sig(at(Family::Residual, deepest), 2),
                if res_deg { "training loss" } else { "nothing" }
            ),
            {
                let (family, layers, b) = Family::ALL
                    .iter()
                    .flat_map(|&f| c.layers.iter().map(move |&l| (f, l)))
                    .map(|(f, l)| (f, l, self.best(f, l)))
                    .max_by(|a, b| {
                        (a.2.range.1 - a.2.range.0).total_cmp(&(b.2.range.1 - b.2.range.0))
                    })
                    .unwrap_or_else(|| panic!("no runs"));
                format!(
                    "Seeds matter: the widest spread is {} at {layers} layers, from {} to {} \
                     between seeds — one seed is not an experiment.",
                    family.name(),
                    sig(b.range.0, 2),
                    sig(b.range.1, 2)
                )
            },
        ]);
        page
    }

    /// Loss curves of the identity experiment, deepest stack, first seed.
    pub fn identity_figure(&self) -> Figure {
        let deepest = self
            .config
            .identity_depths
            .iter()
            .copied()
            .max()
            .unwrap_or(1);
        let seed = self.config.seeds.first().copied().unwrap_or(0);
        let panels = Target::ALL
            .iter()
            .enumerate()
            .map(|(k, &target)| {
                let mut panel = Panel::new(
                    format!("{} blocks learn {}", deepest, target.describe()),
                    "Adam step",
                    "MSE",
                )
                .log_y();
                for (color, start) in [
                    (0, Start::ResidualZero),
                    (2, Start::ResidualHe),
                    (3, Start::PlainHe),
                ] {
                    if let Some(r) = self
                        .identity_of(target, start, deepest)
                        .into_iter()
                        .find(|r| r.seed == seed)
                    {
                        // A loss of exactly 0 cannot be drawn on a log axis: show it at the floor.
                        let points = r
                            .losses
                            .iter()
                            .enumerate()
                            .map(|(i, &l)| (i as f64, l.max(1e-12)))
                            .collect();
                        panel = panel.with(Series::line(start.describe(), points, color));
                    }
                }
                panel = panel.with(
                    Series::line(
                        "threshold",
                        vec![
                            (0.0, self.config.identity_threshold),
                            (
                                self.config.identity_steps as f64,
                                self.config.identity_threshold,
                            ),
                        ],
                        7,
                    )
                    .styled(Style::Dashed),
                );
                if k == 0 {
                    panel.legend(Legend::Hidden)
                } else {
                    panel
                }
            })
            .collect();
        Figure::grid(
            "05_identity",
            format!(
                "Learning the identity and a near-identity map: {deepest} blocks, seed {seed}, \
                 MSE per Adam step (log scale; the residual stack that starts at F = 0 begins at \
                 loss 0, drawn at the axis floor)"
            ),
            2,
            panels,
        )
        .share_y()
    }

    /// Final training loss against depth (best rate, seed range), and the deepest networks'
    /// loss curves.
    pub fn degradation_figure(&self) -> Figure {
        let c = &self.config;
        let colors = [
            (Family::Plain, 3),
            (Family::PlainNorm, 4),
            (Family::Residual, 0),
        ];
        let mut by_depth = Panel::new(
            "final training loss, best learning rate",
            "hidden linear layers",
            "cross-entropy",
        )
        .log2_x()
        .log_y();
        for (family, color) in colors {
            let bests: Vec<(usize, Best)> = c
                .layers
                .iter()
                .map(|&l| (l, self.best(family, l)))
                .collect();
            by_depth = by_depth.with(
                Series::line(
                    family.name(),
                    bests.iter().map(|(l, b)| (*l as f64, b.median)).collect(),
                    color,
                )
                .styled(Style::LinePoints)
                .with_errors(bests.iter().map(|(_, b)| b.range).collect()),
            );
        }
        by_depth = by_depth
            .with(
                Series::line(
                    "chance, ln 2",
                    c.layers
                        .iter()
                        .map(|&l| (l as f64, std::f64::consts::LN_2))
                        .collect(),
                    7,
                )
                .styled(Style::Dashed),
            )
            .legend(Legend::Hidden);
        let deepest = c.layers.iter().copied().max().unwrap_or(0);
        let mut curves = Panel::new(
            format!("training loss at {deepest} linear layers, best rate, every seed"),
            "step",
            "cross-entropy",
        )
        .log_y();
        for (family, color) in colors {
            for (k, r) in self.best(family, deepest).runs.iter().enumerate() {
                let label = if k == 0 {
                    family.name().to_string()
                } else {
                    String::new()
                };
                curves = curves.with(Series::line(label, r.run.smoothed_curve(10), color));
            }
        }
        curves = curves.with(
            Series::line(
                "chance, ln 2",
                vec![
                    (0.0, std::f64::consts::LN_2),
                    (c.steps as f64, std::f64::consts::LN_2),
                ],
                7,
            )
            .styled(Style::Dashed),
        );
        Figure::grid(
            "05_degradation",
            "Degradation: final training loss against the number of hidden linear layers (median \
             over seeds at each family's best learning rate, bars from the best to the worst \
             seed; log–log), and the loss curves of the deepest networks (means over 10 steps)",
            2,
            vec![by_depth, curves],
        )
        .share_y()
    }
}
