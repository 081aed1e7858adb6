//! Chapter 2 — Why depth is hard.
//!
//! Plain deep networks `hᵢ = Fᵢ(hᵢ₋₁)` at initialisation: the gradient norm ‖∂L/∂θᵢ‖ of
//! each layer, for depths 10, 50 and 100, three activations, and the notebook's remedies
//! — a non-saturating activation, scaled initialisation, normalisation — side by side.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Legend, Panel, Series};
use super::training::{self, GradientProfile, gradient_profile};
use super::{Chapter, Progress};
use autograd::seeded_rng;
use nn::data::two_spirals;
use nn::{Activation, Init, MlpConfig, Normalization};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 2,
    slug: "02_depth",
    title: "Why depth is hard",
    source: source!("ch02_depth.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Numbers of hidden layers compared.
    pub depths: Vec<usize>,
    /// Width of every hidden layer.
    pub width: usize,
    /// Points per class of the two-spirals batch the gradient is taken on.
    pub points_per_class: usize,
    /// Standard deviation of the naive initialisation N(0, σ²).
    pub naive_std: f64,
    /// Seed of the weights.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            depths: vec![10, 50, 100],
            width: 32,
            points_per_class: 128,
            naive_std: 1.0,
            seed: 2,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            depths: vec![5, 30],
            width: 16,
            points_per_class: 32,
            ..Self::full()
        }
    }
}

/// How a network starts: the remedies of the notebook, cumulatively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Weights from N(0, σ²) with a fixed σ, whatever the width.
    Naive,
    /// Xavier initialisation for sigmoid and tanh, He for ReLU.
    Scaled,
    /// Scaled initialisation and batch norm before every activation.
    ScaledAndNormalized,
}

impl Remedy {
    /// All three, in order.
    pub const ALL: [Remedy; 3] = [Remedy::Naive, Remedy::Scaled, Remedy::ScaledAndNormalized];

    /// A short description.
    pub fn describe(&self, naive_std: f64) -> String {
        match self {
            Remedy::Naive => format!("naive N(0, {})", naive_std * naive_std),
            Remedy::Scaled => "Xavier / He".to_string(),
            Remedy::ScaledAndNormalized => "Xavier / He + batch norm".to_string(),
        }
    }
}

/// The activations compared.
pub const ACTIVATIONS: [Activation; 3] = [Activation::Sigmoid, Activation::Tanh, Activation::Relu];

/// The gradient profile of one network.
#[derive(Clone, Debug)]
pub struct DepthRun {
    /// Activation of every hidden layer.
    pub activation: Activation,
    /// How it was initialised.
    pub remedy: Remedy,
    /// Number of hidden layers.
    pub depth: usize,
    /// What was measured.
    pub profile: GradientProfile,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct DepthChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// One run per activation × remedy × depth.
    pub runs: Vec<DepthRun>,
}

/// The recipe of one plain network.
pub fn plain_config(
    config: &Config,
    activation: Activation,
    remedy: Remedy,
    depth: usize,
) -> MlpConfig {
    // cell: recipe
    let scaled = match activation {
        Activation::Relu => Init::he(),
        other => Init::xavier(other.name()),
    };
    let base = MlpConfig::plain(2, config.width, 2, depth).activation(activation);
    match remedy {
        Remedy::Naive => base.init(Init::Normal {
            std: config.naive_std,
        }),
        Remedy::Scaled => base.init(scaled),
        Remedy::ScaledAndNormalized => base.init(scaled).norm(Normalization::Batch),
    }
    // end cell
}

/// Builds every network and measures its gradients at initialisation.
pub fn run(config: &Config, progress: &Progress) -> DepthChapter {
    let data = two_spirals::<f64>(config.points_per_class, 0.0, config.seed);
    let mut runs = Vec::new();
    // cell: sweep
    for activation in ACTIVATIONS {
        for remedy in Remedy::ALL {
            for &depth in &config.depths {
                let recipe = plain_config(config, activation, remedy, depth);
                let net = recipe.build::<f64>(&mut seeded_rng(config.seed));
                let profile = gradient_profile(&net, &data);
                runs.push(DepthRun {
                    activation,
                    remedy,
                    depth,
                    profile,
                });
            }
        }
        progress.tick(|| format!("{} done", activation.name()));
    }
    // end cell
    DepthChapter {
        config: config.clone(),
        runs,
    }
}

impl DepthChapter {
    /// The run of one activation, remedy and depth.
    ///
    /// # Panics
    /// If that combination was not run.
    pub fn get(&self, activation: Activation, remedy: Remedy, depth: usize) -> &DepthRun {
        self.runs
            .iter()
            .find(|r| r.activation == activation && r.remedy == remedy && r.depth == depth)
            .unwrap_or_else(|| panic!("no run for {activation:?}, {remedy:?}, depth {depth}"))
    }

    /// The deepest network of the configuration.
    pub fn deepest(&self) -> usize {
        self.config.depths.iter().copied().max().unwrap_or(0)
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let deepest = self.deepest();
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "none yet — plain networks hᵢ = σ(Wᵢ·hᵢ₋₁ + bᵢ), the baseline every later chapter \
             compares residual blocks against.",
        );
        page.prose(format!(
            "A plain network is a chain hᵢ = Fᵢ(hᵢ₋₁; θᵢ), and the gradient for θ₁ is a product \
             of one Jacobian ∂hᵢ/∂hᵢ₋₁ per layer above it (the notebook's first formula). \
             Whether that product shrinks or grows with depth is decided at initialisation. \
             Every network below maps the {} points of the two-spirals set (two interleaved \
             spirals in the plane, one class each) through an input layer, N hidden layers of \
             width {} and an output layer. A network is one `MlpConfig`; the three starts are \
             the notebook's remedies, cumulatively:",
            2 * c.points_per_class,
            c.width
        ));
        page.cell("recipe");
        page.prose(
            "One backward pass of the cross-entropy at initialisation, and ‖∂L/∂θᵢ‖ for each \
             hidden layer i (weights and bias together):",
        );
        page.cell_from(training::SOURCE, "gradient_profile");
        page.prose("For every activation, start and depth:");
        page.cell("sweep");
        let mut header = vec!["activation".to_string(), "initialisation".to_string()];
        header.extend(c.depths.iter().map(|d| format!("first/last, N = {d}")));
        header.push(format!("‖∂L/∂θ₁‖, N = {deepest}"));
        header.push(format!("rms of h_{deepest}"));
        let mut table = Table::new(header);
        for activation in ACTIVATIONS {
            for remedy in Remedy::ALL {
                let mut row = vec![activation.name().to_string(), remedy.describe(c.naive_std)];
                row.extend(
                    c.depths.iter().map(|&d| {
                        sig(self.get(activation, remedy, d).profile.first_over_last(), 2)
                    }),
                );
                let deep = &self.get(activation, remedy, deepest).profile;
                row.push(sig(deep.unit_grad_norms[0], 2));
                row.push(sig(*deep.state_rms.last().unwrap_or(&f64::NAN), 2));
                table.row(row);
            }
        }
        page.prose(
            "The table gives ‖∂L/∂θ₁‖ / ‖∂L/∂θ_N‖, the first hidden layer's gradient over the \
             last one's: far below 1 the gradient vanishes on its way to the input, far above 1 \
             it explodes. The last columns give the deepest network's first-layer gradient and \
             the scale (root mean square) of its last hidden representation.",
        );
        page.table(table);
        let ratio = |a, r| self.get(a, r, deepest).profile.first_over_last();
        let relu_naive = self.get(Activation::Relu, Remedy::Naive, deepest);
        let relu_he = self.get(Activation::Relu, Remedy::Scaled, deepest);
        page.prose(format!(
            "At depth {deepest}, sigmoid with Xavier initialisation delivers {} of the last \
             layer's gradient to the first — its derivative is at most ¼, so every layer shrinks \
             the gradient; from the naive start it vanishes too ({}). ReLU with the naive \
             N(0, {}) start explodes in the forward pass instead: each layer multiplies the \
             signal by about σ·√(width/2) = {}, the last hidden layer has an rms of {}, and the \
             gradients are as large (‖∂L/∂θ₁‖ = {}). He initialisation is the cure for ReLU: the signal keeps its \
             scale (rms {}) and the per-layer gradients stay within a factor {} of each other.",
            sig(ratio(Activation::Sigmoid, Remedy::Scaled), 2),
            sig(ratio(Activation::Sigmoid, Remedy::Naive), 2),
            c.naive_std * c.naive_std,
            sig(c.naive_std * (c.width as f64 / 2.0).sqrt(), 2),
            sig(*relu_naive.profile.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(relu_naive.profile.unit_grad_norms[0], 2),
            sig(*relu_he.profile.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(relu_he.profile.spread(), 2),
        ));
        page.prose(format!(
            "Batch norm before each activation holds the forward signal at a fixed scale at \
             every depth and undoes sigmoid's vanishing — but in a deep *plain* network it makes \
             the gradient grow towards the input instead: at depth {deepest} the first layer's \
             gradient is {}× the last one's with sigmoid and {}× with ReLU. This is the gradient \
             explosion of deep batch-normalised networks at initialisation (Yang et al., 2019, \
             \"A mean field theory of batch normalization\"): normalisation fixes the forward \
             pass, not the product of Jacobians. Each remedy helps one activation at one depth; \
             none makes a 100-layer chain easy. The fourth remedy, the residual connection, \
             changes the product itself (chapter 4).",
            sig(ratio(Activation::Sigmoid, Remedy::ScaledAndNormalized), 2),
            sig(ratio(Activation::Relu, Remedy::ScaledAndNormalized), 2),
        ));
        page.figure(self.figure());
        let sigmoid = ratio(Activation::Sigmoid, Remedy::Scaled);
        page.claim(
            "In deep plain networks the gradients of early layers vanish: they are products of \
             many Jacobians",
            format!(
                "sigmoid, Xavier, depth {deepest}: ‖∂L/∂θ₁‖/‖∂L/∂θ_N‖ = {}",
                sig(sigmoid, 2)
            ),
            if sigmoid < 1e-6 {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        let relu_he = ratio(Activation::Relu, Remedy::Scaled);
        let relu_bn = ratio(Activation::Relu, Remedy::ScaledAndNormalized);
        page.claim(
            "Non-saturating activations, scaled initialisation and normalisation reduce the \
             risk of vanishing gradients",
            format!(
                "depth {deepest}: ReLU + He first/last = {}; ReLU + He + batch norm = {} \
                 (explodes instead)",
                sig(relu_he, 2),
                sig(relu_bn, 2)
            ),
            Verdict::Depends,
        );
        page.takeaways([
            format!(
                "In a plain chain the first layer's gradient is a product of one Jacobian per \
                 layer: with sigmoid at depth {deepest} it arrives {} times smaller than the \
                 last layer's.",
                sig(sigmoid, 2)
            ),
            "He initialisation keeps a ReLU chain even at the start; batch norm fixes the \
             forward signal but makes a deep plain chain's gradient explode."
                .to_string(),
            "No remedy of the three makes a 100-layer plain chain easy; the residual \
             connection changes the product itself (chapter 4)."
                .to_string(),
        ]);
        page
    }

    /// Gradient norm against layer index: one panel per activation and remedy, one line
    /// per depth.
    pub fn figure(&self) -> Figure {
        let c = &self.config;
        let mut panels = Vec::new();
        for activation in ACTIVATIONS {
            for remedy in Remedy::ALL {
                let mut panel = Panel::new(
                    format!("{}, {}", activation.name(), remedy.describe(c.naive_std)),
                    "hidden layer i",
                    "‖∂L/∂θᵢ‖",
                )
                .log_y();
                for (k, &depth) in c.depths.iter().enumerate() {
                    let run = self.get(activation, remedy, depth);
                    let points = run
                        .profile
                        .unit_grad_norms
                        .iter()
                        .enumerate()
                        .map(|(i, &g)| ((i + 1) as f64, g))
                        .collect();
                    panel = panel.with(Series::line(format!("depth {depth}"), points, k));
                }
                if remedy != Remedy::ScaledAndNormalized {
                    panel = panel.legend(Legend::Hidden);
                }
                panels.push(panel);
            }
        }
        Figure::grid(
            "02_gradient_norms_plain",
            "Plain networks at initialisation: gradient norm per layer (log scale); rows: \
             sigmoid, tanh, ReLU; columns: naive, Xavier/He, Xavier/He + batch norm",
            3,
            panels,
        )
    }
}
