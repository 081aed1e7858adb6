//! Wall-clock timing for the chapters that compare costs. Two pieces of code are timed
//! alternately — f, g, f, g, … after a warm-up of each — so that both see the same load on
//! a shared machine, and every comparison is reported with its spread: the median and the
//! interquartile range of the times, and of the ratio of each pair of runs.

use std::time::Instant;

/// The median and quartiles of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The first quartile.
    pub q1: f64,
    /// The third quartile.
    pub q3: f64,
}

impl Spread {
    /// The median and quartiles of `values` (linear interpolation between order
    /// statistics; NaN for an empty sample).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if values.is_empty() {
                return f64::NAN;
            }
            let pos = q * (values.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            values[lo] + (pos - lo as f64) * (values[hi] - values[lo])
        };
        Spread {
            median: at(0.5),
            q1: at(0.25),
            q3: at(0.75),
        }
    }

    /// Whether the interquartile range contains `value` (for a ratio: whether 1 is within
    /// the spread, so that the difference cannot be told from noise).
    pub fn contains(&self, value: f64) -> bool {
        self.q1 <= value && value <= self.q3
    }

    /// `median [q1–q3]` with `format` applied to each number.
    pub fn show(&self, format: impl Fn(f64) -> String) -> String {
        format!(
            "{} [{}–{}]",
            format(self.median),
            format(self.q1),
            format(self.q3)
        )
    }
}

/// The times of two pieces of code run alternately.
#[derive(Clone, Debug)]
pub struct Alternated {
    /// Seconds of each run of the first.
    pub first: Vec<f64>,
    /// Seconds of each run of the second (run right after the first's run of the same index).
    pub second: Vec<f64>,
}

impl Alternated {
    /// Runs `f` and `g` once each to warm up, then `reps` times alternately.
    pub fn run(reps: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> Self {
        f();
        g();
        let time = |h: &mut dyn FnMut()| {
            let start = Instant::now();
            h();
            start.elapsed().as_secs_f64()
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for _ in 0..reps.max(1) {
            first.push(time(&mut f));
            second.push(time(&mut g));
        }
        Alternated { first, second }
    }

    /// The spread of the first's times.
    pub fn first(&self) -> Spread {
        Spread::of(self.first.clone())
    }

    /// The spread of the second's times.
    pub fn second(&self) -> Spread {
        Spread::of(self.second.clone())
    }

    /// The spread of the ratio first ÷ second over the pairs of runs.
    pub fn ratio(&self) -> Spread {
        Spread::of(
            self.first
                .iter()
                .zip(&self.second)
                .map(|(a, b)| a / b)
                .collect(),
        )
    }
}

/// Runs `f` once to warm up, then `reps` times, and returns the spread of the durations.
pub fn repeated(reps: usize, mut f: impl FnMut()) -> Spread {
    f();
    Spread::of(
        (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// A duration for people: `412 µs`, `3.2 ms`, `1.25 s`.
pub fn human_seconds(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_and_ratios_pair_runs() {
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!((s.q1, s.median, s.q3), (2.0, 3.0, 4.0));
        assert!(s.contains(3.5) && !s.contains(4.5));
        let a = Alternated {
            first: vec![2.0, 4.0, 6.0],
            second: vec![1.0, 2.0, 2.0],
        };
        assert_eq!(a.ratio().median, 2.0);
        assert_eq!(a.ratio().q3, 2.5);
        assert_eq!(s.show(|v| format!("{v}")), "3 [2–4]");
    }
}
