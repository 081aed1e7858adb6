//! The training step: [`value_and_grad`] runs a loss on a fresh tape and hands back its
//! value and the gradient of every parameter it used — with the tape already gone, so the
//! optimizer's step that follows updates every parameter in place, without a copy.
//!
//! ```
//! use nn::{Init, Module, Optimizer, ResidualBlock, Sgd, loss};
//! use autograd::{Tensor, seeded_rng};
//!
//! let model = ResidualBlock::<f32>::new(8, Init::he(), &mut seeded_rng(0));
//! let mut opt = Sgd::new(model.parameters(), 0.05);
//! let (x, y) = (Tensor::ones(&[4, 8]), Tensor::zeros(&[4, 8]));
//! for step in 0..10 {
//!     let (loss, grads) = nn::value_and_grad(step, |cx| {
//!         let out = model.forward(cx, &cx.input(x.clone()));
//!         loss::mse(&out, &cx.input(y.clone()))
//!     });
//!     opt.step(&grads);
//!     println!("step {step}: loss {loss:.4}");
//! }
//! ```
//!
//! This is PyTorch's `loss.backward(); opt.step()` with the tape's lifetime made explicit:
//! JAX calls the same function `value_and_grad`. The closure can only return a value of the
//! tape it is given, and nothing recorded on that tape outlives the call, so the step cannot
//! be written in a way that makes the optimizer copy the parameters. When you need the
//! tape itself during the step (hooks, contributions, the table, gradients of gradients),
//! make it and the [`Ctx`] yourself; see [`Ctx`].

use crate::module::Ctx;
use crate::param::ParamGrads;
use autograd::{Caller, Element, Error, Result, Tape, Var};

/// One training step's forward and backward: makes a tape and a training-mode [`Ctx`]
/// (`seed` drives dropout and stochastic depth), runs `loss` on it, sweeps backward once
/// keeping only the leaves' gradients ([`Var::backward_leaves`]), drops the tape, and
/// returns the loss's value and the gradient of every parameter the loss used.
///
/// The tape and everything it saved are freed before this returns: the parameters'
/// buffers are then shared with nothing, and [`Optimizer::step`](crate::Optimizer::step)
/// updates them in place. See the [module](crate::training) for the loop.
///
/// # Panics
/// Where [`try_value_and_grad`] returns an error: the loss is not a scalar, or anomaly
/// mode (switched on inside `loss`) found a NaN or an infinity.
#[track_caller]
pub fn value_and_grad<T, F>(seed: u64, loss: F) -> (T, ParamGrads<T>)
where
    T: Element,
    F: for<'t> FnOnce(&Ctx<'t, T>) -> Var<'t, T>,
{
    try_value_and_grad(seed, loss).unwrap_or_else(|e| panic!("{e}"))
}

/// [`value_and_grad`], as a `Result`: an error if the loss is not a scalar
/// ([`Error::NonScalarBackward`]), if it was recorded on another tape than the step's
/// ([`Error::ForeignTape`]), or if anomaly mode found a NaN or an infinity
/// ([`Error::Anomaly`]).
///
/// ```
/// use autograd::{Error, Tensor};
///
/// let not_a_scalar = nn::try_value_and_grad::<f64, _>(0, |cx| cx.input(Tensor::ones(&[2])));
/// assert!(matches!(not_a_scalar, Err(Error::NonScalarBackward { .. })));
/// ```
#[track_caller]
pub fn try_value_and_grad<T, F>(seed: u64, loss: F) -> Result<(T, ParamGrads<T>)>
where
    T: Element,
    F: for<'t> FnOnce(&Ctx<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::new();
    let cx = Ctx::train(&tape, seed);
    let loss = loss(&cx);
    if !std::ptr::eq(loss.tape(), &tape) {
        return Err(Error::ForeignTape {
            op: "value_and_grad",
            at: Caller::here(),
        });
    }
    let grads = cx.param_grads(&loss.try_backward_leaves()?);
    Ok((loss.value().try_item()?, grads))
    // `loss`, `cx` and `tape` are dropped here, in that order: nothing holds the
    // parameters' buffers any more.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Linear, Module, Param};
    use autograd::{Tensor, seeded_rng};

    #[test]
    fn gradients_match_a_hand_built_step_and_the_buffers_are_free() {
        let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
        let x = Tensor::uniform(&[4, 3], -1.0, 1.0, &mut seeded_rng(1));
        let (value, grads) = value_and_grad(0, |cx| {
            let y = layer.forward(cx, &cx.input(x.clone()));
            (&y * &y).sum()
        });
        {
            let tape = Tape::new();
            let cx = Ctx::train(&tape, 0);
            let y = layer.forward(&cx, &cx.input(x.clone()));
            let loss = (&y * &y).sum();
            let by_hand = cx.param_grads(&loss.backward());
            assert_eq!(value, loss.item());
            assert_eq!(grads.len(), 2);
            for (p, g) in &grads {
                assert_eq!(g, by_hand.get(p).unwrap());
            }
        }
        // Only the module holds each parameter's buffer now: an update is in place.
        let weight: &Param<f64> = &layer.weight;
        let before = weight.value().data().as_ptr();
        weight.update(|w| w[0] += 1.0);
        assert_eq!(weight.value().data().as_ptr(), before);
    }

    #[test]
    fn a_loss_from_another_tape_is_an_error() {
        let other: &'static Tape<f64> = Box::leak(Box::new(Tape::new()));
        let e = try_value_and_grad(0, |_| other.var(Tensor::scalar(1.0)))
            .err()
            .unwrap();
        assert!(matches!(e, Error::ForeignTape { .. }), "{e}");
        assert!(e.to_string().contains("training.rs"), "{e}");
    }
}
