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
            let response = app.post_telemetry(&token, &body).await;
            assert_eq!(response.status(), 204);
        }
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
}

#[tokio::test]
async fn every_documented_query_runs_as_the_analyst_and_returns_rows() {
    run_every_documented_query(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn every_documented_query_returns_rows_on_the_apache_edition_too() {
    run_every_documented_query(&TestApp::spawn_on_apache_edition().await).await;
}
