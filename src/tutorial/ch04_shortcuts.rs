//! Chapter 4 — Gradient flow with shortcuts.
//!
//! Chapter 2's measurement on residual networks of the same depths: the notebook's block
//! stacked as it is, and the three standard ways of making a deep stack start well.

use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::training::{GradientProfile, gradient_profile};
use super::{Chapter, Progress, ch02_depth};
use autograd::seeded_rng;
use nn::data::two_spirals;
use nn::{Activation, Init, MlpConfig, Normalization};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 4,
    slug: "04_shortcuts",
    title: "Gradient flow with shortcuts",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Numbers of residual blocks compared.
    pub depths: Vec<usize>,
    /// Width of every block.
    pub width: usize,
    /// Points per class of the two-spirals batch.
    pub points_per_class: usize,
    /// Seed of the weights.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes: chapter 2's.
    pub fn full() -> Self {
        Self::as_in_chapter_2(ch02_depth::Config::full())
    }

    /// The tests' sizes: chapter 2's.
    pub fn smoke() -> Self {
        Self::as_in_chapter_2(ch02_depth::Config::smoke())
    }

    /// The depths, width, batch and seed of chapter 2's run, so that the plain and the
    /// residual networks are measured on the same problem.
    fn as_in_chapter_2(depth: ch02_depth::Config) -> Self {
        Config {
            depths: depth.depths,
            width: depth.width,
            points_per_class: depth.points_per_class,
            seed: depth.seed,
        }
    }
}

/// How the residual blocks `σ(s·F(h) + h)` start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A plain network of the same depth and He initialisation, for reference.
    PlainHe,
    /// The notebook's block as it is: He initialisation, s = 1.
    Notebook,
    /// The branch scaled by s = 1/√L.
    ScaledBranch,
    /// The branch's last layer initialised to zero, so every block starts as σ(h).
    ZeroInitLast,
    /// Batch norm after each of the branch's layers.
    BatchNormInBranch,
}

impl Start {
    /// Every start, the plain reference first.
    pub const ALL: [Start; 5] = [
        Start::PlainHe,
        Start::Notebook,
        Start::ScaledBranch,
        Start::ZeroInitLast,
        Start::BatchNormInBranch,
    ];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Start::PlainHe => "plain, He",
            Start::Notebook => "notebook block, He, s = 1",
            Start::ScaledBranch => "branch scaled by 1/√L",
            Start::ZeroInitLast => "last branch layer zero",
            Start::BatchNormInBranch => "batch norm in the branch",
        }
    }

    /// The network's recipe at `depth` hidden units.
    pub fn recipe(&self, width: usize, depth: usize) -> MlpConfig {
        let residual = MlpConfig::residual(2, width, 2, depth)
            .activation(Activation::Relu)
            .init(Init::he());
        match self {
            Start::PlainHe => MlpConfig::plain(2, width, 2, depth)
                .activation(Activation::Relu)
                .init(Init::he()),
            Start::Notebook => residual,
            Start::ScaledBranch => residual.branch_scale(Some(1.0 / (depth as f64).sqrt())),
            Start::ZeroInitLast => residual.zero_init_last(true),
            Start::BatchNormInBranch => residual.norm(Normalization::Batch),
        }
    }
}

/// One network's gradient profile.
#[derive(Clone, Debug)]
pub struct ShortcutRun {
    /// How it started.
    pub start: Start,
    /// Number of blocks (or plain layers).
    pub depth: usize,
    /// What was measured.
    pub profile: GradientProfile,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct ShortcutChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// One run per start × depth.
    pub runs: Vec<ShortcutRun>,
}

/// Builds every network and measures its gradients at initialisation.
pub fn run(config: &Config, progress: &Progress) -> ShortcutChapter {
    let data = two_spirals::<f64>(config.points_per_class, 0.0, config.seed);
    let mut runs = Vec::new();
    for start in Start::ALL {
        for &depth in &config.depths {
            let net = start
                .recipe(config.width, depth)
                .build::<f64>(&mut seeded_rng(config.seed));
            let profile = gradient_profile(&net, &data);
            progress.tick(|| format!("{} at depth {depth}", start.describe()));
            runs.push(ShortcutRun {
                start,
                depth,
                profile,
            });
        }
    }
    ShortcutChapter {
        config: config.clone(),
        runs,
    }
}

impl ShortcutChapter {
    /// The run of one start and depth.
    ///
    /// # Panics
    /// If that combination was not run.
    pub fn get(&self, start: Start, depth: usize) -> &ShortcutRun {
        self.runs
            .iter()
            .find(|r| r.start == start && r.depth == depth)
            .unwrap_or_else(|| panic!("no run for {start:?} at depth {depth}"))
    }

    /// The deepest network of the configuration.
    pub fn deepest(&self) -> usize {
        self.config.depths.iter().copied().max().unwrap_or(0)
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let deepest = self.deepest();
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "With a shortcut, each block's Jacobian is ∂hᵢ/∂hᵢ₋₁ = σ'·(∂Fᵢ/∂hᵢ₋₁ + I): the \
             identity term keeps the product of Jacobians from collapsing. We repeat chapter 2's \
             measurement — one backward pass at initialisation, ‖∂L/∂θᵢ‖ per block, the same \
             {} points, width {} — for residual networks σ(s·F(h) + h) with F = Linear → ReLU → \
             Linear, and a plain He-initialised network of the same depth for reference.",
            2 * c.points_per_class,
            c.width
        ));
        let notebook = &self.get(Start::Notebook, deepest).profile;
        page.prose(format!(
            "First, a warning the notebook does not give. Its block stacked as it is — He \
             initialisation, s = 1, ReLU after the sum — blows up with depth: each block adds \
             a branch output of about the size of its input, so the signal's variance grows \
             by a constant factor per block (measured: ×{} per block). At {deepest} blocks the \
             last representation has an rms of {} and the first block's gradient norm is {}. Gradients do not vanish — they \
             explode. The standard cures make each block start close to the identity: scale \
             the branch by s = 1/√L (so L blocks add up to a variance of order 1), initialise \
             the branch's last layer to zero (every block starts as σ(h)), or normalise inside \
             the branch.",
            sig(notebook.variance_growth(), 3),
            sig(*notebook.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(notebook.unit_grad_norms[0], 2),
        ));
        let mut header = vec!["start".to_string()];
        for d in &c.depths {
            header.push(format!("max/min, L = {d}"));
        }
        header.push(format!("‖∂L/∂θ₁‖, L = {deepest}"));
        header.push(format!("rms of h_{deepest}"));
        let mut table = Table::new(header);
        for start in Start::ALL {
            let mut row = vec![start.describe().to_string()];
            row.extend(
                c.depths
                    .iter()
                    .map(|&d| sig(self.get(start, d).profile.spread(), 2)),
            );
            let deep = &self.get(start, deepest).profile;
            row.push(sig(deep.unit_grad_norms[0], 2));
            row.push(sig(*deep.state_rms.last().unwrap_or(&f64::NAN), 2));
            table.row(row);
        }
        page.prose(
            "\"max/min\" is the largest per-block gradient norm over the smallest: how unevenly \
             the gradient reaches the blocks.",
        );
        page.table(table);
        let scaled = &self.get(Start::ScaledBranch, deepest).profile;
        let zero = &self.get(Start::ZeroInitLast, deepest).profile;
        let bn = &self.get(Start::BatchNormInBranch, deepest).profile;
        page.prose(format!(
            "With the branch scaled by 1/√L, the per-block gradient norms at depth {deepest} \
             stay within a factor {} of each other, and the signal keeps an rms of {}: the \
             gradient reaches the first block as easily as the last. Zero-initialised branches \
             give the most even start ({}×) — at initialisation only the last layer of each \
             branch has a gradient, and all of those see the same signal. Batch norm in the \
             branch keeps the signal from exploding — each branch adds a unit-variance output, \
             so the rms grows only like √L, to {} — but reaches the blocks much less evenly \
             ({}×).",
            sig(scaled.spread(), 2),
            sig(*scaled.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(zero.spread(), 2),
            sig(*bn.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(bn.spread(), 2),
        ));
        let plain = &self.get(Start::PlainHe, deepest).profile;
        page.prose(format!(
            "The plain He-initialised network is not much less even at initialisation ({}× at \
             depth {deepest}): for ReLU, He initialisation already keeps the product of \
             Jacobians in check on average. What the shortcut changes shows once the weights \
             move away from their random start — in training, chapter 5.",
            sig(plain.spread(), 2),
        ));
        page.figure(self.figure());
        page
    }

    /// Gradient norm against block index: one panel per start, one line per depth.
    pub fn figure(&self) -> Figure {
        let panels = Start::ALL
            .iter()
            .map(|&start| {
                let mut panel =
                    Panel::new(start.describe(), "block (or layer) i", "‖∂L/∂θᵢ‖").log_y();
                for (k, &depth) in self.config.depths.iter().enumerate() {
                    let points = self
                        .get(start, depth)
                        .profile
                        .unit_grad_norms
                        .iter()
                        .enumerate()
                        .map(|(i, &g)| ((i + 1) as f64, g))
                        .collect();
                    let series = Series::line(format!("L = {depth}"), points, k);
                    panel = panel.with(if start == Start::PlainHe {
                        series.styled(Style::Dashed)
                    } else {
                        series
                    });
                }
                panel
            })
            .collect();
        Figure::grid(
            "04_gradient_norms_residual",
            "Residual networks at initialisation: gradient norm per block (log scale), the \
             plain He network for reference",
            3,
            panels,
        )
    }
}
