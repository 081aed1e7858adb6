//! Chapter 6 — The unraveled view.
//!
//! k residual blocks make 2ᵏ paths from input to output. The gradient that reaches the
//! input through paths of each length: exactly, summed per length (nn::analysis), and per
//! path, by sampling paths as Veit et al. did. Then their lesion study — deleting blocks
//! from a trained residual network against deleting layers from a trained plain one — with
//! the decision boundaries before and after.

use super::seeds::median;
use nn::{Activation, Init, MlpConfig};

/// Plain or residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Hidden layers Linear → ReLU.
    Plain,
    /// Blocks ReLU(F(h)/√L + h).
    Residual,
}

impl Kind {
    /// "plain" or "residual".
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Residual => "residual",
        }
    }
}

/// The recipe of one network.
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
use super::page::{Page, Table, Verdict, sig};
use super::plot::{Field, Figure, Legend, Panel, Series, Shape, Style};
use super::training::{Evaluation, OptimizerKind, probability_field, train};
use super::{Chapter, Progress};
use autograd::rand::seq::SliceRandom;
use autograd::{Tape, Tensor, Var, seeded_rng};
use nn::analysis::path_gradients;
use nn::builder::Branch;
use nn::data::{Dataset, two_spirals};
use nn::loss::{accuracy, cross_entropy};
use nn::{Ctx, HiddenUnit, Mlp, Module, Residual, ResidualUnit};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 6,
    slug: "06_unraveled",
    title: "The unraveled view",
    source: source!("ch06_unraveled.rs"),
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
    /// Paths sampled per length for the per-path gradient.
    pub path_samples: usize,
    /// Cells per side of the decision-boundary grid.
    pub grid: usize,
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
            path_samples: 24,
            grid: 72,
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
            path_samples: 6,
            grid: 16,
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
    /// The mean norm of one path's gradient, by length, over sampled paths (Veit et al.'s
    /// per-path magnitude).
    pub sampled_per_path: Vec<f64>,
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
    /// For each number of deleted units, every draw's evaluation.
    pub multiple: Vec<(usize, Vec<Evaluation>)>,
}

/// The median and the worst of some evaluations: one statistic for every lesion table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median loss.
    pub median_loss: f64,
    /// Highest loss.
    pub worst_loss: f64,
    /// Median accuracy.
    pub median_accuracy: f64,
    /// Lowest accuracy.
    pub worst_accuracy: f64,
}

impl Summary {
    /// The summary of `evals`.
    pub fn of(evals: &[Evaluation]) -> Self {
        Summary {
            median_loss: median(evals.iter().map(|e| e.loss).collect()),
            worst_loss: evals
                .iter()
                .map(|e| e.loss)
                .fold(f64::NEG_INFINITY, f64::max),
            median_accuracy: median(evals.iter().map(|e| e.accuracy).collect()),
            worst_accuracy: evals
                .iter()
                .map(|e| e.accuracy)
                .fold(f64::INFINITY, f64::min),
        }
    }
}

impl LesionStudy {
    /// How many single deletions keep the training accuracy at `accuracy` or more.
    pub fn harmless_deletions(&self, accuracy: f64) -> usize {
        self.single
            .iter()
            .filter(|e| e.accuracy >= accuracy)
            .count()
    }

    /// Median and worst of the single deletions.
    pub fn single_summary(&self) -> Summary {
        Summary::of(&self.single)
    }

    /// The unit whose deletion alone costs the median loss (the lower middle one).
    pub fn median_unit(&self) -> usize {
        let mut order: Vec<usize> = (0..self.single.len()).collect();
        order.sort_by(|&a, &b| self.single[a].loss.total_cmp(&self.single[b].loss));
        order
            .get(order.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0)
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
    /// The mean |logit₁ − logit₀| of the trained residual network on the training set.
    pub residual_margin: f64,
    /// Decision fields: residual intact, residual lesioned, plain intact, plain lesioned.
    pub fields: Vec<Field>,
    /// The unit deleted in the lesioned fields.
    pub field_unit: usize,
    /// The training points, for the figures.
    pub points: Dataset<f64>,
}

/// Evaluation of `net` with the hidden units in `lesioned` deleted.
fn lesioned(net: &Mlp<f64>, data: &Dataset<f64>, deleted: &[usize]) -> Evaluation {
    let logits = lesioned_logits(net, &data.x, deleted);
    let tape = Tape::new();
    Evaluation {
        loss: cross_entropy(&tape.constant(logits.clone()), &data.labels).item(),
        accuracy: accuracy(&logits, &data.labels),
    }
}

/// The logits of `net` on `x` with the hidden units in `deleted` deleted (evaluation mode).
pub fn lesioned_logits(net: &Mlp<f64>, x: &Tensor<f64>, deleted: &[usize]) -> Tensor<f64> {
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(x.clone());
    // cell: lesion
    let mut h = net.input.forward(&cx, &x);
    for (i, unit) in net.hidden.iter().enumerate() {
        h = if deleted.contains(&i) {
            unit.forward_lesioned(&cx, &h) // a block keeps its skip: ReLU(h); a plain layer: h
        } else {
            unit.forward(&cx, &h)
        };
    }
    let logits = net.output.forward(&cx, &h);
    // end cell
    logits.value().clone()
}

/// The path profile of a residual [`Mlp`] on `data`: h₀ = input layer(x), ∂L/∂h_k from the
/// output layer and the loss, and the blocks split by [`path_gradients`]. The blocks are
/// lent to the analysis and put back.
///
/// # Panics
/// If a hidden unit of `net` is not a residual block.
pub fn path_profile(
    net: &mut Mlp<f64>,
    data: &Dataset<f64>,
    samples: usize,
    seed: u64,
) -> PathProfile {
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
    // cell: buckets
    let paths = path_gradients(&blocks, &h0, &d_out); // one gradient per path length 0..=k
    // end cell
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
        sampled_per_path: sample_paths(net, &h0, &d_out, samples, seed),
    }
}

/// One block of the trained network, linearised at its input in the network's forward pass.
struct Linearised<'t> {
    /// The block's input, tracked.
    x: Var<'t, f64>,
    /// The branch's output (scaled), recorded from `x`.
    branch: Var<'t, f64>,
    /// ReLU'(F(x) + x): 1 where the unit after the sum is active, 0 elsewhere.
    mask: Tensor<f64>,
}

/// The mean norm of a single path's gradient at h₀, for each path length, over `samples`
/// random paths of that length (every path when there are fewer).
fn sample_paths(
    net: &Mlp<f64>,
    h0: &Tensor<f64>,
    d_out: &Tensor<f64>,
    samples: usize,
    seed: u64,
) -> Vec<f64> {
    let units: Vec<&dyn ResidualUnit<f64>> = net
        .hidden
        .iter()
        .filter_map(HiddenUnit::as_residual_unit)
        .collect();
    let k = units.len();
    let tapes: Vec<Tape<f64>> = (0..k).map(|_| Tape::new()).collect();
    let mut h = h0.clone();
    let mut blocks = Vec::with_capacity(k);
    for (unit, tape) in units.iter().zip(&tapes) {
        let cx = Ctx::eval(tape);
        let x = cx.tracked_input(h.clone());
        let branch = unit.branch(&cx, &x);
        let z = branch.value() + x.value();
        let mask = z.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        h = z.map(|v| v.max(0.0));
        blocks.push(Linearised { x, branch, mask });
    }
    let mut rng = seeded_rng(seed);
    let mut order: Vec<usize> = (0..k).collect();
    (0..=k)
        .map(|j| {
            let draws = samples.min(binomial(k, j).round() as usize).max(1);
            let norms: Vec<f64> = (0..draws)
                .map(|_| {
                    order.shuffle(&mut rng);
                    let path = &order[..j]; // the blocks whose branch this path takes
                    one_path(&blocks, path, d_out).norm()
                })
                .collect();
            norms.iter().sum::<f64>() / norms.len() as f64
        })
        .collect()
}

/// The gradient at h₀ carried by one path: through the branch of the blocks in `path`, the
/// skip of the others.
fn one_path(blocks: &[Linearised<'_>], path: &[usize], d_out: &Tensor<f64>) -> Tensor<f64> {
    // cell: one_path
    let mut g = d_out.clone(); // ∂L/∂h_k
    for (i, block) in blocks.iter().enumerate().rev() {
        g = &g * &block.mask; // through the ReLU after the sum
        if path.contains(&i) {
            g = block.branch.backward_with(g).wrt(&block.x); // through F_i: one VJP
        } // through the skip: unchanged
    }
    // end cell
    g
}

/// C(n, k) as a float.
fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
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
            (k, draws)
        })
        .collect();
    LesionStudy {
        kind,
        intact: lesioned(net, data, &[]),
        single: units.iter().map(|&i| lesioned(net, data, &[i])).collect(),
        multiple,
    }
}

/// P(class 1) of `net`, with `deleted` units deleted, on a `cells × cells` grid over the
/// square that holds the spirals.
pub fn decision_field(net: &Mlp<f64>, deleted: &[usize], cells: usize) -> Field {
    probability_field(cells, |grid| lesioned_logits(net, grid, deleted))
}

/// Runs the chapter.
pub fn run(config: &Config, progress: &Progress) -> UnraveledChapter {
    let data = two_spirals::<f64>(config.points_per_class, 0.0, 0);
    let mut residual = recipe(Kind::Residual, config.width, config.depth)
        .build::<f64>(&mut seeded_rng(config.seed));
    let plain =
        recipe(Kind::Plain, config.width, config.depth).build::<f64>(&mut seeded_rng(config.seed));
    let paths_at_init = path_profile(&mut residual, &data, config.path_samples, config.seed);
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
    progress.say("paths and lesions");
    let paths_trained = path_profile(&mut residual, &data, config.path_samples, config.seed + 1);
    let residual_study = lesion_study(Kind::Residual, &residual, &data, config);
    let plain_study = lesion_study(Kind::Plain, &plain, &data, config);
    let logits = lesioned_logits(&residual, &data.x, &[]);
    let residual_margin = (0..data.len())
        .map(|r| (logits.get(&[r, 1]) - logits.get(&[r, 0])).abs())
        .sum::<f64>()
        / data.len().max(1) as f64;
    let field_unit = residual_study.median_unit();
    let fields = vec![
        decision_field(&residual, &[], config.grid),
        decision_field(&residual, &[field_unit], config.grid),
        decision_field(&plain, &[], config.grid),
        decision_field(&plain, &[field_unit], config.grid),
    ];
    UnraveledChapter {
        config: config.clone(),
        paths_at_init,
        paths_trained,
        trained: [trained[0], trained[1]],
        residual: residual_study,
        plain: plain_study,
        residual_margin,
        fields,
        field_unit,
        points: data,
    }
}

impl PathProfile {
    /// Veit et al.'s total gradient magnitude by length: the sampled per-path magnitude
    /// times the number of paths of that length.
    pub fn sampled_total(&self) -> Vec<f64> {
        self.sampled_per_path
            .iter()
            .zip(&self.counts)
            .map(|(p, c)| p * c)
            .collect()
    }

    /// The shortest lengths `0..=j` whose sampled totals make up `share` of their sum.
    pub fn sampled_lengths_carrying(&self, share: f64) -> (usize, usize) {
        let totals = self.sampled_total();
        let sum: f64 = totals.iter().sum();
        // The smallest window around the peak that holds `share` of the total.
        let peak = totals
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(j, _)| j);
        let (mut lo, mut hi, mut acc) = (peak, peak, totals.get(peak).copied().unwrap_or(0.0));
        while acc < share * sum && (lo > 0 || hi + 1 < totals.len()) {
            let left = if lo > 0 { totals[lo - 1] } else { -1.0 };
            let right = if hi + 1 < totals.len() {
                totals[hi + 1]
            } else {
                -1.0
            };
            if left >= right {
                lo -= 1;
                acc += left;
            } else {
                hi += 1;
                acc += right;
            }
        }
        (lo, hi)
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

impl UnraveledChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let k = c.depth;
        let mut page = Page::of(&CHAPTER);
        page.variant(format!(
            "the notebook's block with ReLU after the sum and the branch scaled by 1/√L, \
             ReLU(F(h)/√{k} + h) — the block of chapter 5, trained here on two spirals; deleting \
             a block keeps its skip, so what remains is still a network."
        ));
        page.prose(
            "The notebook unrolls three blocks, ŷ = F₃(h₂) + h₂ with h₂ = F₂(h₁) + h₁ and \
             h₁ = F₁(x) + x, into a sum over every way through the network: at each block a \
             path either enters the branch or takes the skip, so three blocks give 2³ = 8 paths \
             (the activation after each sum is left out, as in the notebook). A path's *length* \
             is the number of branches it passes through:",
        );
        page.figure(self.unraveled_diagram());
        page.prose(format!(
            "With k blocks there are 2ᵏ paths, C(k, j) of them of length j. For k = {k} that \
             is {} paths. The backward pass through a block is linear in the gradient that \
             arrives, so ∂L/∂h₀ splits exactly into one term per path length — a *path-length \
             bucket*, the summed gradient of every path of that length. Carry k + 1 buckets \
             backwards: the skip keeps a bucket's length, the branch moves it up by one \
             (nn::analysis::path_gradients; with the ReLU after the sum, both terms first pass \
             through its mask):",
            sig(2f64.powi(k as i32), 4)
        ));
        page.cell("buckets");
        page.prose(
            "A bucket is a sum, and the paths in it can cancel: ‖bucket_j‖ / C(k, j) is only a \
             lower bound on the average size of one path's gradient. Veit et al. (2016) \
             measured the size of single paths by sampling them. We do the same: a random set \
             of j blocks, the gradient carried by exactly that path — through the branches of \
             those blocks and the skips of all others, linearised at the network's actual \
             forward pass — and its norm:",
        );
        page.cell("one_path");
        page.prose(format!(
            "The network: {k} blocks of width {}, He initialisation, on the {} points of two \
             spirals; measured at initialisation and after {} steps of {} (final training loss \
             {}). The buckets add up to the ordinary ∂L/∂h₀ to within {} (initialisation) and \
             {} (trained); {} paths sampled per length.",
            c.width,
            2 * c.points_per_class,
            c.steps,
            c.optimizer.describe(),
            sig(self.trained[0].1.loss, 2),
            sig(self.paths_at_init.sum_error, 2),
            sig(self.paths_trained.sum_error, 2),
            c.path_samples,
        ));
        let mut t = Table::new([
            "length j",
            "paths C(k, j)",
            "‖bucket‖, init",
            "from the buckets, init",
            "one path (sampled), init",
            "‖bucket‖, trained",
            "from the buckets, trained",
            "one path (sampled), trained",
        ]);
        let (init, trained) = (&self.paths_at_init, &self.paths_trained);
        for j in 0..=k {
            t.row([
                j.to_string(),
                sig(init.counts[j], 4),
                sig(init.norms[j], 3),
                sig(init.norms[j] / init.counts[j], 2),
                sig(init.sampled_per_path[j], 2),
                sig(trained.norms[j], 3),
                sig(trained.norms[j] / trained.counts[j], 2),
                sig(trained.sampled_per_path[j], 2),
            ]);
        }
        page.table(t);
        let cancel = |p: &PathProfile| {
            (1..=k)
                .map(|j| p.sampled_per_path[j] / (p.norms[j] / p.counts[j]))
                .fold(0.0, f64::max)
        };
        let (ilo, ihi) = init.sampled_lengths_carrying(0.9);
        let (tlo, thi) = trained.sampled_lengths_carrying(0.9);
        let typical = k as f64 / 2.0;
        page.prose(format!(
            "The sampled per-path size is up to {}× the lower bound at initialisation and {}× \
             after training: paths of one length do cancel, so the bucket norms understate the \
             single paths. Weighting each length by its number of paths (Veit's \"total \
             gradient magnitude\"), 90 % of the gradient comes from lengths {ilo}–{ihi} at \
             initialisation and {tlo}–{thi} after training, while a typical path has length \
             k/2 = {}: the gradient flows mostly through paths shorter than the typical one. \
             Veit et al. found the same in a 110-layer ResNet: 54 residual blocks (three stages \
             of 18), so a typical path passes about 27 of them (Binomial(54, ½)), and almost \
             all of the gradient came from paths 5 to 17 blocks long — the \"ensemble of \
             relatively shallow networks\" of the notebook's discussion.",
            sig(cancel(init), 2),
            sig(cancel(trained), 2),
            sig(typical, 2),
        ));
        page.figure(self.paths_figure());

        page.heading("Deleting blocks");
        let (res, plain) = (&self.residual, &self.plain);
        page.prose(format!(
            "If a residual network is an ensemble of paths, deleting one block should only \
             remove the paths through it — half of them — and leave the rest working. Both \
             networks of depth {k} were trained with {} (residual: training loss {}, plain: {}). \
             Deleting a block keeps its skip (the block becomes ReLU(h)); deleting a plain layer \
             replaces it by the identity:",
            c.optimizer.describe(),
            sig(res.intact.loss, 2),
            sig(plain.intact.loss, 2),
        ));
        page.cell("lesion");
        let mut t = Table::new([
            "network",
            "intact loss",
            "intact accuracy",
            "median loss",
            "worst loss",
            "median accuracy",
            "worst accuracy",
            "deletions keeping ≥ 99 %",
        ]);
        for study in [res, plain] {
            let s = study.single_summary();
            t.row([
                study.kind.name().to_string(),
                sig(study.intact.loss, 2),
                percent(study.intact.accuracy),
                sig(s.median_loss, 3),
                sig(s.worst_loss, 3),
                percent(s.median_accuracy),
                percent(s.worst_accuracy),
                format!(
                    "{} of {}",
                    study.harmless_deletions(0.99),
                    study.single.len()
                ),
            ]);
        }
        page.prose("One unit deleted at a time, all of them in turn; the median and the worst over the units:");
        page.table(t);
        let (rs, ps) = (res.single_summary(), plain.single_summary());
        let worst_unit = res
            .single
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.loss.total_cmp(&b.1.loss))
            .map_or(0, |(i, _)| i);
        let keep_all: Vec<f64> = res
            .single
            .iter()
            .filter(|e| e.accuracy >= res.intact.accuracy)
            .map(|e| e.loss)
            .collect();
        let flip: Vec<&Evaluation> = res
            .single
            .iter()
            .filter(|e| e.accuracy < res.intact.accuracy)
            .collect();
        let explained = median(
            flip.iter()
                .map(|e| e.loss / ((1.0 - e.accuracy) * self.residual_margin))
                .collect(),
        );
        page.prose(format!(
            "For the residual network the median deletion leaves {} accuracy (loss {}), the \
             worst — block {} — {} (loss {}). For the plain network the median deletion leaves \
             {} and the worst {}. The losses spread over orders of magnitude while the \
             accuracies move by a few points, because a trained classifier is confident — the mean |logit₁ − logit₀| of the \
             residual network is {} — so every point a deletion flips costs about that many \
             nats, and nothing else matters much. {} of the {k} deletions flip no point (loss \
             at most {}); for the {} that do, the loss is close to the share of points flipped \
             times that margin (median ratio {}). The loss counts confident mistakes; the \
             accuracy counts mistakes. Read both.",
            percent(rs.median_accuracy),
            sig(rs.median_loss, 2),
            worst_unit + 1,
            percent(rs.worst_accuracy),
            sig(rs.worst_loss, 2),
            percent(ps.median_accuracy),
            percent(ps.worst_accuracy),
            sig(self.residual_margin, 2),
            keep_all.len(),
            sig(keep_all.iter().copied().fold(0.0, f64::max), 2),
            flip.len(),
            sig(explained, 2),
        ));
        let mut t = Table::new([
            "units deleted",
            "residual: median loss",
            "worst loss",
            "median accuracy",
            "worst accuracy",
            "plain: median loss",
            "worst loss",
            "median accuracy",
            "worst accuracy",
        ]);
        for ((n, r), (_, p)) in res.multiple.iter().zip(&plain.multiple) {
            let (r, p) = (Summary::of(r), Summary::of(p));
            t.row([
                n.to_string(),
                sig(r.median_loss, 3),
                sig(r.worst_loss, 3),
                percent(r.median_accuracy),
                percent(r.worst_accuracy),
                sig(p.median_loss, 3),
                sig(p.worst_loss, 3),
                percent(p.median_accuracy),
                percent(p.worst_accuracy),
            ]);
        }
        page.prose(format!(
            "Several units at once, {} random choices for each number (the same statistics, \
             over the choices):",
            c.draws
        ));
        page.table(t);
        let most = c.multi_lesions.iter().copied().max().unwrap_or(0);
        let at = |study: &LesionStudy, n: usize| {
            study
                .multiple
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, e)| Summary::of(e))
        };
        if let (Some(r1), Some(rm), Some(p1)) = (at(res, 1), at(res, most), at(plain, 1)) {
            page.prose(format!(
                "The residual network loses accuracy gradually as blocks go — median {} with one \
                 deleted, {} with {most} — since each deletion removes only the paths through \
                 that block; the plain network's median is {} after a single deletion.",
                percent(r1.median_accuracy),
                percent(rm.median_accuracy),
                percent(p1.median_accuracy),
            ));
        }
        page.figure(self.lesion_figure());
        page.prose(format!(
            "What a deletion does to the function: the decision boundaries of both networks, \
             intact and with unit {} deleted — the residual network's median-cost deletion \
             (colour: the probability of the orange class):",
            self.field_unit + 1
        ));
        page.figure(self.boundary_figure());
        let init_sum = init.sum_error <= 1e-9 * init.total.max(1e-300);
        page.claim(
            "k residual blocks make 2ᵏ paths of different lengths from input to output",
            format!(
                "k = {k}: Σⱼ C(k, j) = {}; the {} path-length buckets sum to ∂L/∂h₀ within {}",
                sig(init.counts.iter().sum::<f64>(), 6),
                k + 1,
                sig(init.sum_error, 2)
            ),
            if init_sum {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "Gradients flow mostly through the shorter paths; the network behaves like an \
             ensemble of shallower networks",
            format!(
                "90 % of the sampled gradient magnitude from lengths {tlo}–{thi} (trained), \
                 typical length {}",
                sig(typical, 2)
            ),
            if (thi as f64) < typical {
                Verdict::Confirmed
            } else if (tlo as f64) < typical {
                Verdict::Depends
            } else {
                Verdict::Refuted
            },
        );
        page.claim(
            "Some layers can be bypassed without dramatically affecting performance",
            format!(
                "one block deleted: median accuracy {}, worst {} (plain layer: median {}, \
                 worst {})",
                percent(rs.median_accuracy),
                percent(rs.worst_accuracy),
                percent(ps.median_accuracy),
                percent(ps.worst_accuracy)
            ),
            if rs.median_accuracy >= 0.95 && rs.worst_accuracy >= 0.95 {
                Verdict::Confirmed
            } else if rs.median_accuracy >= 0.95 {
                Verdict::Depends
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            format!(
                "{k} blocks make {} paths; their gradients, summed per length, add up exactly \
                 to ∂L/∂h₀, and most of the gradient comes from paths of length {tlo}–{thi}, \
                 shorter than the typical {}.",
                sig(2f64.powi(k as i32), 4),
                sig(typical, 2)
            ),
            "‖bucket‖/C(k, j) is a lower bound on a single path's gradient — paths cancel; \
             sampling paths measures their size."
                .to_string(),
            format!(
                "Deleting one residual block leaves a median {} accuracy (worst {}); deleting \
                 one plain layer, {} — most blocks are dispensable, not all.",
                percent(rs.median_accuracy),
                percent(rs.worst_accuracy),
                percent(ps.median_accuracy)
            ),
        ]);
        page
    }

    /// The notebook's three blocks unraveled: eight paths, one row each.
    pub fn unraveled_diagram(&self) -> Figure {
        let mut panel = Panel::diagram("three residual blocks, unraveled: 2³ = 8 paths");
        let col = |b: usize| 2.0 + 2.2 * b as f64;
        for p in 0..8usize {
            let y = 7.0 - p as f64;
            let taken: Vec<usize> = (0..3).filter(|b| p & (1 << (2 - b)) != 0).collect();
            let length = taken.len();
            let mut x = 0.6;
            for b in 0..3 {
                let (x0, x1) = (col(b) - 0.55, col(b) + 0.55);
                if taken.contains(&b) {
                    panel = panel
                        .shape(Shape::Arrow {
                            points: vec![(x, y), (x0, y)],
                            color: length,
                            dashed: false,
                        })
                        .shape(Shape::Box {
                            from: (x0, y - 0.32),
                            to: (x1, y + 0.32),
                            label: format!("F{}", b + 1),
                            color: length,
                        });
                    x = x1;
                } else {
                    panel = panel.shape(Shape::Arrow {
                        points: vec![(x, y), (x1, y)],
                        color: 7,
                        dashed: true,
                    });
                    x = x1;
                }
            }
            panel = panel
                .shape(Shape::Arrow {
                    points: vec![(x, y), (8.4, 3.5)],
                    color: 7,
                    dashed: false,
                })
                .note(-0.2, y, format!("length {length}"));
        }
        panel = panel
            .shape(Shape::Node {
                at: (8.6, 3.5),
                radius: 16,
                label: "Σ".to_string(),
            })
            .note(9.7, 3.5, "ŷ")
            .shape(Shape::Box {
                from: (0.45, -0.35),
                to: (0.6, 7.35),
                label: String::new(),
                color: 7,
            })
            .note(0.52, 7.9, "x")
            .note(
                col(1),
                -1.0,
                "dashed: the skip; a box: the path enters that block's branch",
            )
            .x_limits(-1.2, 10.2)
            .y_limits(-1.5, 8.4);
        Figure::single(
            "06_unraveled",
            "The unraveled view of three residual blocks: every path from x to ŷ enters or skips \
             each block (colour: the path's length)",
            panel,
        )
    }

    /// Buckets and sampled per-path gradients by length.
    pub fn paths_figure(&self) -> Figure {
        let k = self.config.depth;
        let by_length = |v: Vec<f64>| -> Vec<(f64, f64)> {
            v.into_iter()
                .enumerate()
                .map(|(j, x)| (j as f64, x))
                .collect()
        };
        // Sampled (solid) and from the buckets (dashed), at initialisation and trained.
        let curves = |panel: Panel,
                      sampled: fn(&PathProfile) -> Vec<f64>,
                      bucket: fn(&PathProfile) -> Vec<f64>| {
            [
                (&self.paths_at_init, "init", 0),
                (&self.paths_trained, "trained", 1),
            ]
            .into_iter()
            .fold(panel, |panel, (profile, when, color)| {
                panel
                    .with(
                        Series::line(
                            format!("sampled paths, {when}"),
                            by_length(sampled(profile)),
                            color,
                        )
                        .styled(Style::LinePoints),
                    )
                    .with(
                        Series::line(
                            format!("from the buckets, {when}"),
                            by_length(bucket(profile)),
                            color,
                        )
                        .styled(Style::Dashed),
                    )
            })
        };
        let single = curves(
            Panel::new("one path's gradient, by length", "path length j", "norm").log_y(),
            |p| p.sampled_per_path.clone(),
            |p| p.norms.iter().zip(&p.counts).map(|(n, c)| n / c).collect(),
        )
        .legend(Legend::Hidden);
        let total = curves(
            Panel::new(
                format!("all paths of each length, k = {k}"),
                "path length j",
                "norm",
            )
            .log_y(),
            PathProfile::sampled_total,
            |p| p.norms.clone(),
        )
        .with(
            Series::line(
                "number of paths C(k, j)",
                by_length(self.paths_at_init.counts.clone()),
                7,
            )
            .styled(Style::Dots),
        );
        Figure::grid(
            "06_paths",
            "Gradient by path length (log scale). Left: one path — sampled (solid) against the \
             lower bound ‖bucket‖/C(k, j) (dashed). Right: all paths of a length — the sampled \
             size times C(k, j) (solid), and the bucket's own norm (dashed); grey dots: the \
             number of paths",
            2,
            vec![single, total],
        )
    }

    /// Single and multiple lesions.
    pub fn lesion_figure(&self) -> Figure {
        let single = |s: &LesionStudy| -> Vec<(f64, f64)> {
            s.single
                .iter()
                .enumerate()
                .map(|(i, e)| ((i + 1) as f64, 100.0 * e.accuracy))
                .collect()
        };
        let multiple = |s: &LesionStudy, worst: bool| -> Vec<(f64, f64)> {
            s.multiple
                .iter()
                .map(|(n, e)| {
                    let sum = Summary::of(e);
                    (
                        *n as f64,
                        100.0
                            * if worst {
                                sum.worst_accuracy
                            } else {
                                sum.median_accuracy
                            },
                    )
                })
                .collect()
        };
        let one = Panel::new(
            "delete one unit",
            "deleted block / layer i",
            "training accuracy (%)",
        )
        .with(Series::line("residual", single(&self.residual), 0).styled(Style::LinePoints))
        .with(Series::line("plain", single(&self.plain), 3).styled(Style::LinePoints))
        .legend(Legend::Hidden);
        let many = Panel::new(
            "delete several at random",
            "units deleted",
            "training accuracy (%)",
        )
        .with(
            Series::line("residual", multiple(&self.residual, false), 0).styled(Style::LinePoints),
        )
        .with(
            Series::line("residual, worst draw", multiple(&self.residual, true), 0)
                .styled(Style::Dashed),
        )
        .with(Series::line("plain", multiple(&self.plain, false), 3).styled(Style::LinePoints))
        .with(
            Series::line("plain, worst draw", multiple(&self.plain, true), 3).styled(Style::Dashed),
        );
        Figure::grid(
            "06_lesions",
            "Lesion study: training accuracy after deleting one trained block (residual) or layer \
             (plain), and after deleting several at random (median and worst draw)",
            2,
            vec![one, many],
        )
    }

    /// Decision boundaries of both networks, intact and lesioned.
    pub fn boundary_figure(&self) -> Figure {
        let unit = self.field_unit + 1;
        let titles = [
            "residual, intact".to_string(),
            format!("residual, block {unit} deleted"),
            "plain, intact".to_string(),
            format!("plain, layer {unit} deleted"),
        ];
        let points = |class: usize| -> Vec<(f64, f64)> {
            (0..self.points.len())
                .filter(|&r| self.points.labels[r] == class)
                .map(|r| (self.points.x.get(&[r, 0]), self.points.x.get(&[r, 1])))
                .collect()
        };
        let panels = titles
            .into_iter()
            .zip(&self.fields)
            .map(|(title, field)| {
                Panel::new(title, "x₁", "x₂")
                    .with_field(field.clone())
                    .with(Series::line("class 0", points(0), 0).styled(Style::Dots))
                    .with(Series::line("class 1", points(1), 1).styled(Style::Dots))
                    .legend(Legend::Hidden)
            })
            .collect();
        Figure::grid(
            "06_boundaries",
            format!(
                "Decision boundaries on the two spirals: the residual and the plain network, intact \
                 and with unit {unit} deleted (blue: class 0, orange: class 1; pale near the \
                 boundary)"
            ),
            2,
            panels,
        )
    }
}
