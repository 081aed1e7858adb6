//! The geometry of a 2-d convolution (or pooling window) and the two copies that turn a
//! convolution into a matrix product: `im2col` (each receptive field becomes a column) and
//! its adjoint `col2im` (columns are added back onto the image).
//!
//! For one image `x` `[C, H, W]` and a kernel `kh × kw`, `im2col` writes the matrix
//! `cols` `[C·kh·kw, OH·OW]` with `cols[(c·kh + p)·kw + q][i·OW + j] =
//! x[c][i·sh + p − ph][j·sw + q − pw]` (zero where that falls in the padding). The
//! convolution is then `W [O, C·kh·kw] · cols`. These kernels know nothing of the tape.

use num_traits::Zero;
use std::ops::AddAssign;

/// Sizes of one 2-d convolution, `x [N, C, H, W] ⋆ w [O, C, kh, kw] → y [N, O, OH, OW]`,
/// already checked (stride ≥ 1, kernel within the padded input, and every product of
/// these sizes the kernels compute fits in `usize`: see `ops::conv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conv2dGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_hw: (usize, usize),
    pub out_channels: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub out_hw: (usize, usize),
}

impl Conv2dGeometry {
    /// `[N, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_hw.0, self.in_hw.1]
    }
    /// `[O, C, kh, kw]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel.0,
            self.kernel.1,
        ]
    }
    /// `[N, O, OH, OW]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_hw.0, self.out_hw.1]
    }
    /// Elements of one input image, `C·H·W`.
    pub fn image_len(&self) -> usize {
        self.in_channels * self.in_hw.0 * self.in_hw.1
    }
    /// Rows of the column matrix: `C·kh·kw` (one per weight of an output channel).
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel.0 * self.kernel.1
    }
    /// Output positions per image, `OH·OW` (the column matrix's columns).
    pub fn out_positions(&self) -> usize {
        self.out_hw.0 * self.out_hw.1
    }
    /// A 1×1 kernel with stride 1 and no padding: the image itself is the column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.padding == (0, 0)
    }
}

/// The padded length along one axis, `len + 2·pad`; `None` when it overflows `usize`.
pub(crate) fn padded_len(len: usize, pad: usize) -> Option<usize> {
    pad.checked_mul(2)?.checked_add(len)
}

/// Output length along one axis: `(len + 2·pad − k) / stride + 1`; `None` when the kernel
/// does not fit in the padded input or the padded length overflows.
pub(crate) fn out_len(len: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    padded_len(len, pad)?
        .checked_sub(k)
        .map(|room| room / stride.max(1) + 1)
}

/// The output indices `lo..hi` along one axis whose tap `k_off` of the kernel reads inside
/// the input (`0 ≤ o·stride + k_off − pad < len`); the others read padding.
pub(crate) fn valid_range(
    out: usize,
    stride: usize,
    k_off: usize,
    pad: usize,
    len: usize,
) -> (usize, usize) {
    let lo = if k_off >= pad {
        0
    } else {
        (pad - k_off).div_ceil(stride)
    };
    // `len + pad − k_off − 1`, in an order that cannot underflow (`len` may be 0).
    let hi = match (len + pad).checked_sub(k_off + 1) {
        None => 0,
        Some(last) => (last / stride + 1).min(out),
    };
    (lo.min(hi), hi)
}

/// Writes the column matrix `[C·kh·kw, OH·OW]` of one image `x` `[C, H, W]` into `cols`.
pub(crate) fn im2col<T: Copy + Zero>(x: &[T], g: &Conv2dGeometry, cols: &mut [T]) {
    let ((h, w), (oh, ow)) = (g.in_hw, g.out_hw);
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.kernel, g.stride, g.padding);
    debug_assert_eq!(cols.len(), g.col_rows() * oh * ow);
    let mut rows = cols.chunks_exact_mut((oh * ow).max(1));
    for c in 0..g.in_channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for p in 0..kh {
            let (i0, i1) = valid_range(oh, sh, p, ph, h);
            for q in 0..kw {
                let Some(row) = rows.next() else { return };
                let (j0, j1) = valid_range(ow, sw, q, pw, w);
                row[..i0 * ow].fill(T::zero());
                row[i1 * ow..].fill(T::zero());
                for i in i0..i1 {
                    let src = &plane[(i * sh + p - ph) * w..][..w];
                    let dst = &mut row[i * ow..(i + 1) * ow];
                    dst[..j0].fill(T::zero());
                    dst[j1..].fill(T::zero());
                    if sw == 1 && j0 < j1 {
                        dst[j0..j1].copy_from_slice(&src[j0 + q - pw..j1 + q - pw]);
                    } else {
                        for (j, d) in dst.iter_mut().enumerate().take(j1).skip(j0) {
                            *d = src[j * sw + q - pw];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column matrix `cols` `[C·kh·kw, OH·OW]` back onto one image `x` `[C, H, W]`:
/// the adjoint of [`im2col`] (overlapping receptive fields add up).
pub(crate) fn col2im_add<T: Copy + AddAssign>(cols: &[T], g: &Conv2dGeometry, x: &mut [T]) {
    let ((h, w), (oh, ow)) = (g.in_hw, g.out_hw);
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.kernel, g.stride, g.padding);
    debug_assert_eq!(cols.len(), g.col_rows() * oh * ow);
    let mut rows = cols.chunks_exact((oh * ow).max(1));
    for c in 0..g.in_channels {
        let plane = &mut x[c * h * w..(c + 1) * h * w];
        for p in 0..kh {
            let (i0, i1) = valid_range(oh, sh, p, ph, h);
            for q in 0..kw {
                let Some(row) = rows.next() else { return };
                let (j0, j1) = valid_range(ow, sw, q, pw, w);
                for i in i0..i1 {
                    let dst = &mut plane[(i * sh + p - ph) * w..][..w];
                    let src = &row[i * ow..(i + 1) * ow];
                    if sw == 1 && j0 < j1 {
                        for (d, &s) in dst[j0 + q - pw..j1 + q - pw].iter_mut().zip(&src[j0..j1]) {
                            *d += s;
                        }
                    } else {
                        for (j, &s) in src.iter().enumerate().take(j1).skip(j0) {
                            dst[j * sw + q - pw] += s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        c: usize,
        hw: (usize, usize),
        k: (usize, usize),
        s: usize,
        p: usize,
    ) -> Conv2dGeometry {
        let out_hw = (
            out_len(hw.0, k.0, s, p).unwrap(),
            out_len(hw.1, k.1, s, p).unwrap(),
        );
        Conv2dGeometry {
            batch: 1,
            in_channels: c,
            in_hw: hw,
            out_channels: 1,
            kernel: k,
            stride: (s, s),
            padding: (p, p),
            out_hw,
        }
    }

    /// The definition, one element at a time.
    fn naive_im2col(x: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
        let ((h, w), (oh, ow)) = (g.in_hw, g.out_hw);
        let ((kh, kw), (sh, sw), (ph, pw)) = (g.kernel, g.stride, g.padding);
        let mut cols = Vec::new();
        for c in 0..g.in_channels {
            for p in 0..kh {
                for q in 0..kw {
                    for i in 0..oh {
                        for j in 0..ow {
                            let y = (i * sh + p) as isize - ph as isize;
                            let xx = (j * sw + q) as isize - pw as isize;
                            let inside =
                                (0..h as isize).contains(&y) && (0..w as isize).contains(&xx);
                            cols.push(if inside {
                                x[(c * h + y as usize) * w + xx as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        cols
    }

    #[test]
    fn im2col_matches_its_definition_and_col2im_is_its_adjoint() {
        let cases = [
            geometry(2, (5, 4), (3, 3), 1, 1),
            geometry(1, (7, 6), (3, 2), 2, 1),
            geometry(3, (4, 4), (1, 1), 2, 0),
            geometry(1, (3, 5), (3, 3), 3, 2),
            geometry(2, (2, 2), (4, 4), 1, 1),
        ];
        for g in cases {
            let x: Vec<f64> = (0..g.image_len()).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut cols = vec![f64::NAN; g.col_rows() * g.out_positions()];
            im2col(&x, &g, &mut cols);
            assert_eq!(cols, naive_im2col(&x, &g), "{g:?}");
            // ⟨im2col(x), u⟩ = ⟨x, col2im(u)⟩ for any u.
            let u: Vec<f64> = (0..cols.len()).map(|i| (i as f64 * 0.3).cos()).collect();
            let mut back = vec![0.0; x.len()];
            col2im_add(&u, &g, &mut back);
            let lhs: f64 = cols.iter().zip(&u).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-12, "{g:?}");
        }
    }

    #[test]
    fn output_lengths() {
        assert_eq!(out_len(32, 3, 1, 1), Some(32));
        assert_eq!(out_len(32, 3, 2, 1), Some(16));
        assert_eq!(out_len(7, 2, 2, 0), Some(3));
        assert_eq!(out_len(2, 5, 1, 1), None);
        assert_eq!(valid_range(4, 1, 0, 1, 4), (1, 4));
        assert_eq!(valid_range(2, 2, 2, 1, 3), (0, 1));
    }
}
