//! Retention of raw snapshots and the analysts' read-only role.

use std::time::Duration as StdDuration;

use chrono::Duration;

use crate::helpers::{TestApp, at, payload};

#[tokio::test]
async fn dropping_chunks_removes_data_past_retention_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;
    // Data from 40 days ago, as if ingested back then (the API refuses such old snapshots).
    app.db
        .execute(
            "INSERT INTO host_metric_snapshots (host_id, recorded_at) VALUES ($1, now() - interval '40 days')",
            &[&host],
        )
        .await
        .unwrap();
    app.db
        .execute(
            "INSERT INTO container_metric_snapshots (container_id, host_id, recorded_at)
             SELECT id, host_id, now() - interval '40 days' FROM containers",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(app.written().await, (2, 1, 2));

    let dropped = app
        .store
        .drop_old_chunks(StdDuration::from_secs(30 * 86400))
        .await
        .unwrap();

    assert_eq!(dropped, 2, "one old chunk per hypertable");
    assert_eq!(
        app.written().await,
        (1, 1, 1),
        "recent data and the container itself stay"
    );
}

#[tokio::test]
async fn the_analyst_role_reads_metrics_but_not_credentials() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;
    app.db
        .batch_execute("SET ROLE nexus_analyst")
        .await
        .unwrap();

    for table in [
        "hosts",
        "containers",
        "containers_latest",
        "host_metric_snapshots",
        "container_metric_snapshots",
        "host_events",
        "host_metrics_5m",
        "host_metrics_1h",
        "container_metrics_5m",
        "container_metrics_1h",
        "host_metrics_5m_materialized",
        "host_metrics_1h_materialized",
        "container_metrics_5m_materialized",
        "container_metrics_1h_materialized",
    ] {
        let rows = app
            .db
            .query(&format!("SELECT count(*) FROM {table}"), &[])
            .await;
        assert!(rows.is_ok(), "{table}: {rows:?}");
    }
    for (sql, what) in [
        ("SELECT count(*) FROM agent_tokens", "agent tokens"),
        ("SELECT hashed_token FROM agent_tokens", "token hashes"),
        (
            "INSERT INTO host_events (host_id, kind) VALUES (1, 'online')",
            "writes",
        ),
        ("DELETE FROM host_metric_snapshots", "deletes"),
    ] {
        let error = app.db.query(sql, &[]).await.expect_err(what);
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{what}"
        );
    }
}
