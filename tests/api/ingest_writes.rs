//! What a successful `POST /agent/telemetry` writes, and what it must leave alone.

use chrono::Duration;
use serde_json::json;

use nexus_telemetry::store::ingest::{Outcome, Submission};

use crate::helpers::{TestApp, at, payload};

#[tokio::test]
async fn a_snapshot_writes_host_facts_one_host_row_and_one_row_per_container() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;

    let response = app
        .post_telemetry(
            &token,
            &payload(
                &at(Duration::zero()),
                &[("a1", "running"), ("b2", "exited")],
            ),
        )
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.written().await, (1, 2, 2));
    let row = app
        .db
        .query_one("SELECT cpu_count, memory_total_mb, disk_total_gb, os, docker_version, last_seen_at IS NOT NULL FROM hosts WHERE id = $1", &[&host])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(4));
    assert_eq!(row.get::<_, Option<i64>>(1), Some(8192));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(100));
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some("Debian GNU/Linux 12")
    );
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("27.1.1"));
    assert!(row.get::<_, bool>(5), "last_seen_at is set");
    let metrics = app
        .db
        .query_one("SELECT cpu_percent, memory_used_mb, network_tx_bytes, load_average FROM host_metric_snapshots WHERE host_id = $1", &[&host])
        .await
        .unwrap();
    // Percentages and loads are `real`: the two decimals agents send, to 7 significant digits.
    assert_eq!(metrics.get::<_, Option<f32>>(0), Some(12.5));
    assert_eq!(metrics.get::<_, Option<i64>>(1), Some(2048));
    assert_eq!(metrics.get::<_, Option<i64>>(2), Some(654321));
    assert_eq!(metrics.get::<_, Option<f32>>(3), Some(0.42));
}

#[tokio::test]
async fn container_rows_carry_the_host_and_the_latest_view_derives_memory_percent() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;

    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;

    let row = app
        .db
        .query_one(
            "SELECT s.host_id, l.memory_percent, s.cpu_percent::float8, c.image, c.image_tag, c.ports,
                    c.labels
             FROM container_metric_snapshots s JOIN containers c ON c.id = s.container_id
             JOIN containers_latest l ON l.id = c.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), host);
    assert_eq!(row.get::<_, Option<f64>>(1), Some(25.0));
    assert_eq!(
        row.get::<_, Option<f64>>(2),
        Some(150.5),
        "container CPU may exceed 100 on several cores"
    );
    assert_eq!(row.get::<_, String>(3), "ghcr.io/acme/app");
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("1.4.2"));
    assert_eq!(
        row.get::<_, serde_json::Value>(5),
        json!(["0.0.0.0:8080->80/tcp"])
    );
    assert_eq!(
        row.get::<_, serde_json::Value>(6),
        json!({"com.docker.compose.project": "shop"})
    );
}

#[tokio::test]
async fn every_container_metric_lands_in_its_own_column_and_absent_ones_are_null() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    let mut body = payload(
        &at(Duration::zero()),
        &[("full", "running"), ("bare", "exited")],
    );
    body["containers"][0]["metrics"] = json!({
        "cpu_percent": 1.5, "memory_usage_mb": 2, "memory_limit_mb": 8,
        "network_rx_bytes": 4, "network_tx_bytes": 5,
        "block_read_bytes": 6, "block_write_bytes": 7
    });
    body["containers"][1]["metrics"] = json!(null);

    app.post_telemetry(&token, &body).await;

    // Each row's metrics in column order, as one array (NULLs kept).
    let rows: Vec<(String, i64, Vec<Option<f64>>)> = app
        .db
        .query(
            "SELECT c.container_id, s.host_id,
                    ARRAY[s.cpu_percent, s.memory_usage_mb, s.memory_limit_mb,
                          s.network_rx_bytes, s.network_tx_bytes, s.block_read_bytes,
                          s.block_write_bytes]::float8[]
             FROM container_metric_snapshots s JOIN containers c ON c.id = s.container_id
             ORDER BY c.container_id DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let full = [1.5, 2.0, 8.0, 4.0, 5.0, 6.0, 7.0].map(Some).to_vec();
    assert_eq!(
        rows,
        [
            ("full".to_owned(), host, full),
            ("bare".to_owned(), host, vec![None; 7]),
        ]
    );
}

#[tokio::test]
async fn a_pending_host_goes_online_and_an_offline_one_comes_back() {
    let app = TestApp::spawn().await;
    let (pending, token) = app.host_with_token("pending").await;
    let (offline, offline_token) = app.host_with_token("offline").await;
    app.db
        .execute(
            "UPDATE hosts SET status = 'offline' WHERE id = $1",
            &[&offline],
        )
        .await
        .unwrap();

    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;
    app.post_telemetry(&offline_token, &payload(&at(Duration::zero()), &[]))
        .await;

    assert_eq!(app.host_status(pending).await, "online");
    assert_eq!(app.host_status(offline).await, "online");
}

#[tokio::test]
async fn an_online_or_degraded_host_keeps_its_status() {
    let app = TestApp::spawn().await;
    let (online, token) = app.host_with_token("online").await;
    let (degraded, degraded_token) = app.host_with_token("degraded").await;
    app.post_telemetry(&token, &payload(&at(Duration::seconds(-60)), &[]))
        .await;
    app.db
        .execute(
            "UPDATE hosts SET status = 'degraded' WHERE id = $1",
            &[&degraded],
        )
        .await
        .unwrap();

    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;
    app.post_telemetry(&degraded_token, &payload(&at(Duration::zero()), &[]))
        .await;

    assert_eq!(app.host_status(online).await, "online");
    assert_eq!(app.host_status(degraded).await, "degraded");
}

#[tokio::test]
async fn absent_or_null_facts_never_blank_stored_ones() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    app.post_telemetry(&token, &payload(&at(Duration::seconds(-120)), &[]))
        .await;

    let mut without_facts = payload(&at(Duration::seconds(-60)), &[]);
    without_facts["host"]
        .as_object_mut()
        .unwrap()
        .remove("facts");
    let mut null_facts = payload(&at(Duration::seconds(-30)), &[]);
    null_facts["host"]["facts"] =
        json!({"cpu_count": null, "os": null, "docker_version": "28.0.0"});
    assert_eq!(
        app.post_telemetry(&token, &without_facts).await.status(),
        204
    );
    assert_eq!(app.post_telemetry(&token, &null_facts).await.status(), 204);

    let row = app
        .db
        .query_one(
            "SELECT cpu_count, os, docker_version FROM hosts WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(4));
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("Debian GNU/Linux 12")
    );
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("28.0.0"),
        "a non-null fact is updated"
    );
}

#[tokio::test]
async fn last_seen_at_never_moves_backwards() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    let newer = at(Duration::zero());
    app.post_telemetry(&token, &payload(&newer, &[])).await;

    app.post_telemetry(&token, &payload(&at(Duration::minutes(-10)), &[]))
        .await;

    let seen: chrono::DateTime<chrono::Utc> = app
        .db
        .query_one("SELECT last_seen_at FROM hosts WHERE id = $1", &[&host])
        .await
        .unwrap()
        .get(0);
    assert_eq!(crate::helpers::rfc3339(seen), newer);
    assert_eq!(
        app.written().await.0,
        2,
        "the older snapshot is still stored"
    );
}

#[tokio::test]
async fn a_repeated_post_is_acknowledged_without_a_second_row() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = payload(
        &at(Duration::zero()),
        &[("a1", "running"), ("b2", "running")],
    );

    assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
    assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);

    assert_eq!(app.written().await, (1, 2, 2));
}

#[tokio::test]
async fn a_repost_whose_host_row_was_deleted_keeps_the_first_container_rows() {
    // Container metric rows are inserted without a conflict check as long as the host row is
    // new; with the host row deleted behind the server's back, the check has to come back.
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let recorded_at = at(Duration::zero());
    let first = payload(&recorded_at, &[("a1", "running"), ("b2", "running")]);
    assert_eq!(app.post_telemetry(&token, &first).await.status(), 204);
    app.db
        .execute("DELETE FROM host_metric_snapshots", &[])
        .await
        .unwrap();

    let mut second = first.clone();
    second["containers"][0]["metrics"]["cpu_percent"] = json!(99.0);
    let response = app.post_telemetry(&token, &second).await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.written().await, (1, 2, 2));
    let cpu: Vec<f32> = app
        .db
        .query(
            "SELECT cpu_percent FROM container_metric_snapshots ORDER BY container_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(cpu, [150.5, 150.5], "the first write wins");
}

#[tokio::test]
async fn a_second_post_appends_snapshots_and_updates_a_changed_container() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::seconds(-30)), &[("a1", "running")]),
    )
    .await;

    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[("a1", "exited")]))
        .await;

    assert_eq!(app.written().await, (2, 1, 2));
    let state: String = app
        .db
        .query_one("SELECT state FROM containers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "exited");
}

#[tokio::test]
async fn a_steady_container_does_not_rewrite_its_dimension_row() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::seconds(-30)), &[("a1", "running")]),
    )
    .await;
    let version = "SELECT xmin::text || updated_at::text FROM containers";
    let before: String = app.db.query_one(version, &[]).await.unwrap().get(0);

    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;

    let after: String = app.db.query_one(version, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "the row was not written again");
    assert_eq!(app.written().await.2, 2, "but its metrics were");
}

#[tokio::test]
async fn an_older_snapshot_arriving_late_does_not_overwrite_newer_container_state() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::seconds(-60)), &[("a1", "created")]),
    )
    .await;
    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;
    // A buffered snapshot from between the two, carrying a state the newer one superseded.
    app.post_telemetry(
        &token,
        &payload(&at(Duration::seconds(-30)), &[("a1", "restarting")]),
    )
    .await;

    let state: String = app
        .db
        .query_one("SELECT state FROM containers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "running");
    assert_eq!(app.written().await, (3, 1, 3), "its metrics are still kept");
}

#[tokio::test]
async fn a_container_missing_from_a_snapshot_is_left_untouched() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(
            &at(Duration::seconds(-30)),
            &[("a1", "running"), ("b2", "running")],
        ),
    )
    .await;

    app.post_telemetry(
        &token,
        &payload(&at(Duration::zero()), &[("a1", "running")]),
    )
    .await;

    assert_eq!(
        app.count(
            "SELECT count(*) FROM containers WHERE container_id = 'b2' AND state = 'running'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_same_container_id_on_two_hosts_is_two_containers() {
    let app = TestApp::spawn().await;
    let (_, first) = app.host_with_token("web-01").await;
    let (_, second) = app.host_with_token("web-02").await;

    app.post_telemetry(
        &first,
        &payload(&at(Duration::zero()), &[("shared", "running")]),
    )
    .await;
    app.post_telemetry(
        &second,
        &payload(&at(Duration::zero()), &[("shared", "exited")]),
    )
    .await;

    assert_eq!(
        app.count("SELECT count(DISTINCT host_id) FROM containers WHERE container_id = 'shared'")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT count(*) FROM containers WHERE state = 'running'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failure_midway_rolls_back_everything() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    // Make the last write of the ingest fail, after the host, its row and the containers.
    app.db
        .batch_execute(
            "CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER fail BEFORE INSERT ON container_metric_snapshots
             FOR EACH ROW EXECUTE FUNCTION fail();",
        )
        .await
        .unwrap();

    let response = app
        .post_telemetry(
            &token,
            &payload(&at(Duration::zero()), &[("a1", "running")]),
        )
        .await;

    assert_eq!(response.status(), 500);
    assert_eq!(app.written().await, (0, 0, 0));
    assert_eq!(app.host_status(host).await, "pending");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM hosts WHERE last_seen_at IS NOT NULL OR cpu_count IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_host_archived_after_its_token_was_checked_gets_nothing_written() {
    let app = TestApp::spawn().await;
    let host = app.create_host("web-01").await;
    let token = app
        .store
        .issue_agent_token(host, "test", false)
        .await
        .unwrap()
        .id;
    app.db
        .execute(
            "UPDATE hosts SET status = 'archived' WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();
    let snapshot = nexus_telemetry::domain::snapshot::Snapshot::new(
        serde_json::from_value(payload(&at(Duration::zero()), &[("a1", "running")])).unwrap(),
        chrono::Utc::now(),
        crate::helpers::serve_args("postgres://unused", &[]).skew(),
    )
    .unwrap();

    let submission = Submission {
        host_id: host,
        token_id: token,
        snapshot,
    };
    assert_eq!(
        app.store.ingest(&[submission]).await.unwrap(),
        [Outcome::Refused]
    );
    assert_eq!(app.written().await, (0, 0, 0));
    assert_eq!(
        app.host_status(host).await,
        "archived",
        "an archived host is never revived"
    );
}

#[tokio::test]
async fn the_metric_tables_are_hypertables_on_recorded_at() {
    let app = TestApp::spawn().await;

    let rows = app
        .db
        .query(
            "SELECT hypertable_name::text, column_name::text FROM timescaledb_information.dimensions
             WHERE hypertable_name LIKE '%metric_snapshots' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();

    let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        found,
        [
            (
                "container_metric_snapshots".to_string(),
                "recorded_at".to_string()
            ),
            (
                "host_metric_snapshots".to_string(),
                "recorded_at".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn containers_latest_shows_each_container_with_its_newest_metrics() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let newest = at(Duration::zero());
    app.post_telemetry(
        &token,
        &payload(&at(Duration::seconds(-30)), &[("a1", "running")]),
    )
    .await;
    let mut body = payload(&newest, &[("a1", "running")]);
    body["containers"][0]["metrics"]["memory_usage_mb"] = json!(512);
    app.post_telemetry(&token, &body).await;

    let row = app
        .db
        .query_one(
            "SELECT last_seen_at, memory_usage_mb, memory_percent FROM containers_latest",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(crate::helpers::rfc3339(row.get(0)), newest);
    assert_eq!(row.get::<_, Option<i64>>(1), Some(512));
    assert_eq!(row.get::<_, Option<f64>>(2), Some(50.0));
}

#[tokio::test]
async fn a_container_changed_through_another_server_is_written_again_by_this_one() {
    let app = TestApp::spawn().await;
    let other = app.spawn_another_server().await;
    let (_, token) = app.host_with_token("web-01").await;
    let post_to = |address: String, body: serde_json::Value| {
        let request = app
            .http
            .post(format!("{address}/agent/telemetry"))
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let state = || async {
        app.db
            .query_one("SELECT state FROM containers", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };

    let running_then = payload(&at(Duration::seconds(-60)), &[("a1", "running")]);
    assert_eq!(post_to(app.address.clone(), running_then).await, 204);
    let exited = payload(&at(Duration::seconds(-30)), &[("a1", "exited")]);
    assert_eq!(post_to(other, exited).await, 204);
    assert_eq!(state().await, "exited");
    // This server last saw the container running; the host row tells it that no longer holds.
    let running_now = payload(&at(Duration::zero()), &[("a1", "running")]);
    assert_eq!(post_to(app.address.clone(), running_now).await, 204);

    assert_eq!(state().await, "running");
    assert_eq!(app.written().await, (3, 1, 3));
}
