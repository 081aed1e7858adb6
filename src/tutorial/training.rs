//! What several chapters share: the loss of a classifier, its gradient per hidden unit,
//! and a full-batch training loop that records the loss curve. Its code cells (the
//! training step, the gradient measurement) appear on the pages that use them.

use super::plot::Field;
use super::{Progress, Source};
use autograd::{Element, Tape, Tensor};
use nn::data::Dataset;
use nn::loss::{accuracy, cross_entropy};
use nn::{Adam, Ctx, Mlp, Module, Optimizer, Sgd};

/// This file, for the pages that show its cells.
pub const SOURCE: Source = source!("training.rs");

/// The loss and accuracy of a classifier on a data set, in evaluation mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of points classified correctly.
    pub accuracy: f64,
}

/// Evaluates `net` on `data` (evaluation mode: batch norm uses its running statistics,
/// dropout and stochastic depth are off).
pub fn evaluate<T: Element>(net: &dyn Module<T>, data: &Dataset<T>) -> Evaluation {
    // cell: evaluate
    let tape = Tape::new();
    let cx = Ctx::eval(&tape); // batch norm: running statistics; no dropout, no block drops
    let logits = tape.no_grad(|| net.forward(&cx, &cx.input(data.x.clone())));
    let loss = cross_entropy(&logits, &data.labels).item();
    let accuracy = accuracy(logits.value(), &data.labels);
    // end cell
    Evaluation {
        loss: loss.to_f64().unwrap_or(f64::NAN),
        accuracy,
    }
}

/// The network's signal and gradients at one point, measured on one training-mode pass.
#[derive(Clone, Debug)]
pub struct GradientProfile {
    /// The cross-entropy of the pass.
    pub loss: f64,
    /// ‖∂L/∂θᵢ‖ for each hidden unit i (all of its parameters together), first unit first.
    pub unit_grad_norms: Vec<f64>,
    /// Root mean square of the representation after the input layer (h₀) and after each
    /// hidden unit (h₁ … h_depth).
    pub state_rms: Vec<f64>,
}

impl GradientProfile {
    /// Largest over smallest per-unit gradient norm (∞ if one is zero, NaN if any is).
    pub fn spread(&self) -> f64 {
        let max = self
            .unit_grad_norms
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let min = self
            .unit_grad_norms
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        if self.unit_grad_norms.iter().any(|g| g.is_nan()) {
            f64::NAN
        } else {
            max / min
        }
    }

    /// The factor by which the signal's mean square grows per hidden unit, on average:
    /// (rms(h_depth) / rms(h₀))^(2/depth).
    pub fn variance_growth(&self) -> f64 {
        match (self.state_rms.first(), self.state_rms.last()) {
            (Some(first), Some(last)) if self.state_rms.len() > 1 => {
                (last / first).powf(2.0 / (self.state_rms.len() - 1) as f64)
            }
            _ => f64::NAN,
        }
    }

    /// ‖∂L/∂θ₁‖ / ‖∂L/∂θ_depth‖: below 1 the gradient shrinks towards the input (vanishes),
    /// above 1 it grows (explodes).
    pub fn first_over_last(&self) -> f64 {
        match (self.unit_grad_norms.first(), self.unit_grad_norms.last()) {
            (Some(first), Some(last)) => first / last,
            _ => f64::NAN,
        }
    }
}

/// Root mean square of a tensor's entries.
pub fn rms(t: &Tensor<f64>) -> f64 {
    (t.data().iter().map(|x| x * x).sum::<f64>() / t.numel().max(1) as f64).sqrt()
}

/// One training-mode forward and backward pass of `net` on `data`: the per-unit gradient
/// norms and the scale of every hidden representation.
pub fn gradient_profile(net: &Mlp<f64>, data: &Dataset<f64>) -> GradientProfile {
    // cell: gradient_profile
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let (logits, states) = net.forward_with_states(&cx, &cx.input(data.x.clone()));
    let loss = cross_entropy(&logits, &data.labels);
    let grads = cx.param_grads(&loss.backward());
    // ‖∂L/∂θᵢ‖: all parameters of hidden unit i together.
    let unit_grad_norms: Vec<f64> = (0..net.depth())
        .map(|i| {
            let unit = net.hidden_parameters(i);
            unit.iter()
                .map(|(_, p)| grads.wrt(p).norm().powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    // end cell
    GradientProfile {
        loss: loss.item(),
        unit_grad_norms,
        state_rms: states.iter().map(|h| rms(h.value())).collect(),
    }
}

/// Which optimiser a training run uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// SGD with momentum (PyTorch's rule).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum μ.
        momentum: f64,
    },
    /// Adam with PyTorch's defaults apart from the learning rate.
    Adam {
        /// Learning rate.
        lr: f64,
    },
}

impl OptimizerKind {
    /// "SGD (lr 0.05, momentum 0.9)" or "Adam (lr 0.01)".
    pub fn describe(&self) -> String {
        match self {
            OptimizerKind::Sgd { lr, momentum } => format!("SGD (lr {lr}, momentum {momentum})"),
            OptimizerKind::Adam { lr } => format!("Adam (lr {lr})"),
        }
    }

    fn build<T: Element>(&self, net: &dyn Module<T>) -> Box<dyn Optimizer<T>> {
        match *self {
            OptimizerKind::Sgd { lr, momentum } => {
                Box::new(Sgd::new(net.parameters(), lr).momentum(momentum))
            }
            OptimizerKind::Adam { lr } => Box::new(Adam::new(net.parameters(), lr)),
        }
    }
}

/// The loss after every step of a training run, and the final evaluation.
#[derive(Clone, Debug)]
pub struct TrainingRun {
    /// The training-mode loss of each step, before that step's update.
    pub losses: Vec<f64>,
    /// Evaluation-mode loss and accuracy on the training set after the last step.
    pub last: Evaluation,
}

impl TrainingRun {
    /// The loss curve as plot points `(step, loss)`.
    pub fn curve(&self) -> Vec<(f64, f64)> {
        self.losses
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as f64, l))
            .collect()
    }

    /// The loss curve averaged over windows of `window` steps, as plot points at each
    /// window's last step (the noisy per-step loss of stochastic training, made readable).
    pub fn smoothed_curve(&self, window: usize) -> Vec<(f64, f64)> {
        let window = window.max(1);
        self.losses
            .chunks(window)
            .enumerate()
            .map(|(k, chunk)| {
                let mean = chunk.iter().sum::<f64>() / chunk.len() as f64;
                ((k * window + chunk.len()) as f64, mean)
            })
            .collect()
    }

    /// The mean of the last `k` training losses (a less noisy final value).
    pub fn tail_mean(&self, k: usize) -> f64 {
        let k = k.clamp(1, self.losses.len().max(1));
        let tail = &self.losses[self.losses.len().saturating_sub(k)..];
        tail.iter().sum::<f64>() / tail.len().max(1) as f64
    }
}

/// Trains `net` on all of `data` at every step (full batch) for `steps` steps; step `k`
/// runs in training mode with random seed `seed + k` (for dropout and stochastic depth).
/// Prints a progress line every few seconds, labelled `label`.
pub fn train<T: Element>(
    net: &dyn Module<T>,
    data: &Dataset<T>,
    optimizer: OptimizerKind,
    steps: usize,
    seed: u64,
    progress: &Progress,
    label: &str,
) -> TrainingRun {
    train_observed(
        net,
        data,
        optimizer,
        steps,
        seed,
        progress,
        label,
        &mut |_| {},
    )
}

/// [`train`], calling `observe(k)` after the update of step `k` (1-based), e.g. to evaluate
/// on a test set along the way.
#[allow(clippy::too_many_arguments)]
pub fn train_observed<T: Element>(
    net: &dyn Module<T>,
    data: &Dataset<T>,
    optimizer: OptimizerKind,
    steps: usize,
    seed: u64,
    progress: &Progress,
    label: &str,
    observe: &mut dyn FnMut(usize),
) -> TrainingRun {
    let mut opt = optimizer.build(net);
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        // cell: training_step
        // A fresh tape in training mode; the seed draws dropout and stochastic-depth drops.
        let (loss, grads) = nn::value_and_grad(seed.wrapping_add(step as u64), |cx| {
            let logits = net.forward(cx, &cx.input(data.x.clone()));
            cross_entropy(&logits, &data.labels)
        });
        opt.step(&grads); // the tape is gone: the parameters are updated in place
        // end cell
        let value = loss.to_f64().unwrap_or(f64::NAN);
        losses.push(value);
        progress.tick(|| format!("{label}: step {}/{steps}, loss {value:.4}", step + 1));
        observe(step + 1);
    }
    TrainingRun {
        losses,
        last: evaluate(net, data),
    }
}

/// The probability of class 1 of a two-class classifier on a `cells × cells` grid over the
/// square `[-1.15, 1.15]²` that holds the two spirals, for a figure's [`Field`]. `logits`
/// maps points `[n, 2]` to logits `[n, 2]`.
pub fn probability_field<T: Element>(
    cells: usize,
    logits: impl Fn(&Tensor<T>) -> Tensor<T>,
) -> Field {
    let (lo, hi) = (-1.15, 1.15);
    let step = (hi - lo) / cells as f64;
    let centre = |i: usize| T::of(lo + (i as f64 + 0.5) * step);
    let grid = Tensor::from_fn(&[cells * cells, 2], |ij| {
        let (row, col) = (ij[0] / cells, ij[0] % cells);
        if ij[1] == 0 { centre(col) } else { centre(row) }
    });
    let out = logits(&grid);
    let values = (0..cells * cells)
        .map(|r| {
            let gap = (out.get(&[r, 0]) - out.get(&[r, 1]))
                .to_f64()
                .unwrap_or(0.0);
            1.0 / (1.0 + gap.exp())
        })
        .collect();
    Field {
        x: (lo, hi),
        y: (lo, hi),
        cols: cells,
        rows: cells,
        values,
    }
}
