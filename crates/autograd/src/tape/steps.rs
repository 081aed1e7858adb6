//! Step-through backward: the reverse sweep as an iterator, one node per step.

use super::{Gradients, Plain, Sweep};
use crate::element::Element;
use crate::error::{Result, or_panic};
use crate::tensor::Tensor;
use std::fmt;

/// One node of the reverse sweep, as the sweep visited it.
#[derive(Clone, Debug)]
pub struct BackwardStep<T> {
    /// The node's index on the tape.
    pub node: usize,
    /// The node's op.
    pub op: &'static str,
    /// The node's adjoint ∂L/∂node (final when the sweep reaches the node; after any
    /// hook on it ran).
    pub adjoint: Tensor<T>,
    /// What the node's backward rule sent: (input node, contribution), one per tracked
    /// input, in argument order. Empty for a leaf.
    pub sends: Vec<(usize, Tensor<T>)>,
}

/// `%4 relu  ‖adjoint‖ 1.2000  → %3: 0.8000`: the node, its op, the norm of its adjoint and
/// of each contribution it sends.
impl<T: Element> fmt::Display for BackwardStep<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = format!("%{}", self.node);
        let mut line = format!(
            "{id:>5}  {:<12} ‖adjoint‖ {:.4}",
            self.op,
            self.adjoint.norm()
        );
        for (k, (to, c)) in self.sends.iter().enumerate() {
            let sep = if k == 0 { "  →" } else { "," };
            line.push_str(&format!("{sep} %{to}: {:.4}", c.norm()));
        }
        f.write_str(&line)?;
        Ok(())
    }
}

/// The reverse sweep of first-order backward, one node at a time (see
/// [`Var::backward_steps`](super::Var::backward_steps)).
///
/// It yields one [`BackwardStep`] for each node that receives an adjoint — the output and
/// every node it depends on through tracked inputs — from the output down to node 0: the
/// same nodes, in the same order, with the same computations as [`Var::backward`](super::Var::backward)
/// (hooks, tracked contributions and anomaly checks included). After the last step,
/// [`BackwardSteps::into_gradients`] gives exactly what `backward` gives; called earlier, it
/// runs the remaining steps first.
///
/// If a step fails (anomaly mode, a hook returning the wrong shape), iteration ends and
/// [`BackwardSteps::try_into_gradients`] returns the error.
pub struct BackwardSteps<'t, T: Element> {
    sweep: Sweep<'t, T, Plain>,
    error: Option<crate::error::Error>,
}

impl<'t, T: Element> BackwardSteps<'t, T> {
    pub(crate) fn new(sweep: Sweep<'t, T, Plain>) -> Self {
        BackwardSteps { sweep, error: None }
    }

    /// The gradients, after running any remaining step.
    ///
    /// # Panics
    /// If a step failed; see [`BackwardSteps::try_into_gradients`].
    #[track_caller]
    pub fn into_gradients(self) -> Gradients<T> {
        or_panic(self.try_into_gradients())
    }

    /// The gradients, after running any remaining step, or the error a step met.
    pub fn try_into_gradients(self) -> Result<Gradients<T>> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let tape = self.sweep.tape.id;
        let (grads, extras) = self.sweep.run()?;
        Ok(Gradients {
            tape,
            grads,
            contributions: extras.into_contributions(),
        })
    }
}

impl<T: Element> Iterator for BackwardSteps<'_, T> {
    type Item = BackwardStep<T>;

    fn next(&mut self) -> Option<BackwardStep<T>> {
        if self.error.is_some() {
            return None;
        }
        let tape = self.sweep.tape;
        let mut seen = None;
        let step = self.sweep.step(|node, adjoint, sends| {
            seen = Some(BackwardStep {
                node,
                op: tape.nodes.borrow()[node].op.name(),
                adjoint: adjoint.clone(),
                sends: sends.to_vec(),
            });
        });
        match step {
            Ok(_) => seen,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}
