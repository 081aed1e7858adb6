//! Chapter 6 — The unraveled view.
//!
//! k residual blocks make 2ᵏ paths from input to output. The gradient that reaches the
//! input through paths of each length, exactly (nn::analysis); and Veit et al.'s lesion
//! study — deleting blocks from a trained residual network against deleting layers from a
//! trained plain one.

use super::ch05_degradation::{Kind, median, recipe};
use super::page::{Page, Table, sig};
use super::plot::{Figure, Panel, Series, Style};
use super::training::{Evaluation, OptimizerKind, train};
use super::{Chapter, Progress};
use autograd::rand::seq::SliceRandom;
use autograd::{Tape, seeded_rng};
use nn::analysis::path_gradients;
use nn::builder::Branch;
use nn::data::{Dataset, two_spirals};
use nn::loss::{accuracy, cross_entropy};
use nn::{Ctx, HiddenUnit, Mlp, Module, Residual};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 6,
    slug: "06_unraveled",
    title: "The unraveled view",
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of residual blocks (and of plain hidden layers).
    pub depth: usize,
    /// Width of every hidden unit.
    pub width: usize,
    /// Points per class of the training set.
    pub points_per_class: usize,
    /// Full-batch training steps.
    pub steps: usize,
    /// The optimiser (one that fits both networks, so both can be lesioned at ~0 loss).
    pub optimizer: OptimizerKind,
    /// Numbers of units deleted at once in the multi-lesion study.
    pub multi_lesions: Vec<usize>,
    /// Random draws of the deleted units per number.
    pub draws: usize,
    /// Seed of the weights and of the draws.
    pub seed: u64,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            depth: 16,
            width: 16,
            points_per_class: 256,
            steps: 500,
            optimizer: OptimizerKind::Adam { lr: 0.01 },
            multi_lesions: (0..=8).collect(),
            draws: 20,
            seed: 0,
        }
    }

    /// The tests' sizes.
    pub fn smoke() -> Self {
        Config {
            depth: 8,
            points_per_class: 64,
            steps: 200,
            multi_lesions: vec![0, 1, 2, 4],
            draws: 5,
            ..Self::full()
        }
    }
}

/// ∂L/∂h₀ split by path length, for one state of the network.
#[derive(Clone, Debug)]
pub struct PathProfile {
    /// ‖Σ over the paths of length j of their gradient‖, j = 0 … k.
    pub norms: Vec<f64>,
    /// The number of paths of each length, C(k, j).
    pub counts: Vec<f64>,
    /// ‖∂L/∂h₀‖ from an ordinary backward pass, to check the split against.
    pub total: f64,
    /// ‖Σⱼ bucketⱼ − ∂L/∂h₀‖: how exactly the buckets add up to the gradient.
    pub sum_error: f64,
}

impl PathProfile {
    /// The smallest set of the shortest lengths `0..=j` whose bucket norms make up at
    /// least `share` of the sum of all bucket norms: returns `j`.
    pub fn lengths_carrying(&self, share: f64) -> usize {
        let total: f64 = self.norms.iter().sum();
        let mut acc = 0.0;
        for (j, n) in self.norms.iter().enumerate() {
            acc += n;
            if acc >= share * total {
                return j;
            }
        }
        self.norms.len().saturating_sub(1)
    }

    /// Each bucket's norm divided by its number of paths.
    pub fn per_path(&self) -> Vec<f64> {
        self.norms
            .iter()
            .zip(&self.counts)
            .map(|(n, c)| n / c)
            .collect()
    }

    /// The length whose bucket carries the largest gradient.
    pub fn peak(&self) -> usize {
        self.norms
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(j, _)| j)
    }
}

/// Losses of one trained network with units deleted.
#[derive(Clone, Debug)]
pub struct LesionStudy {
    /// Plain or residual.
    pub kind: Kind,
    /// The intact network on the training set.
    pub intact: Evaluation,
    /// The loss with unit i deleted, for each i.
    pub single: Vec<Evaluation>,
    /// For each number of deleted units: the median loss and median accuracy over the draws.
    pub multiple: Vec<(usize, Evaluation)>,
}

impl LesionStudy {
    /// How many single deletions keep the training accuracy at `accuracy` or more.
    pub fn harmless_deletions(&self, accuracy: f64) -> usize {
        self.single
            .iter()
            .filter(|e| e.accuracy >= accuracy)
            .count()
    }

    /// The median over units of the loss increase caused by deleting that unit alone.
    pub fn median_single_increase(&self) -> f64 {
        median(
            self.single
                .iter()
                .map(|e| e.loss - self.intact.loss)
                .collect(),
        )
    }
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct UnraveledChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// Path profile of the residual network at initialisation.
    pub paths_at_init: PathProfile,
    /// Path profile after training.
    pub paths_trained: PathProfile,
    /// Final training losses of the two networks.
    pub trained: [(Kind, Evaluation); 2],
    /// The lesion study of the residual network.
    pub residual: LesionStudy,
    /// The lesion study of the plain network.
    pub plain: LesionStudy,
}

/// Evaluation of `net` with the hidden units in `lesioned` deleted.
fn lesioned(net: &Mlp<f64>, data: &Dataset<f64>, lesioned: &[usize]) -> Evaluation {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    tape.no_grad(|| {
        let logits = net.forward_with_lesions(&cx, &cx.input(data.x.clone()), lesioned);
        Evaluation {
            loss: cross_entropy(&logits, &data.labels).item(),
            accuracy: accuracy(logits.value(), &data.labels),
        }
    })
}

/// The path profile of a residual [`Mlp`] on `data`: h₀ = input layer(x), ∂L/∂h_k from the
/// output layer and the loss, and the blocks split by [`path_gradients`]. The blocks are
/// lent to the analysis and put back.
///
/// # Panics
/// If a hidden unit of `net` is not a residual block.
pub fn path_profile(net: &mut Mlp<f64>, data: &Dataset<f64>) -> PathProfile {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let (_, states) = net.forward_with_states(&cx, &cx.input(data.x.clone()));
    let h0 = states[0].value().clone();
    // ∂L/∂h_k: the output layer and the loss on a tape of their own.
    let top = Tape::new();
    let tcx = Ctx::eval(&top);
    let hk = tcx.tracked_input(states[states.len() - 1].value().clone());
    let d_out = cross_entropy(&net.output.forward(&tcx, &hk), &data.labels)
        .backward()
        .wrt(&hk);
    // ∂L/∂h₀ by an ordinary backward pass, to check the split.
    let whole = Tape::new();
    let wcx = Ctx::eval(&whole);
    let h = wcx.tracked_input(h0.clone());
    let out = net
        .hidden
        .iter()
        .fold(h.clone(), |o, unit| unit.forward(&wcx, &o));
    let total = cross_entropy(&net.output.forward(&wcx, &out), &data.labels)
        .backward()
        .wrt(&h);
    let blocks: Vec<Box<Residual<Branch<f64>, f64>>> = std::mem::take(&mut net.hidden)
        .into_iter()
        .map(|unit| match unit {
            HiddenUnit::Residual(block) => Box::new(block),
            HiddenUnit::Plain(_) => panic!("path_profile: the network has a plain layer"),
        })
        .collect();
    let paths = path_gradients(&blocks, &h0, &d_out);
    net.hidden = blocks
        .into_iter()
        .map(|b| HiddenUnit::Residual(*b))
        .collect();
    let paths = paths.unwrap_or_else(|e| panic!("path gradients of the chapter's network: {e}"));
    PathProfile {
        norms: paths.norms(),
        counts: paths.path_counts(),
        total: total.norm(),
        sum_error: paths.total().max_abs_diff(&total),
    }
}

/// Deletes single units, then random sets of units, from a trained network.
fn lesion_study(kind: Kind, net: &Mlp<f64>, data: &Dataset<f64>, config: &Config) -> LesionStudy {
    let units: Vec<usize> = (0..net.depth()).collect();
    let mut rng = seeded_rng(config.seed + 7);
    let multiple = config
        .multi_lesions
        .iter()
        .map(|&k| {
            let draws: Vec<Evaluation> = (0..if k == 0 { 1 } else { config.draws })
                .map(|_| {
                    let mut chosen = units.clone();
                    chosen.shuffle(&mut rng);
                    chosen.truncate(k.min(units.len()));
                    lesioned(net, data, &chosen)
                })
                .collect();
            (
                k,
                Evaluation {
                    loss: median(draws.iter().map(|e| e.loss).collect()),
                    accuracy: median(draws.iter().map(|e| e.accuracy).collect()),
                },
            )
        })
        .collect();
    LesionStudy {
        kind,
        intact: lesioned(net, data, &[]),
        single: units.iter().map(|&i| lesioned(net, data, &[i])).collect(),
        multiple,
    }
}

/// Runs the chapter.
pub fn run(config: &Config, progress: &Progress) -> UnraveledChapter {
    let data = two_spirals::<f64>(config.points_per_class, 0.0, 0);
    let mut residual = recipe(Kind::Residual, config.width, config.depth)
        .build::<f64>(&mut seeded_rng(config.seed));
    let plain =
        recipe(Kind::Plain, config.width, config.depth).build::<f64>(&mut seeded_rng(config.seed));
    let paths_at_init = path_profile(&mut residual, &data);
    let mut trained = Vec::new();
    for (kind, net) in [(Kind::Residual, &residual), (Kind::Plain, &plain)] {
        let label = format!("{} depth {}", kind.name(), config.depth);
        let run = train(
            net,
            &data,
            config.optimizer,
            config.steps,
            config.seed,
            progress,
            &label,
        );
        trained.push((kind, run.last));
    }
    progress.say("lesioning");
    UnraveledChapter {
        config: config.clone(),
        paths_at_init,
        paths_trained: path_profile(&mut residual, &data),
        trained: [trained[0], trained[1]],
        residual: lesion_study(Kind::Residual, &residual, &data, config),
        plain: lesion_study(Kind::Plain, &plain, &data, config),
    }
}

impl UnraveledChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let k = c.depth;
        let mut page = Page::new(CHAPTER.number, CHAPTER.title);
        page.prose(format!(
            "Unroll h ← F(h) + h over k blocks and the output becomes a sum over 2ᵏ paths, \
             each choosing at every block between the branch and the skip; a path's length is \
             the number of branches it passes through. For k = {k} that is {} paths, and \
             C({k}, j) of them have length j. The backward pass through a block is linear in \
             the upstream gradient, so ∂L/∂h₀ splits exactly into one term per length: carry \
             k + 1 buckets backwards, the skip keeping a bucket's length, the branch moving it \
             up by one (nn::analysis::path_gradients; with the ReLU after the sum, both terms \
             first pass through its mask).",
            2f64.powi(k as i32),
        ));
        page.prose(format!(
            "The network: {} blocks ReLU(F(h)/√{k} + h) of width {}, He initialisation, on the \
             {} points of two spirals; measured at initialisation and after {} steps of {} \
             (final training loss {}). The buckets add up to the ordinary ∂L/∂h₀ to within {} \
             (initialisation) and {} (trained).",
            k,
            c.width,
            2 * c.points_per_class,
            c.steps,
            c.optimizer.describe(),
            sig(self.trained[0].1.loss, 2),
            sig(self.paths_at_init.sum_error, 2),
            sig(self.paths_trained.sum_error, 2),
        ));
        let mut t = Table::new([
            "length j",
            "paths C(k, j)",
            "‖gradient‖, init",
            "‖gradient‖, trained",
        ]);
        for j in 0..=k {
            t.row([
                j.to_string(),
                sig(self.paths_at_init.counts[j], 4),
                sig(self.paths_at_init.norms[j], 3),
                sig(self.paths_trained.norms[j], 3),
            ]);
        }
        page.table(t);
        let (init, trained) = (&self.paths_at_init, &self.paths_trained);
        let most = (k as f64 / 2.0).round() as usize;
        let per_path = |p: &PathProfile, j: usize| p.norms[j] / p.counts[j];
        page.prose(format!(
            "Most paths have length about k/2 = {most} ({} of them). At initialisation the \
             gradient comes from much shorter ones: the largest bucket is length {} and the \
             lengths 0…{} carry 90 % of the summed bucket norms; shared out over its paths, \
             ‖bucket_j‖ / C(k, j) {} from {} at j = 0 to {} at j = {k}. Training moves the \
             gradient towards longer paths as the branches grow — the peak moves to length {}, \
             90 % within 0…{}. Veit et al. (2016) found that in a trained \
             110-layer ResNet most of the gradient comes from paths 5 to 17 blocks deep, far \
             shorter than the 55 blocks of a typical path: the \"ensemble of shallower \
             networks\" of the notebook's discussion.",
            sig(init.counts[most], 4),
            init.peak(),
            init.lengths_carrying(0.9),
            if per_path(init, k) < per_path(init, 0) {
                "falls"
            } else {
                "rises"
            },
            sig(per_path(init, 0), 2),
            sig(per_path(init, k), 2),
            trained.peak(),
            trained.lengths_carrying(0.9),
        ));
        page.figure(self.paths_figure());

        let (res, plain) = (&self.residual, &self.plain);
        page.prose(format!(
            "If a residual network is an ensemble of paths, deleting one block should only \
             remove the paths through it and leave the rest working. Both networks of depth {k} \
             were trained with {} to a training loss near zero (residual {}, plain {}). \
             Deleting a block keeps the skip (the block becomes ReLU(h)); deleting a plain layer \
             replaces it by the identity.",
            c.optimizer.describe(),
            sig(res.intact.loss, 2),
            sig(plain.intact.loss, 2),
        ));
        let mut t = Table::new([
            "network",
            "intact loss",
            "one deleted: median loss",
            "lowest",
            "highest",
            "median accuracy",
            "deletions keeping ≥ 99 %",
        ]);
        for study in [res, plain] {
            let losses: Vec<f64> = study.single.iter().map(|e| e.loss).collect();
            t.row([
                study.kind.name().to_string(),
                sig(study.intact.loss, 2),
                sig(median(losses.clone()), 3),
                sig(losses.iter().copied().fold(f64::INFINITY, f64::min), 3),
                sig(losses.iter().copied().fold(f64::NEG_INFINITY, f64::max), 3),
                format!(
                    "{:.1} %",
                    100.0 * median(study.single.iter().map(|e| e.accuracy).collect())
                ),
                format!(
                    "{} of {}",
                    study.harmless_deletions(0.99),
                    study.single.len()
                ),
            ]);
        }
        page.table(t);
        let half = k / 2;
        let worst = res
            .single
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.loss.total_cmp(&b.1.loss))
            .map_or(0, |(i, _)| i);
        page.prose(format!(
            "The median loss increase from deleting one unit: {} for the residual network, {} \
             for the plain one — {}× more. In the plain chain every layer's output is the next \
             layer's only input, and the identity is not a substitute for any of them. Not every \
             residual block is dispensable: the costliest is block {} (loss {}), and deleting \
             one of the first {half} blocks costs a median loss of {}, one of the last {}, {}.",
            sig(res.median_single_increase(), 2),
            sig(plain.median_single_increase(), 2),
            sig(
                plain.median_single_increase() / res.median_single_increase(),
                2
            ),
            worst + 1,
            sig(res.single[worst].loss, 2),
            sig(
                median(res.single[..half].iter().map(|e| e.loss).collect()),
                2
            ),
            k - half,
            sig(
                median(res.single[half..].iter().map(|e| e.loss).collect()),
                2
            ),
        ));
        let mut t = Table::new([
            "units deleted",
            "residual: loss",
            "residual: accuracy",
            "plain: loss",
            "plain: accuracy",
        ]);
        for ((n, r), (_, p)) in res.multiple.iter().zip(&plain.multiple) {
            t.row([
                n.to_string(),
                sig(r.loss, 3),
                format!("{:.1} %", 100.0 * r.accuracy),
                sig(p.loss, 3),
                format!("{:.1} %", 100.0 * p.accuracy),
            ]);
        }
        page.prose(format!(
            "Deleting several units at once, {} random choices each (median loss and accuracy \
             over the choices):",
            c.draws
        ));
        page.table(t);
        let accuracy_at = |study: &LesionStudy, n: usize| {
            study
                .multiple
                .iter()
                .find(|(m, _)| *m == n)
                .map_or(f64::NAN, |(_, e)| 100.0 * e.accuracy)
        };
        let most = c.multi_lesions.iter().copied().max().unwrap_or(0);
        page.prose(format!(
            "The loss of an overconfident classifier jumps at the first mistakes, so read the \
             accuracy: the residual network loses it gradually as blocks go — {:.1} % with one \
             deleted, {:.1} % with {most} — since each deletion removes only the paths through \
             that block, while the plain network is at chance ({:.1} %) after the first \
             deletion.",
            accuracy_at(res, 1),
            accuracy_at(res, most),
            accuracy_at(plain, 1),
        ));
        page.figure(self.lesion_figure());
        page
    }

    /// Paths and their gradients by length.
    pub fn paths_figure(&self) -> Figure {
        let k = self.config.depth;
        let by_length = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter().enumerate().map(|(j, &x)| (j as f64, x)).collect()
        };
        let counts = Panel::new(
            format!("paths of each length, k = {k}"),
            "path length j",
            "number of paths C(k, j)",
        )
        .log_y()
        .with(
            Series::line("paths", by_length(&self.paths_at_init.counts), 7)
                .styled(Style::LinePoints),
        );
        let grads = Panel::new(
            "gradient reaching h₀ through the paths of each length",
            "path length j",
            "‖Σ paths of length j‖",
        )
        .log_y()
        .with(
            Series::line("at initialisation", by_length(&self.paths_at_init.norms), 0)
                .styled(Style::LinePoints),
        )
        .with(
            Series::line("trained", by_length(&self.paths_trained.norms), 1)
                .styled(Style::LinePoints),
        );
        Figure::grid(
            "06_paths",
            "The unraveled view: how many paths have each length, and how much gradient they \
             carry (log scale)",
            2,
            vec![counts, grads],
        )
    }

    /// Single and multiple lesions.
    pub fn lesion_figure(&self) -> Figure {
        let single = |s: &LesionStudy| -> Vec<(f64, f64)> {
            s.single
                .iter()
                .enumerate()
                .map(|(i, e)| ((i + 1) as f64, e.loss))
                .collect()
        };
        let multiple = |s: &LesionStudy| -> Vec<(f64, f64)> {
            s.multiple
                .iter()
                .map(|(n, e)| (*n as f64, 100.0 * e.accuracy))
                .collect()
        };
        let one = Panel::new(
            "delete one unit",
            "deleted block / layer i",
            "training loss",
        )
        .log_y()
        .with(Series::line("residual", single(&self.residual), 1).styled(Style::LinePoints))
        .with(Series::line("plain", single(&self.plain), 0).styled(Style::LinePoints));
        let many = Panel::new(
            "delete several at random",
            "units deleted",
            "median training accuracy (%)",
        )
        .with(Series::line("residual", multiple(&self.residual), 1).styled(Style::LinePoints))
        .with(Series::line("plain", multiple(&self.plain), 0).styled(Style::LinePoints));
        Figure::grid(
            "06_lesions",
            "Lesion study: training loss after deleting one trained block (residual) or layer \
             (plain), log scale; training accuracy after deleting several",
            2,
            vec![one, many],
        )
    }
}
