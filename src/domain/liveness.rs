//! When a host counts as silent, and how often to look.

use std::time::Duration;

/// How often the detector runs: a quarter of the timeout, at most 30 s (at least 1 s), so a
/// silent host is marked offline within the timeout plus a few seconds.
pub fn check_interval(heartbeat_timeout: Duration) -> Duration {
    (heartbeat_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detector_checks_four_times_per_timeout_but_at_least_every_30_seconds() {
        assert_eq!(
            check_interval(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(
            check_interval(Duration::from_secs(20)),
            Duration::from_secs(5)
        );
        assert_eq!(
            check_interval(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            check_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
