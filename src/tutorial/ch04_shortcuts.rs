//! Chapter 4 — Gradient flow with shortcuts.
//!
//! Chapter 2's measurement, repeated on residual networks of the *same* depths: the plain
//! chain, the notebook's block σ(F(h) + h), and the identity-skip block h + F(h) (activation
//! inside the branch, nothing on the skip), with sigmoid and tanh. Then the shortcut scaled,
//! λ·h + F(h), whose gradient ratio follows λ^L; and the ReLU networks of the later chapters,
//! whose forward signal needs a scaled branch.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Legend, Panel, Series, Style};
use super::training::{GradientProfile, gradient_profile};
use super::{Chapter, Progress, ch02_depth};
use autograd::rand::Rng;
use autograd::{Tape, Var, seeded_rng};
use nn::data::{Dataset, two_spirals};
use nn::loss::cross_entropy;
use nn::{Activation, Ctx, Init, Linear, MlpConfig, Module, Normalization};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 4,
    slug: "04_shortcuts",
    title: "Gradient flow with shortcuts",
    source: source!("ch04_shortcuts.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Depths of the plain/residual comparison (layers, or blocks).
    pub depths: Vec<usize>,
    /// Depths of the shortcut-scale experiment.
    pub lambda_depths: Vec<usize>,
    /// The shortcut scales λ.
    pub lambdas: Vec<f64>,
    /// Width of every hidden unit (chapter 2's).
    pub width: usize,
    /// Points per class of the two-spirals batch (chapter 2's).
    pub points_per_class: usize,
    /// Seed of the weights (chapter 2's).
    pub seed: u64,
}

impl Config {
    /// The tour's sizes: chapter 2's width, batch and seed.
    pub fn full() -> Self {
        let ch2 = ch02_depth::Config::full();
        Config {
            depths: vec![50, 100],
            lambda_depths: vec![10, 25, 50, 100],
            lambdas: vec![0.5, 1.0, 1.5],
            width: ch2.width,
            points_per_class: ch2.points_per_class,
            seed: ch2.seed,
        }
    }

    /// The tests' sizes: the same depths, a smaller batch and width.
    pub fn smoke() -> Self {
        let ch2 = ch02_depth::Config::smoke();
        Config {
            lambda_depths: vec![10, 50],
            width: ch2.width,
            points_per_class: ch2.points_per_class,
            ..Self::full()
        }
    }
}

/// How a unit of depth is wired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Form {
    /// A plain layer σ(W·h + b).
    Plain,
    /// The notebook's block σ(F(h) + h): the activation after the sum.
    PostSum,
    /// The identity-skip block h + F(h): the activation inside the branch only.
    IdentitySkip,
    /// λ·h + F(h): the skip scaled by λ.
    ScaledSkip(f64),
}

impl Form {
    /// A short description.
    pub fn describe(&self) -> String {
        match self {
            Form::Plain => "plain σ(W·h + b)".to_string(),
            Form::PostSum => "notebook σ(F(h) + h)".to_string(),
            Form::IdentitySkip => "identity skip h + F(h)".to_string(),
            Form::ScaledSkip(l) => format!("{l}·h + F(h)"),
        }
    }
}

/// The factor on each residual branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchScale {
    /// F as initialised.
    One,
    /// F/√L for L blocks: a small branch, so that each block starts close to its skip.
    InvSqrtDepth,
}

impl BranchScale {
    /// The factor at `depth` blocks.
    pub fn at(&self, depth: usize) -> f64 {
        match self {
            BranchScale::One => 1.0,
            BranchScale::InvSqrtDepth => 1.0 / (depth as f64).sqrt(),
        }
    }
}

/// The networks of the plain/residual comparison: a form and its branch scale.
pub const HIGHWAY: [(Form, BranchScale); 4] = [
    (Form::Plain, BranchScale::One),
    (Form::PostSum, BranchScale::InvSqrtDepth),
    (Form::IdentitySkip, BranchScale::InvSqrtDepth),
    (Form::IdentitySkip, BranchScale::One),
];

/// "identity skip h + F(h), F/√L".
pub fn describe(form: Form, scale: BranchScale) -> String {
    match (form, scale) {
        (Form::Plain, _) => form.describe(),
        (_, BranchScale::One) => format!("{}, F as initialised", form.describe()),
        (_, BranchScale::InvSqrtDepth) => format!("{}, F/√L", form.describe()),
    }
}

/// One unit of depth: a plain layer uses `linear1` only, a block F = linear2 ∘ σ ∘ linear1.
pub struct Unit {
    /// The first (or only) layer.
    pub linear1: Linear<f64>,
    /// The branch's second layer.
    pub linear2: Linear<f64>,
}

/// A network: input layer, `units`, output layer, all units of one form.
pub struct Net {
    /// `2 → width`.
    pub input: Linear<f64>,
    /// The units, first applied first.
    pub units: Vec<Unit>,
    /// `width → 2`.
    pub output: Linear<f64>,
    /// How each unit is wired.
    pub form: Form,
    /// σ.
    pub activation: Activation,
    /// The factor on each branch F (1 unless the experiment says otherwise).
    pub branch_scale: f64,
}

impl Net {
    /// A network of `depth` units, every layer drawn with `init`.
    pub fn new(
        form: Form,
        activation: Activation,
        init: Init,
        width: usize,
        depth: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let mut layer = |i, o| Linear::with_init(i, o, true, init, rng);
        Net {
            input: layer(2, width),
            units: (0..depth)
                .map(|_| Unit {
                    linear1: layer(width, width),
                    linear2: layer(width, width),
                })
                .collect(),
            output: layer(width, 2),
            form,
            activation,
            branch_scale: 1.0,
        }
    }

    /// One unit's forward pass.
    pub fn unit<'t>(&self, unit: &Unit, cx: &Ctx<'t, f64>, h: &Var<'t, f64>) -> Var<'t, f64> {
        let sigma = self.activation;
        // cell: forms
        // F(h) = W₂·σ(W₁·h + b₁) + b₂, times the branch scale
        let f = |h: &Var<'t, f64>| {
            let inner = sigma.apply(&unit.linear1.forward(cx, h));
            unit.linear2.forward(cx, &inner) * self.branch_scale
        };
        match self.form {
            Form::Plain => sigma.apply(&unit.linear1.forward(cx, h)), // σ(W·h + b)
            Form::PostSum => sigma.apply(&(&f(h) + h)), // σ(F(h) + h): σ' on the skip too
            Form::IdentitySkip => &f(h) + h,            // h + F(h): nothing on the skip
            Form::ScaledSkip(lambda) => &f(h) + &(h * lambda), // λ·h + F(h)
        }
        // end cell
    }

    /// The forward pass, with the representations h₀ (after the input layer) … h_L.
    pub fn forward_with_states<'t>(
        &self,
        cx: &Ctx<'t, f64>,
        x: &Var<'t, f64>,
    ) -> (Var<'t, f64>, Vec<Var<'t, f64>>) {
        let mut states = vec![self.input.forward(cx, x)];
        for unit in &self.units {
            let next = self.unit(unit, cx, &states[states.len() - 1]);
            states.push(next);
        }
        (self.output.forward(cx, &states[states.len() - 1]), states)
    }

    /// The parameters of unit `i` that its form uses.
    fn unit_parameters(&self, i: usize) -> Vec<nn::Param<f64>> {
        let u = &self.units[i];
        let mut v = u.linear1.parameters();
        if self.form != Form::Plain {
            v.extend(u.linear2.parameters());
        }
        v
    }
}

/// What one backward pass shows about a network.
#[derive(Clone, Debug)]
pub struct Flow {
    /// ‖∂L/∂θᵢ‖ for each unit i.
    pub unit_grads: Vec<f64>,
    /// ‖∂L/∂hᵢ‖ for h₀ … h_L.
    pub state_grads: Vec<f64>,
    /// Root mean square of h_L.
    pub last_rms: f64,
}

impl Flow {
    /// ‖∂L/∂θ₁‖ / ‖∂L/∂θ_L‖: the first unit's gradient over the last one's.
    pub fn first_over_last(&self) -> f64 {
        match (self.unit_grads.first(), self.unit_grads.last()) {
            (Some(a), Some(b)) => a / b,
            _ => f64::NAN,
        }
    }

    /// ‖∂L/∂h₀‖ / ‖∂L/∂h_L‖: how much the gradient grows (> 1) or shrinks on its way from
    /// the last unit's output down to the first unit's input.
    pub fn through_depth(&self) -> f64 {
        match (self.state_grads.first(), self.state_grads.last()) {
            (Some(a), Some(b)) => a / b,
            _ => f64::NAN,
        }
    }
}

/// One training-mode forward and backward pass at initialisation.
pub fn flow(net: &Net, data: &Dataset<f64>) -> Flow {
    // cell: measure
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let (logits, states) = net.forward_with_states(&cx, &cx.input(data.x.clone()));
    let grads = cross_entropy(&logits, &data.labels).backward();
    let params = cx.param_grads(&grads);
    let norm = |ps: Vec<nn::Param<f64>>| {
        ps.iter()
            .map(|p| params.wrt(p).norm().powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let unit_grads: Vec<f64> = (0..net.units.len())
        .map(|i| norm(net.unit_parameters(i)))
        .collect();
    let state_grads: Vec<f64> = states.iter().map(|h| grads.wrt(h).norm()).collect();
    // end cell
    let last = states[states.len() - 1].value();
    let last_rms =
        (last.data().iter().map(|v| v * v).sum::<f64>() / last.numel().max(1) as f64).sqrt();
    Flow {
        unit_grads,
        state_grads,
        last_rms,
    }
}

/// One network of the plain/residual comparison.
#[derive(Clone, Debug)]
pub struct HighwayRun {
    /// The activation.
    pub activation: Activation,
    /// The wiring.
    pub form: Form,
    /// The branch scale (residual forms).
    pub scale: BranchScale,
    /// Layers (plain) or blocks.
    pub depth: usize,
    /// What was measured.
    pub flow: Flow,
}

/// One network of the shortcut-scale experiment.
#[derive(Clone, Debug)]
pub struct LambdaRun {
    /// The skip's scale.
    pub lambda: f64,
    /// Number of blocks.
    pub depth: usize,
    /// ‖∂L/∂h₀‖ / ‖∂L/∂h_L‖.
    pub ratio: f64,
}

impl LambdaRun {
    /// λ^L, the ratio if the branches contributed nothing.
    pub fn predicted(&self) -> f64 {
        self.lambda.powi(self.depth as i32)
    }
}

/// How the ReLU residual networks of the later chapters start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The notebook's block as it is: He initialisation, branch scale 1.
    Notebook,
    /// The branch scaled by 1/√L.
    ScaledBranch,
    /// The branch's last layer initialised to zero.
    ZeroInitLast,
    /// Batch norm after each of the branch's layers.
    BatchNormInBranch,
}

impl Start {
    /// Every start.
    pub const ALL: [Start; 4] = [
        Start::Notebook,
        Start::ScaledBranch,
        Start::ZeroInitLast,
        Start::BatchNormInBranch,
    ];

    /// A short description.
    pub fn describe(&self) -> &'static str {
        match self {
            Start::Notebook => "notebook block as it is (s = 1)",
            Start::ScaledBranch => "branch scaled by s = 1/√L",
            Start::ZeroInitLast => "last branch layer zero",
            Start::BatchNormInBranch => "batch norm in the branch",
        }
    }

    /// The network's recipe at `depth` blocks: ReLU(s·F(h) + h), He initialisation.
    pub fn recipe(&self, width: usize, depth: usize) -> MlpConfig {
        // cell: starts
        let notebook = MlpConfig::residual(2, width, 2, depth)
            .activation(Activation::Relu)
            .init(Init::he());
        match self {
            Start::Notebook => notebook,
            Start::ScaledBranch => notebook.branch_scale(Some(1.0 / (depth as f64).sqrt())),
            Start::ZeroInitLast => notebook.zero_init_last(true),
            Start::BatchNormInBranch => notebook.norm(Normalization::Batch),
        }
        // end cell
    }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct ShortcutChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The plain/residual comparison.
    pub highway: Vec<HighwayRun>,
    /// The shortcut-scale experiment.
    pub lambdas: Vec<LambdaRun>,
    /// The ReLU starts at the deepest depth.
    pub starts: Vec<(Start, GradientProfile)>,
}

/// Runs every measurement.
pub fn run(config: &Config, progress: &Progress) -> ShortcutChapter {
    let data = two_spirals::<f64>(config.points_per_class, 0.0, config.seed);
    let (width, seed) = (config.width, config.seed);
    let mut highway = Vec::new();
    // cell: highway
    for activation in [Activation::Sigmoid, Activation::Tanh] {
        let init = Init::xavier(activation.name());
        for (form, scale) in HIGHWAY {
            for &depth in &config.depths {
                let mut net = Net::new(form, activation, init, width, depth, &mut seeded_rng(seed));
                net.branch_scale = scale.at(depth);
                highway.push(HighwayRun {
                    activation,
                    form,
                    scale,
                    depth,
                    flow: flow(&net, &data),
                });
            }
        }
    }
    // end cell
    progress.tick(|| "plain and residual networks measured".to_string());
    let mut lambdas = Vec::new();
    // cell: lambda
    for &lambda in &config.lambdas {
        for &depth in &config.lambda_depths {
            let form = Form::ScaledSkip(lambda);
            let mut net = Net::new(
                form,
                Activation::Relu,
                Init::he(),
                width,
                depth,
                &mut seeded_rng(seed),
            );
            net.branch_scale = 1.0 / (depth as f64).sqrt(); // a small branch: the skip dominates
            let ratio = flow(&net, &data).through_depth();
            lambdas.push(LambdaRun {
                lambda,
                depth,
                ratio,
            });
        }
    }
    // end cell
    let deepest = config.depths.iter().copied().max().unwrap_or(1);
    let starts = Start::ALL
        .iter()
        .map(|&start| {
            let net = start
                .recipe(width, deepest)
                .build::<f64>(&mut seeded_rng(seed));
            (start, gradient_profile(&net, &data))
        })
        .collect();
    ShortcutChapter {
        config: config.clone(),
        highway,
        lambdas,
        starts,
    }
}

impl ShortcutChapter {
    /// The run of one activation, form and depth.
    ///
    /// # Panics
    /// If that combination was not run.
    pub fn get(
        &self,
        activation: Activation,
        form: Form,
        scale: BranchScale,
        depth: usize,
    ) -> &HighwayRun {
        self.highway
            .iter()
            .find(|r| {
                r.activation == activation && r.form == form && r.scale == scale && r.depth == depth
            })
            .unwrap_or_else(|| {
                panic!("no run for {activation:?}, {form:?}, {scale:?}, depth {depth}")
            })
    }

    /// The profile of one ReLU start.
    ///
    /// # Panics
    /// If that start was not run.
    pub fn start(&self, start: Start) -> &GradientProfile {
        &self
            .starts
            .iter()
            .find(|(s, _)| *s == start)
            .unwrap_or_else(|| panic!("no run for {start:?}"))
            .1
    }

    /// The deepest network of the comparison.
    pub fn deepest(&self) -> usize {
        self.config.depths.iter().copied().max().unwrap_or(0)
    }

    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let deep = self.deepest();
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "three, compared: the notebook's σ(F(h) + h), the identity-skip h + F(h) of \
             pre-activation ResNets (activation inside the branch), and λ·h + F(h). Where the \
             activation sits decides whether the skip is a highway.",
        );
        page.prose(format!(
            "With a shortcut, a block's Jacobian is ∂H/∂h = ∂F/∂h + I (the notebook's backward \
             formula): the identity term should keep the product of Jacobians from collapsing. \
             We repeat chapter 2's measurement on networks of the *same* depths — {} layers for \
             the plain chain, {} blocks for the residual ones (each with two linear layers) — \
             on the same {} points, width {}, Xavier initialisation. One unit of depth, in each \
             form:",
            join(&c.depths),
            join(&c.depths),
            2 * c.points_per_class,
            c.width
        ));
        page.cell("forms");
        page.prose(
            "One backward pass of the cross-entropy at initialisation; ‖∂L/∂θᵢ‖ for every unit \
             and ‖∂L/∂hᵢ‖ for every representation:",
        );
        page.cell("measure");
        page.cell("highway");
        let mut t = Table::new(
            std::iter::once("activation, network".to_string())
                .chain(
                    c.depths
                        .iter()
                        .map(|d| format!("‖∂L/∂θ₁‖/‖∂L/∂θ_L‖, depth {d}")),
                )
                .chain([format!("‖∂L/∂h₀‖/‖∂L/∂h_L‖, depth {deep}")]),
        );
        for activation in [Activation::Sigmoid, Activation::Tanh] {
            for (form, scale) in HIGHWAY {
                let mut row = vec![format!("{}, {}", activation.name(), describe(form, scale))];
                row.extend(c.depths.iter().map(|&d| {
                    sig(
                        self.get(activation, form, scale, d).flow.first_over_last(),
                        2,
                    )
                }));
                row.push(sig(
                    self.get(activation, form, scale, deep).flow.through_depth(),
                    2,
                ));
                t.row(row);
            }
        }
        page.prose(
            "The first columns compare the first unit's parameter gradient with the last \
             one's, as in chapter 2; the last one the gradient at the first unit's input with \
             the gradient at the last unit's output — the product of Jacobians alone.",
        );
        page.table(t);
        let ratio = |a, f, s| self.get(a, f, s, deep).flow.first_over_last();
        use BranchScale::{InvSqrtDepth as Small, One};
        let (plain_s, post_s, skip_s, skip_s1) = (
            ratio(Activation::Sigmoid, Form::Plain, One),
            ratio(Activation::Sigmoid, Form::PostSum, Small),
            ratio(Activation::Sigmoid, Form::IdentitySkip, Small),
            ratio(Activation::Sigmoid, Form::IdentitySkip, One),
        );
        let (plain_t, post_t, skip_t, skip_t1) = (
            ratio(Activation::Tanh, Form::Plain, One),
            ratio(Activation::Tanh, Form::PostSum, Small),
            ratio(Activation::Tanh, Form::IdentitySkip, Small),
            ratio(Activation::Tanh, Form::IdentitySkip, One),
        );
        page.prose(format!(
            "Sigmoid, depth {deep}: the plain chain delivers {} of the last layer's gradient to \
             the first — {}. The notebook's block does not rescue it: with σ after the sum, each \
             block's Jacobian is σ'(F + h)·(∂F/∂h + I), and sigmoid's σ' ≤ ¼ multiplies the \
             skip path as much as the branch: {} ({}). Move the activation into the branch, \
             h + F(h), and nothing multiplies the skip: {} ({}), and {} with the branch as \
             initialised. The highway works only if nothing sits on it.",
            sig(plain_s, 2),
            verdict_of(plain_s),
            sig(post_s, 2),
            verdict_of(post_s),
            sig(skip_s, 2),
            verdict_of(skip_s),
            sig(skip_s1, 2),
        ));
        page.prose(format!(
            "Tanh is gentler: tanh'(0) = 1, and Xavier's gain of 5/3 for tanh keeps the forward \
             signal alive, so the plain chain's ratio is {} ({}). With σ after the sum: {} ({}) — \
             tanh' is close to 1 near zero, so σ on the skip costs far less than sigmoid's ¼. \
             The identity skip with a small branch: {} ({}). With the branch as initialised, the \
             identity skip gives {}: each block's Jacobian I + ∂F/∂h then has a sizeable second \
             term, and the product grows with depth — the reason for the small branch.",
            sig(plain_t, 2),
            verdict_of(plain_t),
            sig(post_t, 2),
            verdict_of(post_t),
            sig(skip_t, 2),
            verdict_of(skip_t),
            sig(skip_t1, 2),
        ));
        page.figure(self.highway_figure());

        page.heading("A scaled shortcut: the gradient follows λ^L");
        page.prose(
            "If the identity term is what carries the gradient, scaling it should show up \
             directly: with H(h) = λ·h + F(h) and a small branch, the Jacobian product over L \
             blocks is close to λ^L. ReLU branches (He initialisation) scaled by 1/√L so that \
             the skip dominates; we measure ‖∂L/∂h₀‖ / ‖∂L/∂h_L‖, the gradient at the first \
             block's input over the gradient at the last block's output:",
        );
        page.cell("lambda");
        let mut t = Table::new(["λ", "blocks L", "measured ratio", "λ^L", "measured ÷ λ^L"]);
        for r in &self.lambdas {
            t.row([
                sig(r.lambda, 2),
                r.depth.to_string(),
                sig(r.ratio, 3),
                sig(r.predicted(), 3),
                sig(r.ratio / r.predicted(), 3),
            ]);
        }
        page.table(t);
        let worst = self
            .lambdas
            .iter()
            .map(|r| (r.ratio / r.predicted()).log10().abs())
            .fold(0.0, f64::max);
        let deepest_lambda = self.config.lambda_depths.iter().copied().max().unwrap_or(0);
        let at = |l: f64| {
            self.lambdas
                .iter()
                .find(|r| r.lambda == l && r.depth == deepest_lambda)
                .map_or(f64::NAN, |r| r.ratio)
        };
        page.prose(format!(
            "Across λ and depth the measured ratio stays within a factor {} of λ^L, while λ^L \
             itself spans {} decades: at {deepest_lambda} blocks, {} for λ = 0.5, {} for λ = 1 \
             and {} for λ = 1.5. Any factor on the skip other than 1 compounds over depth; the \
             identity is the one scale that neither vanishes nor explodes.",
            sig(10f64.powf(worst), 2),
            sig(
                self.lambdas
                    .iter()
                    .map(|r| r.predicted().log10())
                    .fold(f64::NEG_INFINITY, f64::max)
                    - self
                        .lambdas
                        .iter()
                        .map(|r| r.predicted().log10())
                        .fold(f64::INFINITY, f64::min),
                2
            ),
            sig(at(0.5), 2),
            sig(at(1.0), 2),
            sig(at(1.5), 2),
        ));
        page.figure(self.lambda_figure());

        page.heading("ReLU networks: the highway works, the signal needs a scale");
        page.prose(format!(
            "The later chapters use ReLU, whose derivative is 1 wherever a unit is active: the \
             notebook's ReLU after the sum masks the skip path but does not shrink it. Their \
             problem is the forward signal. Stacked as it is (He initialisation, branch scale \
             1), each block adds a branch output about as large as its input, and the variance \
             grows by a constant factor per block. The standard starts make each block begin \
             close to the identity; all four at {deep} blocks of width {}:",
            c.width
        ));
        page.cell("starts");
        let mut t = Table::new([
            "start",
            "signal variance growth per block",
            "rms of h_L",
            "max/min ‖∂L/∂θᵢ‖",
        ]);
        for (start, p) in &self.starts {
            t.row([
                start.describe().to_string(),
                format!("×{}", sig(p.variance_growth(), 3)),
                sig(*p.state_rms.last().unwrap_or(&f64::NAN), 2),
                sig(p.spread(), 2),
            ]);
        }
        page.table(t);
        let notebook = self.start(Start::Notebook);
        let scaled = self.start(Start::ScaledBranch);
        page.prose(format!(
            "The notebook's block as it is grows the signal ×{} per block, to an rms of {} at \
             block {deep}. With the branch scaled by 1/√L the signal keeps an rms of {} and \
             the per-block gradients stay within a factor {} of each other; chapters 5, 6, 7 \
             and 9 use that block.",
            sig(notebook.variance_growth(), 3),
            sig(*notebook.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(*scaled.state_rms.last().unwrap_or(&f64::NAN), 2),
            sig(scaled.spread(), 2),
        ));
        page.claim(
            "Residual connections give gradients a direct path and so mitigate vanishing \
             gradients",
            format!(
                "depth {deep}, sigmoid: first/last = {} plain, {} with σ(F(x) + x), {} with \
                 x + F(x)",
                sig(plain_s, 2),
                sig(post_s, 2),
                sig(skip_s, 2)
            ),
            if skip_s > 1e-3 && post_s < 1e-6 {
                Verdict::Depends
            } else if skip_s > 1e-3 && post_s > 1e-3 {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "The identity term I in ∂H/∂x = ∂F/∂x + I keeps the gradient from vanishing",
            format!(
                "λ·x + F(x) at {deepest_lambda} blocks: gradient ratio {} (λ = 0.5), {} (λ = 1), {} \
                 (λ = 1.5); within ×{} of λ^L",
                sig(at(0.5), 2),
                sig(at(1.0), 2),
                sig(at(1.5), 2),
                sig(10f64.powf(worst), 2)
            ),
            if (0.1..10.0).contains(&at(1.0)) && at(0.5) < 1e-6 {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            format!(
                "At {deep} units, the plain sigmoid chain's first-layer gradient is {} of the \
                 last one's; the identity-skip network's is {}.",
                sig(plain_s, 2),
                sig(skip_s, 2)
            ),
            "The notebook's σ(F(x) + x) puts σ' on the skip path: with sigmoid or tanh the \
             gradient vanishes through it as in the plain chain. Keep the skip clean: \
             x + F(x)."
                .to_string(),
            "A skip scaled by λ multiplies the gradient by about λ per block: only λ = 1 \
             neither vanishes nor explodes."
                .to_string(),
            "With ReLU the highway holds, but the forward signal needs a small branch at the \
             start (s = 1/√L, or a zero last layer)."
                .to_string(),
        ]);
        page
    }

    /// Gradient norm per unit, sigmoid and tanh, one shared log axis.
    pub fn highway_figure(&self) -> Figure {
        let panels = [Activation::Sigmoid, Activation::Tanh]
            .iter()
            .enumerate()
            .map(|(k, &activation)| {
                let mut panel = Panel::new(
                    format!("{}, Xavier initialisation", activation.name()),
                    "layer or block i",
                    "‖∂L/∂θᵢ‖",
                )
                .log_y();
                for (color, (form, scale)) in [3, 1, 0, 2].into_iter().zip(HIGHWAY) {
                    for &depth in &self.config.depths {
                        let r = self.get(activation, form, scale, depth);
                        let points = r
                            .flow
                            .unit_grads
                            .iter()
                            .enumerate()
                            .map(|(i, &g)| ((i + 1) as f64, g))
                            .collect();
                        let deepest = depth == self.deepest();
                        let series = Series::line(
                            format!("{}, depth {depth}", describe(form, scale)),
                            points,
                            color,
                        );
                        panel = panel.with(if deepest {
                            series
                        } else {
                            series.styled(Style::Dashed)
                        });
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
            "04_highway",
            "Gradient norm per unit at initialisation, plain chain against the two residual \
             forms at the same depths (log scale, one vertical axis for both panels)",
            2,
            panels,
        )
        .share_y()
    }

    /// The measured ratio against depth for each λ, with λ^L dashed.
    pub fn lambda_figure(&self) -> Figure {
        let mut panel = Panel::new(
            "shortcut scaled by λ: H(h) = λ·h + F(h)",
            "blocks L",
            "‖∂L/∂h₀‖ / ‖∂L/∂h_L‖",
        )
        .log_y();
        for (color, &lambda) in self.config.lambdas.iter().enumerate() {
            let runs: Vec<&LambdaRun> =
                self.lambdas.iter().filter(|r| r.lambda == lambda).collect();
            panel = panel
                .with(
                    Series::line(
                        format!("measured, λ = {lambda}"),
                        runs.iter().map(|r| (r.depth as f64, r.ratio)).collect(),
                        color,
                    )
                    .styled(Style::LinePoints),
                )
                .with(
                    Series::line(
                        format!("λ^L, λ = {lambda}"),
                        runs.iter()
                            .map(|r| (r.depth as f64, r.predicted()))
                            .collect(),
                        color,
                    )
                    .styled(Style::Dashed),
                );
        }
        Figure::single(
            "04_shortcut_scale",
            "The gradient ratio through L blocks λ·h + F(h), measured (points) and λ^L (dashed), \
             log scale",
            panel,
        )
    }
}

/// "vanishes" below 1e-3, "explodes" above 1e3, "of order 1" between.
fn verdict_of(ratio: f64) -> &'static str {
    if ratio < 1e-3 {
        "it vanishes"
    } else if ratio > 1e3 {
        "it grows towards the input"
    } else {
        "of order 1"
    }
}

/// `50, 100`.
fn join(values: &[usize]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
