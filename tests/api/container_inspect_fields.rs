//! Docker's inspect data per container (issue 25): optional `restart_count`, `exit_code` and
//! `oom_killed`, stored with the description and published in `containers_latest`.

use chrono::Duration;
use serde_json::json;

use crate::helpers::{TestApp, at, payload};

/// A container's id, restart count, exit code and OOM flag as stored.
type Inspected = (String, Option<i64>, Option<i64>, Option<bool>);

#[tokio::test]
async fn the_inspect_fields_are_stored_and_read_back_from_containers_latest() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut body = payload(
        &at(Duration::seconds(-5)),
        &[("sent", "exited"), ("old", "running")],
    );
    body["containers"][0]["restart_count"] = json!(3);
    body["containers"][0]["exit_code"] = json!(137);
    body["containers"][0]["oom_killed"] = json!(true);
    let response = app.post_telemetry(&token, &body).await;
    assert_eq!(response.status(), 204);

    let rows = app
        .db
        .query(
            "SELECT container_id, restart_count, exit_code, oom_killed FROM containers_latest
             ORDER BY container_id",
            &[],
        )
        .await
        .unwrap();
    let read: Vec<Inspected> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        read,
        [
            ("old".to_string(), None, None, None),
            ("sent".to_string(), Some(3), Some(137), Some(true)),
        ],
        "an agent that does not send them leaves them null"
    );
}

#[tokio::test]
async fn a_bad_inspect_value_drops_only_its_container() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    for (seconds, (field, bad)) in [
        ("restart_count", json!(-1)),
        ("restart_count", json!("3")),
        ("exit_code", json!(1.5)),
        ("oom_killed", json!("yes")),
    ]
    .into_iter()
    .enumerate()
    {
        let recorded_at = at(Duration::seconds(seconds as i64 - 10));
        let mut body = payload(&recorded_at, &[("good", "running"), ("bad", "running")]);
        body["containers"][1][field] = bad.clone();
        let response = app.post_telemetry(&token, &body).await;
        assert_eq!(response.status(), 204, "{field} = {bad}");
        assert_eq!(
            response.headers()["X-Dropped-Containers"],
            "1",
            "{field} = {bad}: only the second container is dropped"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM containers WHERE container_id = 'bad'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_change_of_an_inspect_field_alone_updates_the_stored_description() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    for (seconds, restarts) in [(-20, 0), (-10, 0), (-5, 2)] {
        let mut body = payload(&at(Duration::seconds(seconds)), &[("c1", "running")]);
        body["containers"][0]["restart_count"] = json!(restarts);
        assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
    }
    assert_eq!(
        app.count("SELECT restart_count FROM containers").await,
        2,
        "the cache's fingerprint covers the field, so the change is written"
    );
}
