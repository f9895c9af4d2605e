//! Alert evaluation (issue 26, docs/alerts.md#evaluation): each rule kind firing and resolving
//! from real snapshots posted to the real server, `for` durations, scopes, the evaluator's
//! lease (one process at a time, takeover, the fence) and no duplicates across processes.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use nexus_telemetry::alerts::evaluation::{Cycle, Evaluator};
use nexus_telemetry::startup::Application;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload, rfc3339, serve_args};

/// Evaluation every second, a 2-second lease: what these tests wait for comes within seconds.
/// (Also the evaluating servers of the Alertmanager, webhook and stream tests.)
pub const FAST: [&str; 4] = [
    "--alert-evaluation-interval-seconds",
    "1",
    "--alert-lease-seconds",
    "2",
];

/// How long a test waits for the evaluator to see a change.
const PATIENCE: StdDuration = StdDuration::from_secs(15);

async fn evaluating_app() -> TestApp {
    let app = TestApp::spawn_with(&FAST).await;
    disable_default_rules(&app).await;
    app
}

/// The tests make their own rules; the defaults would add alerts of their own.
pub async fn disable_default_rules(app: &TestApp) {
    app.db
        .execute("UPDATE alert_rules SET enabled = false", &[])
        .await
        .unwrap();
}

/// A rule from `columns` (SQL column = value pairs, the values SQL literals); its id.
pub async fn rule(app: &TestApp, name: &str, kind: &str, columns: &[(&str, &str)]) -> i64 {
    let names: String = columns.iter().map(|(c, _)| format!(", {c}")).collect();
    let values: String = columns.iter().map(|(_, v)| format!(", {v}")).collect();
    app.db
        .query_one(
            &format!(
                "INSERT INTO alert_rules (name, kind{names}) VALUES ($1, $2{values}) RETURNING id"
            ),
            &[&name, &kind],
        )
        .await
        .unwrap()
        .get(0)
}

/// `(state, container_id, value)` of a rule's alerts, oldest first.
async fn alerts(app: &TestApp, rule: i64) -> Vec<(String, Option<String>, Option<f64>)> {
    app.db
        .query(
            "SELECT state, container_id, value FROM alerts WHERE rule_id = $1 ORDER BY id",
            &[&rule],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// The states of a rule's alerts, oldest first.
async fn states(app: &TestApp, rule: i64) -> Vec<String> {
    alerts(app, rule).await.into_iter().map(|a| a.0).collect()
}

/// Waits until the rule's alerts are in `expected` states (oldest first); how long it took.
async fn wait_for_states(app: &TestApp, rule: i64, expected: &[&str]) -> StdDuration {
    wait_for_states_within(app, rule, expected, PATIENCE).await
}

/// As [`wait_for_states`], for at most `patience`.
async fn wait_for_states_within(
    app: &TestApp,
    rule: i64,
    expected: &[&str],
    patience: StdDuration,
) -> StdDuration {
    let started = Instant::now();
    loop {
        let now = states(app, rule).await;
        if now == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < patience,
            "rule {rule}'s alerts are {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// `kind from→to` of every alert event, in id order.
async fn alert_events(app: &TestApp) -> Vec<String> {
    app.db
        .query(
            "SELECT kind, from_value, to_value FROM events WHERE kind LIKE 'alert\\_%' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{} {}→{}",
                row.get::<_, String>(0),
                row.get::<_, Option<String>>(1).unwrap_or_default(),
                row.get::<_, Option<String>>(2).unwrap_or_default()
            )
        })
        .collect()
}

async fn post(app: &TestApp, token: &str, body: &Value) {
    let response = app.post_telemetry(token, body).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

/// A snapshot `seconds` from now whose one container `c1` has `fields` over the defaults.
fn snapshot_with(seconds: i64, fields: Value) -> Value {
    let mut body = payload(&at(Duration::seconds(seconds)), &[("c1", "running")]);
    let container = body["containers"][0].as_object_mut().unwrap();
    for (key, value) in fields.as_object().unwrap() {
        container.insert(key.clone(), value.clone());
    }
    body
}

/// A snapshot `seconds` from now with the host's disk `used_gb` of 100 GB used.
fn disk_snapshot(seconds: i64, used_gb: i64) -> Value {
    let mut body = payload(&at(Duration::seconds(seconds)), &[("c1", "running")]);
    body["host"]["metrics"]["disk_used_gb"] = json!(used_gb);
    body
}

#[tokio::test]
async fn a_container_that_dies_fires_container_not_running_and_resolves_when_it_runs_again() {
    let app = evaluating_app().await;
    let rule = rule(&app, "down", "container_not_running", &[]).await;
    let (host, token) = app.host_with_token("web-01").await;
    post(&app, &token, &snapshot_with(-3, json!({}))).await;
    post(
        &app,
        &token,
        &snapshot_with(-2, json!({"state": "exited", "exit_code": 137})),
    )
    .await;
    // for = 0: the death's events wake the evaluator, well before its interval would matter.
    wait_for_states(&app, rule, &["firing"]).await;
    assert_eq!(
        alerts(&app, rule).await,
        [("firing".into(), Some("c1".into()), Some(137.0))],
        "the alert is about the container and carries its exit code"
    );
    post(&app, &token, &snapshot_with(-1, json!({}))).await;
    wait_for_states(&app, rule, &["resolved"]).await;
    assert_eq!(
        alert_events(&app).await,
        ["alert_firing →firing", "alert_resolved firing→resolved"]
    );
    let row = app
        .db
        .query_one(
            "SELECT count(*) FROM events e JOIN alerts a ON a.id = e.alert_id
             WHERE e.host_id = $1 AND e.container_id = 'c1' AND a.host_id = $1
               AND a.started_at IS NOT NULL AND a.resolved_at IS NOT NULL
               AND a.fingerprint = alert_fingerprint(a.rule_id, a.host_id, 'c1')",
            &[&host],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        2,
        "both events name the host, the container and the alert"
    );
}

#[tokio::test]
async fn a_container_seen_only_exited_or_exiting_with_code_zero_fires_nothing() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "down",
        "container_not_running",
        &[("ignore_exit_code_zero", "true")],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut body = payload(
        &at(Duration::seconds(-3)),
        &[("done", "running"), ("job", "exited")],
    );
    post(&app, &token, &body).await;
    body["recorded_at"] = json!(at(Duration::seconds(-2)));
    body["containers"][0]["state"] = json!("exited");
    body["containers"][0]["exit_code"] = json!(0);
    post(&app, &token, &body).await;
    let other = crate::alert_evaluation::rule(&app, "canary", "container_unhealthy", &[]).await;
    let (_, canary) = app.host_with_token("canary").await;
    post(
        &app,
        &canary,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    // Once a later change has been evaluated, the earlier ones have been too.
    wait_for_states(&app, other, &["firing"]).await;
    assert!(states(&app, rule).await.is_empty());
}

#[tokio::test]
async fn a_host_that_falls_silent_fires_host_offline_and_resolves_when_it_reports_again() {
    let mut flags = FAST.to_vec();
    flags.extend(["--heartbeat-timeout-seconds", "2"]);
    let app = TestApp::spawn_with(&flags).await;
    disable_default_rules(&app).await;
    let rule = rule(&app, "offline", "host_offline", &[]).await;
    let (host, token) = app.host_with_token("web-01").await;
    post(&app, &token, &snapshot_with(0, json!({}))).await;
    wait_for_states(&app, rule, &["firing"]).await;
    assert_eq!(app.host_status(host).await, "offline");
    post(&app, &token, &snapshot_with(0, json!({}))).await;
    wait_for_states(&app, rule, &["resolved"]).await;
}

#[tokio::test]
async fn an_unhealthy_container_fires_container_unhealthy_and_resolves_when_healthy() {
    let app = evaluating_app().await;
    let rule = rule(&app, "sick", "container_unhealthy", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-2, json!({"health_status": "unhealthy"})),
    )
    .await;
    wait_for_states(&app, rule, &["firing"]).await;
    post(&app, &token, &snapshot_with(-1, json!({}))).await;
    wait_for_states(&app, rule, &["resolved"]).await;
}

#[tokio::test]
async fn restarts_within_the_window_fire_container_restarting_which_resolves_as_they_age_out() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "looping",
        "container_restarting",
        &[("restarts", "3"), ("window_seconds", "20")],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;
    for (seconds, count) in [(-4, 0), (-3, 1), (-2, 2)] {
        post(
            &app,
            &token,
            &snapshot_with(seconds, json!({"restart_count": count})),
        )
        .await;
    }
    // Two restarts: below the rule's three.
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert!(states(&app, rule).await.is_empty());
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"restart_count": 3})),
    )
    .await;
    wait_for_states(&app, rule, &["firing"]).await;
    assert_eq!(
        alerts(&app, rule).await[0].2,
        Some(3.0),
        "the restarts counted"
    );
    // No more restarts: twenty seconds on, the first has left the window. The window is that
    // wide so that a loaded machine's slower cycles still see the three restarts inside it.
    wait_for_states_within(&app, rule, &["resolved"], StdDuration::from_secs(40)).await;
}

#[tokio::test]
async fn an_oom_killed_container_fires_container_oom_killed_until_it_is_removed() {
    let app = evaluating_app().await;
    let rule = rule(&app, "oom", "container_oom_killed", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-3, json!({"oom_killed": false})),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(
            -2,
            json!({"state": "exited", "exit_code": 137, "oom_killed": true}),
        ),
    )
    .await;
    wait_for_states(&app, rule, &["firing"]).await;
    // Docker restarted it: the OOM kill still counts for ten minutes after its event.
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"oom_killed": false})),
    )
    .await;
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(states(&app, rule).await, ["firing"]);
    post(&app, &token, &payload(&at(Duration::zero()), &[])).await;
    wait_for_states(&app, rule, &["resolved"]).await;
}

#[tokio::test]
async fn an_oom_kill_older_than_ten_minutes_on_a_running_container_fires_nothing() {
    let app = evaluating_app().await;
    let rule = rule(&app, "oom", "container_oom_killed", &[]).await;
    let canary = crate::alert_evaluation::rule(&app, "canary", "container_unhealthy", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1300, json!({"oom_killed": false})),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(-1200, json!({"oom_killed": true})),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(-1100, json!({"oom_killed": false})),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(
            -1,
            json!({"oom_killed": false, "health_status": "unhealthy"}),
        ),
    )
    .await;
    wait_for_states(&app, canary, &["firing"]).await;
    assert!(states(&app, rule).await.is_empty());
}

#[tokio::test]
async fn a_full_disk_fires_metric_threshold_and_resolves_when_space_is_freed() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "disk",
        "metric_threshold",
        &[
            ("metric", "'host_disk_used_percent'"),
            ("operator", "'>'"),
            ("threshold", "90"),
        ],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;
    post(&app, &token, &disk_snapshot(-3, 50)).await;
    post(&app, &token, &disk_snapshot(-2, 95)).await;
    wait_for_states(&app, rule, &["firing"]).await;
    assert_eq!(alerts(&app, rule).await[0].2, Some(95.0));
    post(&app, &token, &disk_snapshot(-1, 80)).await;
    wait_for_states(&app, rule, &["resolved"]).await;
}

#[tokio::test]
async fn a_metric_rule_fires_at_once_when_the_samples_already_broke_it_for_its_whole_for_window() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "disk",
        "metric_threshold",
        &[
            ("metric", "'host_disk_used_percent'"),
            ("operator", "'>='"),
            ("threshold", "90"),
            ("for_seconds", "120"),
        ],
    )
    .await;
    let (_, broken) = app.host_with_token("broken-for-long").await;
    for seconds in [-200, -130, -60, -1] {
        post(&app, &broken, &disk_snapshot(seconds, 95)).await;
    }
    let (_, recent) = app.host_with_token("broken-just-now").await;
    post(&app, &recent, &disk_snapshot(-200, 50)).await;
    post(&app, &recent, &disk_snapshot(-1, 95)).await;
    wait_for_states(&app, rule, &["firing", "pending"]).await;
}

#[tokio::test]
async fn a_container_rate_over_the_threshold_fires_from_counter_deltas() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "chatty",
        "metric_threshold",
        &[
            ("metric", "'container_network_tx_bytes_per_second'"),
            ("operator", "'>'"),
            ("threshold", "1000"),
        ],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;
    let tx = |seconds: i64, bytes: i64| {
        let mut body = snapshot_with(seconds, json!({}));
        body["containers"][0]["metrics"]["network_tx_bytes"] = json!(bytes);
        body
    };
    post(&app, &token, &tx(-20, 0)).await;
    post(&app, &token, &tx(-10, 5_000)).await; // 500 B/s
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert!(states(&app, rule).await.is_empty());
    post(&app, &token, &tx(-1, 50_000)).await; // over 4,000 B/s
    wait_for_states(&app, rule, &["firing"]).await;
    let rate = alerts(&app, rule).await[0].2.unwrap();
    assert!((4000.0..=5000.0).contains(&rate), "{rate} B/s");
}

/// One metric a metric_threshold rule accepts, broken and then restored on a host of its own.
struct MetricCase {
    metric: &'static str,
    /// Where a snapshot carries the metric's reading (a JSON pointer into the body).
    field: &'static str,
    threshold: f64,
    /// The reading of three snapshots, 20 s ago, 10 s ago and once the alert fired: under the
    /// threshold, over it, under it again. Rates are counter totals (10,000 B/s between the
    /// first two, at most 1 B/s after).
    readings: [Value; 3],
    /// What the firing alert's value must lie within.
    fired: std::ops::RangeInclusive<f64>,
}

/// A rate metric read from the counter at `field`.
fn rate_case(metric: &'static str, field: &'static str) -> MetricCase {
    MetricCase {
        metric,
        field,
        threshold: 1000.0,
        readings: [json!(1_000_000), json!(1_100_000), json!(1_100_010)],
        fired: 9_999.0..=10_001.0,
    }
}

fn gauge_case(
    metric: &'static str,
    field: &'static str,
    threshold: f64,
    readings: [Value; 3],
    fired: f64,
) -> MetricCase {
    MetricCase {
        metric,
        field,
        threshold,
        readings,
        fired: fired - 0.01..=fired + 0.01,
    }
}

/// Every metric the rules accept (the defaults' snapshot carries the other readings: 8 GB of
/// memory and 100 GB of disk on the host, a 1 GB limit on the container).
fn metric_cases() -> Vec<MetricCase> {
    vec![
        gauge_case(
            "host_cpu_percent",
            "/host/metrics/cpu_percent",
            90.0,
            [json!(12.5), json!(97.5), json!(12.5)],
            97.5,
        ),
        gauge_case(
            "host_memory_percent",
            "/host/metrics/memory_used_mb",
            90.0,
            [json!(2048), json!(7782), json!(2048)],
            100.0 * 7782.0 / 8192.0,
        ),
        gauge_case(
            "host_disk_used_percent",
            "/host/metrics/disk_used_gb",
            90.0,
            [json!(40), json!(95), json!(40)],
            95.0,
        ),
        gauge_case(
            "host_load_average",
            "/host/metrics/load_average",
            4.0,
            [json!(0.42), json!(6.5), json!(0.42)],
            6.5,
        ),
        rate_case(
            "host_network_rx_bytes_per_second",
            "/host/metrics/network_rx_bytes",
        ),
        rate_case(
            "host_network_tx_bytes_per_second",
            "/host/metrics/network_tx_bytes",
        ),
        gauge_case(
            "container_cpu_percent",
            "/containers/0/metrics/cpu_percent",
            300.0,
            [json!(50.0), json!(350.25), json!(50.0)],
            350.25,
        ),
        gauge_case(
            "container_memory_percent",
            "/containers/0/metrics/memory_usage_mb",
            90.0,
            [json!(256), json!(1000), json!(256)],
            97.66, // rounded to 2 places, as the table's memory_percent does
        ),
        rate_case(
            "container_network_rx_bytes_per_second",
            "/containers/0/metrics/network_rx_bytes",
        ),
        rate_case(
            "container_network_tx_bytes_per_second",
            "/containers/0/metrics/network_tx_bytes",
        ),
        rate_case(
            "container_block_read_bytes_per_second",
            "/containers/0/metrics/block_read_bytes",
        ),
        rate_case(
            "container_block_write_bytes_per_second",
            "/containers/0/metrics/block_write_bytes",
        ),
    ]
}

/// A snapshot recorded at `recorded_at` whose reading at `field` is `reading`.
fn reading_snapshot(recorded_at: DateTime<Utc>, field: &str, reading: &Value) -> Value {
    let mut body = payload(&rfc3339(recorded_at), &[("c1", "running")]);
    *body
        .pointer_mut(field)
        .unwrap_or_else(|| panic!("the snapshot has {field}")) = reading.clone();
    body
}

/// One host per case with a rule `metric > threshold` scoped to it, `for_seconds` long:
/// `(rule ids, the hosts' tokens)` in the cases' order. A rule that read another metric's column
/// sees that column's unchanged reading, and does not fire or fires with the wrong value.
async fn scoped_metric_rules(
    app: &TestApp,
    cases: &[MetricCase],
    for_seconds: i32,
) -> (Vec<i64>, Vec<String>) {
    let mut rules = Vec::new();
    let mut tokens = Vec::new();
    for case in cases {
        let (host, token) = app.host_with_token(&case.metric.replace('_', "-")).await;
        rules.push(
            rule(
                app,
                case.metric,
                "metric_threshold",
                &[
                    ("metric", &format!("'{}'", case.metric)),
                    ("operator", "'>'"),
                    ("threshold", &case.threshold.to_string()),
                    ("for_seconds", &for_seconds.to_string()),
                    ("host_ids", &format!("ARRAY[{host}]::bigint[]")),
                ],
            )
            .await,
        );
        tokens.push(token);
    }
    (rules, tokens)
}

/// Waits until each rule's alerts are `expected` (`rules[i]` watching `cases[i]`'s metric);
/// a timeout names the metrics whose alerts are not.
async fn wait_for_each(app: &TestApp, cases: &[MetricCase], rules: &[i64], expected: &[&str]) {
    let started = Instant::now();
    loop {
        let mut behind = Vec::new();
        for (case, rule) in cases.iter().zip(rules) {
            let now = states(app, *rule).await;
            if now != expected {
                behind.push(format!("{}: {now:?}", case.metric));
            }
        }
        if behind.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "expected {expected:?} of every metric's rule; {behind:#?}"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// Each rule's one alert is about the case's subject (the container `c1` for container
/// metrics) and carries the reading that fired it.
async fn assert_each_fired_with_its_value(app: &TestApp, cases: &[MetricCase], rules: &[i64]) {
    for (case, rule) in cases.iter().zip(rules) {
        let [(_, container, value)] = &alerts(app, *rule).await[..] else {
            panic!("{}: one alert", case.metric);
        };
        let expected_container = case
            .metric
            .starts_with("container_")
            .then(|| "c1".to_owned());
        assert_eq!(container, &expected_container, "{}'s subject", case.metric);
        let value = value.unwrap_or_else(|| panic!("{} fired without a value", case.metric));
        assert!(
            case.fired.contains(&value),
            "{} fired at {value}, expected {:?}",
            case.metric,
            case.fired
        );
    }
}

#[tokio::test]
async fn every_metric_a_rule_accepts_fires_over_its_threshold_and_resolves_back_under_it() {
    use clap::ValueEnum;
    use nexus_telemetry::domain::alert_rule::Metric;
    let cases = metric_cases();
    let tested: Vec<&str> = cases.iter().map(|case| case.metric).collect();
    for metric in Metric::value_variants() {
        let name = serde_json::to_value(metric).unwrap();
        assert!(
            tested.contains(&name.as_str().unwrap()),
            "{name} has no case here"
        );
    }
    let app = evaluating_app().await;
    let (rules, tokens) = scoped_metric_rules(&app, &cases, 0).await;
    let now = Utc::now();
    for (case, token) in cases.iter().zip(&tokens) {
        for (seconds, reading) in [(-20, &case.readings[0]), (-10, &case.readings[1])] {
            let body = reading_snapshot(now + Duration::seconds(seconds), case.field, reading);
            post(&app, token, &body).await;
        }
    }
    wait_for_each(&app, &cases, &rules, &["firing"]).await;
    assert_each_fired_with_its_value(&app, &cases, &rules).await;
    for (case, token) in cases.iter().zip(&tokens) {
        post(
            &app,
            token,
            &reading_snapshot(Utc::now(), case.field, &case.readings[2]),
        )
        .await;
    }
    wait_for_each(&app, &cases, &rules, &["resolved"]).await;
}

/// Every metric's rule with a 30-minute `for`, which reads the 5-minute rollups (conditions.rs,
/// `Resolution`), fires from samples over its threshold for 40 minutes.
async fn every_metric_fires_from_the_5_minute_rollups_on(app: TestApp) {
    disable_default_rules(&app).await;
    let cases = metric_cases();
    let (rules, tokens) = scoped_metric_rules(&app, &cases, 1800).await;
    // 40 minutes over the threshold, two samples in every 5-minute bucket (150 s apart), so
    // each bucket has a rate: the counters grow 10,000 B/s throughout.
    let now = Utc::now();
    for (case, token) in cases.iter().zip(&tokens) {
        for step in 0..=16 {
            let elapsed = 150 * step;
            let reading = if case.metric.ends_with("_bytes_per_second") {
                json!(case.readings[0].as_i64().unwrap() + 10_000 * elapsed)
            } else {
                case.readings[1].clone()
            };
            let recorded_at = now + Duration::seconds(elapsed - 2401);
            post(
                &app,
                token,
                &reading_snapshot(recorded_at, case.field, &reading),
            )
            .await;
        }
    }
    app.refresh_rollups().await;
    wait_for_each(&app, &cases, &rules, &["firing"]).await;
    assert_each_fired_with_its_value(&app, &cases, &rules).await;
}

#[tokio::test]
async fn every_metric_a_rule_accepts_fires_from_the_5_minute_rollups_over_a_long_for_window() {
    every_metric_fires_from_the_5_minute_rollups_on(TestApp::spawn_with(&FAST).await).await;
}

#[tokio::test]
async fn every_metric_a_rule_accepts_fires_from_the_5_minute_rollups_on_the_apache_edition() {
    every_metric_fires_from_the_5_minute_rollups_on(
        TestApp::spawn_on_apache_edition_with(&FAST).await,
    )
    .await;
}

#[tokio::test]
async fn a_condition_held_for_the_rules_for_duration_goes_pending_then_fires() {
    let app = evaluating_app().await;
    let rule = rule(&app, "sick", "container_unhealthy", &[("for_seconds", "3")]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    let pending = wait_for_states(&app, rule, &["pending"]).await;
    let firing = wait_for_states(&app, rule, &["firing"]).await;
    assert!(
        pending + firing >= StdDuration::from_secs(2),
        "fired after {:?}",
        pending + firing
    );
    assert_eq!(alert_events(&app).await, ["alert_firing pending→firing"]);
}

#[tokio::test]
async fn a_pending_alert_whose_condition_clears_resolves_without_an_event() {
    let app = evaluating_app().await;
    let rule = rule(
        &app,
        "sick",
        "container_unhealthy",
        &[("for_seconds", "600")],
    )
    .await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-2, json!({"health_status": "unhealthy"})),
    )
    .await;
    wait_for_states(&app, rule, &["pending"]).await;
    post(&app, &token, &snapshot_with(-1, json!({}))).await;
    wait_for_states(&app, rule, &["resolved"]).await;
    assert!(alert_events(&app).await.is_empty());
}

#[tokio::test]
async fn a_rule_scoped_by_host_ids_or_labels_alerts_only_about_those_hosts() {
    let app = evaluating_app().await;
    let (web, web_token) = app.host_with_token("web-01").await;
    let (db, db_token) = app.host_with_token("db-01").await;
    app.db
        .execute(
            "UPDATE hosts SET labels = '{\"env\": \"prod\", \"role\": \"db\"}' WHERE id = $1",
            &[&db],
        )
        .await
        .unwrap();
    let by_id = rule(
        &app,
        "web only",
        "container_unhealthy",
        &[("host_ids", &format!("ARRAY[{web}]::bigint[]"))],
    )
    .await;
    let by_label = rule(
        &app,
        "prod only",
        "container_unhealthy",
        &[("host_labels", "'{\"env\": \"prod\"}'")],
    )
    .await;
    let both = rule(
        &app,
        "web in prod",
        "container_unhealthy",
        &[
            ("host_ids", &format!("ARRAY[{web}]::bigint[]")),
            ("host_labels", "'{\"env\": \"prod\"}'"),
        ],
    )
    .await;
    let everyone = rule(&app, "all", "container_unhealthy", &[]).await;
    let sick = snapshot_with(-1, json!({"health_status": "unhealthy"}));
    post(&app, &web_token, &sick).await;
    post(&app, &db_token, &sick).await;
    wait_for_states(&app, everyone, &["firing", "firing"]).await;
    let hosts_of = |rule: i64| {
        let db = &app.db;
        async move {
            db.query(
                "SELECT host_id FROM alerts WHERE rule_id = $1 ORDER BY host_id",
                &[&rule],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i64>(0))
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(hosts_of(by_id).await, [web]);
    assert_eq!(hosts_of(by_label).await, [db]);
    assert!(hosts_of(both).await.is_empty(), "both must match");
}

#[tokio::test]
async fn disabling_a_rule_or_archiving_a_host_resolves_their_open_alerts() {
    let app = evaluating_app().await;
    let rule_a = rule(&app, "sick a", "container_unhealthy", &[]).await;
    let rule_b = rule(&app, "sick b", "container_unhealthy", &[]).await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    wait_for_states(&app, rule_a, &["firing"]).await;
    wait_for_states(&app, rule_b, &["firing"]).await;
    app.db
        .execute(
            "UPDATE alert_rules SET enabled = false WHERE id = $1",
            &[&rule_a],
        )
        .await
        .unwrap();
    wait_for_states(&app, rule_a, &["resolved"]).await;
    assert_eq!(states(&app, rule_b).await, ["firing"]);
    app.db
        .execute(
            "UPDATE hosts SET status = 'archived', archived_at = now() WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();
    wait_for_states(&app, rule_b, &["resolved"]).await;
}

#[tokio::test]
async fn two_server_processes_evaluating_write_each_alert_and_event_once() {
    let app = evaluating_app().await;
    let rule = rule(&app, "down", "container_not_running", &[]).await;
    let others = [
        spawn_server(&app.database_url).await,
        spawn_server(&app.database_url).await,
    ];
    let (_, token) = app.host_with_token("web-01").await;
    // Several deaths and recoveries, each waking every process's evaluator at once.
    for round in 0..3 {
        let base = -30 + round * 6;
        post(&app, &token, &snapshot_with(base, json!({}))).await;
        wait_for_states(&app, rule, &vec!["resolved"; round as usize]).await;
        post(
            &app,
            &token,
            &snapshot_with(base + 1, json!({"state": "exited", "exit_code": 1})),
        )
        .await;
        let expected: Vec<&str> = (0..round).map(|_| "resolved").chain(["firing"]).collect();
        wait_for_states(&app, rule, &expected).await;
    }
    post(&app, &token, &snapshot_with(0, json!({}))).await;
    wait_for_states(&app, rule, &["resolved"; 3]).await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(
        alert_events(&app).await,
        ["alert_firing →firing", "alert_resolved firing→resolved"].repeat(3)
    );
    drop(others);
}

#[tokio::test]
async fn another_process_takes_the_evaluation_over_when_the_holder_stops() {
    let app = TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "0"]).await;
    disable_default_rules(&app).await;
    let rule = rule(&app, "sick", "container_unhealthy", &[]).await;
    let first = spawn_server(&app.database_url).await;
    let holder = wait_for_holder(&app, None).await;
    let second = spawn_server(&app.database_url).await;
    tokio::time::sleep(StdDuration::from_secs(1)).await;
    assert_eq!(
        wait_for_holder(&app, None).await,
        holder,
        "a held lease is not taken"
    );
    first.stop().await;
    let started = Instant::now();
    let taken_by = wait_for_holder(&app, Some(&holder)).await;
    assert_ne!(taken_by, holder);
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "taken over after {:?} with a 2 s lease",
        started.elapsed()
    );
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    wait_for_states(&app, rule, &["firing"]).await;
    drop(second);
}

#[tokio::test]
async fn a_holder_that_lost_its_lease_cannot_write_a_cycle() {
    let app = TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "0"]).await;
    disable_default_rules(&app).await;
    let rule = rule(&app, "sick", "container_unhealthy", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    let ttl = StdDuration::from_millis(500);
    let stalled = Evaluator::new(app.store.clone(), "stalled".into(), ttl);
    let successor = Evaluator::new(app.store.clone(), "successor".into(), ttl);
    assert!(matches!(stalled.renew().await, Ok(true)));
    assert_eq!(successor.cycle().await.unwrap(), Cycle::NotHolder);
    assert!(states(&app, rule).await.is_empty());
    // The stalled holder misses its renewal; the lease expires and is taken.
    tokio::time::sleep(ttl + StdDuration::from_millis(100)).await;
    let Cycle::Evaluated(report) = successor.cycle().await.unwrap() else {
        panic!("the successor takes an expired lease");
    };
    assert_eq!((report.findings, report.events, report.firing), (1, 1, 1));
    assert_eq!(stalled.cycle().await.unwrap(), Cycle::NotHolder);
    assert_eq!(states(&app, rule).await, ["firing"]);
    assert_eq!(alert_events(&app).await, ["alert_firing →firing"]);
}

#[tokio::test]
async fn the_metrics_page_reports_the_evaluation_time_and_the_firing_alerts() {
    let app = evaluating_app().await;
    let rule = rule(&app, "sick", "container_unhealthy", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    wait_for_states(&app, rule, &["firing"]).await;
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    let page = app.get_text("/metrics").await;
    assert!(
        page.contains("nexus_alert_evaluation_duration_seconds_count"),
        "{page}"
    );
    assert!(page.contains("nexus_alerts_firing"), "{page}");
}

/// A metric rule whose `for` reads the 5-minute rollups: samples breaking it for 40 minutes.
async fn a_long_for_window_reads_the_rollups_on(app: &TestApp) {
    disable_default_rules(app).await;
    let rule = rule(
        app,
        "disk",
        "metric_threshold",
        &[
            ("metric", "'host_disk_used_percent'"),
            ("operator", "'>'"),
            ("threshold", "90"),
            ("for_seconds", "1800"),
        ],
    )
    .await;
    // Newest first, so no cycle in between sees a shorter history than the test means.
    let (_, full) = app.host_with_token("full-for-long").await;
    for minutes in (0..=40).step_by(5) {
        post(app, &full, &disk_snapshot(-60 * minutes - 1, 95)).await;
    }
    let (_, dipped) = app.host_with_token("dipped-recently").await;
    for minutes in (0..=40).step_by(5) {
        let used = if minutes == 10 { 50 } else { 95 };
        post(app, &dipped, &disk_snapshot(-60 * minutes - 1, used)).await;
    }
    app.refresh_rollups().await;
    wait_for_states(app, rule, &["firing", "pending"]).await;
}

#[tokio::test]
async fn a_long_for_window_reads_the_rollups() {
    a_long_for_window_reads_the_rollups_on(&TestApp::spawn_with(&FAST).await).await;
}

#[tokio::test]
async fn a_long_for_window_reads_the_rollups_on_the_apache_edition() {
    a_long_for_window_reads_the_rollups_on(&TestApp::spawn_on_apache_edition_with(&FAST).await)
        .await;
}

#[tokio::test]
async fn a_rule_on_the_rollups_holds_only_where_every_sample_in_each_bucket_broke_it() {
    let app = evaluating_app().await;
    // `>` reads each bucket's minimum, `<` its maximum: a bucket breaks the rule only if all its
    // samples did. Per operator: the threshold, a breaking reading and one that is not.
    let field = "/host/metrics/load_average";
    let mut rules = Vec::new();
    for (word, operator, threshold, breaking, fine) in [
        ("over", ">", "4", 6.5, 0.25),
        ("under", "<", "1", 0.25, 6.5),
    ] {
        let (always, always_token) = app.host_with_token(&format!("always-{word}")).await;
        let (once_not, once_not_token) = app.host_with_token(&format!("once-not-{word}")).await;
        rules.push(
            rule(
                &app,
                word,
                "metric_threshold",
                &[
                    ("metric", "'host_load_average'"),
                    ("operator", &format!("'{operator}'")),
                    ("threshold", threshold),
                    ("for_seconds", "1800"),
                    (
                        "host_ids",
                        &format!("ARRAY[{always}, {once_not}]::bigint[]"),
                    ),
                ],
            )
            .await,
        );
        // Two samples in every 5-minute bucket for 40 minutes; one of them, 10 minutes ago,
        // does not break the rule on the second host.
        let now = Utc::now();
        for step in 0..=16 {
            let recorded_at = now - Duration::seconds(150 * step + 1);
            let body = reading_snapshot(recorded_at, field, &json!(breaking));
            post(&app, &always_token, &body).await;
            let reading = if step == 4 { fine } else { breaking };
            let body = reading_snapshot(recorded_at, field, &json!(reading));
            post(&app, &once_not_token, &body).await;
        }
    }
    app.refresh_rollups().await;
    let expected = [
        ("always-over", "firing"),
        ("always-under", "firing"),
        ("once-not-over", "pending"),
        ("once-not-under", "pending"),
    ]
    .map(|(host, state)| (host.to_owned(), state.to_owned()));
    let started = Instant::now();
    loop {
        let now: Vec<(String, String)> = app
            .db
            .query(
                "SELECT h.name, a.state FROM alerts a JOIN hosts h ON h.id = a.host_id
                 WHERE a.rule_id = ANY ($1) ORDER BY h.name",
                &[&rules],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        if now == expected {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "alerts by host {now:?}, expected {expected:?} (the reading 10 minutes ago that did \
             not break the rule restarts the once-not hosts' windows)"
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// A server process of its own on `database_url`, evaluating fast, that can be stopped.
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops it as a shutdown does: its background tasks end with it.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        (&mut self.done).await.expect("the server stops");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.done.abort();
    }
}

async fn spawn_server(database_url: &str) -> Server {
    let mut flags = vec!["--no-migrate"];
    flags.extend(FAST);
    let args = serve_args(database_url, &flags);
    let app = Application::build(&args).await.expect("the app builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        app.run(async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    Server {
        stop: Some(stop),
        done,
    }
}

/// Waits until the evaluator's lease is held by someone other than `not`; the holder.
async fn wait_for_holder(app: &TestApp, not: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        let holder: Option<String> = app
            .db
            .query_opt(
                "SELECT holder FROM leases WHERE name = 'alert_evaluator' AND expires_at > now()",
                &[],
            )
            .await
            .unwrap()
            .map(|row| row.get(0));
        if let Some(holder) = holder.filter(|holder| Some(holder.as_str()) != not) {
            return holder;
        }
        assert!(started.elapsed() < PATIENCE, "nobody took the lease");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn new_events_wake_the_evaluator_long_before_its_interval() {
    let app = TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "60"]).await;
    disable_default_rules(&app).await;
    let rule = rule(&app, "down", "container_not_running", &[]).await;
    let (_, token) = app.host_with_token("web-01").await;
    post(&app, &token, &snapshot_with(-2, json!({}))).await;
    // The first cycle has run (the lease is held) and the creation's wake-up has passed.
    wait_for_holder(&app, None).await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"state": "exited", "exit_code": 1})),
    )
    .await;
    let took = wait_for_states(&app, rule, &["firing"]).await;
    assert!(
        took < StdDuration::from_secs(5),
        "fired {took:?} after the death, with a 60 s interval"
    );
}

#[tokio::test]
async fn an_alerts_fingerprint_is_the_sha256_of_its_rule_host_and_container() {
    use sha2::{Digest, Sha256};
    let app = evaluating_app().await;
    let rule = rule(&app, "sick", "container_unhealthy", &[]).await;
    let offline = crate::alert_evaluation::rule(&app, "offline", "host_offline", &[]).await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &snapshot_with(-1, json!({"health_status": "unhealthy"})),
    )
    .await;
    app.db
        .execute(
            "UPDATE hosts SET status = 'offline' WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();
    wait_for_states(&app, rule, &["firing"]).await;
    wait_for_states(&app, offline, &["firing"]).await;
    for (rule, container) in [(rule, "c1"), (offline, "")] {
        let stored: String = app
            .db
            .query_one(
                "SELECT fingerprint FROM alerts WHERE rule_id = $1",
                &[&rule],
            )
            .await
            .unwrap()
            .get(0);
        let expected = hex::encode(Sha256::digest(format!("{rule}/{host}/{container}")));
        assert_eq!(stored, expected, "rule {rule}");
    }
}
