//! The server's `/metrics` (Prometheus' text exposition format), read by name.

/// The value of the metric `name` in `exposition`, summed over its label sets; `None` when no
/// line holds it (not recorded yet).
pub fn value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|sum, value| sum + value)
}

/// [`value`], 0 for a metric not recorded yet (a counter that has not counted).
pub fn sum(exposition: &str, name: &str) -> f64 {
    value(exposition, name).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::{sum, value};

    const EXPOSITION: &str = "# TYPE nexus_rows_total counter\n\
        nexus_rows_total{table=\"hosts\"} 3\n\
        nexus_rows_total{table=\"containers\"} 4.5\n\
        nexus_rows_total_more 100\n\
        nexus_read_replica_state 2\n";

    #[test]
    fn a_metric_is_summed_over_its_label_sets_and_not_confused_with_a_longer_name() {
        assert_eq!(value(EXPOSITION, "nexus_rows_total"), Some(7.5));
        assert_eq!(value(EXPOSITION, "nexus_read_replica_state"), Some(2.0));
    }

    #[test]
    fn a_metric_not_recorded_yet_has_no_value_and_sums_to_zero() {
        assert_eq!(value(EXPOSITION, "nexus_read_replica_lag_seconds"), None);
        assert_eq!(sum(EXPOSITION, "nexus_read_replica_lag_seconds"), 0.0);
    }
}
