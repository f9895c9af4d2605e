//! The data's lifecycle on both TimescaleDB editions: rollups and counter rates, compression,
//! policies and retention.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;

use crate::fleet;
use crate::helpers::{ROLLUPS, TestApp, at, payload, rfc3339};

/// Samples every 30 s for one host and one container ([`fleet`]'s rows: counters grow and reset
/// to zero every 97 (host) and 61 (container) samples, as on a reboot or restart; values are
/// deterministic, so two databases seeded alike hold the same rows). Returns the container's
/// row id.
async fn seed(app: &TestApp, host: i64, start: DateTime<Utc>, samples: i64) -> i64 {
    fleet::insert_host_samples(app, host, 0, start, samples).await;
    let container = fleet::insert_container(app, host, "c1", start).await;
    fleet::insert_container_samples(app, container, host, 0, start, samples).await;
    container
}

/// The rate of `counter` per `bucket`, computed straight from raw rows with window functions:
/// growth between consecutive samples inside each 5-minute window (a drop is a reset to zero),
/// over the time those samples span.
async fn expected_rates(
    app: &TestApp,
    table: &str,
    key: &str,
    id: i64,
    counter: &str,
    bucket: &str,
) -> Vec<(DateTime<Utc>, Option<f64>)> {
    let sql = format!(
        "WITH pairs AS (
             SELECT time_bucket('5 minutes', recorded_at) AS w, recorded_at, {counter} AS v,
                    lag({counter}) OVER (PARTITION BY time_bucket('5 minutes', recorded_at)
                                         ORDER BY recorded_at) AS p
             FROM {table} WHERE {key} = $1
         ), windows AS (
             SELECT w, sum(CASE WHEN p IS NULL THEN NULL WHEN v >= p THEN v - p ELSE v END) AS growth,
                    extract(epoch FROM max(recorded_at) - min(recorded_at)) AS seconds
             FROM pairs GROUP BY w
         )
         SELECT time_bucket('{bucket}'::interval, w) AS b,
                (sum(growth) / nullif(sum(seconds), 0))::float8
         FROM windows GROUP BY b ORDER BY b"
    );
    app.db
        .query(&sql, &[&id])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    within(a, b, 1e-9)
}

fn within(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs()).max(1.0)
}

/// Gauge aggregates in the rollups are `real`: 7 significant digits.
fn close_as_real(a: f64, b: f64) -> bool {
    within(a, b, 1e-6)
}

/// Asserts two JSON documents are equal, numbers to within rounding.
fn assert_same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => assert!(
            close(x.as_f64().unwrap(), y.as_f64().unwrap()),
            "{path}: {x} != {y}"
        ),
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_same(x, y, &format!("{path}.{i}"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}: keys"
            );
            for (key, x) in x {
                assert_same(x, &y[key], &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

async fn metrics(
    app: &TestApp,
    admin: &str,
    path: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: &str,
) -> Value {
    let answer = app
        .admin(
            reqwest::Method::GET,
            &format!(
                "{path}/metrics?since={}&until={}&bucket={bucket}",
                rfc3339(from).replace('+', "%2B"),
                rfc3339(to).replace('+', "%2B")
            ),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{path} {bucket}: {}", answer.body);
    answer.body
}

fn rates_of(series: &Value, field: &str) -> Vec<(DateTime<Utc>, Option<f64>)> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["bucket"].as_str().unwrap().parse().unwrap(),
                p[field].as_f64(),
            )
        })
        .collect()
}

fn assert_rates(
    actual: &[(DateTime<Utc>, Option<f64>)],
    expected: &[(DateTime<Utc>, Option<f64>)],
    what: &str,
) {
    assert_eq!(actual.len(), expected.len(), "{what}: buckets");
    for ((at, a), (at_expected, e)) in actual.iter().zip(expected) {
        assert_eq!(at, at_expected, "{what}");
        match (a, e) {
            (Some(a), Some(e)) => assert!(close(*a, *e), "{what} at {at}: {a} != {e}"),
            _ => assert_eq!(a, e, "{what} at {at}"),
        }
    }
}

/// A server with `extra` flags on a community-edition database, or `None` (the test is skipped,
/// saying what it needs) where the database runs the Apache edition.
async fn on_community_edition(extra: &[&str], needs: &str) -> Option<TestApp> {
    let app = TestApp::spawn_with(extra).await;
    if app.is_community_edition().await {
        Some(app)
    } else {
        eprintln!("skipped: {needs} only on the community edition");
        None
    }
}

/// Three hours of samples starting on an hour, a day back (older than the rollups' real-time
/// edge once materialized, inside the raw retention).
fn three_hours_back() -> (DateTime<Utc>, DateTime<Utc>) {
    let start = (Utc::now() - Duration::days(1))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    (start, start + Duration::hours(3))
}

async fn check_rates_against_raw(
    app: &TestApp,
    admin: &str,
    host: i64,
    container: i64,
    what: &str,
) {
    let (from, to) = three_hours_back();
    for bucket in ["5m", "15m", "1h"] {
        let interval = match bucket {
            "5m" => "5 minutes",
            "15m" => "15 minutes",
            _ => "1 hour",
        };
        let host_series = metrics(app, admin, &format!("/hosts/{host}"), from, to, bucket).await;
        for counter in ["network_rx_bytes", "network_tx_bytes"] {
            let expected = expected_rates(
                app,
                "host_metric_snapshots",
                "host_id",
                host,
                counter,
                interval,
            )
            .await;
            assert_rates(
                &rates_of(&host_series, &format!("{counter}_per_second")),
                &expected,
                &format!("{what}: host {counter} per {bucket}"),
            );
        }
        let container_series = metrics(
            app,
            admin,
            &format!("/containers/{container}"),
            from,
            to,
            bucket,
        )
        .await;
        for counter in [
            "network_rx_bytes",
            "network_tx_bytes",
            "block_read_bytes",
            "block_write_bytes",
        ] {
            let expected = expected_rates(
                app,
                "container_metric_snapshots",
                "container_id",
                container,
                counter,
                interval,
            )
            .await;
            assert_rates(
                &rates_of(&container_series, &format!("{counter}_per_second")),
                &expected,
                &format!("{what}: container {counter} per {bucket}"),
            );
        }
    }
}

#[tokio::test]
async fn counter_rates_match_raw_rows_across_resets_before_and_after_materialization() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    let (from, _) = three_hours_back();
    let container = seed(&app, host, from, 360).await;

    check_rates_against_raw(&app, &admin, host, container, "real-time").await;
    if app.is_community_edition().await {
        app.refresh_rollups().await;
        let materialized: i64 = app.count("SELECT count(*) FROM host_metrics_1h").await;
        assert_eq!(materialized, 3);
        check_rates_against_raw(&app, &admin, host, container, "materialized").await;
    }
}

#[tokio::test]
async fn gauges_per_bucket_carry_the_raw_rows_average_minimum_and_maximum() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    let (from, to) = three_hours_back();
    seed(&app, host, from, 360).await;
    app.refresh_rollups().await;

    let series = metrics(&app, &admin, &format!("/hosts/{host}"), from, to, "1h").await;
    let expected = app
        .db
        .query(
            "SELECT avg(cpu_percent)::float8, min(cpu_percent)::float8, max(cpu_percent)::float8,
                    count(*)
             FROM host_metric_snapshots WHERE host_id = $1
             GROUP BY time_bucket('1 hour', recorded_at) ORDER BY 1",
            &[&host],
        )
        .await
        .unwrap();
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let mut by_avg: Vec<&Value> = points.iter().collect();
    by_avg.sort_by(|a, b| {
        a["cpu_percent"]["avg"]
            .as_f64()
            .partial_cmp(&b["cpu_percent"]["avg"].as_f64())
            .unwrap()
    });
    for (point, row) in by_avg.iter().zip(&expected) {
        let stat = &point["cpu_percent"];
        assert!(
            close_as_real(stat["avg"].as_f64().unwrap(), row.get(0)),
            "{point}"
        );
        assert!(
            close_as_real(stat["min"].as_f64().unwrap(), row.get(1)),
            "{point}"
        );
        assert!(
            close_as_real(stat["max"].as_f64().unwrap(), row.get(2)),
            "{point}"
        );
        assert_eq!(point["samples"].as_i64().unwrap(), row.get::<_, i64>(3));
    }
}

#[tokio::test]
async fn the_read_api_answers_the_same_on_both_editions() {
    let community = TestApp::spawn().await;
    let apache = TestApp::spawn_on_apache_edition().await;
    assert!(
        !apache.is_community_edition().await,
        "the Apache cluster runs the Apache edition"
    );
    let (from, to) = three_hours_back();
    let mut answers = Vec::new();
    for app in [&community, &apache] {
        let admin = app.admin_token().await;
        let host = app.create_host("web-01").await;
        let container = seed(app, host, from, 360).await;
        app.refresh_rollups().await;
        let mut answer = Vec::new();
        for bucket in ["1m", "5m", "15m", "1h", "6h", "1d"] {
            answer.push(metrics(app, &admin, &format!("/hosts/{host}"), from, to, bucket).await);
            answer.push(
                metrics(
                    app,
                    &admin,
                    &format!("/containers/{container}"),
                    from,
                    to,
                    bucket,
                )
                .await,
            );
        }
        answers.push(Value::Array(answer));
    }
    assert_same(&answers[0], &answers[1], "community vs apache");
}

#[tokio::test]
async fn a_range_older_than_the_raw_retention_is_answered_from_rollups() {
    // The server's own retention policy must not drop the seeded days before the rollups
    // have them; the test drops them itself once they do.
    let Some(app) =
        on_community_edition(&["--retention-days", "400"], "rollups outlive raw data").await
    else {
        return;
    };
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    let start = (Utc::now() - Duration::days(40))
        .duration_trunc(Duration::days(1))
        .unwrap();
    seed(&app, host, start, 240).await;
    app.refresh_rollups().await;

    let dropped = app
        .store
        .drop_old_chunks(StdDuration::from_secs(30 * 86400))
        .await
        .unwrap();
    assert!(dropped >= 2, "the old raw chunks are gone ({dropped})");
    assert_eq!(
        app.count("SELECT count(*) FROM host_metric_snapshots")
            .await,
        0
    );

    let series = metrics(
        &app,
        &admin,
        &format!("/hosts/{host}"),
        start,
        start + Duration::days(1),
        "1h",
    )
    .await;
    let points = series["points"].as_array().unwrap();
    assert_eq!(
        points.len(),
        2,
        "two hours of data, from the 1 h rollup: {series}"
    );
    assert_eq!(points[0]["samples"], 120);
    assert!(points[0]["network_rx_bytes_per_second"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn late_replayed_and_repeated_snapshots_are_stored_once_inside_compressed_chunks() {
    let Some(app) = on_community_edition(&[], "compression exists").await else {
        return;
    };
    app.store
        .configure_lifecycle(&crate::helpers::serve_args("postgres://unused/x", &[]).lifecycle())
        .await
        .unwrap();
    let (_, token) = app.host_with_token("web-01").await;
    let containers = [("a1", "running"), ("b2", "running")];
    let first = at(Duration::minutes(-50));
    assert_eq!(
        app.post_telemetry(&token, &payload(&first, &containers))
            .await
            .status(),
        204
    );

    let compressed: i64 = app
        .count(
            "SELECT count(compress_chunk(c)) FROM (
                 SELECT show_chunks('host_metric_snapshots') AS c
                 UNION ALL SELECT show_chunks('container_metric_snapshots')) chunks",
        )
        .await;
    assert!(compressed >= 2);

    // A late snapshot in the compressed range, an agent's replayed buffer, and a retry.
    let mut posts = vec![at(Duration::minutes(-55))];
    posts.extend((1..=4).map(|i| at(Duration::minutes(-50 + i))));
    posts.push(first.clone());
    for recorded_at in &posts {
        let response = app
            .post_telemetry(&token, &payload(recorded_at, &containers))
            .await;
        assert_eq!(response.status(), 204, "{recorded_at}");
    }
    assert_eq!(
        app.written().await,
        (6, 2, 12),
        "one row per host and container instant"
    );
    let duplicates = app
        .count(
            "SELECT count(*) FROM (SELECT 1 FROM container_metric_snapshots
             GROUP BY container_id, recorded_at HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(duplicates, 0);
}

#[tokio::test]
async fn compressed_container_rollups_find_a_hosts_rows_by_a_host_id_range_not_bloom_filters() {
    let Some(app) = on_community_edition(&[], "compression exists").await else {
        return;
    };
    let (start, _) = three_hours_back();
    let mut containers = Vec::new();
    for name in ["web-01", "web-02"] {
        let host = app.create_host(name).await;
        containers.push((host, seed(&app, host, start, 120).await));
    }
    app.refresh_rollups().await;
    for view in ["container_metrics_5m", "container_metrics_1h"] {
        let compressed = app
            .count(&format!(
                "SELECT count(compress_chunk(c)) FROM show_chunks('{view}') c"
            ))
            .await;
        assert!(compressed >= 1, "{view} has a chunk to compress");
        let host_id_indexes: Vec<String> = app
            .db
            .query(
                "SELECT DISTINCT entry->>'type' || ' ' || (entry->'column')::text
                 FROM timescaledb_information.chunk_compression_settings s,
                      timescaledb_information.continuous_aggregates ca,
                      jsonb_array_elements(s.index) entry
                 WHERE ca.view_name = $1
                   AND s.hypertable = format('%I.%I', ca.materialization_hypertable_schema,
                                             ca.materialization_hypertable_name)::regclass
                   AND (entry->'column')::text LIKE '%host_id%'",
                &[&view],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            host_id_indexes,
            [r#"minmax "host_id""#],
            "{view}'s compressed batches carry host_id's range and no bloom filter"
        );
        for (host, container) in &containers {
            let rows = app
                .db
                .query(
                    &format!("SELECT DISTINCT container_id FROM {view} WHERE host_id = $1"),
                    &[host],
                )
                .await
                .unwrap();
            let found: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
            assert_eq!(found, [*container], "{view}, host {host}");
        }
    }
}

/// Rows of the compressed batches `plan` (EXPLAIN ANALYZE, JSON) read from compressed chunks.
fn compressed_batches_read(plan: &Value) -> u64 {
    let own = match plan["Relation Name"].as_str() {
        Some(name) if name.ends_with("_compressed") => plan["Actual Rows"].as_u64().unwrap(),
        _ => 0,
    };
    let children = plan["Plans"].as_array().map_or(0, |plans| {
        plans.iter().map(compressed_batches_read).sum::<u64>()
    });
    own + children
}

#[tokio::test]
async fn a_hosts_compressed_container_rows_are_read_without_decompressing_other_hosts() {
    let Some(app) = on_community_edition(&[], "compression exists").await else {
        return;
    };
    let (start, _) = three_hours_back();
    let mut hosts = Vec::new();
    for name in ["web-01", "web-02", "web-03"] {
        let host = app.create_host(name).await;
        seed(&app, host, start, 120).await;
        hosts.push(host);
    }
    let compressed = app
        .count("SELECT count(compress_chunk(c)) FROM show_chunks('container_metric_snapshots') c")
        .await;
    assert!(compressed >= 1);
    let host = hosts[1];
    // One batch per container and chunk: the host's one container in each chunk it reached.
    let own_batches = app
        .count(&format!(
            "SELECT count(DISTINCT tableoid) FROM container_metric_snapshots WHERE host_id = {host}"
        ))
        .await;
    let plan: Value = app
        .db
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, FORMAT JSON)
                 SELECT count(*), avg(cpu_percent) FROM container_metric_snapshots WHERE host_id = {host}"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        compressed_batches_read(&plan[0]["Plan"]) as i64,
        own_batches,
        "only host {host}'s batches are decompressed: {plan:#}"
    );
}

/// Every row of `relation` matching `condition`, as text, sorted.
async fn rows_as_text(app: &TestApp, relation: &str, condition: &str) -> Vec<String> {
    app.db
        .query(
            &format!("SELECT t::text FROM {relation} t WHERE {condition} ORDER BY 1"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{relation}: {e}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn materialized_rollups_hold_the_rollups_rows_up_to_the_last_refresh() {
    for app in [
        TestApp::spawn().await,
        TestApp::spawn_on_apache_edition().await,
    ] {
        let community = app.is_community_edition().await;
        let host = app.create_host("web-01").await;
        let (start, end) = three_hours_back();
        let container = seed(&app, host, start, 360).await;
        app.refresh_rollups().await;
        // Samples of a later hour arrive after the refresh.
        let later = end + Duration::hours(1);
        fleet::insert_host_samples(&app, host, 1, later, 60).await;
        fleet::insert_container_samples(&app, container, host, 1, later, 60).await;

        let before_later = format!("bucket < '{}'", rfc3339(later));
        for rollup in ROLLUPS.iter().filter(|rollup| rollup.contains("_metrics_")) {
            let materialized = format!("{rollup}_materialized");
            let refreshed = rows_as_text(&app, rollup, &before_later).await;
            assert_eq!(refreshed.len(), if rollup.ends_with("5m") { 36 } else { 3 });
            assert_eq!(
                rows_as_text(&app, &materialized, &before_later).await,
                refreshed,
                "{materialized}: the refreshed rows, as the rollup has them"
            );
            let newest = format!("bucket >= '{}'", rfc3339(later));
            let current = rows_as_text(&app, rollup, &newest).await;
            assert!(!current.is_empty(), "{rollup} has the newest buckets");
            let materialized_newest = rows_as_text(&app, &materialized, &newest).await;
            if community {
                assert!(
                    materialized_newest.is_empty(),
                    "{materialized}: nothing after the last refresh"
                );
            } else {
                assert_eq!(
                    materialized_newest, current,
                    "{materialized}: the same view on the Apache edition"
                );
            }
        }
    }
}

#[tokio::test]
async fn fleet_aggregates_over_a_materialized_rollup_are_vectorised() {
    let Some(app) = on_community_edition(&[], "continuous aggregates exist").await else {
        return;
    };
    // Two stretches 12 days apart, so two chunks of the hourly rollup (10 days each):
    // TimescaleDB vectorises the aggregate per chunk.
    let (start, _) = three_hours_back();
    let earlier = start - Duration::days(12);
    for name in ["web-01", "web-02"] {
        let host = app.create_host(name).await;
        let container = seed(&app, host, start, 360).await;
        fleet::insert_host_samples(&app, host, 1, earlier, 360).await;
        fleet::insert_container_samples(&app, container, host, 1, earlier, 360).await;
    }
    app.refresh_rollups().await;
    let compressed = app
        .count("SELECT count(compress_chunk(c)) FROM show_chunks('container_metrics_1h') c")
        .await;
    assert_eq!(compressed, 2);
    let plan: Value = app
        .db
        .query_one(
            "EXPLAIN (FORMAT JSON)
             SELECT sum(memory_usage_mb_avg * samples) / sum(samples), max(cpu_percent_max)
             FROM container_metrics_1h_materialized",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        plan.to_string().contains("VectorAgg"),
        "the compressed materialized rows are aggregated vectorised: {plan:#}"
    );
}

#[tokio::test]
async fn the_community_edition_runs_compression_refresh_and_retention_as_policies() {
    let Some(app) = on_community_edition(&[], "policies exist").await else {
        return;
    };
    let lifecycle = crate::helpers::serve_args("postgres://unused/x", &[]).lifecycle();
    for _ in 0..2 {
        // Idempotent: a restart (or a second server) replaces the policies, never adds more.
        app.store.configure_lifecycle(&lifecycle).await.unwrap();
    }
    let jobs = app
        .db
        .query(
            "SELECT proc_name, hypertable_name::text, config::text FROM timescaledb_information.jobs
             WHERE proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let count = |proc: &str| {
        jobs.iter()
            .filter(|j| j.get::<_, String>(0) == proc)
            .count()
    };
    assert_eq!(
        count("policy_compression"),
        9,
        "2 raw tables, 6 rollups and the events"
    );
    assert_eq!(count("policy_retention"), 9);
    assert_eq!(count("policy_refresh_continuous_aggregate"), 6);
    for (relation, days) in [
        ("container_metric_snapshots", "30 days"),
        ("host_metrics_5m", "90 days"),
        ("container_metrics_1h", "730 days"),
        ("container_lifecycle_5m", "90 days"),
        ("container_lifecycle_1h", "730 days"),
        ("events", "365 days"),
    ] {
        let drop_after: String = app
            .db
            .query_one(
                "SELECT config->>'drop_after' FROM timescaledb_information.jobs
                 WHERE proc_name = 'policy_retention' AND hypertable_name = $1",
                &[&relation],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(drop_after, days, "{relation}");
    }
    let raw: Vec<String> = app
        .db
        .query(
            "SELECT config->>'compress_after' FROM timescaledb_information.jobs
             WHERE proc_name = 'policy_compression' AND hypertable_name LIKE '%metric_snapshots'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        raw,
        ["02:00:00", "02:00:00"],
        "compressed two hours after a chunk closes"
    );
    let interval: String = app
        .db
        .query_one(
            "SELECT time_interval::text FROM timescaledb_information.dimensions
             WHERE hypertable_name = 'container_metric_snapshots'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(interval, "08:00:00");

    // Rollup chunks: compressed an hour after the refresh window (late data + end offset + an
    // hour) has passed them; 5-minute chunks of 3 days, so little of them waits uncompressed.
    for (view, compress_after, chunk) in [
        ("host_metrics_5m", "03:05:00", "3 days"),
        ("container_metrics_5m", "03:05:00", "3 days"),
        ("host_metrics_1h", "04:00:00", "10 days"),
        ("container_metrics_1h", "04:00:00", "10 days"),
    ] {
        let row = app
            .db
            .query_one(
                "SELECT j.config->>'compress_after', d.time_interval::text
                 FROM timescaledb_information.jobs j
                 JOIN timescaledb_information.continuous_aggregates ca ON ca.view_name = j.hypertable_name
                 JOIN timescaledb_information.dimensions d
                   ON d.hypertable_name = ca.materialization_hypertable_name
                 WHERE j.proc_name = 'policy_compression' AND j.hypertable_name = $1",
                &[&view],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1)),
            (compress_after.to_owned(), chunk.to_owned()),
            "{view}"
        );
    }
}

#[tokio::test]
async fn the_apache_edition_gets_chunk_sizing_only_and_rollups_as_views() {
    let app = TestApp::spawn_on_apache_edition().await;
    let lifecycle = crate::helpers::serve_args("postgres://unused/x", &[]).lifecycle();
    let edition = app.store.configure_lifecycle(&lifecycle).await.unwrap();
    assert_eq!(edition, nexus_telemetry::store::lifecycle::Edition::Apache);
    let views = app
        .count(
            "SELECT count(*) FROM pg_views WHERE viewname IN
             ('host_metrics_5m', 'host_metrics_1h', 'container_metrics_5m', 'container_metrics_1h')",
        )
        .await;
    assert_eq!(views, 4);
    let (_, token) = app.host_with_token("web-01").await;
    let response = app
        .post_telemetry(
            &token,
            &payload(&at(Duration::zero()), &[("a1", "running")]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.count("SELECT sum(samples)::int8 FROM container_metrics_5m")
            .await,
        1
    );
}
