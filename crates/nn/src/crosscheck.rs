//! Cross-check: the tape's gradients against the hand-written backward of
//! [`crate::manual`], layer by layer, with the first disagreeing layer named.
//!
//! [`crosscheck`] builds the manual twin of an autograd network from the *same* parameters
//! ([`Mirrored::to_manual`]), runs both on the same input and MSE target, and compares:
//! the loss; every parameter's gradient, by its dotted name; each layer's output; and each
//! layer's input gradient `d_in` — for the first layer that is ∂L/∂x. The autograd network
//! is recorded one layer at a time, keeping every layer's input on the tape, so the tape's
//! gradient of each intermediate value can be set beside the manual layer's `d_in`. When
//! the two disagree, [`CrosscheckReport::first_disagreement`] walks from the output
//! backwards and names the first layer whose gradients differ: the layer whose backward is
//! wrong (a layer below it only inherits the error).
//!
//! Differences are *scale-relative*: `max |a − b| / max(|a|∞, |b|∞)` per tensor. Ratios
//! taken entry by entry blow up on entries that cancel to nearly zero; a tensor's largest
//! entry is the scale its rounding errors live on.
//!
//! ```
//! use autograd::{Tensor, seeded_rng};
//! use nn::crosscheck::{Mirrored, crosscheck};
//! use nn::{Init, ProjectionBlock, ResidualBlock, Stack};
//!
//! let mut rng = seeded_rng(0);
//! let net = Stack::<dyn Mirrored<f64>>::new()
//!     .push(Box::new(ResidualBlock::new(4, Init::he(), &mut rng)))
//!     .push(Box::new(ProjectionBlock::new(4, 3, Init::he(), &mut rng)));
//! let x = Tensor::uniform(&[5, 4], -1.0, 1.0, &mut rng);
//! let y = Tensor::zeros(&[5, 3]);
//! let report = crosscheck(&net, &x, &y).unwrap();
//! assert!(report.passed(1e-12), "{report}");
//! ```

use crate::manual::{self, Layer, MSELoss};
use crate::module::{Ctx, Module};
use crate::residual::{ProjectionBlock, ResidualBlock, ResidualUnit};
use crate::stack::Stack;
use autograd::{Caller, Element, Error, Result, Tape, Tensor};
use std::fmt;

/// An autograd module with a hand-written twin in [`crate::manual`].
pub trait Mirrored<T: Element>: Module<T> {
    /// The manual-backward twin, holding the same parameter values (the buffers are
    /// shared until either side writes, then copied: the twin is a snapshot).
    fn to_manual(&self) -> Box<dyn Layer<T>>;
}

/// A residual block with a manual twin: it can be both cross-checked and taken apart by
/// [`crate::analysis`] (use `Stack<dyn MirroredUnit<T>>`).
pub trait MirroredUnit<T: Element>: Mirrored<T> + ResidualUnit<T> {}

impl<T: Element, U: Mirrored<T> + ResidualUnit<T>> MirroredUnit<T> for U {}

impl<T: Element> Mirrored<T> for crate::Linear<T> {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::Linear::from_autograd(self))
    }
}

impl<T: Element> Mirrored<T> for ResidualBlock<T> {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::ResidualBlock::from_autograd(self))
    }
}

impl<T: Element> Mirrored<T> for ProjectionBlock<T> {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::ProjectionBlock::from_autograd(self))
    }
}

impl<T: Element> Mirrored<T> for crate::Relu {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::ReLU::new())
    }
}

impl<T: Element> Mirrored<T> for crate::Sigmoid {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::Sigmoid::new())
    }
}

impl<T: Element> Mirrored<T> for crate::Tanh {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::Tanh::new())
    }
}

/// A stack's twin is the [`manual::Sequential`] of its layers' twins.
impl<T: Element, L: Mirrored<T> + ?Sized> Mirrored<T> for Stack<L> {
    fn to_manual(&self) -> Box<dyn Layer<T>> {
        Box::new(manual::Sequential {
            layers: self.layers.iter().map(|l| l.to_manual()).collect(),
        })
    }
}

/// How far apart two tensors are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Difference {
    /// `max |a − b|` over all entries.
    pub max_abs: f64,
    /// `max |a − b| / max(|a|∞, |b|∞)`: the largest difference relative to the tensors'
    /// scale (0 when both are zero; infinite when the shapes differ or a side is missing).
    pub max_rel: f64,
}

impl Difference {
    /// The difference between two tensors (infinite if their shapes differ).
    pub fn between<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Self {
        if a.shape() != b.shape() {
            return Self::missing();
        }
        let (mut max_abs, mut scale) = (0.0f64, 0.0f64);
        for (&x, &y) in a.data().iter().zip(b.data()) {
            let (x, y) = (as_f64(x), as_f64(y));
            max_abs = nan_max(max_abs, (x - y).abs());
            scale = nan_max(scale, x.abs().max(y.abs()));
        }
        Self::from_abs(max_abs, scale)
    }

    /// The difference between two scalars.
    pub fn of_scalars(a: f64, b: f64) -> Self {
        Self::from_abs((a - b).abs(), a.abs().max(b.abs()))
    }

    fn from_abs(max_abs: f64, scale: f64) -> Self {
        let max_rel = if max_abs == 0.0 { 0.0 } else { max_abs / scale };
        Difference { max_abs, max_rel }
    }

    /// A quantity one side does not have.
    fn missing() -> Self {
        Difference {
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
        }
    }

    /// Whether the relative difference is at most `tol` (never true for NaN).
    pub fn within(&self, tol: f64) -> bool {
        self.max_rel <= tol
    }
}

fn as_f64<T: Element>(x: T) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// `max` that keeps a NaN (so that a NaN gradient is never reported as agreeing).
fn nan_max(m: f64, x: f64) -> f64 {
    if x.is_nan() || x > m { x } else { m }
}

/// The first item with the largest relative difference (a NaN counts as largest).
fn first_max_by_rel<I: Iterator>(
    items: I,
    diff: impl Fn(&I::Item) -> Difference,
) -> Option<I::Item> {
    let worse = |x: f64, than: f64| (x.is_nan() && !than.is_nan()) || x > than;
    items.fold(None, |best, item| match best {
        Some(b) if !worse(diff(&item).max_rel, diff(&b).max_rel) => Some(b),
        _ => Some(item),
    })
}

/// One named quantity and how far apart the two sides are on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The parameter's dotted name (`"3.linear1.weight"`).
    pub name: String,
    /// Tape against manual.
    pub diff: Difference,
}

/// Everything compared for one layer of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerComparison {
    /// Position in the network (0 = first applied).
    pub index: usize,
    /// The manual layer's kind ([`Layer::name`]).
    pub kind: &'static str,
    /// The layer's output, tape against manual (forward pass).
    pub output: Difference,
    /// Each parameter's gradient, by dotted name.
    pub parameters: Vec<Comparison>,
    /// The gradient of the layer's input (`d_in`; for layer 0, ∂L/∂x).
    pub d_in: Difference,
}

impl LayerComparison {
    /// The name of this layer's input gradient: `∂L/∂x` for layer 0, else `∂L/∂h{index}`.
    pub fn d_in_name(&self) -> String {
        if self.index == 0 {
            "d_in = ∂L/∂x".to_string()
        } else {
            format!("d_in = ∂L/∂h{}", self.index)
        }
    }

    /// The parameter whose gradients differ most (relatively), if the layer has any.
    pub fn worst_parameter(&self) -> Option<&Comparison> {
        first_max_by_rel(self.parameters.iter(), |c| c.diff)
    }
}

/// Which pass a disagreement was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A layer's output differs: its forward is wrong.
    Forward,
    /// Outputs agree but the losses differ.
    Loss,
    /// A layer's gradients differ: its backward is wrong.
    Backward,
}

/// Where the two networks first part ways.
#[derive(Clone, Debug, PartialEq)]
pub struct Disagreement {
    /// The layer (`None` for the loss).
    pub layer: Option<usize>,
    /// The manual layer's kind (`"MSELoss"` for the loss).
    pub kind: &'static str,
    /// What differs: `"output"`, `"loss"`, a parameter's dotted name, or `d_in`.
    pub quantity: String,
    /// How much.
    pub diff: Difference,
    /// In which pass.
    pub pass: Pass,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pass = match self.pass {
            Pass::Forward => "forward",
            Pass::Loss => "loss",
            Pass::Backward => "backward",
        };
        match self.layer {
            Some(i) => write!(f, "layer {i} ({}), {pass} pass", self.kind)?,
            None => write!(f, "the loss ({})", self.kind)?,
        }
        write!(
            f,
            ": {} differs by {:.2e} (relative {:.2e})",
            self.quantity, self.diff.max_abs, self.diff.max_rel
        )
    }
}

/// The outcome of a [`crosscheck`]: tape against manual backward, layer by layer.
///
/// `Display` prints one row per layer, from the output back to the input (`{:#}` prints
/// every parameter), and the verdict at [`CrosscheckReport::tolerance`].
#[derive(Clone, Debug, PartialEq)]
pub struct CrosscheckReport {
    /// The element type (`"f32"` or `"f64"`).
    pub element: &'static str,
    /// The loss on the tape.
    pub loss_autograd: f64,
    /// The loss from the manual forward.
    pub loss_manual: f64,
    /// Their difference.
    pub loss: Difference,
    /// One entry per layer, first applied first.
    pub layers: Vec<LayerComparison>,
    /// ∂L/∂x, tape against manual (for a non-empty network, `layers[0].d_in`).
    pub input: Difference,
    /// The relative tolerance `Display` judges by (by default √ε of the element type).
    pub tolerance: f64,
}

impl CrosscheckReport {
    /// The same report, judged at `tol` when displayed.
    pub fn with_tolerance(mut self, tol: f64) -> Self {
        self.tolerance = tol;
        self
    }

    /// Every compared quantity with its name, loss first, then layer by layer.
    pub fn comparisons(&self) -> Vec<(String, Difference)> {
        let mut all = vec![("loss".to_string(), self.loss)];
        for l in &self.layers {
            all.push((format!("{}.output", l.index), l.output));
            all.extend(l.parameters.iter().map(|c| (c.name.clone(), c.diff)));
            all.push((format!("layer {} {}", l.index, l.d_in_name()), l.d_in));
        }
        all.push(("∂L/∂x".to_string(), self.input));
        all
    }

    /// The quantity with the largest relative difference, and that difference.
    pub fn worst(&self) -> (String, Difference) {
        first_max_by_rel(self.comparisons().into_iter(), |c| c.1)
            .unwrap_or_else(|| ("loss".to_string(), self.loss))
    }

    /// The largest relative difference over everything compared.
    pub fn max_rel(&self) -> f64 {
        self.worst().1.max_rel
    }

    /// The largest relative difference over the parameters' gradients.
    pub fn max_rel_parameters(&self) -> f64 {
        self.layers
            .iter()
            .flat_map(|l| &l.parameters)
            .map(|c| c.diff.max_rel)
            .fold(0.0, nan_max)
    }

    /// Where the networks first disagree by more than `tol` (relative): the first layer
    /// whose output differs (walking forward), else the loss, else — walking from the
    /// output backward — the first layer with a differing parameter gradient or `d_in`.
    /// `None` when everything agrees.
    pub fn first_disagreement(&self, tol: f64) -> Option<Disagreement> {
        if let Some(l) = self.layers.iter().find(|l| !l.output.within(tol)) {
            return Some(Disagreement {
                layer: Some(l.index),
                kind: l.kind,
                quantity: "output".to_string(),
                diff: l.output,
                pass: Pass::Forward,
            });
        }
        if !self.loss.within(tol) {
            return Some(Disagreement {
                layer: None,
                kind: "MSELoss",
                quantity: "loss".to_string(),
                diff: self.loss,
                pass: Pass::Loss,
            });
        }
        for l in self.layers.iter().rev() {
            let failing = l
                .parameters
                .iter()
                .map(|c| (c.name.clone(), c.diff))
                .chain(std::iter::once((l.d_in_name(), l.d_in)))
                .filter(|(_, d)| !d.within(tol));
            let worst = first_max_by_rel(failing, |c| c.1);
            if let Some((quantity, diff)) = worst {
                return Some(Disagreement {
                    layer: Some(l.index),
                    kind: l.kind,
                    quantity,
                    diff,
                    pass: Pass::Backward,
                });
            }
        }
        (!self.input.within(tol)).then(|| Disagreement {
            layer: None,
            kind: "MSELoss",
            quantity: "∂L/∂x".to_string(),
            diff: self.input,
            pass: Pass::Backward,
        })
    }

    /// Whether everything agrees to `tol` (relative).
    pub fn passed(&self, tol: f64) -> bool {
        self.first_disagreement(tol).is_none()
    }
}

impl fmt::Display for CrosscheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cross-check ({}): tape (autograd) against manual backward, {} layers; \
             relative = max|Δ| / max|value|",
            self.element,
            self.layers.len()
        )?;
        writeln!(
            f,
            "loss: tape {:.15e}, manual {:.15e}, relative {:.2e}",
            self.loss_autograd, self.loss_manual, self.loss.max_rel
        )?;
        writeln!(
            f,
            "{:>5}  {:<16} {:>10}  {:<28} {:>10}  {:>10}",
            "layer", "kind", "output", "worst parameter gradient", "rel", "d_in rel"
        )?;
        for l in self.layers.iter().rev() {
            let (name, rel) = l
                .worst_parameter()
                .map_or(("—".to_string(), "—".to_string()), |c| {
                    (c.name.clone(), format!("{:.2e}", c.diff.max_rel))
                });
            writeln!(
                f,
                "{:>5}  {:<16} {:>10.2e}  {:<28} {:>10}  {:>10.2e}",
                l.index, l.kind, l.output.max_rel, name, rel, l.d_in.max_rel
            )?;
            if f.alternate() {
                for c in &l.parameters {
                    writeln!(
                        f,
                        "{:>5}  {:<16} {:>10}  {:<28} {:>10.2e}  (max|Δ| {:.2e})",
                        "", "", "", c.name, c.diff.max_rel, c.diff.max_abs
                    )?;
                }
            }
        }
        writeln!(
            f,
            "∂L/∂x: max|Δ| {:.2e}, relative {:.2e}",
            self.input.max_abs, self.input.max_rel
        )?;
        match self.worst() {
            (_, worst) if worst.max_abs == 0.0 => {
                writeln!(f, "worst: none, every compared value is bit-identical")?
            }
            (name, worst) => writeln!(f, "worst: {name}, relative {:.2e}", worst.max_rel)?,
        }
        match self.first_disagreement(self.tolerance) {
            None => write!(f, "verdict: agree to {:.0e} (relative)", self.tolerance),
            Some(d) => write!(
                f,
                "verdict: DISAGREE at {:.0e}; first disagreement (from the output back): {d}",
                self.tolerance
            ),
        }
    }
}

/// Cross-checks a stack of mirrored layers: see the [module docs](self).
///
/// The loss is `mean((network(x) − target)²)`.
///
/// # Errors
/// If `target`'s shape is not the network's output shape (or the manual network's output
/// shape differs from it). A bad input width panics in the layers with their message.
#[track_caller]
pub fn crosscheck<T: Element, L: Mirrored<T> + ?Sized>(
    network: &Stack<L>,
    x: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<CrosscheckReport> {
    let layers: Vec<&L> = network.layers.iter().map(|l| &**l).collect();
    crosscheck_layers(&layers, x, target)
}

/// [`crosscheck`] for layers applied in the order given (e.g. `&[&block]` for one block).
#[track_caller]
pub fn crosscheck_layers<T: Element, L: Mirrored<T> + ?Sized>(
    layers: &[&L],
    x: &Tensor<T>,
    target: &Tensor<T>,
) -> Result<CrosscheckReport> {
    let tape = TapeRun::record(layers, x, target)?;
    let manual = ManualRun::run(layers, x, target)?;
    let mut comparisons = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let tape_grads: Vec<(String, Tensor<T>)> = layer
            .named_parameters()
            .into_iter()
            .map(|(name, p)| (format!("{i}.{name}"), tape.param_grads.wrt(&p)))
            .collect();
        comparisons.push(LayerComparison {
            index: i,
            kind: manual.kinds[i],
            output: Difference::between(&tape.outputs[i], &manual.outputs[i]),
            parameters: compare_by_name(&tape_grads, &manual.param_grads[i]),
            d_in: Difference::between(&tape.d_ins[i], &manual.d_ins[i]),
        });
    }
    let input = Difference::between(&tape.d_x, &manual.d_x);
    let eps = as_f64(T::epsilon());
    Ok(CrosscheckReport {
        element: T::NAME,
        loss_autograd: as_f64(tape.loss),
        loss_manual: as_f64(manual.loss),
        loss: Difference::of_scalars(as_f64(tape.loss), as_f64(manual.loss)),
        layers: comparisons,
        input,
        tolerance: eps.sqrt(),
    })
}

/// Matches gradients by name; a name present on one side only is an infinite difference.
fn compare_by_name<T: Element>(
    tape: &[(String, Tensor<T>)],
    manual: &[(String, Tensor<T>)],
) -> Vec<Comparison> {
    let find = |side: &[(String, Tensor<T>)], name: &str| {
        side.iter().find(|(n, _)| n == name).map(|(_, g)| g.clone())
    };
    let mut out: Vec<Comparison> = tape
        .iter()
        .map(|(name, g)| Comparison {
            name: name.clone(),
            diff: find(manual, name).map_or(Difference::missing(), |m| Difference::between(g, &m)),
        })
        .collect();
    out.extend(
        manual
            .iter()
            .filter(|(name, _)| find(tape, name).is_none())
            .map(|(name, _)| Comparison {
                name: format!("{name} (manual only)"),
                diff: Difference::missing(),
            }),
    );
    out
}

/// The autograd side, recorded one layer at a time so that every layer's input stays a
/// value on the tape whose gradient can be read.
struct TapeRun<T: Element> {
    outputs: Vec<Tensor<T>>,
    d_ins: Vec<Tensor<T>>,
    d_x: Tensor<T>,
    param_grads: crate::ParamGrads<T>,
    loss: T,
}

impl<T: Element> TapeRun<T> {
    #[track_caller]
    fn record<L: Mirrored<T> + ?Sized>(
        layers: &[&L],
        x: &Tensor<T>,
        target: &Tensor<T>,
    ) -> Result<Self> {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let mut hs = vec![cx.tracked_input(x.clone())];
        for layer in layers {
            let h = layer.forward(&cx, &hs[hs.len() - 1]);
            hs.push(h);
        }
        let out = &hs[hs.len() - 1];
        if out.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                op: "crosscheck (target against the network's output)",
                expected: out.shape().into(),
                got: target.shape().into(),
                at: Caller::here(),
            });
        }
        let diff = out - &cx.input(target.clone());
        let loss = (&diff * &diff).mean();
        let grads = loss.backward();
        Ok(TapeRun {
            outputs: hs[1..].iter().map(|h| h.value().clone()).collect(),
            d_ins: hs[..layers.len()].iter().map(|h| grads.wrt(h)).collect(),
            d_x: grads.wrt(&hs[0]),
            param_grads: cx.param_grads(&grads),
            loss: loss.item(),
        })
    }
}

/// The manual side: the twins' forward, the MSE loss, and the backward layer by layer.
struct ManualRun<T: Element> {
    kinds: Vec<&'static str>,
    outputs: Vec<Tensor<T>>,
    d_ins: Vec<Tensor<T>>,
    d_x: Tensor<T>,
    param_grads: Vec<Vec<(String, Tensor<T>)>>,
    loss: T,
}

impl<T: Element> ManualRun<T> {
    #[track_caller]
    fn run<L: Mirrored<T> + ?Sized>(
        layers: &[&L],
        x: &Tensor<T>,
        target: &Tensor<T>,
    ) -> Result<Self> {
        let mut twins: Vec<Box<dyn Layer<T>>> = layers.iter().map(|l| l.to_manual()).collect();
        let mut outputs = Vec::with_capacity(twins.len());
        let mut h = x.clone();
        for twin in &mut twins {
            h = twin.forward(&h);
            outputs.push(h.clone());
        }
        let mut mse = MSELoss::new();
        let loss = mse.try_forward(&h, target)?;
        let mut d = mse.backward();
        let mut d_ins = vec![Tensor::zeros(&[0]); twins.len()];
        for (i, twin) in twins.iter_mut().enumerate().rev() {
            d = twin.backward(&d);
            d_ins[i] = d.clone();
        }
        let param_grads = twins
            .iter()
            .enumerate()
            .map(|(i, twin)| {
                twin.named_parameters()
                    .into_iter()
                    .map(|(name, p)| (format!("{i}.{name}"), p.grad_or_zeros()))
                    .collect()
            })
            .collect();
        Ok(ManualRun {
            kinds: twins.iter().map(|t| t.name()).collect(),
            outputs,
            d_ins,
            d_x: d,
            param_grads,
            loss,
        })
    }
}
