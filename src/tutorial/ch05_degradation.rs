//! Chapter 5 — Degradation.
//!
//! Plain and residual MLPs of increasing depth trained on two spirals with the same
//! optimiser and budget: the deeper plain network trains *worse* than the shallower one
//! (on the training set — this is optimisation, not overfitting), the deeper residual
//! network does not.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::training::{OptimizerKind, TrainingRun, train};
use super::{Chapter, Progress};
use autograd::seeded_rng;
use nn::data::two_spirals;
use nn::{Activation, Init, MlpConfig};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 5,
    slug: "05_degradation",
    title: "Degradation",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Numbers of hidden layers (plain) and blocks (residual) compared.
    pub depths: Vec<usize>,
    /// Width of every hidden unit.
    pub width: usize,
    /// Points per class of the training set.
    pub points_per_class: usize,
    /// Full-batch steps per run.
    pub steps: usize,
    /// The optimiser of the main comparison.
    pub optimizer: OptimizerKind,
    /// The optimiser of the contrast (every network fits with it).
    pub contrast: Option<OptimizerKind>,
    /// Seeds of the weights; each network is trained once per seed.
    pub seeds: Vec<u64>,
    /// How many of the seeds the contrast runs use.
    pub contrast_seeds: usize,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            depths: vec![4, 16, 64],
            width: 16,
            points_per_class: 256,
            steps: 500,
            optimizer: OptimizerKind::Sgd {
                lr: 0.05,
                momentum: 0.9,
            },
            contrast: Some(OptimizerKind::Adam { lr: 0.01 }),
            contrast_seeds: 1,
            seeds: vec![0, 1, 2],
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            depths: vec![3, 16],
            points_per_class: 128,
            steps: 200,
            contrast: None,
            contrast_seeds: 0,
            seeds: vec![0, 1, 2],
            ..Self::full()
        }
    }
}

/// Plain or residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Hidden layers Linear → ReLU.
    Plain,
    /// Blocks ReLU(F(h)/√L + h).
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

/// The recipe of one network: He initialisation and ReLU; residual branches scaled by 1/√L.
pub fn recipe(kind: Kind, width: usize, depth: usize) -> MlpConfig {
    match kind {
        Kind::Plain => MlpConfig::plain(2, width, 2, depth),
        Kind::Residual => {
            MlpConfig::residual(2, width, 2, depth).branch_scale(Some(1.0 / (depth as f64).sqrt()))
        }
    }
    .activation(Activation::Relu)
    .init(Init::he())
}

/// One training run.
#[derive(Clone, Debug)]
pub struct DegradationRun {
    /// Plain or residual.
    pub kind: Kind,
    /// Number of hidden units.
    pub depth: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Seed of the weights.
    pub seed: u64,
    /// The loss curve and final evaluation.
    pub run: TrainingRun,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct DegradationChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// Every run.
    pub runs: Vec<DegradationRun>,
}

/// Trains every network.
pub fn run(config: &Config, progress: &Progress) -> DegradationChapter {
    let data = two_spirals::<f32>(config.points_per_class, 0.0, 0);
    let main = (config.optimizer, config.seeds.len());
    let contrast = config.contrast.map(|c| (c, config.contrast_seeds));
    let mut runs = Vec::new();
    for (optimizer, n_seeds) in std::iter::once(main).chain(contrast) {
        for kind in Kind::ALL {
            for &depth in &config.depths {
                for &seed in config.seeds.iter().take(n_seeds) {
                    let net = recipe(kind, config.width, depth).build::<f32>(&mut seeded_rng(seed));
                    let label = format!(
                        "{} depth {depth}, seed {seed}, {}",
                        kind.name(),
                        optimizer.describe()
                    );
                    let run = train(&net, &data, optimizer, config.steps, seed, progress, &label);
                    runs.push(DegradationRun {
                        kind,
                        depth,
                        optimizer,
                        seed,
                        run,
                    });
                }
            }
        }
    }
    DegradationChapter {
        config: config.clone(),
        runs,
    }
}

/// The median of some values (the mean of the two middle ones for an even count; NaN
/// values sort last).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

impl DegradationChapter {
    /// The runs of one network and optimiser, one per seed.
    pub fn runs_of(
        &self,
        kind: Kind,
        depth: usize,
        optimizer: OptimizerKind,
    ) -> Vec<&DegradationRun> {
        self.runs
            .iter()
            .filter(|r| r.kind == kind && r.depth == depth && r.optimizer == optimizer)
            .collect()
    }

    /// The median over seeds of the final training loss (evaluation mode, after the last
    /// step) of one network under the main optimiser.
    pub fn final_loss(&self, kind: Kind, depth: usize) -> f64 {
        self.final_loss_with(kind, depth, self.config.optimizer)
    }

    /// [`DegradationChapter::final_loss`] under any optimiser that was run.
    pub fn final_loss_with(&self, kind: Kind, depth: usize, optimizer: OptimizerKind) -> f64 {
        median(
            self.runs_of(kind, depth, optimizer)
                .iter()
                .map(|r| r.run.last.loss)
                .collect(),
        )
    }

    /// The median final accuracy of one network under `optimizer`.
    pub fn final_accuracy_with(&self, kind: Kind, depth: usize, optimizer: OptimizerKind) -> f64 {
        median(
            self.runs_of(kind, depth, optimizer)
                .iter()
                .map(|r| r.run.last.accuracy)
                .collect(),
        )
    }

    fn shallowest(&self) -> usize {
        self.config.depths.iter().copied().min().unwrap_or(0)
    }

    fn deepest(&self) -> usize {
        self.config.depths.iter().copied().max().unwrap_or(0)
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let (shallow, deep) = (self.shallowest(), self.deepest());
        let residual_keeps_up = self.final_loss(Kind::Residual, deep)
            <= self.final_loss(Kind::Residual, shallow) + 0.05;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "More layers can represent more, so a deeper network should fit its training set at \
             least as well as a shallower one: the extra layers could learn the identity. In \
             practice plain networks get *worse* with depth — on the training set, so this is \
             not overfitting but failed optimisation (He et al., 2016, call it degradation). We \
             train plain networks (Linear → ReLU per hidden layer) and residual networks \
             (blocks ReLU(F(h)/√L + h), F = Linear → ReLU → Linear) of depth {} on the {} points \
             of two spirals, width {}, He initialisation, {} full-batch steps of {}, {} seeds \
             each. The chance level of the cross-entropy is ln 2 = {:.3}.",
            c.depths
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            2 * c.points_per_class,
            c.width,
            c.steps,
            c.optimizer.describe(),
            c.seeds.len(),
            std::f64::consts::LN_2,
        ));
        let mut table = Table::new([
            "network",
            "depth",
            "final loss",
            "accuracy",
            "losses per seed",
        ]);
        for kind in Kind::ALL {
            for &depth in &c.depths {
                let per_seed: Vec<String> = self
                    .runs_of(kind, depth, c.optimizer)
                    .iter()
                    .map(|r| sig(r.run.last.loss, 2))
                    .collect();
                table.row([
                    kind.name().to_string(),
                    depth.to_string(),
                    sig(self.final_loss(kind, depth), 3),
                    format!(
                        "{:.1} %",
                        100.0 * self.final_accuracy_with(kind, depth, c.optimizer)
                    ),
                    per_seed.join(", "),
                ]);
            }
        }
        page.prose(format!(
            "Final training loss and accuracy (median over seeds, evaluated after the last \
             step), {}:",
            c.optimizer.describe()
        ));
        page.table(table);
        let by_depth = |kind: Kind, opt: OptimizerKind| {
            c.depths
                .iter()
                .map(|&d| {
                    format!(
                        "{} at depth {d}",
                        sig(self.final_loss_with(kind, d, opt), 2)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let chance = std::f64::consts::LN_2;
        let stuck = |kind: Kind, opt: OptimizerKind| -> Vec<usize> {
            c.depths
                .iter()
                .copied()
                .filter(|&d| self.final_loss_with(kind, d, opt) > 0.9 * chance)
                .collect()
        };
        let list = |depths: &[usize]| {
            depths
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let plain_stuck = stuck(Kind::Plain, c.optimizer);
        page.prose(format!(
            "The plain network's final loss: {}.{} The residual networks: {}. {}",
            by_depth(Kind::Plain, c.optimizer),
            if plain_stuck.is_empty() {
                String::new()
            } else {
                format!(
                    " At depth {} it ends at the chance level, although it contains every \
                     function the shallow one computes.",
                    list(&plain_stuck)
                )
            },
            by_depth(Kind::Residual, c.optimizer),
            if residual_keeps_up {
                "Depth costs them nothing: the shortcut gives every block the identity for free, \
                 and the gradient a path around every branch."
            } else {
                "The deepest residual network ends worse than the shallowest here too."
            },
        ));
        if let Some(adam) = c.contrast {
            let mut t = Table::new(["network", "depth", "final loss", "accuracy"]);
            for kind in Kind::ALL {
                for &depth in &c.depths {
                    t.row([
                        kind.name().to_string(),
                        depth.to_string(),
                        sig(self.final_loss_with(kind, depth, adam), 3),
                        format!(
                            "{:.1} %",
                            100.0 * self.final_accuracy_with(kind, depth, adam)
                        ),
                    ]);
                }
            }
            page.prose(format!(
                "The same networks trained with {} instead ({}). Adam divides each \
                 parameter's step by a running estimate of its gradient's size, which undoes \
                 much of the depth-dependent scale of the plain network's gradients:",
                adam.describe(),
                match c.contrast_seeds {
                    1 => format!("seed {} only", c.seeds.first().copied().unwrap_or(0)),
                    n => format!("median over {n} seeds"),
                },
            ));
            page.table(t);
            let adam_stuck = stuck(Kind::Plain, adam);
            let rescued: Vec<usize> = plain_stuck
                .iter()
                .copied()
                .filter(|d| !adam_stuck.contains(d))
                .collect();
            page.prose(format!(
                "Degradation is a statement about an optimiser and a budget, not a hard limit. \
                 {}{} The residual network trains with either; plain SGD is enough for it.",
                if rescued.is_empty() {
                    "Adam does not rescue the plain networks that SGD left at chance.".to_string()
                } else {
                    format!(
                        "Adam fits the plain network of depth {} that SGD left at chance.",
                        list(&rescued)
                    )
                },
                if adam_stuck.is_empty() {
                    String::new()
                } else {
                    format!(
                        " At depth {} even Adam leaves the plain network at the chance level \
                         within {} steps.",
                        list(&adam_stuck),
                        c.steps
                    )
                },
            ));
        }
        page.figure(self.figure());
        page
    }

    /// The loss curves of the first seed under the main optimiser (and the contrast).
    pub fn figure(&self) -> Figure {
        let c = &self.config;
        let seed = c.seeds.first().copied().unwrap_or(0);
        let optimizers: Vec<OptimizerKind> =
            std::iter::once(c.optimizer).chain(c.contrast).collect();
        let panels = optimizers
            .iter()
            .map(|&opt| {
                let mut panel = Panel::new(
                    format!("training loss, {}", opt.describe()),
                    "step",
                    "cross-entropy",
                )
                .log_y();
                for kind in Kind::ALL {
                    for (k, &depth) in c.depths.iter().enumerate() {
                        if let Some(r) = self
                            .runs_of(kind, depth, opt)
                            .into_iter()
                            .find(|r| r.seed == seed)
                        {
                            let series =
                                Series::line(format!("{} {depth}", kind.name()), r.run.curve(), k);
                            panel = panel.with(match kind {
                                Kind::Plain => series.styled(Style::Dashed),
                                Kind::Residual => series,
                            });
                        }
                    }
                }
                panel
            })
            .collect();
        Figure::grid(
            "05_degradation",
            "Training loss of plain (dashed) and residual (solid) networks by depth, seed 0 \
             (log scale)",
            2,
            panels,
        )
    }
}
