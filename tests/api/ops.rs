//! Operability: health, readiness, metrics, request ids, and logs that keep secrets.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Duration;

use crate::helpers::{TestApp, at, payload};

#[tokio::test]
async fn healthz_and_readyz_answer_when_the_database_is_migrated() {
    let app = TestApp::spawn().await;

    let health = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
}

#[tokio::test]
async fn readyz_is_503_while_migrations_are_pending() {
    let app = TestApp::spawn().await;
    app.db
        .execute("DELETE FROM refinery_schema_history", &[])
        .await
        .unwrap();

    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["retry-after"], "5");
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "tag:nexus-telemetry,2026:problem:not-ready"
    );
    assert_eq!(problem["status"], 503);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("migrations pending: applied "),
        "{problem}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_rows_written() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.post_telemetry(
        &token,
        &payload(
            &at(Duration::zero()),
            &[("a1", "running"), ("b2", "running")],
        ),
    )
    .await;
    app.post_telemetry("nxa_wrong", &payload(&at(Duration::zero()), &[]))
        .await;

    let text = app.get_text("/metrics").await;

    for expected in [
        r#"nexus_http_requests_total{route="/agent/telemetry",status="204"} 1"#,
        r#"nexus_http_requests_total{route="/agent/telemetry",status="401"} 1"#,
        "nexus_snapshots_written_total 1",
        "nexus_container_rows_written_total 2",
        "nexus_ingest_duration_seconds_bucket",
        "nexus_ingest_batch_snapshots_count 1",
        "nexus_ingest_queued_snapshots 0",
        "nexus_db_pool_waiting 0",
        "nexus_db_pool_max_size 16",
    ] {
        assert!(
            text.contains(expected),
            "metrics lack `{expected}`:\n{text}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_client_id_is_kept() {
    let app = TestApp::spawn().await;

    let generated = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    let kept = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "agent-7f3a")
        .send()
        .await
        .unwrap();
    let replaced = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "x".repeat(500))
        .send()
        .await
        .unwrap();

    assert_eq!(generated.headers()["x-request-id"].len(), 32);
    assert_eq!(kept.headers()["x-request-id"], "agent-7f3a");
    assert_eq!(replaced.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn unknown_routes_are_problem_details() {
    let app = TestApp::spawn().await;

    let response = app
        .http
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_each_request_but_never_the_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .json()
        .init();
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;

    app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;
    app.post_telemetry(&token, &serde_json::json!({"recorded_at": 0}))
        .await;
    app.post_telemetry(&format!("{token}x"), &payload(&at(Duration::zero()), &[]))
        .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request_id"), "{logs}");
    assert!(
        logs.contains("\"status\":204")
            && logs.contains("\"status\":422")
            && logs.contains("\"status\":401"),
        "{logs}"
    );
    assert!(
        !logs.contains(&token[4..]),
        "the token leaked into the logs"
    );
    assert!(
        !logs.to_lowercase().contains("authorization"),
        "headers are not logged"
    );
}

#[tokio::test]
async fn bodies_the_fast_path_declines_are_counted_by_reason_and_escaped_strings_are_not() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = |seconds_ago: i64| {
        let value = payload(&at(Duration::seconds(-seconds_ago)), &[("a1", "running")]);
        serde_json::to_string(&value).unwrap()
    };
    let post = |text: String| {
        app.http
            .post(app.telemetry_url())
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(text)
            .send()
    };
    let declined = || async {
        let metrics = app.get_text("/metrics").await;
        metrics
            .lines()
            .filter(|line| line.starts_with("nexus_body_fast_path_declined_total"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // As PHP's json_encode writes it: `/` and non-ASCII characters escaped.
    let php = body(30)
        .replace('/', "\\/")
        .replace("Debian", "D\\u00e9bian");
    assert_eq!(post(php).await.unwrap().status(), 204);
    assert_eq!(declined().await, Vec::<String>::new(), "escapes are read");

    // A property given twice may conform (the last one counts) but is left to the Value path.
    let twice = body(20).replacen(
        '{',
        &format!(r#"{{"recorded_at":"{}","#, at(Duration::zero())),
        1,
    );
    assert_eq!(post(twice).await.unwrap().status(), 204);
    let invalid = body(10).replace(r#""cpu_percent":12.5"#, r#""cpu_percent":101"#);
    assert_eq!(post(invalid).await.unwrap().status(), 422);

    let mut lines = declined().await;
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"nexus_body_fast_path_declined_total{reason="form"} 1"#,
            r#"nexus_body_fast_path_declined_total{reason="invalid"} 1"#,
        ]
    );
}
