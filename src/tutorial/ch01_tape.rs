//! Chapter 1 — The tape.
//!
//! `y = (a + b)·a` and the notebook's residual block recorded on a Wengert tape: the list
//! itself, and the reverse sweep over it one node at a time, where a value used twice
//! receives two contributions that are summed.

use super::page::{Page, Table, Verdict, sig};
use super::plot::{Figure, Legend, Panel, Series, Style};
use super::{Chapter, Progress};
use autograd::{BackwardStep, Tape, Tensor, seeded_rng};
use nn::{Ctx, Init, Module, ResidualBlock};

/// The chapter as the examples and the tour run it.
pub const CHAPTER: Chapter = Chapter {
    number: 1,
    slug: "01_tape",
    title: "The tape",
    source: source!("ch01_tape.rs"),
    page: |size, progress| run(&size.pick(Config::full, Config::smoke), progress).page(),
};

/// Sizes of the chapter.
#[derive(Clone, Debug)]
pub struct Config {
    /// Value of `a` in `y = (a + b)·a`.
    pub a: f64,
    /// Value of `b`.
    pub b: f64,
    /// Width of the residual block.
    pub width: usize,
    /// Rows of the block's input.
    pub batch: usize,
}

impl Config {
    /// The tour's sizes.
    pub fn full() -> Self {
        Config {
            a: 3.0,
            b: 4.0,
            width: 3,
            batch: 2,
        }
    }

    /// The tests' sizes (the same: the chapter is tiny).
    pub fn smoke() -> Self {
        Self::full()
    }
}

/// One step of a reverse sweep, reduced to what the page shows.
#[derive(Clone, Debug)]
pub struct SweepStep {
    /// The node visited.
    pub node: usize,
    /// Its op.
    pub op: &'static str,
    /// Its adjoint: the value for a scalar node, otherwise the norm.
    pub adjoint: f64,
    /// What it sent to each input: (input node, value or norm).
    pub sends: Vec<(usize, f64)>,
}

impl SweepStep {
    fn of(step: &BackwardStep<f64>) -> Self {
        let size = |t: &Tensor<f64>| if t.numel() == 1 { t.item() } else { t.norm() };
        SweepStep {
            node: step.node,
            op: step.op,
            adjoint: size(&step.adjoint),
            sends: step.sends.iter().map(|(to, c)| (*to, size(c))).collect(),
        }
    }
}

/// A contribution that arrived at a value used twice.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The consumer that sent it.
    pub from: usize,
    /// The consumer's op.
    pub op: &'static str,
    /// The contribution itself.
    pub tensor: Tensor<f64>,
}

/// What the chapter computed.
#[derive(Clone, Debug)]
pub struct TapeChapter {
    /// The configuration it ran with.
    pub config: Config,
    /// The Wengert list of `y = (a + b)·a`, as the tape prints it.
    pub scalar_listing: String,
    /// y.
    pub y: f64,
    /// ∂y/∂a from the tape.
    pub grad_a: f64,
    /// ∂y/∂b from the tape.
    pub grad_b: f64,
    /// The reverse sweep of `y`, step by step.
    pub scalar_steps: Vec<SweepStep>,
    /// The contributions that arrived at `a`.
    pub arrivals_a: Vec<Arrival>,
    /// The Wengert list of the residual block, with gradient norms after backward.
    pub block_listing: String,
    /// The block's inputs per node (`(input, consumer)` edges), for the diagram.
    pub block_edges: Vec<(usize, usize)>,
    /// Each node's op on the block's tape.
    pub block_ops: Vec<&'static str>,
    /// Node id of the block's input x.
    pub x_node: usize,
    /// The block's leaves by name: x and the parameters.
    pub leaf_names: Vec<(usize, &'static str)>,
    /// The reverse sweep of the block's loss, step by step.
    pub block_steps: Vec<SweepStep>,
    /// The contributions that arrived at x: through the skip and through the branch.
    pub arrivals_x: Vec<Arrival>,
    /// ∂L/∂x as the sweep summed it.
    pub block_grad_x: Tensor<f64>,
}

impl TapeChapter {
    /// The largest difference between ∂L/∂x and the sum of its contributions.
    pub fn x_sum_error(&self) -> f64 {
        let mut sum = Tensor::zeros(self.block_grad_x.shape());
        for a in &self.arrivals_x {
            for (s, v) in sum.data_mut().iter_mut().zip(a.tensor.data()) {
                *s += v;
            }
        }
        sum.max_abs_diff(&self.block_grad_x)
    }
}

/// Records both computations and steps through their reverse sweeps.
pub fn run(config: &Config, _progress: &Progress) -> TapeChapter {
    // cell: scalar
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::scalar(config.a));
    let b = tape.var(Tensor::scalar(config.b));
    let y = &(&a + &b) * &a; // `a` is used twice
    // end cell
    // cell: sweep
    tape.track_contributions(&a); // keep each contribution that arrives at `a`
    let mut steps = y.backward_steps(); // the reverse loop, one node per step
    let sweep: Vec<BackwardStep<f64>> = steps.by_ref().collect();
    let grads = steps.into_gradients();
    let (grad_a, grad_b) = (grads.wrt(&a).item(), grads.wrt(&b).item());
    // end cell
    let scalar_steps = sweep.iter().map(SweepStep::of).collect();
    let arrivals_a = arrivals(&grads, &a);

    let mut rng = seeded_rng(1);
    // cell: block
    // The notebook's block H(x) = ReLU(W2·ReLU(W1·x + b1) + b2 + x), and L = Σ H.
    let block = ResidualBlock::<f64>::new(config.width, Init::he(), &mut rng);
    let block_tape = Tape::<f64>::new();
    let cx = Ctx::train(&block_tape, 0);
    let x = cx.tracked_input(Tensor::uniform(
        &[config.batch, config.width],
        -1.0,
        1.0,
        &mut rng,
    ));
    let loss = block.forward(&cx, &x).sum();
    block_tape.track_contributions(&x);
    let mut steps = loss.backward_steps();
    let raw: Vec<BackwardStep<f64>> = steps.by_ref().collect();
    let block_grads = steps.into_gradients();
    // end cell
    // `Ctx::param` returns the Var a parameter was bound to in this step: its node id.
    let leaf_names = [
        (x.node_id(), "x"),
        (cx.param(&block.linear1.weight).node_id(), "W₁"),
        (cx.param(&block.linear2.weight).node_id(), "W₂"),
    ]
    .into_iter()
    .chain(
        block
            .linear1
            .bias
            .iter()
            .map(|b| (cx.param(b).node_id(), "b₁")),
    )
    .chain(
        block
            .linear2
            .bias
            .iter()
            .map(|b| (cx.param(b).node_id(), "b₂")),
    )
    .filter_map(|(id, name)| Some((id?, name)))
    .collect();
    let block_edges = raw
        .iter()
        .flat_map(|s| s.sends.iter().map(move |(to, _)| (*to, s.node)))
        .collect();

    TapeChapter {
        config: config.clone(),
        scalar_listing: tape.to_string(),
        y: y.item(),
        grad_a,
        grad_b,
        scalar_steps,
        arrivals_a,
        block_listing: block_tape.table().with_gradients(&block_grads).to_string(),
        block_edges,
        block_ops: block_tape.op_names(),
        x_node: x.node_id().unwrap_or(0),
        leaf_names,
        block_steps: raw.iter().map(SweepStep::of).collect(),
        arrivals_x: arrivals(&block_grads, &x),
        block_grad_x: block_grads.wrt(&x),
    }
}

fn arrivals(grads: &autograd::Gradients<f64>, v: &autograd::Var<'_, f64>) -> Vec<Arrival> {
    grads
        .contributions(v)
        .iter()
        .map(|c| Arrival {
            from: c.from,
            op: c.op,
            tensor: c.tensor.clone(),
        })
        .collect()
}

/// The steps of a sweep as a table: node, op, adjoint, what it sent where.
fn steps_table(steps: &[SweepStep], adjoint: &str, sent: &str) -> Table {
    let mut t = Table::new(["step", "node", "op", adjoint, sent]);
    for (k, s) in steps.iter().enumerate() {
        let sends: Vec<String> = s
            .sends
            .iter()
            .map(|(to, v)| format!("%{to} ← {}", sig(*v, 4)))
            .collect();
        t.row([
            (k + 1).to_string(),
            format!("%{}", s.node),
            s.op.to_string(),
            sig(s.adjoint, 4),
            sends.join(", "),
        ]);
    }
    t
}

impl TapeChapter {
    /// The chapter's page.
    pub fn page(&self) -> Page {
        let c = &self.config;
        let mut page = Page::of(&CHAPTER);
        page.variant(
            "the notebook's own block, H(x) = ReLU(F(x) + x) with F = Linear → ReLU → Linear \
             (nn::ResidualBlock): this chapter shows how a tape records exactly that code.",
        );
        page.prose(
            "A reverse-mode autograd engine records the forward computation as it runs. wengert \
             keeps the record as a flat list with one row per operation — a *Wengert list*, \
             after R. E. Wengert, who wrote derivatives of programs this way in 1964. Each row \
             holds the op, the ids of its inputs, the shape of its result, the bytes its \
             backward rule keeps (\"saved B\") and the source line that recorded it. Three \
             lines of Rust record y = (a + b)·a:",
        );
        page.cell("scalar");
        page.output(self.scalar_listing.clone());
        page.prose(format!(
            "Backward is one loop over that list from the end. Each node's *adjoint* is ∂y/∂node, \
             the derivative of the output with respect to that node's value. When the loop \
             reaches a node its adjoint is final — every consumer comes later in the list and \
             has already sent its share — and the node's backward rule turns it into one \
             contribution per input: the adjoint times the op's local derivative, a \
             *vector–Jacobian product* (VJP). `backward_steps()` runs the loop one node at a \
             time, with a = {}, b = {} (y = {}):",
            c.a, c.b, self.y
        ));
        page.cell("sweep");
        page.table(steps_table(&self.scalar_steps, "adjoint ∂y/∂node", "sends"));
        let parts: Vec<String> = self
            .arrivals_a
            .iter()
            .map(|r| format!("{} from %{} ({})", sig(r.tensor.item(), 4), r.from, r.op))
            .collect();
        page.prose(format!(
            "`a` is used twice, so two contributions arrive at it: {}. The tape adds them in \
             place — no user code, no special case — giving ∂y/∂a = {} = 2a + b; and ∂y/∂b = {} \
             = a.",
            parts.join(" and "),
            self.grad_a,
            self.grad_b
        ));
        page.heading("The notebook's block on the tape");
        page.prose(format!(
            "The notebook's residual block on a {}×{} input, with L = Σ H, records the same \
             way. Its skip connection is nothing but the `+ x` inside the block's forward \
             pass: an `add` node whose second input is x itself.",
            c.batch, c.width
        ));
        page.cell("block");
        page.prose(format!(
            "The list, with ‖∂L/∂node‖ after backward in the last column; x is %{}:",
            self.x_node
        ));
        page.output(self.block_listing.clone());
        page.table(steps_table(&self.block_steps, "‖adjoint‖", "sends (norms)"));
        let parts: Vec<String> = self
            .arrivals_x
            .iter()
            .map(|r| {
                let (name, path) = if r.op == "add" {
                    ("d", "the skip")
                } else {
                    ("dR", "the branch")
                };
                format!(
                    "{name} from %{} {} ({path}), of norm {}",
                    r.from,
                    r.op,
                    sig(r.tensor.norm(), 4)
                )
            })
            .collect();
        page.prose(format!(
            "At x the two paths meet: {}. Their sum is ∂L/∂x (‖∂L/∂x‖ = {}; largest difference \
             between the sum and the sweep's result: {}). This is the notebook's `dR + d`, done \
             by the tape's `+=`.",
            parts.join("; "),
            sig(self.block_grad_x.norm(), 4),
            sig(self.x_sum_error(), 2),
        ));
        page.figure(self.figure());
        page.claim(
            "Frameworks need no ResidualBlock backward: `+` records a node and the gradient is \
             routed through both branches automatically",
            format!(
                "{} contributions arrive at x (skip and branch); |their sum − ∂L/∂x| = {}",
                self.arrivals_x.len(),
                sig(self.x_sum_error(), 2)
            ),
            if self.arrivals_x.len() == 2 && self.x_sum_error() < 1e-12 {
                Verdict::Confirmed
            } else {
                Verdict::Refuted
            },
        );
        page.takeaways([
            "A Wengert list is the forward computation written down, one row per op; backward \
             is a single reverse loop over it.",
            "Each node's backward rule is a vector–Jacobian product: it turns the node's \
             adjoint into one contribution per input.",
            "A value used twice receives two contributions, which the tape sums: a skip \
             connection needs no code of its own in the backward pass.",
        ]);
        page
    }

    /// The block's tape as an arc diagram: nodes in recording order, one arc from each
    /// input to its consumer; the arcs leaving x are highlighted.
    pub fn figure(&self) -> Figure {
        let mut panel =
            Panel::diagram("the residual block's tape: an arc from each input to its consumer")
                .legend(Legend::Right);
        let n = self.block_ops.len();
        let span = n.max(2) as f64 - 1.0;
        for &(from, to) in &self.block_edges {
            let (a, b) = (from as f64, to as f64);
            let (centre, radius) = ((a + b) / 2.0, (b - a) / 2.0);
            let points = (0..=40)
                .map(|k| {
                    let t = std::f64::consts::PI * k as f64 / 40.0;
                    (
                        centre - radius * t.cos(),
                        0.9 * radius / span * 2.0 * t.sin(),
                    )
                })
                .collect();
            let from_x = from == self.x_node;
            let (label, color) = match (from_x, self.block_ops.get(to)) {
                (true, Some(&"add")) => ("x → add: the skip connection", 1),
                (true, _) => ("x → linear: the branch", 2),
                _ => ("", 0),
            };
            panel = panel.with(Series::line(label, points, color));
        }
        let nodes = (0..n).map(|i| (i as f64, 0.0)).collect();
        panel = panel.with(Series::line("", nodes, 7).styled(Style::Points));
        for (i, op) in self.block_ops.iter().enumerate() {
            let y = if i % 2 == 0 { -0.12 } else { -0.24 };
            let name = self
                .leaf_names
                .iter()
                .find(|(id, _)| *id == i)
                .map_or(*op, |(_, name)| *name);
            panel = panel.note(i as f64, y, format!("%{i} {name}"));
        }
        Figure::single(
            "01_tape_arcs",
            "The notebook's residual block on the tape: nodes in recording order; x (%0) feeds \
             the branch's first linear and, through the skip connection, the add",
            panel,
        )
    }
}
