//! Wall-clock timing for the chapters that compare costs: the median of several runs after
//! a warm-up, so that one slow run on a shared machine does not decide the number.

use std::time::Instant;

/// Runs `f` once to warm up, then `reps` times, and returns the median duration in seconds.
pub fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
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

/// Median durations in seconds of `f` and `g`, timed alternately — f, g, f, g, … after one
/// warm-up run of each — so that both see the same load on a shared machine.
pub fn median_seconds_alternating(
    reps: usize,
    mut f: impl FnMut(),
    mut g: impl FnMut(),
) -> (f64, f64) {
    f();
    g();
    let time = |h: &mut dyn FnMut()| {
        let start = Instant::now();
        h();
        start.elapsed().as_secs_f64()
    };
    let (mut tf, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        tf.push(time(&mut f));
        tg.push(time(&mut g));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(tf), median(tg))
}
