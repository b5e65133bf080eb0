//! `Backoff`: how long to wait before the next connection attempt to a buck.
//!
//! Exponential, so a buck that is down for an hour costs a handful of attempts, and
//! jittered, so a fleet of tailers that lost a buck at the same moment does not come
//! back at the same moment either.

use std::time::Duration;

/// Exponential backoff with jitter between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// The ceiling of the next wait; doubles after each wait.
    ceiling: Duration,
}

impl Backoff {
    /// A backoff starting at `min_ms` and doubling up to `max_ms` (both in milliseconds).
    pub fn new(min_ms: u64, max_ms: u64) -> Backoff {
        let min = Duration::from_millis(min_ms.max(1));
        let max = Duration::from_millis(max_ms).max(min);
        Backoff {
            min,
            max,
            ceiling: min,
        }
    }

    /// The next wait: uniformly random in [ceiling / 2, ceiling], then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(self.max);
        let half = ceiling / 2;
        let jitter_ms = rand::random_range(0..=(ceiling - half).as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// Back to the shortest wait, after a connection succeeded.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_bounds_and_resets() {
        let mut b = Backoff::new(100, 1_000);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let before = b.ceiling;
            let d = b.next_delay();
            assert!(
                d >= before / 2 && d <= before,
                "{d:?} outside [{:?}, {before:?}]",
                before / 2
            );
            ceilings.push(before);
        }
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[3], Duration::from_millis(800));
        assert_eq!(*ceilings.last().unwrap(), Duration::from_millis(1_000));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_waits() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            seen.insert(Backoff::new(1_000, 1_000).next_delay());
        }
        assert!(seen.len() > 5, "waits are not jittered: {seen:?}");
    }

    #[test]
    fn bounds_out_of_order_or_zero_still_give_waits_within_them() {
        let mut b = Backoff::new(500, 100);
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(250) && d <= Duration::from_millis(500),
                "a max below the min is raised to it: {d:?}"
            );
        }
        let mut b = Backoff::new(0, 0);
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d > Duration::ZERO && d <= Duration::from_millis(1),
                "a zero min still waits: {d:?}"
            );
        }
    }
}
