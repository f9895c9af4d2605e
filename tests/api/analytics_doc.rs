//! Every query in docs/analytics.md runs, as the analyst role, against a seeded database.

use chrono::Duration;

use crate::helpers::{TestApp, at, payload};

const DOC: &str = include_str!("../../docs/analytics.md");

fn queries() -> Vec<&'static str> {
    DOC.split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect()
}

#[tokio::test]
async fn every_documented_query_runs_as_the_analyst_and_returns_rows() {
    let app = TestApp::spawn().await;
    for host in ["web-01", "db-01"] {
        let (id, token) = app.host_with_token(host).await;
        for minutes in [20, 10, 0] {
            let mut body = payload(
                &at(Duration::minutes(-minutes)),
                &[("a1", "running"), ("b2", "exited")],
            );
            body["host"]["metrics"]["network_rx_bytes"] =
                serde_json::json!(1_000_000 - minutes * 1000);
            app.post_telemetry(&token, &body).await;
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
    app.db
        .batch_execute("SET ROLE nexus_analyst")
        .await
        .unwrap();

    let queries = queries();
    assert!(queries.len() >= 4, "the document has its example queries");
    for query in queries {
        let rows = app
            .db
            .query(query, &[])
            .await
            .unwrap_or_else(|e| panic!("{query}\nfailed: {e}"));
        assert!(!rows.is_empty(), "no rows from:\n{query}");
    }
}
