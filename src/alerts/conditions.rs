//! What each rule kind finds: one set-based query per kind over every host in the rules' scopes
//! (docs/alerts.md#evaluation has the exact semantics). A cycle runs only the branches its
//! enabled rules need, as one statement whose rows are the findings:
//! `(rule_id, host_id, container_id, value, since, exact)`, `since` being when the data says the
//! condition started to hold (metric_threshold only; NULL: from when the evaluator first saw it),
//! `exact` whether the data shows when (a reading that did not break the rule precedes it) or
//! only that it held at least since then (every reading in the window broke it).

/// The hosts a rule covers (`r` a rule, `h` a host): not archived, and in `host_ids` and/or
/// matching the `host_labels` selector when those are set.
const SCOPE: &str = "h.status <> 'archived'
        AND (r.host_ids IS NULL OR h.id = ANY (r.host_ids))
        AND (r.host_labels IS NULL OR h.labels @> r.host_labels)";

/// Whether a sample's `value` breaks its rule's `operator` `threshold` (NULL: no reading).
/// Written out rather than a SQL function: PostgreSQL does not inline a function whose argument
/// is an expression used more than once, and calling one costs ~5 µs a sample.
fn breaches(operator: &str, value: &str, threshold: &str) -> String {
    format!(
        "CASE {operator}
                   WHEN '>' THEN {value} > {threshold}
                   WHEN '>=' THEN {value} >= {threshold}
                   WHEN '<' THEN {value} < {threshold}
                   WHEN '<=' THEN {value} <= {threshold}
               END"
    )
}

/// How long an `oom_killed` event keeps a container_oom_killed condition holding after Docker
/// restarted the container (which clears `oom_killed` on the container's row).
pub const OOM_EVENT_HOLD_SECONDS: u32 = 600;

/// How far before a metric rule's `for` window its samples are read: two 30 s samples, so the
/// window's first rate has its previous sample and a breach that began earlier shows. Sparser
/// series still fire: when every reading breaks the rule, a pending alert keeps its start
/// (evaluation.rs). Every second more reads more samples per cycle (BENCHMARKS.md).
pub const METRIC_LOOKBACK_MARGIN_SECONDS: u32 = 60;

/// Longest `for` read from the raw samples; longer windows read a rollup.
pub const RAW_MAX_FOR_SECONDS: i32 = 900;
/// Longest `for` read from the 5-minute rollups; longer windows read the 1-hour ones.
pub const ROLLUP_5M_MAX_FOR_SECONDS: i32 = 6 * 3600;

/// Which data a metric_threshold rule with this `for` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Raw,
    FiveMinutes,
    OneHour,
}

impl Resolution {
    pub fn for_window(for_seconds: i32) -> Self {
        if for_seconds <= RAW_MAX_FOR_SECONDS {
            Resolution::Raw
        } else if for_seconds <= ROLLUP_5M_MAX_FOR_SECONDS {
            Resolution::FiveMinutes
        } else {
            Resolution::OneHour
        }
    }

    /// The `for_seconds` condition selecting the rules that read this resolution.
    fn rule_filter(self) -> String {
        match self {
            Resolution::Raw => format!("r.for_seconds <= {RAW_MAX_FOR_SECONDS}"),
            Resolution::FiveMinutes => format!(
                "r.for_seconds > {RAW_MAX_FOR_SECONDS} AND r.for_seconds <= {ROLLUP_5M_MAX_FOR_SECONDS}"
            ),
            Resolution::OneHour => format!("r.for_seconds > {ROLLUP_5M_MAX_FOR_SECONDS}"),
        }
    }

    fn rollup_suffix(self) -> &'static str {
        match self {
            Resolution::Raw => "",
            Resolution::FiveMinutes => "5m",
            Resolution::OneHour => "1h",
        }
    }

    /// Seconds read before `for`'s window: the margin, or a whole bucket.
    fn lookback_margin(self) -> u32 {
        match self {
            Resolution::Raw => METRIC_LOOKBACK_MARGIN_SECONDS,
            Resolution::FiveMinutes => 300,
            Resolution::OneHour => 3600,
        }
    }

    /// The longest window this resolution reads, as a constant bound for chunk exclusion.
    fn max_lookback_seconds(self) -> i64 {
        let longest = match self {
            Resolution::Raw => i64::from(RAW_MAX_FOR_SECONDS),
            Resolution::FiveMinutes => i64::from(ROLLUP_5M_MAX_FOR_SECONDS),
            Resolution::OneHour => i64::from(i32::MAX),
        };
        longest + i64::from(self.lookback_margin())
    }
}

/// Whether a metric is a host's or a container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Host,
    Container,
}

impl Subject {
    pub fn of_metric(metric: &str) -> Self {
        if metric.starts_with("container_") {
            Subject::Container
        } else {
            Subject::Host
        }
    }
}

/// One part of the findings query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Branch {
    HostOffline,
    ContainerNotRunning,
    ContainerUnhealthy,
    ContainerRestarting,
    ContainerOomKilled,
    /// A metric rule's samples; `true`: a byte rate, computed from consecutive raw samples.
    Metric(Subject, Resolution, bool),
}

impl Branch {
    /// The branch an enabled rule needs (`metric` and `for_seconds` matter for metric_threshold).
    pub fn of_rule(kind: &str, metric: Option<&str>, for_seconds: i32) -> Option<Self> {
        Some(match kind {
            "host_offline" => Branch::HostOffline,
            "container_not_running" => Branch::ContainerNotRunning,
            "container_unhealthy" => Branch::ContainerUnhealthy,
            "container_restarting" => Branch::ContainerRestarting,
            "container_oom_killed" => Branch::ContainerOomKilled,
            "metric_threshold" => Branch::Metric(
                Subject::of_metric(metric?),
                Resolution::for_window(for_seconds),
                is_rate(metric?),
            ),
            _ => return None,
        })
    }

    fn sql(self) -> String {
        match self {
            Branch::HostOffline => format!(
                "SELECT r.id, h.id, NULL::text, NULL::double precision, NULL::timestamptz, NULL::boolean
    FROM rules r JOIN hosts h ON {SCOPE}
    WHERE r.kind = 'host_offline' AND h.status = 'offline'"
            ),
            // "Seen running": the feed holds a change of state away from `running`.
            Branch::ContainerNotRunning => format!(
                "SELECT r.id, h.id, c.container_id, c.exit_code::double precision, NULL::timestamptz, NULL::boolean
    FROM rules r JOIN hosts h ON {SCOPE}
    JOIN containers c ON c.host_id = h.id
    WHERE r.kind = 'container_not_running'
      AND c.state IN ('exited', 'dead') AND c.removed_at IS NULL
      AND NOT (r.ignore_exit_code_zero AND c.exit_code IS NOT DISTINCT FROM 0)
      AND EXISTS (SELECT 1 FROM events e
                  WHERE e.container_id = c.container_id AND e.host_id = c.host_id
                    AND e.kind = 'state_changed' AND e.from_value = 'running')"
            ),
            Branch::ContainerUnhealthy => format!(
                "SELECT r.id, h.id, c.container_id, NULL::double precision, NULL::timestamptz, NULL::boolean
    FROM rules r JOIN hosts h ON {SCOPE}
    JOIN containers c ON c.host_id = h.id
    WHERE r.kind = 'container_unhealthy'
      AND c.health_status = 'unhealthy' AND c.removed_at IS NULL"
            ),
            // Each `restarted` event counts its increase of the restart count.
            Branch::ContainerRestarting => format!(
                "SELECT r.id, h.id, e.container_id,
           sum(e.to_value::bigint - e.from_value::bigint)::double precision, NULL::timestamptz,
           NULL::boolean
    FROM rules r JOIN hosts h ON {SCOPE}
    JOIN events e ON e.host_id = h.id
    JOIN containers c ON c.host_id = e.host_id AND c.container_id = e.container_id
    WHERE r.kind = 'container_restarting' AND c.removed_at IS NULL
      AND e.kind = 'restarted'
      AND e.at > now() - make_interval(secs => r.window_seconds)
      AND e.at > now() - make_interval(secs => (SELECT max(window_seconds) FROM rules
                                               WHERE kind = 'container_restarting'))
    GROUP BY r.id, h.id, e.container_id, r.restarts
    HAVING sum(e.to_value::bigint - e.from_value::bigint) >= r.restarts"
            ),
            Branch::ContainerOomKilled => format!(
                "SELECT r.id, h.id, c.container_id, NULL::double precision, NULL::timestamptz, NULL::boolean
    FROM rules r JOIN hosts h ON {SCOPE}
    JOIN containers c ON c.host_id = h.id
    WHERE r.kind = 'container_oom_killed' AND c.removed_at IS NULL
      AND (c.oom_killed
           OR (c.host_id, c.container_id) IN (
               SELECT e.host_id, e.container_id FROM events e
               WHERE e.kind = 'oom_killed'
                 AND e.at > now() - make_interval(secs => {OOM_EVENT_HOLD_SECONDS})))"
            ),
            Branch::Metric(subject, resolution, rate) => metric_sql(subject, resolution, rate),
        }
    }
}

/// The findings query for `branches`: their rows, together.
pub fn findings_sql(branches: &[Branch]) -> String {
    let parts: Vec<String> = branches.iter().map(|branch| branch.sql()).collect();
    format!(
        "WITH rules AS MATERIALIZED (SELECT * FROM alert_rules WHERE enabled)\n{}",
        parts.join("\nUNION ALL\n")
    )
}

/// A metric_threshold branch: each series' samples in `for` plus a margin, each a value and
/// whether it breaks the rule. A series' condition holds when its newest sample breaks the rule;
/// it has held since the first breaking sample after the newest one that did not. Raw gauges
/// read each series' newest sample first (an index probe) and the window only for the series
/// it breaks, so a healthy fleet costs one sample per series; rates and rollups read the
/// window in one pass over the time range, and only the series that hold are read again, for
/// their `since` and newest value.
fn metric_sql(subject: Subject, resolution: Resolution, rate: bool) -> String {
    let samples = match (subject, resolution) {
        (Subject::Host, Resolution::Raw) if rate => host_raw_rate_samples(),
        (Subject::Host, Resolution::Raw) => host_raw_gauge_samples(),
        (Subject::Container, Resolution::Raw) if rate => container_raw_rate_samples(),
        (Subject::Container, Resolution::Raw) => container_raw_gauge_samples(),
        (Subject::Host, rollup) => host_rollup_samples(rollup),
        (Subject::Container, rollup) => container_rollup_samples(rollup),
    };
    let prefix = match subject {
        Subject::Host => "host\\_%",
        Subject::Container => "container\\_%",
    };
    let kind = if rate { "" } else { "NOT " };
    let rules = format!(
        "r.kind = 'metric_threshold' AND r.metric LIKE '{prefix}' AND {}
              AND {kind}r.metric LIKE '%\\_bytes\\_per\\_second'",
        resolution.rule_filter()
    );
    let since = format!(
        "now() - make_interval(secs => r.for_seconds + {})",
        resolution.lookback_margin()
    );
    let bound = format!(
        "now() - make_interval(secs => {})",
        resolution.max_lookback_seconds()
    );
    let samples = samples
        .replace("{RULES}", &rules)
        .replace("{SINCE}", &since)
        .replace("{BOUND}", &bound)
        .replace("{SCOPE}", SCOPE);
    let breach = breaches("operator", "value", "threshold");
    format!(
        "SELECT * FROM (
    WITH judged AS MATERIALIZED (
        SELECT rule_id, host_id, container_id, t, value,
               {breach} AS breach
        FROM ({samples}) samples
        WHERE value IS NOT NULL
    ),
    holding AS (
        SELECT rule_id, host_id, container_id,
               coalesce(max(t) FILTER (WHERE NOT breach), '-infinity') AS last_ok
        FROM judged
        GROUP BY rule_id, host_id, container_id
            HAVING max(t) FILTER (WHERE breach)
               > coalesce(max(t) FILTER (WHERE NOT breach), '-infinity')
    )
    SELECT j.rule_id, j.host_id, j.container_id,
           (array_agg(j.value ORDER BY j.t DESC))[1], min(j.t),
           bool_or(s.last_ok > '-infinity')
    FROM judged j
    JOIN holding s ON s.rule_id = j.rule_id AND s.host_id = j.host_id
                  AND coalesce(s.container_id, '') = coalesce(j.container_id, '')
    WHERE j.t > s.last_ok
    GROUP BY j.rule_id, j.host_id, j.container_id
) metric"
    )
}

/// Whether a metric is a byte rate (from counters) rather than a gauge.
pub fn is_rate(metric: &str) -> bool {
    metric.ends_with("_bytes_per_second")
}

/// The window clause of raw rate samples (`partition`: a series' key).
fn rate_window(partition: &str) -> String {
    format!("WINDOW w AS (PARTITION BY r.id, {partition} ORDER BY m.recorded_at)")
}

/// The per-second rate of each `(metric, counter column)` from consecutive samples (window `w`).
fn counter_rates(counters: &[(&str, &str)]) -> String {
    let arms: String = counters
        .iter()
        .map(|(metric, column)| {
            format!(
                "
                   WHEN '{metric}' THEN alert_counter_rate(m.{column}, lag(m.{column}) OVER w,
                       extract(epoch FROM m.recorded_at - lag(m.recorded_at) OVER w))"
            )
        })
        .collect();
    format!("CASE r.metric{arms}\n               END")
}

/// The samples of the host byte-rate rules (`{RULES}`) since `{SINCE}` with the rule's rate as
/// `value`, from consecutive samples' counter deltas.
fn host_raw_rate_samples() -> String {
    let value = counter_rates(&[
        ("host_network_rx_bytes_per_second", "network_rx_bytes"),
        ("host_network_tx_bytes_per_second", "network_tx_bytes"),
    ]);
    let window = rate_window("m.host_id");
    format!(
        "SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id, NULL::text AS container_id,
               m.recorded_at AS t, {value} AS value
            FROM rules r
            JOIN host_metric_snapshots m ON m.recorded_at > {{SINCE}}
            JOIN hosts h ON h.id = m.host_id AND {{SCOPE}}
            WHERE {{RULES}} AND m.recorded_at > {{BOUND}}
            {window}"
    )
}

/// A host gauge's value in sample `m`.
fn host_gauge(m: &str) -> String {
    format!(
        "CASE r.metric
                   WHEN 'host_cpu_percent' THEN {m}.cpu_percent
                   WHEN 'host_memory_percent' THEN 100.0 * {m}.memory_used_mb::double precision / nullif({m}.memory_total_mb, 0)
                   WHEN 'host_disk_used_percent' THEN 100.0 * {m}.disk_used_gb::double precision / nullif({m}.disk_total_gb, 0)
                   WHEN 'host_load_average' THEN {m}.load_average
               END"
    )
}

/// The window's samples of the host gauge rules, only for the hosts whose newest reading breaks
/// the rule (one index probe per rule and host finds it).
fn host_raw_gauge_samples() -> String {
    let newest = host_gauge("n");
    let breach = breaches("r.operator", "newest.value", "r.threshold");
    let value = host_gauge("m");
    format!(
        "WITH breaking_now AS MATERIALIZED (
                SELECT r.id AS rule_id, h.id AS host_id
                FROM rules r
                JOIN hosts h ON {{SCOPE}}
                CROSS JOIN LATERAL (
                    SELECT {newest} AS value
                    FROM host_metric_snapshots n
                    WHERE n.host_id = h.id AND n.recorded_at > {{SINCE}}
                      AND n.recorded_at > {{BOUND}} AND {newest} IS NOT NULL
                    ORDER BY n.recorded_at DESC
                    LIMIT 1
                ) newest
                WHERE {{RULES}} AND {breach}
            )
            SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id,
                   NULL::text AS container_id, m.recorded_at AS t, {value} AS value
            FROM breaking_now b
            JOIN rules r ON r.id = b.rule_id
            JOIN host_metric_snapshots m ON m.host_id = b.host_id AND m.recorded_at > {{SINCE}}
            WHERE m.recorded_at > {{BOUND}}"
    )
}

fn container_raw_rate_samples() -> String {
    let value = counter_rates(&[
        ("container_network_rx_bytes_per_second", "network_rx_bytes"),
        ("container_network_tx_bytes_per_second", "network_tx_bytes"),
        ("container_block_read_bytes_per_second", "block_read_bytes"),
        (
            "container_block_write_bytes_per_second",
            "block_write_bytes",
        ),
    ]);
    let window = rate_window("m.container_id");
    format!(
        "SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id, c.container_id,
               m.recorded_at AS t, {value} AS value
            FROM rules r
            JOIN container_metric_snapshots m ON m.recorded_at > {{SINCE}}
            JOIN containers c ON c.id = m.container_id AND c.removed_at IS NULL
            JOIN hosts h ON h.id = m.host_id AND {{SCOPE}}
            WHERE {{RULES}} AND m.recorded_at > {{BOUND}}
            {window}"
    )
}

/// A container gauge's value in sample `m`.
fn container_gauge(m: &str) -> String {
    format!(
        "CASE r.metric
                   WHEN 'container_cpu_percent' THEN {m}.cpu_percent
                   WHEN 'container_memory_percent' THEN memory_percent({m}.memory_usage_mb, {m}.memory_limit_mb)
               END"
    )
}

/// The window's samples of the container gauge rules, only for the containers whose newest
/// reading breaks the rule (one index probe per rule and container finds it).
fn container_raw_gauge_samples() -> String {
    let newest = container_gauge("n");
    let breach = breaches("r.operator", "newest.value", "r.threshold");
    let value = container_gauge("m");
    format!(
        "WITH breaking_now AS MATERIALIZED (
                SELECT r.id AS rule_id, c.id AS container_key, c.container_id
                FROM rules r
                JOIN hosts h ON {{SCOPE}}
                JOIN containers c ON c.host_id = h.id AND c.removed_at IS NULL
                CROSS JOIN LATERAL (
                    SELECT {newest} AS value
                    FROM container_metric_snapshots n
                    WHERE n.container_id = c.id AND n.recorded_at > {{SINCE}}
                      AND n.recorded_at > {{BOUND}} AND {newest} IS NOT NULL
                    ORDER BY n.recorded_at DESC
                    LIMIT 1
                ) newest
                WHERE {{RULES}} AND {breach}
            )
            SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id, b.container_id,
                   m.recorded_at AS t, {value} AS value
            FROM breaking_now b
            JOIN rules r ON r.id = b.rule_id
            JOIN container_metric_snapshots m
              ON m.container_id = b.container_key AND m.recorded_at > {{SINCE}}
            WHERE m.recorded_at > {{BOUND}}"
    )
}

/// A rollup bucket counts as breaking the rule when every sample in it did: its minimum for
/// `>`/`>=`, its maximum for `<`/`<=` (rates: the bucket's rate).
fn host_rollup_samples(resolution: Resolution) -> String {
    let suffix = resolution.rollup_suffix();
    format!(
        "SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id, NULL::text AS container_id,
               m.bucket AS t,
               CASE r.metric
                   WHEN 'host_cpu_percent' THEN
                       CASE WHEN r.operator LIKE '>%' THEN m.cpu_percent_min ELSE m.cpu_percent_max END
                   WHEN 'host_memory_percent' THEN 100.0 * CASE WHEN r.operator LIKE '>%'
                       THEN m.memory_used_mb_min ELSE m.memory_used_mb_max END::double precision / nullif(m.memory_total_mb_max, 0)
                   WHEN 'host_disk_used_percent' THEN 100.0 * CASE WHEN r.operator LIKE '>%'
                       THEN m.disk_used_gb_min ELSE m.disk_used_gb_max END::double precision / nullif(m.disk_total_gb_max, 0)
                   WHEN 'host_load_average' THEN
                       CASE WHEN r.operator LIKE '>%' THEN m.load_average_min ELSE m.load_average_max END
                   WHEN 'host_network_rx_bytes_per_second' THEN m.network_rx_bytes_increase / nullif(m.counter_seconds, 0)
                   WHEN 'host_network_tx_bytes_per_second' THEN m.network_tx_bytes_increase / nullif(m.counter_seconds, 0)
               END AS value
            FROM rules r
            JOIN host_metrics_{suffix} m ON m.bucket > {{SINCE}}
            JOIN hosts h ON h.id = m.host_id AND {{SCOPE}}
            WHERE {{RULES}} AND m.bucket > {{BOUND}}"
    )
}

fn container_rollup_samples(resolution: Resolution) -> String {
    let suffix = resolution.rollup_suffix();
    format!(
        "SELECT r.id AS rule_id, r.operator, r.threshold, m.host_id, c.container_id,
               m.bucket AS t,
               CASE r.metric
                   WHEN 'container_cpu_percent' THEN
                       CASE WHEN r.operator LIKE '>%' THEN m.cpu_percent_min ELSE m.cpu_percent_max END
                   WHEN 'container_memory_percent' THEN
                       CASE WHEN r.operator LIKE '>%' THEN m.memory_percent_min ELSE m.memory_percent_max END
                   WHEN 'container_network_rx_bytes_per_second' THEN m.network_rx_bytes_increase / nullif(m.counter_seconds, 0)
                   WHEN 'container_network_tx_bytes_per_second' THEN m.network_tx_bytes_increase / nullif(m.counter_seconds, 0)
                   WHEN 'container_block_read_bytes_per_second' THEN m.block_read_bytes_increase / nullif(m.counter_seconds, 0)
                   WHEN 'container_block_write_bytes_per_second' THEN m.block_write_bytes_increase / nullif(m.counter_seconds, 0)
               END AS value
            FROM rules r
            JOIN container_metrics_{suffix} m ON m.bucket > {{SINCE}}
            JOIN containers c ON c.id = m.container_id AND c.removed_at IS NULL
            JOIN hosts h ON h.id = m.host_id AND {{SCOPE}}
            WHERE {{RULES}} AND m.bucket > {{BOUND}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_rule_reads_raw_samples_up_to_15_minutes_then_the_finest_rollup_that_fits() {
        assert_eq!(Resolution::for_window(0), Resolution::Raw);
        assert_eq!(Resolution::for_window(900), Resolution::Raw);
        assert_eq!(Resolution::for_window(901), Resolution::FiveMinutes);
        assert_eq!(Resolution::for_window(6 * 3600), Resolution::FiveMinutes);
        assert_eq!(Resolution::for_window(6 * 3600 + 1), Resolution::OneHour);
    }

    #[test]
    fn each_rule_kind_has_its_branch_and_metrics_split_by_subject() {
        assert_eq!(
            Branch::of_rule("metric_threshold", Some("container_cpu_percent"), 60),
            Some(Branch::Metric(Subject::Container, Resolution::Raw, false))
        );
        assert_eq!(
            Branch::of_rule("metric_threshold", Some("host_disk_used_percent"), 3600),
            Some(Branch::Metric(
                Subject::Host,
                Resolution::FiveMinutes,
                false
            ))
        );
        assert_eq!(
            Branch::of_rule("host_offline", None, 0),
            Some(Branch::HostOffline)
        );
        assert_eq!(Branch::of_rule("nonsense", None, 0), None);
    }
}
