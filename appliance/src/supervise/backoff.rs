//! Restart delays: 1 s, doubling to at most 30 s, back to 1 s once a child has run
//! healthy for 60 s. A child that crashes at once is not restarted in a tight loop, and
//! one that crashed after a long healthy run comes back quickly.

use std::time::Duration;

/// The first delay.
const FIRST: Duration = Duration::from_secs(1);
/// The longest delay.
const MAX: Duration = Duration::from_secs(30);
/// A run at least this long (healthy) resets the delay.
const RESET_AFTER: Duration = Duration::from_secs(60);

/// The delay before the next restart of one child.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay to wait after a child stopped having run healthy for `healthy_for`
    /// (`Duration::ZERO` if it never was): the doubling sequence, restarted when the
    /// run was long enough.
    pub fn after_exit(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= RESET_AFTER {
            self.next = FIRST;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_thirty_seconds_and_resets_after_a_minute_healthy() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..8)
            .map(|_| b.after_exit(Duration::ZERO).as_secs())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.after_exit(Duration::from_secs(59)).as_secs(), 30);
        assert_eq!(b.after_exit(Duration::from_secs(60)).as_secs(), 1);
        assert_eq!(b.after_exit(Duration::from_secs(5)).as_secs(), 2);
    }
}
