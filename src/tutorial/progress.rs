//! Progress lines for long computations: at most one every few seconds, on stderr, so that
//! the page on stdout stays clean.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Throttled progress reporting. [`Progress::silent`] prints nothing (tests).
pub struct Progress {
    enabled: bool,
    interval: Duration,
    start: Instant,
    last: Cell<Option<Instant>>,
}

impl Progress {
    /// Prints to stderr, at most one line every 3 seconds.
    pub fn stderr() -> Self {
        Progress {
            enabled: true,
            interval: Duration::from_secs(3),
            start: Instant::now(),
            last: Cell::new(None),
        }
    }

    /// Prints nothing.
    pub fn silent() -> Self {
        Progress {
            enabled: false,
            ..Self::stderr()
        }
    }

    /// Prints the message `f()` if the last line was printed long enough ago; `f` is not
    /// called otherwise.
    pub fn tick(&self, f: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let due = self
            .last
            .get()
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if due {
            self.last.set(Some(now));
            eprintln!("  [{:6.1} s] {}", self.start.elapsed().as_secs_f64(), f());
        }
    }

    /// Prints a message now, whatever the interval.
    pub fn say(&self, message: &str) {
        if self.enabled {
            self.last.set(Some(Instant::now()));
            eprintln!("  [{:6.1} s] {message}", self.start.elapsed().as_secs_f64());
        }
    }
}
