//! How `POST /agent/telemetry` refuses requests: the right status, a problem-details body naming
//! the problem, and nothing written.

use chrono::Duration;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "errors are problem details"
    );
    response.json().await.unwrap()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

async fn assert_unauthorized(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), 401, "{case}");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer realm=\"nexus-telemetry\""),
        "{case}"
    );
    assert_eq!(problem(response).await["status"], 401, "{case}");
}

#[tokio::test]
async fn requests_without_a_well_formed_bearer_are_unauthorized() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = payload(&at(Duration::zero()), &[]);
    let cases: [(&str, Option<String>); 6] = [
        ("no header", None),
        ("another scheme", Some(format!("Basic {token}"))),
        ("scheme only", Some("Bearer".into())),
        ("empty token", Some("Bearer ".into())),
        ("token with spaces", Some(format!("Bearer {token} extra"))),
        ("non-ASCII token", Some("Bearer tökén".into())),
    ];
    for (case, header) in cases {
        let mut request = app.http.post(app.telemetry_url()).json(&body);
        if let Some(header) = header {
            request = request.header("Authorization", header.into_bytes());
        }
        assert_unauthorized(request.send().await.unwrap(), case).await;
    }
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let app = TestApp::spawn().await;
    app.host_with_token("web-01").await;

    let response = app
        .post_telemetry(
            "nxa_0000000000000000000000000000000000000000000000000000000000000000",
            &payload(&at(Duration::zero()), &[]),
        )
        .await;

    assert_unauthorized(response, "unknown token").await;
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized_and_not_stamped() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    app.db
        .execute("UPDATE agent_tokens SET revoked_at = now()", &[])
        .await
        .unwrap();

    assert_unauthorized(
        app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
            .await,
        "revoked",
    )
    .await;

    assert_eq!(
        app.count("SELECT count(*) FROM agent_tokens WHERE last_used_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn a_token_of_an_archived_host_is_unauthorized() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    app.db
        .execute(
            "UPDATE hosts SET status = 'archived', archived_at = now() WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();

    assert_unauthorized(
        app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
            .await,
        "archived",
    )
    .await;
    assert_eq!(app.host_status(host).await, "archived");
}

#[tokio::test]
async fn tokens_minted_elsewhere_authenticate_by_their_sha256() {
    let app = TestApp::spawn().await;
    let host = app.create_host("imported").await;
    let legacy = "42|laravel-sanctum-style-plaintext";
    let hash = nexus_telemetry::domain::token::TokenHash::of(legacy);
    app.db
        .execute(
            "INSERT INTO agent_tokens (host_id, name, hashed_token) VALUES ($1, 'legacy', $2)",
            &[&host, &hash.as_str()],
        )
        .await
        .unwrap();

    assert_eq!(
        app.post_telemetry(legacy, &payload(&at(Duration::zero()), &[]))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn the_request_after_the_quota_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(&["--rate-limit-per-minute", "60"]).await;
    let (_, token) = app.host_with_token("web-01").await;
    for second in 0..60 {
        let response = app
            .post_telemetry(&token, &payload(&at(Duration::seconds(-second)), &[]))
            .await;
        assert_eq!(response.status(), 204, "request {}", second + 1);
        assert_eq!(response.headers()["x-ratelimit-limit"], "60");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (59 - second).to_string().as_str()
        );
    }

    let response = app
        .post_telemetry(&token, &payload(&at(Duration::seconds(-61)), &[]))
        .await;

    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After is whole seconds: {retry_after}"
    );
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(problem(response).await["status"], 429);
    assert_eq!(
        app.written().await.0,
        60,
        "the refused snapshot was not stored"
    );
}

#[tokio::test]
async fn the_quota_is_per_token() {
    let app = TestApp::spawn_with(&["--rate-limit-per-minute", "1"]).await;
    let (_, first) = app.host_with_token("web-01").await;
    let (_, second) = app.host_with_token("web-02").await;

    assert_eq!(
        app.post_telemetry(&first, &payload(&at(Duration::zero()), &[]))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.post_telemetry(&first, &payload(&at(Duration::seconds(-1)), &[]))
            .await
            .status(),
        429
    );
    assert_eq!(
        app.post_telemetry(&second, &payload(&at(Duration::zero()), &[]))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn last_used_at_is_stamped_when_auth_and_quota_pass_and_not_on_a_429() {
    let app = TestApp::spawn_with(&["--rate-limit-per-minute", "1"]).await;
    let (_, token) = app.host_with_token("web-01").await;
    let stamp = "SELECT last_used_at::text FROM agent_tokens";
    assert_eq!(
        app.db
            .query_one(stamp, &[])
            .await
            .unwrap()
            .get::<_, Option<String>>(0),
        None
    );

    // Admitted but invalid: the token was still used.
    let invalid = app.post_telemetry(&token, &json!({"recorded_at": 0})).await;
    assert_eq!(invalid.status(), 422);
    let first: Option<String> = app.db.query_one(stamp, &[]).await.unwrap().get(0);
    assert!(first.is_some());

    let refused = app
        .post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        app.db
            .query_one(stamp, &[])
            .await
            .unwrap()
            .get::<_, Option<String>>(0),
        first
    );
}

#[tokio::test]
async fn recorded_at_outside_the_skew_window_is_422() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let cases = [
        (Duration::seconds(-3600 - 5), "past"),
        (Duration::seconds(300 + 5), "future"),
    ];
    for (offset, case) in cases {
        let response = app
            .post_telemetry(&token, &payload(&at(offset), &[("a1", "running")]))
            .await;
        assert_eq!(response.status(), 422, "{case}");
        let body = problem(response).await;
        assert_eq!(fields(&body), ["recorded_at"], "{case}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(case),
            "{case}: {body}"
        );
    }
    // Just inside both edges.
    for offset in [Duration::seconds(-3600 + 5), Duration::seconds(300 - 5)] {
        assert_eq!(
            app.post_telemetry(&token, &payload(&at(offset), &[]))
                .await
                .status(),
            204
        );
    }
    assert_eq!(app.written().await, (2, 0, 0));
}

#[tokio::test]
async fn recorded_at_that_is_not_a_timestamp_string_is_422() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    for bad in [
        json!(0),
        json!(false),
        json!([]),
        json!("2024-13-45T25:00:00Z"),
        json!("2024-05-01 12:00:00"),
    ] {
        let mut body = payload(&at(Duration::zero()), &[]);
        body["recorded_at"] = bad.clone();
        let response = app.post_telemetry(&token, &body).await;
        assert_eq!(response.status(), 422, "{bad}");
        assert_eq!(fields(&problem(response).await), ["recorded_at"], "{bad}");
    }
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn one_422_names_every_failing_field_the_skew_window_and_duplicates_included() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut body = payload(
        &at(Duration::hours(-2)),
        &[
            ("a1", "running"),
            ("b2", "running"),
            ("c3", "running"),
            ("d4", "running"),
        ],
    );
    body["host"]["metrics"]["cpu_percent"] = json!(100.1);
    body["host"]["facts"]["cpu_count"] = json!(2000);
    body["containers"][3]["metrics"]["cpu_percent"] = json!(-1);
    body["containers"][3]["container_id"] = json!("a1");
    body["containers"][1]["name"] = json!("x".repeat(256));
    body["containers"][2]["labels"] = json!({"k": "nul\u{0}byte"});

    let response = app.post_telemetry(&token, &body).await;

    assert_eq!(response.status(), 422);
    let problem = problem(response).await;
    assert_eq!(
        fields(&problem),
        [
            "recorded_at",
            "host.metrics.cpu_percent",
            "host.facts.cpu_count",
            "containers.1.name",
            "containers.2.labels.k",
            "containers.3.metrics.cpu_percent",
            "containers.3.container_id",
        ]
    );
    assert_eq!(
        problem["errors"][0]["message"],
        "must not be more than 1 hour in the past"
    );
    assert_eq!(app.written().await, (0, 0, 0));
    assert_eq!(
        app.count("SELECT count(*) FROM hosts WHERE status = 'pending'")
            .await,
        1
    );
}

#[tokio::test]
async fn contract_violations_are_422() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let now = at(Duration::zero());
    let container = |id: &str| json!({"container_id": id, "name": "n", "image": "i"});
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        ("missing host", json!({"recorded_at": now}), vec!["host"]),
        ("missing metrics", json!({"recorded_at": now, "host": {}}), vec!["host.metrics"]),
        ("host not an object", json!({"recorded_at": now, "host": "web"}), vec!["host"]),
        ("negative counter", json!({"recorded_at": now, "host": {"metrics": {"network_rx_bytes": -5}}}), vec!["host.metrics.network_rx_bytes"]),
        ("NaN as a string", json!({"recorded_at": now, "host": {"metrics": {"cpu_percent": "NaN"}}}), vec!["host.metrics.cpu_percent"]),
        ("beyond 64 bits", serde_json::from_str(&format!(r#"{{"recorded_at": "{now}", "host": {{"metrics": {{"disk_used_gb": 99999999999999999999}}}}}}"#)).unwrap(), vec!["host.metrics.disk_used_gb"]),
        ("containers not a list", json!({"recorded_at": now, "host": {"metrics": {}}, "containers": {"a": container("a")}}), vec!["containers"]),
        ("duplicate container id", json!({"recorded_at": now, "host": {"metrics": {}}, "containers": [container("a"), container("a")]}), vec!["containers.1.container_id"]),
        ("not an object", json!([1, 2]), vec![""]),
    ];
    for (case, body, expected) in cases {
        let response = app.post_telemetry(&token, &body).await;
        assert_eq!(response.status(), 422, "{case}");
        assert_eq!(fields(&problem(response).await), expected, "{case}");
    }
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn unknown_fields_are_ignored_so_newer_agents_keep_working() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let mut body = payload(&at(Duration::zero()), &[("a1", "running")]);
    body["agent_version"] = json!("9.9.9");
    body["host"]["metrics"]["gpu_percent"] = json!(3);
    body["containers"][0]["restart_count"] = json!(2);

    assert_eq!(app.post_telemetry(&token, &body).await.status(), 204);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let cases: [(&str, Vec<u8>); 4] = [
        ("not JSON", b"recorded_at=now".to_vec()),
        ("truncated", br#"{"recorded_at": "2024-"#.to_vec()),
        ("invalid UTF-8", b"{\"recorded_at\": \"\xff\xfe\"}".to_vec()),
        ("empty", Vec::new()),
    ];
    for (case, body) in cases {
        let response = app
            .http
            .post(app.telemetry_url())
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(problem(response).await["status"], 400, "{case}");
    }
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn deeply_nested_json_is_400_not_a_crash() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));

    let response = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = serde_json::to_vec(&payload(&at(Duration::zero()), &[])).unwrap();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .http
            .post(app.telemetry_url())
            .bearer_auth(&token)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{content_type:?}");
        assert_eq!(problem(response).await["status"], 415);
    }
    let charset = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(&token)
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        charset.status(),
        204,
        "parameters of application/json are fine"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn_with(&["--body-limit-bytes", "2048"]).await;
    let (_, token) = app.host_with_token("web-01").await;
    let big = payload(
        &at(Duration::zero()),
        &[
            ("a1", "running"),
            ("b2", "running"),
            ("c3", "running"),
            ("d4", "running"),
        ],
    );
    assert!(serde_json::to_vec(&big).unwrap().len() > 2048);

    let declared = app.post_telemetry(&token, &big).await;
    assert_eq!(declared.status(), 413);
    assert_eq!(problem(declared).await["status"], 413);

    // Without Content-Length (chunked), the limit is enforced while reading.
    let bytes = serde_json::to_vec(&big).unwrap();
    let stream = futures_util_stream(bytes);
    let chunked = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
    assert_eq!(app.written().await, (0, 0, 0));
}

fn futures_util_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn agent_responses_never_set_cookies() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let responses = [
        app.post_telemetry(&token, &payload(&at(Duration::zero()), &[]))
            .await,
        app.post_telemetry(&token, &json!({})).await,
        app.post_telemetry("nope", &json!({})).await,
    ];
    for response in responses {
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{}",
            response.status()
        );
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after() {
    // Nothing listens on port 1; the server starts anyway (no migrations) and answers 503.
    let args = crate::helpers::serve_args(
        "postgres://postgres@127.0.0.1:1/nexus",
        &["--no-migrate", "--db-timeout-seconds", "1"],
    );
    let app = nexus_telemetry::startup::Application::build(&args)
        .await
        .unwrap();
    let url = format!("http://{}/agent/telemetry", app.local_addr);
    tokio::spawn(app.run(std::future::pending()));

    let started = std::time::Instant::now();
    let response = crate::helpers::http_client()
        .post(url)
        .bearer_auth("nxa_x")
        .json(&payload(&at(Duration::zero()), &[]))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(problem(response).await["status"], 503);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no hang"
    );
}
