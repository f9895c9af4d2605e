//! Every query in docs/analytics.md runs, as the analyst role, against a seeded database, on
//! both TimescaleDB editions.

use chrono::Duration;

use crate::fleet::{self, assert_filled, query_rows};
use crate::helpers::{TestApp, at, payload};

const DOC: &str = include_str!("../../docs/analytics.md");

fn queries() -> Vec<&'static str> {
    DOC.split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect()
}

/// Hours of history for a small fleet, plus two hosts that posted a few snapshots through the
/// API, one of them offline since.
async fn seed(app: &TestApp) {
    fleet::seed(app, &["cache-01", "worker-01"]).await;
    for host in ["web-01", "db-01"] {
        let (id, token) = app.host_with_token(host).await;
        for minutes in [20, 10, 0] {
            let mut body = payload(
                &at(Duration::minutes(-minutes)),
                &[("a1", "running"), ("b2", "exited")],
            );
            body["host"]["metrics"]["network_rx_bytes"] =
                serde_json::json!(1_000_000 - minutes * 1000);
            // Ten minutes ago a1 was OOM-killed, unhealthy, and restarted: one of each event.
            let a1 = &mut body["containers"][0];
            a1["restart_count"] = serde_json::json!(if minutes == 20 { 0 } else { 1 });
            a1["oom_killed"] = serde_json::json!(minutes == 10);
            a1["exit_code"] = serde_json::json!(if minutes == 10 { Some(137) } else { None });
            a1["health_status"] = serde_json::json!(if minutes == 10 {
                "unhealthy"
            } else {
                "healthy"
            });
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
}

async fn run_every_documented_query(app: &TestApp) {
    seed(app).await;
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
    run_every_documented_query(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn every_documented_query_returns_rows_on_the_apache_edition_too() {
    run_every_documented_query(&TestApp::spawn_on_apache_edition().await).await;
}
