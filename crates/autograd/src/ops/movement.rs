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
//! | gather | scatter_add into zeros | indices |
//! | scatter_add | self: g; src: gather, then padded to src's shape | indices |
//! | masked_select (composed) | broadcast_to, reshape to 1-d, index_select | — |

use super::Mask;
use super::{Algebra, Op};
use crate::buffer_pool;
use crate::element::Element;
use crate::error::{Caller, Error, Result, or_panic};
use crate::kernels::strided::{self, split_at_axis, walk2};
use crate::shape::{
    Axis, Shape, broadcast_shapes, broadcasts_to, checked_len, numel, resolve_axis,
    resolve_axis_of_rank, strides,
};
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
    /// `self` plus `src` added at `index` along `axis` (the inputs are `self` and `src`);
    /// `src` may be larger than `index`, whose shape says which part of it is added.
    ScatterAdd {
        axis: usize,
        index: Tensor<usize>,
        src: Shape,
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
            MovementOp::ScatterAdd { axis, index, src } => {
                if cx.needs(0) {
                    cx.send(0, g.clone());
                }
                if cx.needs(1) {
                    // The gathered gradient has the index's shape: zeros beyond it, up to
                    // the shape of `src`.
                    let mut gathered = g.gather(*axis, index);
                    for (d, (&have, &want)) in index.shape().iter().zip(src).enumerate() {
                        if have < want {
                            gathered = gathered.pad(d, 0, want);
                        }
                    }
                    cx.send(1, gathered);
                }
            }
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
/// along `axis` (gather's adjoint).
pub(crate) fn scatter_add<T: Element>(
    x: &Tensor<T>,
    axis: usize,
    index: &Tensor<usize>,
    shape: &[usize],
) -> Tensor<T> {
    let mut out = buffer_pool::zeroed(numel(shape));
    scatter_add_into(&mut out, shape, axis, index, x.data(), x.shape());
    Tensor::from_parts(out, shape.into())
}

/// The positions (row-major, in the broadcast shape of `shape` and the mask) where `mask`
/// is true, and that shape: what `masked_select` picks.
#[track_caller]
fn mask_positions(shape: &[usize], mask: &impl Mask) -> Result<(Shape, Vec<usize>)> {
    let mask = mask.to_bool("masked_select")?;
    let shape = broadcast_shapes("masked_select", shape, mask.shape())?;
    let mut positions = Vec::new();
    let sm = crate::shape::broadcast_strides(mask.shape(), &shape);
    walk2(&shape, &sm, &sm, |i, im, _| {
        if mask.data()[im] {
            positions.push(i);
        }
    });
    Ok((shape, positions))
}

/// Strides of a tensor of `shape` with the one of `axis` set to 0: the offset of an
/// element's coordinates on every other axis (an index supplies the one along `axis`).
fn strides_but(shape: &[usize], axis: usize) -> Shape {
    let mut s = strides(shape);
    s[axis] = 0;
    s
}

/// PyTorch's `gather` kernel: for each position `p` of `index` (row-major),
/// `x[p with p[axis] replaced by index[p]]`, into `out`. The strides are each tensor's own,
/// so `index` may be smaller than `x` on the other axes.
fn gather_into<T: Copy>(x: &Tensor<T>, axis: usize, index: &Tensor<usize>, out: &mut Vec<T>) {
    let (data, idx) = (x.data(), index.data());
    let step = strides(x.shape())[axis];
    let (sx, si) = (strides_but(x.shape(), axis), strides(index.shape()));
    walk2(index.shape(), &sx, &si, |i, ox, _| {
        out.push(data[ox + idx[i] * step])
    });
}

/// PyTorch's `scatter_add_` kernel: for each position `p` of `index`, adds `src[p]` into
/// `out[p with p[axis] replaced by index[p]]` (`out` of shape `shape`). `src` may be larger
/// than `index`: only the part the index covers is read.
fn scatter_add_into<T: Element>(
    out: &mut [T],
    shape: &[usize],
    axis: usize,
    index: &Tensor<usize>,
    src: &[T],
    src_shape: &[usize],
) {
    let idx = index.data();
    let step = strides(shape)[axis];
    let (so, ss) = (strides_but(shape, axis), strides(src_shape));
    walk2(index.shape(), &so, &ss, |i, oo, os| {
        out[oo + idx[i] * step] += src[os];
    });
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

/// The permutation `perm` of the axes of `shape`, each axis counted from the front; an
/// error unless it names every axis once.
#[track_caller]
fn permute_check(shape: &[usize], perm: &[impl Axis]) -> Result<Shape> {
    let mut seen = vec![false; shape.len()];
    let resolved: Option<Shape> = (perm.len() == shape.len())
        .then(|| {
            perm.iter()
                .map(|a| a.resolve(shape.len()))
                .map(|p| p.filter(|&p| !std::mem::replace(&mut seen[p], true)))
                .collect()
        })
        .flatten();
    let at = Caller::here(); // outside the closure: closures do not track the caller
    resolved.ok_or_else(|| {
        let perm: Vec<i128> = perm.iter().map(|a| a.given()).collect();
        Error::InvalidArgument {
            op: "permute",
            reason: format!("{perm:?} is not a permutation of the axes of shape {shape:?}"),
            at,
        }
    })
}

/// The axis of `narrow(axis, start, len)`, counted from the front; an error unless
/// `start + len` is at most the axis' size.
#[track_caller]
fn narrow_check(shape: &[usize], axis: impl Axis, start: usize, len: usize) -> Result<usize> {
    let axis = resolve_axis("narrow", axis, shape)?;
    // `start + len` with checked arithmetic: `narrow(axis, usize::MAX, 2)` must not wrap
    // around to a range that fits.
    match start.checked_add(len) {
        Some(end) if end <= shape[axis] => Ok(axis),
        _ => Err(Error::Range {
            op: "narrow",
            axis,
            start,
            len,
            size: shape[axis],
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

/// Checks an index for `gather` or `scatter_add` (`op`) along `axis` of a tensor of
/// `shape`, as PyTorch does: the index has the tensor's rank, at most its size on every
/// other axis, and values below its size along `axis`. Returns the axis counted from the
/// front.
#[track_caller]
fn gather_check(
    op: &'static str,
    shape: &[usize],
    axis: impl Axis,
    index: &Tensor<usize>,
) -> Result<usize> {
    let axis = resolve_axis(op, axis, shape)?;
    let fits = index.rank() == shape.len()
        && (0..shape.len()).all(|d| d == axis || index.shape()[d] <= shape[d]);
    if !fits {
        return Err(Error::InvalidArgument {
            op,
            reason: format!(
                "an index of shape {:?} does not fit a tensor of shape {shape:?}: it needs \
                 rank {} and at most the tensor's size on every axis but axis {axis}",
                index.shape(),
                shape.len()
            ),
            at: Caller::here(),
        });
    }
    index_check(op, index.data(), shape[axis])?;
    Ok(axis)
}

/// Checks `scatter_add`'s `src` against its index: the same rank, and at least the index's
/// size on every axis.
#[track_caller]
fn scatter_src_check(index: &[usize], src: &[usize]) -> Result<()> {
    if src.len() == index.len() && index.iter().zip(src).all(|(i, s)| i <= s) {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op: "scatter_add",
            reason: format!(
                "the source of shape {src:?} is smaller than the index of shape {index:?} \
                 (it needs the index's rank and at least its size on every axis)"
            ),
            at: Caller::here(),
        })
    }
}

/// The shape of the parts joined along `axis`, and that axis counted from the front.
#[track_caller]
fn concat_shape<'a>(
    shapes: impl Iterator<Item = &'a [usize]> + Clone,
    axis: impl Axis,
) -> Result<(Shape, usize)> {
    let mut iter = shapes.clone();
    let Some(first) = iter.next() else {
        return Err(Error::InvalidArgument {
            op: "concat",
            reason: "no inputs".into(),
            at: Caller::here(),
        });
    };
    let axis = resolve_axis("concat", axis, first)?;
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
    Ok((out, axis))
}

/// The parts joined along `axis` into a tensor of `shape` (checked by [`concat_shape`]).
#[track_caller]
fn concat<T: Element>(parts: &[&Tensor<T>], axis: usize, shape: Shape) -> Result<Tensor<T>> {
    let mut out = output_buffer("concat", &shape)?;
    // No element, no block to copy (and no count through empty blocks).
    let outer = if numel(&shape) == 0 {
        0
    } else {
        numel(&shape[..axis])
    };
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
    /// The axes `perm` counted from the front, then the permuted tensor.
    #[track_caller]
    fn permuted(&self, perm: &[usize]) -> Result<Tensor<T>> {
        let shape = strided::permuted(self.shape(), perm);
        let out = output_buffer("permute", &shape)?;
        let data = strided::permute(self.data(), self.shape(), perm, out);
        Ok(Tensor::from_parts(data, shape))
    }
    /// Reorders the axes: output axis `i` is input axis `perm[i]` (negative axes count from
    /// the back; every axis must appear once).
    #[track_caller]
    pub fn try_permute(&self, perm: &[impl Axis]) -> Result<Tensor<T>> {
        let perm = permute_check(self.shape(), perm)?;
        self.permuted(&perm)
    }
    /// [`Tensor::try_permute`]; panics with its error.
    #[track_caller]
    pub fn permute(&self, perm: &[impl Axis]) -> Tensor<T> {
        or_panic(self.try_permute(perm))
    }
    /// Swaps two axes (negative axes count from the back).
    #[track_caller]
    pub fn try_transpose(&self, a: impl Axis, b: impl Axis) -> Result<Tensor<T>> {
        self.permuted(&swap_perm(self.shape(), a, b)?)
    }
    /// [`Tensor::try_transpose`]; panics with its error.
    #[track_caller]
    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Tensor<T> {
        or_panic(self.try_transpose(a, b))
    }
    /// The transpose of a matrix: the last two axes swapped (of a batch of matrices too); a
    /// tensor of rank 0 or 1 is returned as it is, as in PyTorch.
    #[track_caller]
    pub fn try_t(&self) -> Result<Tensor<T>> {
        self.permuted(&t_perm(self.rank()))
    }
    /// [`Tensor::try_t`]; panics with its error.
    #[track_caller]
    pub fn t(&self) -> Tensor<T> {
        or_panic(self.try_t())
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
    /// Elements `start..start + len` along `axis` (a negative axis counts from the back);
    /// [`Error::Range`] when `start + len` exceeds the axis' size.
    ///
    /// ```
    /// use autograd::{Error, Tensor};
    /// let x = Tensor::<f32>::arange(6).reshape(&[2, 3]);
    /// assert_eq!(x.narrow(-1, 1, 2).to_vec(), vec![1.0, 2.0, 4.0, 5.0]);
    /// let err = x.try_narrow(1, 2, 2).unwrap_err();
    /// assert!(matches!(err, Error::Range { start: 2, len: 2, size: 3, .. }), "{err}");
    /// ```
    #[track_caller]
    pub fn try_narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Tensor<T>> {
        let axis = narrow_check(self.shape(), axis, start, len)?;
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
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Tensor<T> {
        or_panic(self.try_narrow(axis, start, len))
    }
    /// Joins tensors along an existing axis (negative counts from the back); all other
    /// dimensions must agree.
    #[track_caller]
    pub fn try_concat(parts: &[&Tensor<T>], axis: impl Axis) -> Result<Tensor<T>> {
        let (shape, axis) = concat_shape(parts.iter().map(|p| p.shape()), axis)?;
        concat(parts, axis, shape)
    }
    /// [`Tensor::try_concat`]; panics with its error.
    #[track_caller]
    pub fn concat(parts: &[&Tensor<T>], axis: impl Axis) -> Tensor<T> {
        or_panic(Self::try_concat(parts, axis))
    }
    /// The slices at `index` along `axis`, in that order (repeats allowed).
    #[track_caller]
    pub fn try_index_select(&self, axis: impl Axis, index: &[usize]) -> Result<Tensor<T>> {
        let axis = resolve_axis("index_select", axis, self.shape())?;
        index_check("index_select", index, self.shape()[axis])?;
        let out = output_buffer("index_select", &selected_shape(self.shape(), axis, index))?;
        Ok(index_select(self, axis, index, out))
    }
    /// [`Tensor::try_index_select`]; panics with its error.
    #[track_caller]
    pub fn index_select(&self, axis: impl Axis, index: &[usize]) -> Tensor<T> {
        or_panic(self.try_index_select(axis, index))
    }
    /// PyTorch's `gather`: `out[…, j, …] = self[…, index[…, j, …], …]` along `axis`. The
    /// result has the index's shape; the index has the rank of `self` and, on every other
    /// axis, at most its size (a smaller index reads the leading part of `self` there).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// // One row of the index for two rows of `x`: only the first row is read.
    /// let index = Tensor::from_vec(vec![2usize, 0], &[1, 2]).unwrap();
    /// assert_eq!(x.gather(1, &index).to_vec(), vec![3.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn try_gather(&self, axis: impl Axis, index: &Tensor<usize>) -> Result<Tensor<T>> {
        let axis = gather_check("gather", self.shape(), axis, index)?;
        let mut out = output_buffer("gather", index.shape())?;
        gather_into(self, axis, index, &mut out);
        Ok(Tensor::from_parts(out, index.shape().into()))
    }
    /// [`Tensor::try_gather`]; panics with its error.
    #[track_caller]
    pub fn gather(&self, axis: impl Axis, index: &Tensor<usize>) -> Tensor<T> {
        or_panic(self.try_gather(axis, index))
    }
    /// PyTorch's `scatter_add`: a copy of `self` with `src[p]` added at `p` with `p[axis]`
    /// replaced by `index[p]`, for every position `p` of `index`. The index has the rank of
    /// `self`, at most its size on every other axis and values below its size along `axis`;
    /// `src` has at least the index's size on every axis (only the part the index covers is
    /// read). Repeated positions add up.
    ///
    /// ```
    /// use autograd::Tensor;
    /// let counts = Tensor::<f64>::zeros(&[3]);
    /// let labels = Tensor::from_vec(vec![2usize, 0, 2, 2], &[4]).unwrap();
    /// let ones = Tensor::ones(&[4]);
    /// assert_eq!(counts.scatter_add(0, &labels, &ones).to_vec(), vec![1.0, 0.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn try_scatter_add(
        &self,
        axis: impl Axis,
        index: &Tensor<usize>,
        src: &Tensor<T>,
    ) -> Result<Tensor<T>> {
        let axis = gather_check("scatter_add", self.shape(), axis, index)?;
        scatter_src_check(index.shape(), src.shape())?;
        let mut out = output_buffer("scatter_add", self.shape())?;
        out.extend_from_slice(self.data());
        scatter_add_into(&mut out, self.shape(), axis, index, src.data(), src.shape());
        Ok(Tensor::from_parts(out, self.shape().into()))
    }
    /// PyTorch's `masked_select`: the elements where `mask` is true, in row-major order, as
    /// a 1-d tensor (`self` and the mask broadcast together). The mask is a `Tensor<bool>`
    /// or a 0/1 tensor ([`Mask`]).
    ///
    /// ```
    /// use autograd::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, -4.0], &[2, 2]).unwrap();
    /// let positive = x.map(|v| if v > 0.0 { 1.0 } else { 0.0 });
    /// assert_eq!(x.masked_select(&positive).to_vec(), vec![1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn try_masked_select(&self, mask: &impl Mask) -> Result<Tensor<T>> {
        let (shape, positions) = mask_positions(self.shape(), mask)?;
        let wide = if self.shape() == &shape[..] {
            self.clone()
        } else {
            self.try_broadcast_to(&shape)?
        };
        wide.with_shape(&[numel(&shape)])
            .try_index_select(0, &positions)
    }
    /// [`Tensor::try_masked_select`]; panics with its error.
    #[track_caller]
    pub fn masked_select(&self, mask: &impl Mask) -> Tensor<T> {
        or_panic(self.try_masked_select(mask))
    }
    /// [`Tensor::try_scatter_add`]; panics with its error.
    #[track_caller]
    pub fn scatter_add(
        &self,
        axis: impl Axis,
        index: &Tensor<usize>,
        src: &Tensor<T>,
    ) -> Tensor<T> {
        or_panic(self.try_scatter_add(axis, index, src))
    }
}

/// The permutation that swaps axes `a` and `b` of `shape`.
#[track_caller]
fn swap_perm(shape: &[usize], a: impl Axis, b: impl Axis) -> Result<Shape> {
    let a = resolve_axis("transpose", a, shape)?;
    let b = resolve_axis("transpose", b, shape)?;
    let mut perm: Shape = (0..shape.len()).collect();
    perm.swap(a, b);
    Ok(perm)
}

/// The permutation of `t()`: the last two axes swapped; the identity below rank 2.
fn t_perm(rank: usize) -> Shape {
    let mut perm: Shape = (0..rank).collect();
    if rank >= 2 {
        perm.swap(rank - 2, rank - 1);
    }
    perm
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

/// Records `x` (shaped like `index`) added into zeros of `shape` at `index` along `axis`
/// (gather's adjoint, for recorded backward): `scatter_add` into a constant of zeros.
pub(crate) fn var_scatter_add<'t, T: Element>(
    x: &Var<'t, T>,
    axis: usize,
    index: &Tensor<usize>,
    shape: &[usize],
) -> Var<'t, T> {
    let zeros = x.tape.constant(Tensor::zeros(shape));
    or_panic(zeros.try_scatter_add(axis, index, x))
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
    /// Records the permutation `perm` (axes counted from the front, checked).
    #[track_caller]
    fn permuted(&self, perm: Shape) -> Result<Var<'t, T>> {
        let value = self.value.permuted(&perm)?;
        Ok(self.movement(value, || MovementOp::Permute { perm }))
    }
    /// Reorders the axes: output axis `i` is input axis `perm[i]` (negative axes count from
    /// the back; every axis must appear once).
    #[track_caller]
    pub fn try_permute(&self, perm: &[impl Axis]) -> Result<Var<'t, T>> {
        self.permuted(permute_check(self.shape(), perm)?)
    }
    /// [`Var::try_permute`]; panics with its error.
    #[track_caller]
    pub fn permute(&self, perm: &[impl Axis]) -> Var<'t, T> {
        or_panic(self.try_permute(perm))
    }
    /// Swaps two axes (negative axes count from the back).
    #[track_caller]
    pub fn try_transpose(&self, a: impl Axis, b: impl Axis) -> Result<Var<'t, T>> {
        self.permuted(swap_perm(self.shape(), a, b)?)
    }
    /// [`Var::try_transpose`]; panics with its error.
    #[track_caller]
    pub fn transpose(&self, a: impl Axis, b: impl Axis) -> Var<'t, T> {
        or_panic(self.try_transpose(a, b))
    }
    /// The transpose of a matrix: the last two axes swapped (of a batch of matrices too); a
    /// value of rank 0 or 1 is returned as it is, as in PyTorch.
    #[track_caller]
    pub fn try_t(&self) -> Result<Var<'t, T>> {
        self.permuted(t_perm(self.value.rank()))
    }
    /// [`Var::try_t`]; panics with its error.
    #[track_caller]
    pub fn t(&self) -> Var<'t, T> {
        or_panic(self.try_t())
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
    /// Elements `start..start + len` along `axis` (see [`Tensor::try_narrow`]).
    #[track_caller]
    pub fn try_narrow(&self, axis: impl Axis, start: usize, len: usize) -> Result<Var<'t, T>> {
        let value = self.value.try_narrow(axis, start, len)?;
        let axis = narrow_check(self.shape(), axis, start, len)?; // checked above: Ok
        let input_len = self.shape()[axis];
        Ok(self.movement(value, || MovementOp::Narrow {
            axis,
            start,
            input_len,
        }))
    }
    /// [`Var::try_narrow`]; panics with its error.
    #[track_caller]
    pub fn narrow(&self, axis: impl Axis, start: usize, len: usize) -> Var<'t, T> {
        or_panic(self.try_narrow(axis, start, len))
    }
    /// Joins values along an existing axis (negative counts from the back); all other
    /// dimensions must agree.
    #[track_caller]
    pub fn try_concat(parts: &[&Var<'t, T>], axis: impl Axis) -> Result<Var<'t, T>> {
        let (shape, axis) = concat_shape(parts.iter().map(|p| p.shape()), axis)?;
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
    pub fn concat(parts: &[&Var<'t, T>], axis: impl Axis) -> Var<'t, T> {
        or_panic(Self::try_concat(parts, axis))
    }
    /// Stacks values of one shape along a new axis `axis` (a reshape of each, then concat).
    /// The new axis is among `rank + 1`: `-1` puts it last.
    #[track_caller]
    pub fn try_stack(parts: &[&Var<'t, T>], axis: impl Axis) -> Result<Var<'t, T>> {
        let Some(first) = parts.first() else {
            return Err(Error::InvalidArgument {
                op: "stack",
                reason: "no inputs".into(),
                at: Caller::here(),
            });
        };
        let axis = resolve_axis_of_rank("stack", axis, first.value.rank() + 1, first.shape())?;
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
    pub fn stack(parts: &[&Var<'t, T>], axis: impl Axis) -> Var<'t, T> {
        or_panic(Self::try_stack(parts, axis))
    }
    /// The slices at `index` along `axis`, in that order (repeats allowed: their gradients
    /// add up).
    #[track_caller]
    pub fn try_index_select(&self, axis: impl Axis, index: &[usize]) -> Result<Var<'t, T>> {
        let value = self.value.try_index_select(axis, index)?;
        let axis = resolve_axis("index_select", axis, self.shape())?; // checked above: Ok
        let input_len = self.shape()[axis];
        Ok(self.movement(value, || MovementOp::IndexSelect {
            axis,
            index: index.into(),
            input_len,
        }))
    }
    /// [`Var::try_index_select`]; panics with its error.
    #[track_caller]
    pub fn index_select(&self, axis: impl Axis, index: &[usize]) -> Var<'t, T> {
        or_panic(self.try_index_select(axis, index))
    }
    /// PyTorch's `gather` along `axis` (see [`Tensor::try_gather`]); the gradient is added
    /// back at the gathered positions (`scatter_add`), 0 where nothing was read.
    #[track_caller]
    pub fn try_gather(&self, axis: impl Axis, index: &Tensor<usize>) -> Result<Var<'t, T>> {
        let value = self.value.try_gather(axis, index)?;
        let axis = resolve_axis("gather", axis, self.shape())?; // checked above: Ok
        Ok(self.movement(value, || MovementOp::Gather {
            axis,
            index: index.clone(),
            input: self.shape().into(),
        }))
    }
    /// [`Var::try_gather`]; panics with its error.
    #[track_caller]
    pub fn gather(&self, axis: impl Axis, index: &Tensor<usize>) -> Var<'t, T> {
        or_panic(self.try_gather(axis, index))
    }
    /// PyTorch's `scatter_add` (see [`Tensor::try_scatter_add`]): `self` receives the
    /// gradient as it is, `src` the gradient gathered at `index` (0 beyond the index's
    /// shape).
    #[track_caller]
    pub fn try_scatter_add(
        &self,
        axis: impl Axis,
        index: &Tensor<usize>,
        src: &Var<'t, T>,
    ) -> Result<Var<'t, T>> {
        self.same_tape("scatter_add", &[src])?;
        let value = self.value.try_scatter_add(axis, index, &src.value)?;
        let axis = resolve_axis("scatter_add", axis, self.shape())?; // checked above: Ok
        Ok(self.tape.record(&[self, src], value, || {
            Op::Movement(Box::new(MovementOp::ScatterAdd {
                axis,
                index: index.clone(),
                src: src.shape().into(),
            }))
        }))
    }
    /// PyTorch's `masked_select` (see [`Tensor::try_masked_select`]), composed of
    /// `broadcast_to` (when the mask is larger), a reshape to 1-d and `index_select`, so the
    /// gradient goes back to the selected elements (summed over broadcast copies).
    #[track_caller]
    pub fn try_masked_select(&self, mask: &impl Mask) -> Result<Var<'t, T>> {
        let (shape, positions) = mask_positions(self.shape(), mask)?;
        let wide = if self.shape() == &shape[..] {
            self.clone()
        } else {
            self.try_broadcast_to(&shape)?
        };
        wide.try_reshape(&[numel(&shape)])?
            .try_index_select(0, &positions)
    }
    /// [`Var::try_masked_select`]; panics with its error.
    #[track_caller]
    pub fn masked_select(&self, mask: &impl Mask) -> Var<'t, T> {
        or_panic(self.try_masked_select(mask))
    }
    /// [`Var::try_scatter_add`]; panics with its error.
    #[track_caller]
    pub fn scatter_add(
        &self,
        axis: impl Axis,
        index: &Tensor<usize>,
        src: &Var<'t, T>,
    ) -> Var<'t, T> {
        or_panic(self.try_scatter_add(axis, index, src))
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
            Err(Error::Range { op: "narrow", .. })
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
        // An index larger than the input on another axis, or of another rank.
        let tall = Tensor::from_vec(vec![0usize; 3], &[3, 1]).unwrap();
        let err = x.try_gather(1, &tall).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { op: "gather", .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("[3, 1] does not fit a tensor of shape [2, 3]")
        );
        let flat = Tensor::from_vec(vec![0usize; 2], &[2]).unwrap();
        assert!(x.try_gather(0, &flat).is_err());
        let src = tape.var(Tensor::zeros(&[1, 1]));
        let two = Tensor::from_vec(vec![0usize, 1], &[1, 2]).unwrap();
        assert!(matches!(
            x.try_scatter_add(1, &two, &src),
            Err(Error::InvalidArgument {
                op: "scatter_add",
                ..
            })
        ));
        assert!(matches!(
            x.try_transpose(0, -3),
            Err(Error::Axis {
                op: "transpose",
                axis: -3,
                ..
            })
        ));
        assert!(matches!(
            Var::try_stack(&[&x, &x], 4),
            Err(Error::Axis {
                op: "stack",
                axis: 4,
                ..
            })
        ));
        assert!(matches!(
            x.try_masked_select(&Tensor::from_vec(vec![true; 4], &[4]).unwrap()),
            Err(Error::Broadcast {
                op: "masked_select",
                ..
            })
        ));
    }

    #[test]
    fn negative_axes_count_from_the_back() {
        let x = Tensor::<f64>::arange(24).reshape(&[2, 3, 4]);
        assert_eq!(x.transpose(0, -1), x.transpose(2, 0));
        assert_eq!(x.permute(&[-1, 0, -2]), x.permute(&[2, 0, 1]));
        assert_eq!(x.narrow(-2, 1, 2), x.narrow(1, 1, 2));
        assert_eq!(x.index_select(-3, &[1]), x.index_select(0, &[1]));
        assert_eq!(Tensor::concat(&[&x, &x], -1), Tensor::concat(&[&x, &x], 2));
        let idx = Tensor::from_fn(&[2, 3, 1], |i| i[1] % 4);
        assert_eq!(x.gather(-1, &idx), x.gather(2, &idx));
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        assert_eq!(Var::stack(&[&v, &v], -1).shape(), [2, 3, 4, 2]);
        assert_eq!(Var::stack(&[&v, &v], -4).shape(), [2, 2, 3, 4]);
        // t() swaps the last two axes; a vector or a scalar is returned as it is.
        assert_eq!(x.t(), x.transpose(-1, -2));
        let vector = Tensor::<f64>::arange(3);
        assert_eq!(vector.t(), vector);
        assert_eq!(Tensor::scalar(2.0).t().item(), 2.0);
    }

    #[test]
    fn gather_and_scatter_add_take_an_index_smaller_than_the_input() {
        // PyTorch: index.size(d) ≤ input.size(d) for d ≠ axis; the index's positions pick
        // from the leading part of the input on those axes.
        let x = Tensor::<f64>::arange(12).reshape(&[3, 4]);
        let index = Tensor::from_vec(vec![3usize, 0, 1, 1], &[2, 2]).unwrap();
        let want = Tensor::from_fn(&[2, 2], |i| x.get(&[i[0], index.get(i)]));
        assert_eq!(x.gather(1, &index), want);
        let index0 = Tensor::from_vec(vec![2usize, 0], &[1, 2]).unwrap();
        assert_eq!(x.gather(0, &index0).to_vec(), vec![8.0, 1.0]);
        // scatter_add: the index picks from the leading part of a larger src, and adds
        // into a larger self; repeated positions add up.
        let base = Tensor::<f64>::ones(&[3, 4]);
        let src = Tensor::<f64>::arange(15).reshape(&[3, 5]);
        let repeated = Tensor::from_vec(vec![1usize, 1, 0, 3], &[2, 2]).unwrap();
        let got = base.scatter_add(1, &repeated, &src);
        let mut want = base.to_vec();
        for r in 0..2 {
            for c in 0..2 {
                want[r * 4 + repeated.get(&[r, c])] += src.get(&[r, c]);
            }
        }
        assert_eq!(got.to_vec(), want);
        assert_eq!(
            base.cast::<f32>()
                .scatter_add(1, &repeated, &src.cast())
                .cast::<f64>(),
            got
        );
    }

    #[test]
    fn gradients_of_gather_scatter_add_and_masked_select() {
        let x = rand(&[3, 4, 2], 10);
        let small = Tensor::from_fn(&[2, 3, 1], |i| (i[0] + 2 * i[1]) % 4);
        check(|v| v[0].gather(1, &small).tanh(), [x.clone()]);
        let rows = Tensor::from_fn(&[2, 3, 1], |i| (i[0] + 2 * i[1]) % 3);
        check(|v| v[0].gather(-3, &rows).tanh(), [x.clone()]);
        let src = rand(&[2, 4, 2], 11);
        let index = Tensor::from_fn(&[2, 3, 1], |i| (i[1] + i[0]) % 4);
        check(
            |v| v[0].scatter_add(1, &index, &v[1]).tanh(),
            [x.clone(), src.clone()],
        );
        check_second_order(
            |v| (&v[0] * &v[0]).scatter_add(1, &index, &v[1].exp()).tanh(),
            [x.clone(), src],
        );
        let mask = Tensor::from_fn(&[4, 1], |i| i[0] % 2 == 0);
        check(|v| v[0].masked_select(&mask).tanh(), [x.clone()]);
        let wide = Tensor::from_fn(&[2, 3], |i| i[0] != i[1]);
        check(|v| v[0].masked_select(&wide).tanh(), [rand(&[3], 12)]);
        check_second_order(
            |v| (&v[0] * &v[0]).masked_select(&wide),
            [rand(&[2, 3], 13)],
        );
        assert_eq!(x.masked_select(&mask).shape(), [12]);
    }
}
