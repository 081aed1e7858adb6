//! The one error type of the crate.
//!
//! Every fallible operation has a `try_*` form that returns [`Result`]; the panicking form
//! (and every operator overload) panics with exactly the same message. Each variant names
//! the operation, the shapes involved and, through `#[track_caller]`, the line of *your*
//! code that called it.

use std::fmt;
use std::panic::Location;

/// Where an operation was called from: the user's source line, captured with
/// `#[track_caller]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub &'static Location<'static>);

impl Caller {
    /// The caller of the current `#[track_caller]` function.
    #[track_caller]
    pub fn here() -> Self {
        Caller(Location::caller())
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0.file(), self.0.line(), self.0.column())
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The dimensions of a shape named in an [`Error`], outermost first. Boxed, so that an error
/// stays small: a `Result<_, Error>` costs little to return even when it is `Ok`.
pub type Dims = Box<[usize]>;

/// Everything that can go wrong in `autograd`. Messages name the op, the shapes, and the
/// caller's source line.
///
/// New variants may be added in minor versions (the enum is `#[non_exhaustive]`): a
/// `match` on it needs a `_` arm.
///
/// An `Error` is small — at most 80 bytes on 64-bit targets, its shapes and texts boxed — so
/// that functions returning `Result<_, Error>` stay below clippy's `result_large_err`
/// threshold (128 bytes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two shapes that NumPy broadcasting rules cannot combine.
    #[error("{op}: shapes {lhs:?} and {rhs:?} cannot be broadcast together (at {at})")]
    Broadcast {
        /// The operation.
        op: &'static str,
        /// Left operand's shape.
        lhs: Dims,
        /// Right operand's shape.
        rhs: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// Matrix product with mismatched inner dimensions or batch dimensions.
    #[error("{op}: cannot multiply {lhs:?} by {rhs:?}: {reason} (at {at})")]
    MatMul {
        /// The operation.
        op: &'static str,
        /// Left operand's shape.
        lhs: Dims,
        /// Right operand's shape.
        rhs: Dims,
        /// What does not fit.
        reason: &'static str,
        /// The caller's source line.
        at: Caller,
    },
    /// Two shapes that must be equal (or compatible in a stated way) are not.
    #[error("{op}: expected shape {expected:?}, got {got:?} (at {at})")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The shape that was needed.
        expected: Dims,
        /// The shape that was given.
        got: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// An operand of the wrong rank.
    #[error("{op}: expected {expected}, got shape {got:?} (at {at})")]
    Rank {
        /// The operation.
        op: &'static str,
        /// The rank(s) accepted, in words (e.g. "rank 2").
        expected: &'static str,
        /// The shape that was given.
        got: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// A data buffer whose length does not match the shape.
    #[error("{op}: {len} elements cannot fill shape {shape:?}, which holds {expected} (at {at})")]
    DataLength {
        /// The operation.
        op: &'static str,
        /// Length of the data.
        len: usize,
        /// The requested shape.
        shape: Dims,
        /// Number of elements the shape holds.
        expected: usize,
        /// The caller's source line.
        at: Caller,
    },
    /// A shape too large to address: the product of its dimensions overflows `usize`, or
    /// its size in bytes exceeds `isize::MAX` (the most one allocation can hold). Checked
    /// with the same arithmetic in debug and release builds. A shape that holds no element
    /// (a dimension is 0) is refused too when its other dimensions multiply beyond that
    /// bound: its strides would overflow.
    #[error(
        "{op}: shape {shape:?} is too large: its element count or byte size overflows (at {at})"
    )]
    SizeOverflow {
        /// The operation.
        op: &'static str,
        /// The shape asked for (a constructor's argument, or the shape an op would produce).
        shape: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// The memory for a result could not be allocated (the system refused it); nothing was
    /// computed.
    #[error("{op}: cannot allocate {bytes} bytes for shape {shape:?} (at {at})")]
    Alloc {
        /// The operation.
        op: &'static str,
        /// The shape of the buffer that could not be allocated.
        shape: Dims,
        /// Its size in bytes.
        bytes: usize,
        /// The caller's source line.
        at: Caller,
    },
    /// Reshape to a shape with a different number of elements.
    #[error(
        "{op}: cannot reshape {from:?} ({from_len} elements) into {to:?} ({to_len} elements) (at {at})"
    )]
    Reshape {
        /// The operation.
        op: &'static str,
        /// The original shape.
        from: Dims,
        /// Elements in the original shape.
        from_len: usize,
        /// The requested shape.
        to: Dims,
        /// Elements in the requested shape.
        to_len: usize,
        /// The caller's source line.
        at: Caller,
    },
    /// An axis beyond the tensor's rank: a tensor of rank `r` has the axes `0..r`, also
    /// counted from the back as `-r..=-1` (see [`crate::Axis`]).
    #[error("{op}: axis {axis} is out of range for shape {shape:?} (at {at})")]
    Axis {
        /// The operation.
        op: &'static str,
        /// The axis as it was given (negative: counted from the back). Every type that
        /// implements [`crate::Axis`] converts to `i128` without loss.
        axis: i128,
        /// The tensor's shape.
        shape: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// An index (or a range) beyond an axis' length.
    #[error("{op}: index {index} is out of range for an axis of length {len} (at {at})")]
    Index {
        /// The operation.
        op: &'static str,
        /// The offending index (for a range, its end).
        index: usize,
        /// The axis' length.
        len: usize,
        /// The caller's source line.
        at: Caller,
    },
    /// A range along an axis that ends past the axis' end (`narrow`): `start + len > size`.
    #[error(
        "{op}: start {start} + length {len} > size {size} of axis {axis}: the range ends past the end of the axis (at {at})"
    )]
    Range {
        /// The operation.
        op: &'static str,
        /// The axis, counted from the front.
        axis: usize,
        /// The first position of the range.
        start: usize,
        /// The range's length.
        len: usize,
        /// The axis' size.
        size: usize,
        /// The caller's source line.
        at: Caller,
    },
    /// An argument outside its domain (e.g. `clamp` with `lo > hi`, an empty `concat`).
    #[error("{op}: {reason} (at {at})")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong, in words.
        reason: String,
        /// The caller's source line.
        at: Caller,
    },
    /// `backward()` on a non-scalar output, which needs an explicit seed.
    #[error(
        "backward: the output has shape {shape:?}; backward() needs a scalar, use backward_with(seed) (at {at})"
    )]
    NonScalarBackward {
        /// The output's shape.
        shape: Dims,
        /// The caller's source line.
        at: Caller,
    },
    /// A NaN or an infinity, caught by anomaly mode ([`crate::Tape::set_detect_anomaly`]):
    /// the first node that produced one, in the forward pass (its value) or in the backward
    /// pass (a gradient it sent, or its own accumulated gradient).
    #[error(
        "anomaly in the {phase}: node %{node} ({op} of {}) {what} (recorded at {at})",
        fmt_input_shapes(.input_shapes)
    )]
    Anomaly {
        /// Forward value or backward gradient.
        phase: AnomalyPhase,
        /// The node's index on the tape.
        node: usize,
        /// The node's op.
        op: &'static str,
        /// The shapes of the node's inputs, in argument order. `None` is an untracked
        /// constant whose shape the tape does not keep (in the backward pass only).
        input_shapes: Box<[Option<Dims>]>,
        /// What was found, e.g. "produced 3 NaN among its 32 values".
        what: String,
        /// The source line that recorded the node.
        at: Caller,
    },
    /// Two `Var`s recorded on different tapes met in one operation.
    #[error("{op}: the operands belong to different tapes (at {at})")]
    ForeignTape {
        /// The operation.
        op: &'static str,
        /// The caller's source line.
        at: Caller,
    },
    /// An error inside one layer of a container module (`nn::Sequential`, `nn::Stack`): the
    /// container, the failing layer's position and type, then the layer's own error, which
    /// names the line that called the container.
    #[error("{container} layer {index} ({layer}): {error}")]
    InLayer {
        /// The container's type, e.g. `"Sequential"`.
        container: &'static str,
        /// The failing layer's position in the container (0 = applied first).
        index: usize,
        /// The failing layer's type without module paths, e.g. `"Linear<f32>"`.
        layer: String,
        /// The layer's own error.
        error: Box<Error>,
    },
}

impl Error {
    /// The error itself, or for [`Error::InLayer`] the innermost layer's own error: the
    /// variant to match on to learn what went wrong.
    ///
    /// ```
    /// use autograd::{Caller, Error};
    /// let inner = Error::InvalidArgument { op: "op", reason: "bad".into(), at: Caller::here() };
    /// let outer = Error::InLayer {
    ///     container: "Sequential",
    ///     index: 2,
    ///     layer: "Linear<f32>".into(),
    ///     error: Box::new(inner.clone()),
    /// };
    /// assert_eq!(outer.innermost(), &inner);
    /// ```
    pub fn innermost(&self) -> &Error {
        match self {
            Error::InLayer { error, .. } => error.innermost(),
            e => e,
        }
    }

    /// The same error, naming `at` as the line that made the failing call. A container
    /// module calls its layers on the user's behalf and reports the line that called *it*;
    /// for [`Error::InLayer`] the innermost error is changed. [`Error::Anomaly`] keeps the
    /// line that recorded its node.
    pub fn with_caller(mut self, at: Caller) -> Self {
        if let Some(site) = self.call_site_mut() {
            *site = at;
        }
        self
    }

    fn call_site_mut(&mut self) -> Option<&mut Caller> {
        match self {
            Error::Broadcast { at, .. }
            | Error::MatMul { at, .. }
            | Error::ShapeMismatch { at, .. }
            | Error::Rank { at, .. }
            | Error::DataLength { at, .. }
            | Error::Reshape { at, .. }
            | Error::Axis { at, .. }
            | Error::Index { at, .. }
            | Error::Range { at, .. }
            | Error::InvalidArgument { at, .. }
            | Error::SizeOverflow { at, .. }
            | Error::Alloc { at, .. }
            | Error::NonScalarBackward { at, .. }
            | Error::ForeignTape { at, .. } => Some(at),
            Error::Anomaly { .. } => None,
            Error::InLayer { error, .. } => error.call_site_mut(),
        }
    }
}

/// Where anomaly mode found a NaN or an infinity (see [`crate::Tape::set_detect_anomaly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyPhase {
    /// In a value computed by the forward pass, checked when the node was recorded.
    Forward,
    /// In a gradient, checked during the reverse sweep.
    Backward,
}

impl fmt::Display for AnomalyPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnomalyPhase::Forward => "forward pass",
            AnomalyPhase::Backward => "backward pass",
        })
    }
}

/// Input shapes as printed in an anomaly report: `[4, 8], const`.
fn fmt_input_shapes(shapes: &[Option<Dims>]) -> String {
    let shapes: Vec<String> = shapes
        .iter()
        .map(|s| s.as_ref().map_or("const".into(), |s| format!("{s:?}")))
        .collect();
    shapes.join(", ")
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Unwraps a `Result` from a `try_*` form, panicking with the error's message; used by every
/// panicking form and operator so that the two always say the same.
#[track_caller]
pub(crate) fn or_panic<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_caller_moves_the_innermost_call_site_only() {
        let (inner_at, user_at) = (Caller::here(), Caller::here());
        assert_ne!(inner_at, user_at);
        let inner = Error::Axis {
            op: "sum",
            axis: 3,
            shape: [2, 2].as_slice().into(),
            at: inner_at,
        };
        let nested = Error::InLayer {
            container: "Sequential",
            index: 0,
            layer: "Stack<dyn Module<f32>>".into(),
            error: Box::new(Error::InLayer {
                container: "Stack",
                index: 1,
                layer: "Linear<f32>".into(),
                error: Box::new(inner),
            }),
        };
        let moved = nested.with_caller(user_at);
        let msg = moved.to_string();
        assert!(
            msg.starts_with("Sequential layer 0 (Stack<dyn Module<f32>>): Stack layer 1 (Linear<f32>): sum: axis 3"),
            "{msg}"
        );
        assert!(msg.ends_with(&format!("(at {user_at})")), "{msg}");
        assert!(matches!(moved.innermost(), Error::Axis { at, .. } if *at == user_at));
        let anomaly = Error::Anomaly {
            phase: AnomalyPhase::Forward,
            node: 0,
            op: "log",
            input_shapes: Box::new([]),
            what: "produced 1 NaN".into(),
            at: inner_at,
        };
        assert_eq!(anomaly.clone().with_caller(user_at), anomaly);
    }

    /// Returning `Result<_, Error>` must stay cheap, and clippy's `result_large_err` (which
    /// fires at 128 bytes) must stay quiet in user code: shapes and texts are boxed.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_error_is_at_most_80_bytes() {
        assert!(size_of::<Error>() <= 80, "{} bytes", size_of::<Error>());
        assert!(size_of::<Result<(), Error>>() <= 80);
    }
}
