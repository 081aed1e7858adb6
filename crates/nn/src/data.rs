//! Small synthetic data sets, generated deterministically from a seed, and minibatches
//! drawn from any data set in order or in a seeded random order.

use crate::module::or_panic;
use autograd::rand::Rng;
use autograd::rand::seq::SliceRandom;
use autograd::{Caller, Element, Error, Result, Tensor, seeded_rng};

/// Points `x` `[N, 2]` with a class label per row.
#[derive(Clone, Debug)]
pub struct Dataset<T: Element = f32> {
    /// The inputs, one row per point.
    pub x: Tensor<T>,
    /// The class of each row.
    pub labels: Vec<usize>,
}

impl<T: Element> Dataset<T> {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels as a float column `[N, 1]` (0.0 or 1.0 for two classes), for
    /// binary cross-entropy.
    pub fn label_column(&self) -> Tensor<T> {
        Tensor::from_fn(&[self.len(), 1], |i| T::of(self.labels[i[0]] as f64))
    }

    /// The points at `rows`, in that order, as a data set of their own.
    ///
    /// # Panics
    /// If a row is out of range.
    #[track_caller]
    pub fn rows(&self, rows: &[usize]) -> Dataset<T> {
        Dataset {
            x: self.x.index_select(0, rows),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
        }
    }

    /// One pass over the data in minibatches of `batches`' rows ([`Batches::new`] for the
    /// stored order, [`Batches::shuffled`] for a seeded random one): each item is a
    /// [`Dataset`] of at most `batch_size` points.
    ///
    /// ```
    /// use autograd::seeded_rng;
    /// use nn::data::{Batches, two_spirals};
    ///
    /// let data = two_spirals::<f32>(50, 0.1, 0);
    /// let mut rng = seeded_rng(7); // one source for every epoch: a new order each time
    /// for _epoch in 0..2 {
    ///     let batches = Batches::shuffled(data.len(), 32, &mut rng);
    ///     for batch in data.batches(batches) {
    ///         assert!(batch.len() <= 32);
    ///         assert_eq!(batch.x.shape()[0], batch.labels.len());
    ///     }
    /// }
    /// ```
    ///
    /// # Panics
    /// If `batches` was made for more rows than the data set has.
    pub fn batches(&self, batches: Batches) -> impl Iterator<Item = Dataset<T>> + '_ {
        batches.map(|rows| self.rows(&rows))
    }
}

/// The row indices of one pass (an epoch) over `n` examples in minibatches, PyTorch's
/// `DataLoader` sampling: in order, or shuffled from a random source; every row once, the
/// last batch smaller when `batch_size` does not divide `n` (`drop_last=False`) unless
/// [`Batches::drop_last`] drops it. Select the rows of a tensor with
/// `x.index_select(0, &rows)`, or of a [`Dataset`] with [`Dataset::batches`].
///
/// ```
/// use autograd::seeded_rng;
/// use nn::data::Batches;
///
/// let ordered: Vec<Vec<usize>> = Batches::new(5, 2).collect();
/// assert_eq!(ordered, vec![vec![0, 1], vec![2, 3], vec![4]]);
/// // The same seed gives the same order; every row appears once.
/// let a: Vec<Vec<usize>> = Batches::shuffled(5, 2, &mut seeded_rng(3)).collect();
/// let b: Vec<Vec<usize>> = Batches::shuffled(5, 2, &mut seeded_rng(3)).collect();
/// assert_eq!(a, b);
/// let mut rows: Vec<usize> = a.concat();
/// rows.sort();
/// assert_eq!(rows, vec![0, 1, 2, 3, 4]);
/// ```
#[derive(Clone, Debug)]
pub struct Batches {
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    drop_last: bool,
}

impl Batches {
    /// Rows `0..n` in order, `batch_size` at a time.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn new(n: usize, batch_size: usize) -> Self {
        or_panic(Self::try_new(n, batch_size))
    }

    /// [`Batches::new`], with a zero batch size an error.
    #[track_caller]
    pub fn try_new(n: usize, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument {
                op: "Batches",
                reason: "the batch size must be at least 1".into(),
                at: Caller::here(),
            });
        }
        Ok(Batches {
            order: (0..n).collect(),
            batch_size,
            next: 0,
            drop_last: false,
        })
    }

    /// Rows `0..n` in a random order drawn from `rng` (a uniform permutation), `batch_size`
    /// at a time. Draw every epoch's batches from the same seeded source for a new,
    /// reproducible order each epoch.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn shuffled(n: usize, batch_size: usize, rng: &mut impl Rng) -> Self {
        or_panic(Self::try_shuffled(n, batch_size, rng))
    }

    /// [`Batches::shuffled`], with a zero batch size an error.
    #[track_caller]
    pub fn try_shuffled(n: usize, batch_size: usize, rng: &mut impl Rng) -> Result<Self> {
        let mut batches = Self::try_new(n, batch_size)?;
        batches.order.shuffle(rng);
        Ok(batches)
    }

    /// The same pass without its last batch when that one is smaller than `batch_size`
    /// (PyTorch's `drop_last=True`).
    pub fn drop_last(mut self) -> Self {
        self.drop_last = true;
        self
    }

    /// Rows not yet handed out in a batch.
    fn remaining(&self) -> usize {
        let left = self.order.len() - self.next;
        if self.drop_last {
            left - left % self.batch_size
        } else {
            left
        }
    }
}

impl Iterator for Batches {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let take = self.remaining().min(self.batch_size);
        if take == 0 {
            return None;
        }
        let rows = self.order[self.next..self.next + take].to_vec();
        self.next += take;
        Some(rows)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining().div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches {}

/// Two interleaved spirals, `n_per_class` points each (class 0 first, then class 1), inside
/// the unit disc: point `i` of class `c` sits at radius `r = (i + ½)/n` and angle
/// `3π·r + c·π` (one and a half turns), plus Gaussian noise of standard deviation `noise`
/// drawn from `seed`. A classic data set that a linear model cannot separate.
///
/// ```
/// let data = nn::data::two_spirals::<f64>(50, 0.0, 0);
/// assert_eq!(data.x.shape(), &[100, 2]);
/// assert_eq!(data.labels[0], 0);
/// assert_eq!(data.labels[99], 1);
/// // Without noise, the two classes are mirror images through the origin.
/// let (a, b) = (data.x.get(&[7, 0]), data.x.get(&[57, 0]));
/// assert!((a + b).abs() < 1e-12);
/// ```
pub fn two_spirals<T: Element>(n_per_class: usize, noise: f64, seed: u64) -> Dataset<T> {
    let n = n_per_class;
    let jitter = Tensor::<f64>::normal(&[2 * n, 2], 0.0, noise, &mut seeded_rng(seed));
    let x = Tensor::from_fn(&[2 * n, 2], |idx| {
        let (row, axis) = (idx[0], idx[1]);
        let (class, i) = (row / n.max(1), row % n.max(1));
        let r = (i as f64 + 0.5) / n as f64;
        let angle = 3.0 * std::f64::consts::PI * r + class as f64 * std::f64::consts::PI;
        let coordinate = if axis == 0 {
            r * angle.cos()
        } else {
            r * angle.sin()
        };
        T::of(coordinate + jitter.get(&[row, axis]))
    });
    let labels = (0..2 * n).map(|row| row / n.max(1)).collect();
    Dataset { x, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_row_once_in_a_seeded_order() {
        let sizes = |b: Batches| b.map(|rows| rows.len()).collect::<Vec<_>>();
        assert_eq!(sizes(Batches::new(10, 4)), vec![4, 4, 2]);
        assert_eq!(sizes(Batches::new(10, 4).drop_last()), vec![4, 4]);
        assert_eq!(sizes(Batches::new(8, 4).drop_last()), vec![4, 4]);
        assert_eq!(sizes(Batches::new(0, 4)), Vec::<usize>::new());
        assert_eq!(Batches::new(10, 3).len(), 4);
        assert_eq!(Batches::new(10, 3).drop_last().len(), 3);

        let mut rng = seeded_rng(11);
        let epoch1: Vec<usize> = Batches::shuffled(100, 7, &mut rng).flatten().collect();
        let epoch2: Vec<usize> = Batches::shuffled(100, 7, &mut rng).flatten().collect();
        let again: Vec<usize> = Batches::shuffled(100, 7, &mut seeded_rng(11))
            .flatten()
            .collect();
        assert_eq!(epoch1, again, "the same seed gives the same order");
        assert_ne!(epoch1, epoch2, "each epoch draws a new order");
        assert_ne!(epoch1, (0..100).collect::<Vec<_>>());
        for epoch in [epoch1, epoch2] {
            let mut sorted = epoch;
            sorted.sort_unstable();
            assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        }
        let e = Batches::try_new(3, 0).unwrap_err();
        assert!(e.to_string().contains("batch size"), "{e}");
    }

    #[test]
    fn dataset_batches_keep_points_and_labels_together() {
        let data = two_spirals::<f64>(6, 0.0, 0);
        let batches = Batches::shuffled(data.len(), 5, &mut seeded_rng(1));
        let mut seen = 0;
        for batch in data.batches(batches) {
            for (i, &label) in batch.labels.iter().enumerate() {
                let row = (0..data.len())
                    .find(|&r| data.x.get(&[r, 0]) == batch.x.get(&[i, 0]))
                    .unwrap();
                assert_eq!(data.labels[row], label);
                assert_eq!(data.x.get(&[row, 1]), batch.x.get(&[i, 1]));
            }
            seen += batch.len();
        }
        assert_eq!(seen, 12);
    }
}
