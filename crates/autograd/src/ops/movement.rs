//! Ops that move elements without arithmetic: reshape, permute/transpose, broadcast_to,
//! narrow, concat/stack, index_select and gather — and their adjoints, which are each
//! other's backward (tinygrad's lesson: broadcast ↔ sum, narrow ↔ pad, select ↔ add).
//!
//! | op | backward | saves |
//! |----|----------|-------|
//! | reshape | reshape back | input shape |
//! | permute | inverse permutation | permutation |
//! | broadcast_to | sum_to the input shape | input shape |
//! | narrow | pad with zeros | range |
//! | concat | narrow per input | lengths |
//! | index_select | index_add | indices |
//! | gather | scatter_add | indices |

use super::{Algebra, Op};
use crate::buffer_pool;
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::strided::{self, split_at_axis};
use crate::shape::{Shape, broadcasts_to, check_axis, checked_len, numel};
use crate::tape::{Lift, Var, Vjp};
use crate::tensor::{Tensor, output_buffer};
use smallvec::SmallVec;
use std::sync::Arc;

/// A recorded movement op.
#[derive(Clone)]
pub(crate) enum MovementOp {
    Reshape {
        input: Shape,
    },
    Permute {
        perm: Shape,
    },
    BroadcastTo {
        input: Shape,
    },
    Narrow {
        axis: usize,
        start: usize,
        input_len: usize,
    },
    Pad {
        axis: usize,
        start: usize,
        input_len: usize,
    },
    Concat {
        axis: usize,
        lens: SmallVec<[usize; 4]>,
    },
    IndexSelect {
        axis: usize,
        index: Arc<[usize]>,
        input_len: usize,
    },
    IndexAdd {
        axis: usize,
        index: Arc<[usize]>,
    },
    Gather {
        axis: usize,
        index: Tensor<usize>,
        input: Shape,
    },
    ScatterAdd {
        axis: usize,
        index: Tensor<usize>,
    },
}

impl MovementOp {
    pub fn name(&self) -> &'static str {
        match self {
            MovementOp::Reshape { .. } => "reshape",
            MovementOp::Permute { .. } => "permute",
            MovementOp::BroadcastTo { .. } => "broadcast_to",
            MovementOp::Narrow { .. } => "narrow",
            MovementOp::Pad { .. } => "pad",
            MovementOp::Concat { .. } => "concat",
            MovementOp::IndexSelect { .. } => "index_select",
            MovementOp::IndexAdd { .. } => "index_add",
            MovementOp::Gather { .. } => "gather",
            MovementOp::ScatterAdd { .. } => "scatter_add",
        }
    }

    pub fn saved_bytes(&self) -> usize {
        let word = std::mem::size_of::<usize>();
        match self {
            MovementOp::IndexSelect { index, .. } | MovementOp::IndexAdd { index, .. } => {
                index.len() * word
            }
            MovementOp::Gather { index, .. } | MovementOp::ScatterAdd { index, .. } => {
                index.bytes()
            }
            _ => 0,
        }
    }

    pub fn vjp<T: Element, L: Lift<T>>(&self, g: &L::V, cx: &mut Vjp<'_, T, L>) {
        match self {
            MovementOp::Reshape { input } => cx.send(0, g.reshape(input)),
            MovementOp::Permute { perm } => {
                let mut inverse: Shape = smallvec::smallvec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                cx.send(0, g.permute(&inverse));
            }
            MovementOp::BroadcastTo { input } => cx.send(0, g.sum_to(input)),
            MovementOp::Narrow {
                axis,
                start,
                input_len,
            } => cx.send(0, g.pad(*axis, *start, *input_len)),
            MovementOp::Pad {
                axis,
                start,
                input_len,
            } => cx.send(0, g.narrow(*axis, *start, *input_len)),
            MovementOp::Concat { axis, lens } => {
                let mut start = 0;
                for (k, &len) in lens.iter().enumerate() {
                    if cx.needs(k) {
                        cx.send(k, g.narrow(*axis, start, len));
                    }
                    start += len;
                }
            }
            MovementOp::IndexSelect {
                axis,
                index,
                input_len,
            } => cx.send(0, g.index_add(*axis, index, *input_len)),
            MovementOp::IndexAdd { axis, index } => cx.send(0, g.index_select(*axis, index)),
            MovementOp::Gather { axis, index, input } => {
                cx.send(0, g.scatter_add(*axis, index, input))
            }
            MovementOp::ScatterAdd { axis, index } => cx.send(0, g.gather(*axis, index)),
        }
    }
}

/// Zeros of `x`'s shape but `len` along `axis`, with `x` placed at `start..`.
pub(crate) fn pad<T: Element>(x: &Tensor<T>, axis: usize, start: usize, len: usize) -> Tensor<T> {
    let (outer, l, inner) = split_at_axis(x.shape(), axis);
    let mut shape: Shape = x.shape().into();
    shape[axis] = len;
    let mut out = buffer_pool::zeroed(numel(&shape));
    for o in 0..outer {
        let src = &x.data()[o * l * inner..(o + 1) * l * inner];
        out[(o * len + start) * inner..(o * len + start + l) * inner].copy_from_slice(src);
    }
    Tensor::from_parts(out, shape)
}

/// The shape of `index_select(x, axis, index)`.
fn selected_shape(shape: &[usize], axis: usize, index: &[usize]) -> Shape {
    let mut out: Shape = shape.into();
    out[axis] = index.len();
    out
}

/// The slices of `x` at `index` along `axis`, into `out` (room for [`selected_shape`]).
pub(crate) fn index_select<T: Element>(
    x: &Tensor<T>,
    axis: usize,
    index: &[usize],
    mut out: Vec<T>,
) -> Tensor<T> {
    let (outer, l, inner) = split_at_axis(x.shape(), axis);
    let shape = selected_shape(x.shape(), axis, index);
    for o in 0..outer {
        for &i in index {
            out.extend_from_slice(&x.data()[(o * l + i) * inner..(o * l + i + 1) * inner]);
        }
    }
    Tensor::from_parts(out, shape)
}

pub(crate) fn index_add<T: Element>(
    x: &Tensor<T>,
    axis: usize,
    index: &[usize],
    len: usize,
) -> Tensor<T> {
    let (outer, l, inner) = split_at_axis(x.shape(), axis);
    let mut shape: Shape = x.shape().into();
    shape[axis] = len;
    let mut out = buffer_pool::zeroed(numel(&shape));
    for o in 0..outer {
        for (j, &i) in index.iter().enumerate().take(l) {
            let src = &x.data()[(o * l + j) * inner..(o * l + j + 1) * inner];
            for (d, &s) in out[(o * len + i) * inner..(o * len + i + 1) * inner]
                .iter_mut()
                .zip(src)
            {
                *d += s;
            }
        }
    }
    Tensor::from_parts(out, shape)
}

/// Adds `x` (shaped like `index`) into zeros of `shape` at the positions `index` names
/// along `axis`.
pub(crate) fn scatter_add<T: Element>(
    x: &Tensor<T>,
    axis: usize,
    index: &Tensor<usize>,
    shape: &[usize],
) -> Tensor<T> {
    let (outer, l, inner) = split_at_axis(index.shape(), axis);
    let len = shape[axis];
    let mut out = buffer_pool::zeroed(numel(shape));
    for o in 0..outer {
        for j in 0..l {
            for i in 0..inner {
                let at = (o * l + j) * inner + i;
                out[(o * len + index.data()[at]) * inner + i] += x.data()[at];
            }
        }
    }
    Tensor::from_parts(out, shape.into())
}

#[track_caller]
fn reshape_check<T>(from: &[usize], to: &[usize]) -> Result<()> {
    let to_len = checked_len::<T>("reshape", to)?;
    if numel(from) == to_len {
        Ok(())
    } else {
        Err(Error::Reshape {
            op: "reshape",
            from: from.into(),
            from_len: numel(from),
            to: to.into(),
            to_len,
            at: Caller::here(),
        })
    }
}

#[track_caller]
fn permute_check(shape: &[usize], perm: &[usize]) -> Result<()> {
    let mut seen = vec![false; shape.len()];
    let valid = perm.len() == shape.len()
        && perm
            .iter()
            .all(|&p| p < shape.len() && !std::mem::replace(&mut seen[p], true));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op: "permute",
            reason: format!("{perm:?} is not a permutation of the axes of shape {shape:?}"),
            at: Caller::here(),
        })
    }
}

#[track_caller]
fn narrow_check(shape: &[usize], axis: usize, start: usize, len: usize) -> Result<()> {
    check_axis("narrow", axis, shape)?;
    // `start + len` with checked arithmetic: `narrow(axis, usize::MAX, 2)` must not wrap
    // around to a range that fits.
    match start.checked_add(len) {
        Some(end) if end <= shape[axis] => Ok(()),
        end => Err(Error::Index {
            op: "narrow",
            index: end.unwrap_or(usize::MAX),
            len: shape[axis],
            at: Caller::here(),
        }),
    }
}

#[track_caller]
fn index_check(op: &'static str, index: &[usize], len: usize) -> Result<()> {
    match index.iter().find(|&&i| i >= len) {
        Some(&i) => Err(Error::Index {
            op,
            index: i,
            len,
            at: Caller::here(),
        }),
        None => Ok(()),
    }
}

#[track_caller]
fn gather_check(shape: &[usize], axis: usize, index: &Tensor<usize>) -> Result<()> {
    check_axis("gather", axis, shape)?;
    let same_elsewhere = index.rank() == shape.len()
        && (0..shape.len()).all(|d| d == axis || index.shape()[d] == shape[d]);
    if !same_elsewhere {
        return Err(Error::ShapeMismatch {
            op: "gather",
            expected: shape.into(),
            got: index.shape().into(),
            at: Caller::here(),
        });
    }
    index_check("gather", index.data(), shape[axis])
}

#[track_caller]
fn concat_shape<'a>(
    shapes: impl Iterator<Item = &'a [usize]> + Clone,
    axis: usize,
) -> Result<Shape> {
    let mut iter = shapes.clone();
    let Some(first) = iter.next() else {
        return Err(Error::InvalidArgument {
            op: "concat",
            reason: "no inputs".into(),
            at: Caller::here(),
        });
    };
    check_axis("concat", axis, first)?;
    let mut out: Shape = first.into();
    for s in iter {
        let fits = s.len() == first.len() && (0..s.len()).all(|d| d == axis || s[d] == first[d]);
        if !fits {
            return Err(Error::ShapeMismatch {
                op: "concat",
                expected: first.into(),
                got: s.into(),
                at: Caller::here(),
            });
        }
        // A length past usize::MAX is reported as usize::MAX: too large either way.
        out[axis] = out[axis].saturating_add(s[axis]);
    }
    Ok(out)
}

/// The parts joined along `axis` into a tensor of `shape` (checked by [`concat_shape`]).
#[track_caller]
fn concat<T: Element>(parts: &[&Tensor<T>], axis: usize, shape: Shape) -> Result<Tensor<T>> {
    let mut out = output_buffer("concat", &shape)?;
    let outer = numel(&shape[..axis]);
    for o in 0..outer {
        for p in parts {
            let block = p.shape()[axis] * numel(&p.shape()[axis + 1..]);
            out.extend_from_slice(&p.data()[o * block..(o + 1) * block]);
        }
    }
    Ok(Tensor::from_parts(out, shape))
}

impl<T: Element> Tensor<T> {
    /// The same elements with another shape of equal element count (no copy).
    #[track_caller]
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Tensor<T>> {
        reshape_check::<T>(self.shape(), shape)?;
        Ok(self.with_shape(shape))
    }
    /// [`Tensor::try_reshape`]; panics with its error.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Tensor<T> {
        or_panic(self.try_reshape(shape))
    }
    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    #[track_caller]
    pub fn try_permute(&self, perm: &[usize]) -> Result<Tensor<T>> {
        permute_check(self.shape(), perm)?;
        let shape = strided::permuted(self.shape(), perm);
        let out = output_buffer("permute", &shape)?;
        let data = strided::permute(self.data(), self.shape(), perm, out);
        Ok(Tensor::from_parts(data, shape))
    }
    /// [`Tensor::try_permute`]; panics with its error.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Tensor<T> {
        or_panic(self.try_permute(perm))
    }
    /// Swaps two axes.
    #[track_caller]
    pub fn transpose(&self, a: usize, b: usize) -> Tensor<T> {
        or_panic(swap_perm(self.shape(), a, b).and_then(|p| self.try_permute(&p)))
    }
    /// The transpose of a matrix (swaps the last two axes).
    #[track_caller]
    pub fn t(&self) -> Tensor<T> {
        let r = self.rank();
        self.transpose(r.saturating_sub(2), r.saturating_sub(1))
    }
    /// Repeats the tensor along broadcast dimensions (NumPy rules) to `shape`.
    #[track_caller]
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Tensor<T>> {
        if !broadcasts_to(self.shape(), shape) {
            return Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape().into(),
                rhs: shape.into(),
                at: Caller::here(),
            });
        }
        let out = output_buffer("broadcast_to", shape)?;
        Ok(Tensor::from_parts(
            strided::broadcast_to(self.data(), self.shape(), shape, out),
            shape.into(),
        ))
    }
    /// [`Tensor::try_broadcast_to`]; panics with its error.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor<T> {
        or_panic(self.try_broadcast_to(shape))
    }
    /// Elements `start..start + len` along `axis`.
    #[track_caller]
    pub fn try_narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor<T>> {
        narrow_check(self.shape(), axis, start, len)?;
        let (outer, l, inner) = split_at_axis(self.shape(), axis);
        let mut shape: Shape = self.shape().into();
        shape[axis] = len;
        let mut out = output_buffer("narrow", &shape)?;
        for o in 0..outer {
            out.extend_from_slice(
                &self.data()[(o * l + start) * inner..(o * l + start + len) * inner],
            );
        }
        Ok(Tensor::from_parts(out, shape))
    }
    /// [`Tensor::try_narrow`]; panics with its error.
    #[track_caller]
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor<T> {
        or_panic(self.try_narrow(axis, start, len))
    }
    /// Joins tensors along an existing axis; all other dimensions must agree.
    #[track_caller]
    pub fn try_concat(parts: &[&Tensor<T>], axis: usize) -> Result<Tensor<T>> {
        let shape = concat_shape(parts.iter().map(|p| p.shape()), axis)?;
        concat(parts, axis, shape)
    }
    /// The slices at `index` along `axis`, in that order (repeats allowed).
    #[track_caller]
    pub fn try_index_select(&self, axis: usize, index: &[usize]) -> Result<Tensor<T>> {
        check_axis("index_select", axis, self.shape())?;
        index_check("index_select", index, self.shape()[axis])?;
        let out = output_buffer("index_select", &selected_shape(self.shape(), axis, index))?;
        Ok(index_select(self, axis, index, out))
    }
    /// [`Tensor::try_index_select`]; panics with its error.
    #[track_caller]
    pub fn index_select(&self, axis: usize, index: &[usize]) -> Tensor<T> {
        or_panic(self.try_index_select(axis, index))
    }
    /// PyTorch's `gather`: `out[…, j, …] = self[…, index[…, j, …], …]` along `axis`; `index`
    /// has the rank of `self` and its size on every other axis.
    #[track_caller]
    pub fn try_gather(&self, axis: usize, index: &Tensor<usize>) -> Result<Tensor<T>> {
        gather_check(self.shape(), axis, index)?;
        let (outer, l, inner) = split_at_axis(index.shape(), axis);
        let len = self.shape()[axis];
        let mut out = output_buffer("gather", index.shape())?;
        for o in 0..outer {
            for j in 0..l {
                for i in 0..inner {
                    out.push(
                        self.data()[(o * len + index.data()[(o * l + j) * inner + i]) * inner + i],
                    );
                }
            }
        }
        Ok(Tensor::from_parts(out, index.shape().into()))
    }
    /// [`Tensor::try_gather`]; panics with its error.
    #[track_caller]
    pub fn gather(&self, axis: usize, index: &Tensor<usize>) -> Tensor<T> {
        or_panic(self.try_gather(axis, index))
    }
}

#[track_caller]
fn swap_perm(shape: &[usize], a: usize, b: usize) -> Result<Shape> {
    check_axis("transpose", a, shape)?;
    check_axis("transpose", b, shape)?;
    let mut perm: Shape = (0..shape.len()).collect();
    perm.swap(a, b);
    Ok(perm)
}

pub(crate) fn var_pad<'t, T: Element>(
    x: &Var<'t, T>,
    axis: usize,
    start: usize,
    len: usize,
) -> Var<'t, T> {
    let input_len = x.shape()[axis];
    x.tape.record(&[x], pad(&x.value, axis, start, len), || {
        Op::Movement(Box::new(MovementOp::Pad {
            axis,
            start,
            input_len,
        }))
    })
}

pub(crate) fn var_index_select<'t, T: Element>(
    x: &Var<'t, T>,
    axis: usize,
    index: &Arc<[usize]>,
) -> Var<'t, T> {
    let input_len = x.shape()[axis];
    let out = buffer_pool::with_capacity(numel(&selected_shape(x.shape(), axis, index)));
    x.tape
        .record(&[x], index_select(&x.value, axis, index, out), || {
            Op::Movement(Box::new(MovementOp::IndexSelect {
                axis,
                index: index.clone(),
                input_len,
            }))
        })
}

pub(crate) fn var_index_add<'t, T: Element>(
    x: &Var<'t, T>,
    axis: usize,
    index: &Arc<[usize]>,
    len: usize,
) -> Var<'t, T> {
    x.tape
        .record(&[x], index_add(&x.value, axis, index, len), || {
            Op::Movement(Box::new(MovementOp::IndexAdd {
                axis,
                index: index.clone(),
            }))
        })
}

pub(crate) fn var_scatter_add<'t, T: Element>(
    x: &Var<'t, T>,
    axis: usize,
    index: &Tensor<usize>,
    shape: &[usize],
) -> Var<'t, T> {
    x.tape
        .record(&[x], scatter_add(&x.value, axis, index, shape), || {
            Op::Movement(Box::new(MovementOp::ScatterAdd {
                axis,
                index: index.clone(),
            }))
        })
}

impl<'t, T: Element> Var<'t, T> {
    #[track_caller]
    fn movement(&self, value: Tensor<T>, op: impl FnOnce() -> MovementOp) -> Var<'t, T> {
        self.tape
            .record(&[self], value, || Op::Movement(Box::new(op())))
    }

    /// The same elements with another shape of equal element count (no copy).
    #[track_caller]
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Var<'t, T>> {
        let value = self.value.try_reshape(shape)?;
        Ok(self.movement(value, || MovementOp::Reshape {
            input: self.shape().into(),
        }))
    }
    /// [`Var::try_reshape`]; panics with its error.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Var<'t, T> {
        or_panic(self.try_reshape(shape))
    }
    /// Reorders the axes: output axis `i` is input axis `perm[i]`.
    #[track_caller]
    pub fn try_permute(&self, perm: &[usize]) -> Result<Var<'t, T>> {
        let value = self.value.try_permute(perm)?;
        Ok(self.movement(value, || MovementOp::Permute { perm: perm.into() }))
    }
    /// [`Var::try_permute`]; panics with its error.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Var<'t, T> {
        or_panic(self.try_permute(perm))
    }
    /// Swaps two axes.
    #[track_caller]
    pub fn transpose(&self, a: usize, b: usize) -> Var<'t, T> {
        or_panic(swap_perm(self.shape(), a, b).and_then(|p| self.try_permute(&p)))
    }
    /// The transpose of a matrix (swaps the last two axes).
    #[track_caller]
    pub fn t(&self) -> Var<'t, T> {
        let r = self.value.rank();
        self.transpose(r.saturating_sub(2), r.saturating_sub(1))
    }
    /// Repeats the value along broadcast dimensions (NumPy rules) to `shape`.
    #[track_caller]
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Var<'t, T>> {
        let value = self.value.try_broadcast_to(shape)?;
        Ok(self.movement(value, || MovementOp::BroadcastTo {
            input: self.shape().into(),
        }))
    }
    /// [`Var::try_broadcast_to`]; panics with its error.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Var<'t, T> {
        or_panic(self.try_broadcast_to(shape))
    }
    /// Elements `start..start + len` along `axis`.
    #[track_caller]
    pub fn try_narrow(&self, axis: usize, start: usize, len: usize) -> Result<Var<'t, T>> {
        let value = self.value.try_narrow(axis, start, len)?;
        let input_len = self.shape()[axis];
        Ok(self.movement(value, || MovementOp::Narrow {
            axis,
            start,
            input_len,
        }))
    }
    /// [`Var::try_narrow`]; panics with its error.
    #[track_caller]
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Var<'t, T> {
        or_panic(self.try_narrow(axis, start, len))
    }
    /// Joins values along an existing axis; all other dimensions must agree.
    #[track_caller]
    pub fn try_concat(parts: &[&Var<'t, T>], axis: usize) -> Result<Var<'t, T>> {
        let shape = concat_shape(parts.iter().map(|p| p.shape()), axis)?;
        let first = parts[0];
        first.same_tape("concat", parts)?;
        let values: Vec<&Tensor<T>> = parts.iter().map(|p| &p.value).collect();
        let value = concat(&values, axis, shape)?;
        Ok(first.tape.record(parts, value, || {
            Op::Movement(Box::new(MovementOp::Concat {
                axis,
                lens: parts.iter().map(|p| p.shape()[axis]).collect(),
            }))
        }))
    }
    /// [`Var::try_concat`]; panics with its error.
    #[track_caller]
    pub fn concat(parts: &[&Var<'t, T>], axis: usize) -> Var<'t, T> {
        or_panic(Self::try_concat(parts, axis))
    }
    /// Stacks values of one shape along a new axis `axis` (a reshape of each, then concat).
    #[track_caller]
    pub fn try_stack(parts: &[&Var<'t, T>], axis: usize) -> Result<Var<'t, T>> {
        let Some(first) = parts.first() else {
            return Err(Error::InvalidArgument {
                op: "stack",
                reason: "no inputs".into(),
                at: Caller::here(),
            });
        };
        if axis > first.value.rank() {
            return Err(Error::Axis {
                op: "stack",
                axis,
                shape: first.shape().into(),
                at: Caller::here(),
            });
        }
        let mut unsqueezed = Vec::with_capacity(parts.len());
        for p in parts {
            if p.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: "stack",
                    expected: first.shape().into(),
                    got: p.shape().into(),
                    at: Caller::here(),
                });
            }
            let mut shape: Shape = p.shape().into();
            shape.insert(axis, 1);
            unsqueezed.push(p.try_reshape(&shape)?);
        }
        Self::try_concat(&unsqueezed.iter().collect::<Vec<_>>(), axis)
    }
    /// [`Var::try_stack`]; panics with its error.
    #[track_caller]
    pub fn stack(parts: &[&Var<'t, T>], axis: usize) -> Var<'t, T> {
        or_panic(Self::try_stack(parts, axis))
    }
    /// The slices at `index` along `axis`, in that order (repeats allowed: their gradients
    /// add up).
    #[track_caller]
    pub fn try_index_select(&self, axis: usize, index: &[usize]) -> Result<Var<'t, T>> {
        let value = self.value.try_index_select(axis, index)?;
        let input_len = self.shape()[axis];
        Ok(self.movement(value, || MovementOp::IndexSelect {
            axis,
            index: index.into(),
            input_len,
        }))
    }
    /// [`Var::try_index_select`]; panics with its error.
    #[track_caller]
    pub fn index_select(&self, axis: usize, index: &[usize]) -> Var<'t, T> {
        or_panic(self.try_index_select(axis, index))
    }
    /// PyTorch's `gather` along `axis` (see [`Tensor::try_gather`]).
    #[track_caller]
    pub fn try_gather(&self, axis: usize, index: &Tensor<usize>) -> Result<Var<'t, T>> {
        let value = self.value.try_gather(axis, index)?;
        Ok(self.movement(value, || MovementOp::Gather {
            axis,
            index: index.clone(),
            input: self.shape().into(),
        }))
    }
    /// [`Var::try_gather`]; panics with its error.
    #[track_caller]
    pub fn gather(&self, axis: usize, index: &Tensor<usize>) -> Var<'t, T> {
        or_panic(self.try_gather(axis, index))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::{check, check_second_order};
    use crate::{Error, Tape, Tensor, Var, seeded_rng};

    fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
        Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
    }

    #[test]
    fn forward_moves_elements() {
        let x = Tensor::from_vec((0..6).map(|i| i as f32).collect(), &[2, 3]).unwrap();
        assert_eq!(x.reshape(&[3, 2]).shape(), [3, 2]);
        assert!(x.reshape(&[6]).shares_storage(&x));
        assert_eq!(x.t().to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(x.narrow(1, 1, 2).to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(
            x.index_select(1, &[2, 0, 2]).to_vec(),
            vec![2.0, 0.0, 2.0, 5.0, 3.0, 5.0]
        );
        assert_eq!(Tensor::try_concat(&[&x, &x], 0).unwrap().shape(), [4, 3]);
        assert_eq!(Tensor::try_concat(&[&x, &x], 1).unwrap().get(&[1, 4]), 4.0);
        let b = Tensor::from_vec(vec![1.0f64, 2.0], &[2, 1]).unwrap();
        assert_eq!(
            b.broadcast_to(&[2, 3]).to_vec(),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        let idx = Tensor::from_vec(vec![2usize, 0], &[2, 1]).unwrap();
        assert_eq!(x.cast::<f64>().gather(1, &idx).to_vec(), vec![2.0, 3.0]);
        let p = Tensor::<f64>::arange(24)
            .reshape(&[2, 3, 4])
            .permute(&[2, 0, 1]);
        assert_eq!(p.shape(), [4, 2, 3]);
        assert_eq!(p.get(&[3, 1, 2]), 23.0);
    }

    #[test]
    fn gradients_of_movement_ops() {
        let x = rand(&[2, 3, 4], 1);
        check(|v| v[0].reshape(&[6, 4]).tanh(), [x.clone()]);
        check(|v| v[0].permute(&[2, 0, 1]).tanh(), [x.clone()]);
        check(|v| v[0].transpose(0, 2).tanh(), [x.clone()]);
        check(|v| v[0].narrow(2, 1, 2).tanh(), [x.clone()]);
        check(|v| v[0].narrow(0, 1, 1).tanh(), [x.clone()]);
        check(|v| v[0].index_select(1, &[2, 0, 2, 1]).tanh(), [x.clone()]);
        let b = rand(&[3, 1], 2);
        check(|v| v[0].broadcast_to(&[2, 3, 4]).tanh(), [b.clone()]);
        let y = rand(&[2, 2, 4], 3);
        check(
            |v| Var::concat(&[&v[0], &v[1]], 1).tanh(),
            [x.clone(), y.clone()],
        );
        check(
            |v| Var::stack(&[&v[0], &v[1]], 0).tanh(),
            [x.clone(), x.clone()],
        );
        check(
            |v| Var::stack(&[&v[0], &v[1]], 3).tanh(),
            [x.clone(), x.clone()],
        );
        let idx = Tensor::from_fn(&[2, 5, 4], |i| (i[0] + 2 * i[1] + i[2]) % 3);
        check(|v| v[0].gather(1, &idx).tanh(), [x.clone()]);
    }

    #[test]
    fn second_order_through_movement_ops() {
        let x = rand(&[2, 3], 4);
        check_second_order(|v| (&v[0] * &v[0]).narrow(1, 1, 2).tanh(), [x.clone()]);
        check_second_order(
            |v| (&v[0] * &v[0]).index_select(0, &[1, 1, 0]).tanh(),
            [x.clone()],
        );
        let idx = Tensor::from_vec(vec![2usize, 0], &[2, 1]).unwrap();
        check_second_order(|v| (&v[0] * &v[0]).gather(1, &idx).tanh(), [x.clone()]);
        check_second_order(
            |v| (&v[0] * &v[0]).t().broadcast_to(&[2, 3, 2]).tanh(),
            [x.clone()],
        );
    }

    #[test]
    fn misuse_is_reported() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2, 3]));
        let e = x.try_reshape(&[4, 2]).unwrap_err();
        assert!(matches!(
            e,
            Error::Reshape {
                from_len: 6,
                to_len: 8,
                ..
            }
        ));
        assert!(matches!(
            x.try_permute(&[0, 0]),
            Err(Error::InvalidArgument { op: "permute", .. })
        ));
        assert!(matches!(
            x.try_narrow(1, 2, 2),
            Err(Error::Index {
                op: "narrow",
                index: 4,
                len: 3,
                ..
            })
        ));
        assert!(matches!(
            x.try_index_select(0, &[2]),
            Err(Error::Index {
                op: "index_select",
                ..
            })
        ));
        assert!(matches!(
            x.try_broadcast_to(&[4, 3]),
            Err(Error::Broadcast {
                op: "broadcast_to",
                ..
            })
        ));
        let y = tape.var(Tensor::zeros(&[2, 4]));
        assert!(matches!(
            Var::try_concat(&[&x, &y], 0),
            Err(Error::ShapeMismatch { op: "concat", .. })
        ));
        assert!(matches!(
            Var::<f64>::try_concat(&[], 0),
            Err(Error::InvalidArgument { op: "concat", .. })
        ));
        assert!(matches!(
            Var::try_stack(&[&x, &y], 0),
            Err(Error::ShapeMismatch { op: "stack", .. })
        ));
        let idx = Tensor::from_vec(vec![3usize, 0], &[2, 1]).unwrap();
        assert!(matches!(
            x.try_gather(1, &idx),
            Err(Error::Index {
                op: "gather",
                index: 3,
                ..
            })
        ));
    }
}
