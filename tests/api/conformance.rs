//! The server's real answers conform to the document's response schemas (required fields
//! present, `null` only where declared nullable), on data that has both filled and empty
//! fields: schemathesis reads every admin operation of a populated server, its path
//! parameters pinned to existing rows so the answers are 200s with bodies, not 404s. (Every
//! admin answer any test gets is also checked by `helpers::call`, see `response_schema`.)

use chrono::Duration;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, at, payload};

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_a_populated_server_conforms_to_the_documented_schemas() {
    let app = TestApp::spawn_with(&[
        "--auth-failures-per-minute",
        "100000",
        // Alerts are seeded by hand below; an evaluator would resolve them.
        "--alert-evaluation-interval-seconds",
        "0",
    ])
    .await;
    let admin = app.admin_token().await;
    // A webhook endpoint on a documentation address (TEST-NET-1): its deliveries stay pending,
    // with an error and no status code.
    let webhook = app
        .admin(
            Method::POST,
            "/webhooks",
            Some(&admin),
            Some(&json!({"url": "http://192.0.2.1/hook"})),
        )
        .await;
    assert_eq!(webhook.status, 201, "{}", webhook.body);
    let webhook = webhook.body["id"].as_i64().unwrap();
    // A host with facts, metrics, a running container and one that reports nothing optional.
    let (host, token) = app.host_with_token("populated").await;
    let full = payload(&at(Duration::minutes(-2)), &[("c0ffee", "running")]);
    assert_eq!(app.post_telemetry(&token, &full).await.status(), 204);
    let mut bare = payload(&at(Duration::minutes(-1)), &[]);
    bare["containers"] = json!([{"container_id": "bare", "name": "bare", "image": "busybox"}]);
    bare["host"]["facts"] = json!(null);
    assert_eq!(app.post_telemetry(&token, &bare).await.status(), 204);
    // A revoked token beside the used one; a pending host and an archived one.
    let spare = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            Some(&json!({"name": "spare"})),
        )
        .await;
    let spare_id = spare.body["id"].as_i64().unwrap();
    let revoked = app
        .admin(
            Method::DELETE,
            &format!("/hosts/{host}/tokens/{spare_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    app.create_host("pending").await;
    let archived = app.create_host("archived").await;
    app.admin(
        Method::POST,
        &format!("/hosts/{archived}/archive"),
        Some(&admin),
        None,
    )
    .await;
    let containers = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/containers"),
            Some(&admin),
            None,
        )
        .await;
    let container = containers.body["items"][0]["id"].as_i64().unwrap();
    // Refused agent requests, one with a token identified (revoked) and one without (unknown).
    let spare_token = spare.body["token"].as_str().unwrap();
    let unknown = format!("nxa_{}", "0".repeat(64));
    for bearer in [spare_token, &unknown] {
        assert_eq!(app.post_telemetry(bearer, &full).await.status(), 401);
    }
    let failures = app
        .admin(Method::GET, "/auth-failures", Some(&admin), None)
        .await;
    let token_ids: Vec<_> = failures.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| (line["reason"].as_str(), line.get("last_token_id")))
        .collect();
    assert_eq!(
        token_ids,
        [
            (Some("invalid"), Some(&json!(null))),
            (Some("revoked"), Some(&json!(spare_id))),
        ],
        "every key is sent, null when no token was identified"
    );

    // An alert about the container, firing and acknowledged, and a resolved one about the host:
    // alerts carry both filled and empty fields.
    let alert: i64 = app
        .db
        .query_one(
            "INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                                 pending_since, started_at, acknowledged_at, acknowledged_by)
             SELECT id, $1, 'c0ffee', 'f1', 'firing', 4, now(), now(), now(), 'ops'
             FROM alert_rules WHERE name = 'container restarting'
             RETURNING id",
            &[&host],
        )
        .await
        .unwrap()
        .get(0);
    app.db
        .execute(
            "INSERT INTO alerts (rule_id, host_id, fingerprint, state, pending_since, resolved_at)
             SELECT id, $1, 'f2', 'resolved', now(), now() FROM alert_rules
             WHERE name = 'host offline'",
            &[&host],
        )
        .await
        .unwrap();
    let rule: i64 = app
        .db
        .query_one(
            "SELECT id FROM alert_rules WHERE kind = 'metric_threshold'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // The fan-out has queued the events for the endpoint (it runs within a second).
    let queued = std::time::Instant::now();
    while app.count("SELECT count(*) FROM webhook_deliveries").await == 0 {
        assert!(
            queued.elapsed().as_secs() < 10,
            "no webhook delivery was queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let config = std::env::temp_dir().join(format!(
        "nexus-conformance-{host}-{}.toml",
        app.address.len()
    ));
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.host_id\" = {host}\n\"path.container_id\" = {container}\n\
             \"path.token_id\" = {spare_id}\n\"path.alert_id\" = {alert}\n\
             \"path.alert_rule_id\" = {rule}\n\"path.webhook_id\" = {webhook}\n\
             \"query.from\" = \"{}\"\n\"query.to\" = \"{}\"\n",
            at(Duration::hours(-1)),
            at(Duration::minutes(1)),
        ),
    )
    .unwrap();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let output = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .args(["run", spec, "--url", &app.address])
        .args(["--include-path-regex", "^/api/v1/"])
        // A stream never ends; tests/api/event_stream.rs checks its messages.
        .args(["--exclude-path", "/api/v1/events/stream"])
        .args(["--exclude-method", "POST", "--exclude-method", "PATCH"])
        .args(["--exclude-method", "PUT"])
        .args(["--exclude-method", "DELETE"])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "25", "--seed", "20261206", "--max-time", "45"])
        .args(["--phases", "examples,fuzzing", "--no-color"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run the suite with scripts/test",
                schemathesis()
            )
        });
    let _ = std::fs::remove_file(&config);

    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a response does not conform to the document:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("Selected: 16/"),
        "the sixteen reads of /api/v1 were run:\n{report}"
    );
}
