//! Results over several seeds: the median, and the range from the lowest to the highest.

/// The median of some values (the mean of the two middle ones for an even count; NaN
/// values sort last).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

/// The median of a measurement over seeds, with its lowest and highest value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedRange {
    /// The median.
    pub median: f64,
    /// The lowest value.
    pub low: f64,
    /// The highest value.
    pub high: f64,
}

impl SeedRange {
    /// The median, lowest and highest of `values`.
    pub fn of(values: Vec<f64>) -> Self {
        SeedRange {
            low: values.iter().copied().fold(f64::INFINITY, f64::min),
            high: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median: median(values),
        }
    }

    /// A fraction as percentages: `97.0 % (95.6–97.2)`.
    pub fn percent(&self) -> String {
        format!(
            "{:.1} % ({:.1}–{:.1})",
            100.0 * self.median,
            100.0 * self.low,
            100.0 * self.high
        )
    }

    /// `1.23 (0.9–2)`: the median to `digits` significant digits, the range to two.
    pub fn show(&self, digits: usize) -> String {
        use super::page::sig;
        format!(
            "{} ({}–{})",
            sig(self.median, digits),
            sig(self.low, 2),
            sig(self.high, 2)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        let r = SeedRange::of(vec![0.95, 0.97, 0.9]);
        assert_eq!((r.median, r.low, r.high), (0.95, 0.9, 0.97));
        assert_eq!(r.percent(), "95.0 % (90.0–97.0)");
        assert_eq!(SeedRange::of(vec![1.234, 0.9, 2.0]).show(3), "1.23 (0.9–2)");
    }
}
