//! Every query in docs/analytics.md runs, as the analyst role, against a seeded database, on
//! both TimescaleDB editions.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::fleet::{self, assert_filled, query_rows};
use crate::helpers::{TestApp, payload, rfc3339};

const DOC: &str = include_str!("../../docs/analytics.md");

fn queries() -> Vec<&'static str> {
    DOC.split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect()
}

/// What the seed's API hosts report of their container `a1` in each of their three snapshots
/// (20 and 10 minutes before the seed's instant, and at it).
struct A1 {
    host: &'static str,
    restart_count: [i64; 3],
    oom_killed: [bool; 3],
    health: [&'static str; 3],
}

/// web-01's `a1` restarts once, then twice at once (two `restarted` events, three restarts), is
/// OOM-killed (exit code 137) and unhealthy for exactly the ten minutes between two snapshots;
/// db-01's restarts once and stays healthy.
const A1_HISTORY: [A1; 2] = [
    A1 {
        host: "web-01",
        restart_count: [0, 1, 3],
        oom_killed: [false, true, false],
        health: ["healthy", "unhealthy", "healthy"],
    },
    A1 {
        host: "db-01",
        restart_count: [0, 1, 1],
        oom_killed: [false, false, false],
        health: ["healthy", "healthy", "healthy"],
    },
];

/// Hours of history for a small fleet, plus two hosts that posted a few snapshots through the
/// API ([`A1_HISTORY`]), one of them offline since. Returns the instant of the last snapshots.
async fn seed(app: &TestApp) -> DateTime<Utc> {
    fleet::seed(app, &["cache-01", "worker-01"]).await;
    // One instant for every snapshot, at the table's precision, so the periods between them
    // are exact.
    let now = Utc::now().trunc_subsecs(6);
    for a1 in &A1_HISTORY {
        let host = a1.host;
        let (id, token) = app.host_with_token(host).await;
        for (n, minutes) in [20, 10, 0].into_iter().enumerate() {
            let mut body = payload(
                &rfc3339(now - Duration::minutes(minutes)),
                &[("a1", "running"), ("b2", "exited")],
            );
            body["host"]["metrics"]["network_rx_bytes"] =
                serde_json::json!(1_000_000 - minutes * 1000);
            let container = &mut body["containers"][0];
            container["restart_count"] = serde_json::json!(a1.restart_count[n]);
            container["oom_killed"] = serde_json::json!(a1.oom_killed[n]);
            container["exit_code"] = serde_json::json!(a1.oom_killed[n].then_some(137));
            container["health_status"] = serde_json::json!(a1.health[n]);
            let response = app.post_telemetry(&token, &body).await;
            assert_eq!(response.status(), 204);
        }
        // One alert fired and resolved, one firing (the evaluator's work, written by hand).
        app.db
            .execute(
                "INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                                     pending_since, started_at, resolved_at)
                 SELECT r.id, $1::bigint, 'a1', md5(r.id || '/' || $1::bigint || step.state), step.state, 2,
                        now() - interval '2 days', now() - interval '2 days',
                        CASE WHEN step.state = 'resolved' THEN now() - interval '1 day' END
                 FROM alert_rules r CROSS JOIN (VALUES ('resolved'), ('firing')) AS step (state)
                 WHERE r.name = 'container restarting'",
                &[&id],
            )
            .await
            .unwrap();
        if host == "db-01" {
            app.db
                .execute("UPDATE hosts SET status = 'offline' WHERE id = $1", &[&id])
                .await
                .unwrap();
            app.db
                .execute(
                    "INSERT INTO host_events (host_id, kind) VALUES ($1, 'offline')",
                    &[&id],
                )
                .await
                .unwrap();
        }
    }
    now
}

async fn run_every_documented_query(app: &TestApp) {
    let seeded_at = seed(app).await;
    app.refresh_rollups().await;
    app.db
        .batch_execute("SET ROLE nexus_analyst")
        .await
        .unwrap();
    let queries = queries();
    assert!(queries.len() >= 10, "the document has its example queries");
    for (n, query) in queries.into_iter().enumerate() {
        let what = format!("docs/analytics.md query {}", n + 1);
        let rows = query_rows(app, query, &what).await;
        assert_filled(&rows, &what, query);
    }
    the_raw_rate_query_gives_the_hourly_rollups_rates(app).await;
    the_event_queries_count_what_was_seeded(app, seeded_at).await;
}

/// The one documented query that contains `marker`.
fn documented_query(marker: &str) -> &'static str {
    let found: Vec<_> = queries()
        .into_iter()
        .filter(|query| query.contains(marker))
        .collect();
    assert_eq!(found.len(), 1, "one documented query has {marker:?}");
    found[0]
}

/// The three event queries ("restarts per container this week", "containers OOM-killed in
/// the last 24 hours", "time spent unhealthy per container") give exactly the values of
/// [`A1_HISTORY`], whose last snapshots were at `seeded_at`.
async fn the_event_queries_count_what_was_seeded(app: &TestApp, seeded_at: DateTime<Utc>) {
    let rows = |query: &'static str, what: &'static str| async move {
        query_rows(app, query, what)
            .await
            .into_iter()
            .map(Value::Object)
            .collect::<Vec<_>>()
    };
    let restarts = rows(
        documented_query("e.kind = 'restarted'"),
        "restarts per container this week",
    )
    .await;
    assert_eq!(
        restarts,
        [
            json!({"host": "web-01", "container": "app-a1", "restart_events": 2, "restarts": 3}),
            json!({"host": "db-01", "container": "app-a1", "restart_events": 1, "restarts": 1}),
        ],
        "a rise of two counts two"
    );

    let oom_kills = rows(
        documented_query("e.kind = 'oom_killed'"),
        "containers OOM-killed in the last 24 hours",
    )
    .await;
    assert_eq!(oom_kills.len(), 1, "only web-01's a1: {oom_kills:?}");
    let oom = &oom_kills[0];
    assert_eq!(
        (
            &oom["host"],
            &oom["container"],
            &oom["container_id"],
            &oom["oom_kills"],
            &oom["last_exit_code"]
        ),
        (
            &json!("web-01"),
            &json!("app-a1"),
            &json!("a1"),
            &json!(1),
            &json!(137)
        )
    );
    let last_at: DateTime<Utc> = oom["last_oom_kill_at"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .unwrap_or_else(|| panic!("a timestamp: {oom}"))
        .into();
    assert_eq!(last_at, seeded_at - Duration::minutes(10));

    let unhealthy = rows(
        documented_query("e.kind = 'health_changed'"),
        "time spent unhealthy per container",
    )
    .await;
    assert_eq!(
        unhealthy,
        [json!({"host": "web-01", "container": "app-a1", "unhealthy_for": "00:10:00"})],
        "unhealthy from the snapshot 10 minutes before the last to the last"
    );
}

/// The document says its windowed rate over raw rows equals `host_metrics_1h`'s rates.
async fn the_raw_rate_query_gives_the_hourly_rollups_rates(app: &TestApp) {
    let raw = queries()
        .into_iter()
        .find(|query| {
            query.contains("FROM host_metric_snapshots") && query.contains("counter_increase")
        })
        .expect("the document shows the rate computed from raw rows");
    let raw = raw.trim().trim_end_matches(';');
    let compared = format!(
        "WITH documented AS ({raw}),
         rollup AS (
             SELECT host_id, bucket,
                    network_rx_bytes_increase / nullif(counter_seconds, 0) AS rx_bytes_per_second
             FROM host_metrics_1h
             WHERE bucket >= time_bucket('1 hour', now() - interval '1 day'))
         SELECT count(*) FILTER (WHERE d.rx_bytes_per_second IS NOT NULL),
                count(*) FILTER (WHERE d.host_id IS NULL OR r.host_id IS NULL
                    OR (d.rx_bytes_per_second IS NULL) <> (r.rx_bytes_per_second IS NULL)
                    OR abs(d.rx_bytes_per_second::float8 - r.rx_bytes_per_second)
                       > 1e-9 * greatest(abs(r.rx_bytes_per_second), 1))
         FROM documented d FULL JOIN rollup r USING (host_id, bucket)"
    );
    let row = app
        .db
        .query_one(&compared, &[])
        .await
        .unwrap_or_else(|e| panic!("{compared}\nfailed: {e:?}"));
    let (rates, differing): (i64, i64) = (row.get(0), row.get(1));
    assert!(rates > 0, "the seeded fleet has hourly rates");
    assert_eq!(
        differing, 0,
        "hours whose raw-row rate differs from host_metrics_1h"
    );
}

#[tokio::test]
async fn every_documented_query_runs_as_the_analyst_and_returns_rows() {
    // Alerts are seeded by hand: no evaluator to resolve them.
    run_every_documented_query(
        &TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "0"]).await,
    )
    .await;
}

#[tokio::test]
async fn every_documented_query_returns_rows_on_the_apache_edition_too() {
    run_every_documented_query(
        &TestApp::spawn_on_apache_edition_with(&["--alert-evaluation-interval-seconds", "0"]).await,
    )
    .await;
}
