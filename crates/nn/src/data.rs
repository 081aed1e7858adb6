//! Small synthetic data sets, generated deterministically from a seed.

use autograd::{Element, Tensor, seeded_rng};

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
}

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
