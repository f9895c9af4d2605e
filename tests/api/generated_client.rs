//! A client generated from the committed document (progenitor, crate `clients/rust`) drives the
//! real server through an integrator's whole day: register a host, issue a token, push a
//! snapshot, read a typed 422, rotate and revoke the token, page through hosts and read
//! metrics. Every body is the generated types' own; nothing here decodes by hand.

use chrono::{Duration, Utc};
use nexus_client::{Client, Error, types};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::helpers::TestApp;

fn client(address: &str, bearer: &str) -> Client {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {bearer}")).unwrap();
    headers.insert(AUTHORIZATION, value);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    Client::new_with_client(address, http)
}

/// The problem of a refused call, as the generated client types it.
fn problem<T: std::fmt::Debug>(result: Result<T, Error<types::Problem>>) -> types::Problem {
    match result {
        Err(Error::ErrorResponse(answer)) => answer.into_inner(),
        other => panic!("expected a documented error answer, got {other:?}"),
    }
}

fn snapshot(cpu_percent: f64) -> types::TelemetryPayload {
    types::TelemetryPayload {
        recorded_at: Utc::now(),
        host: types::HostPayload {
            metrics: types::HostMetrics {
                cpu_percent: Some(cpu_percent),
                memory_used_mb: Some(2048),
                memory_total_mb: Some(8192),
                ..Default::default()
            },
            facts: Some(types::HostFacts {
                cpu_count: std::num::NonZeroU32::new(4),
                ..Default::default()
            }),
        },
        containers: Some(Vec::new()),
    }
}

#[tokio::test]
async fn a_generated_client_does_an_integrators_round_trip_without_workarounds() {
    let app = TestApp::spawn().await;
    let admin = client(&app.address, &app.admin_token().await);

    let host = admin
        .create_host()
        .body_map(|body| body.name("web-01"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(host.status, types::HostStatus::Pending);
    assert_eq!(host.last_seen_at, None);

    let issued = admin
        .issue_host_token()
        .host_id(host.id)
        .body_map(|body| body.name("agent"))
        .send()
        .await
        .unwrap()
        .into_inner();
    let agent = client(&app.address, &issued.token);

    let stored = agent
        .push_telemetry()
        .body(snapshot(12.5))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);

    let refused = problem(agent.push_telemetry().body(snapshot(250.0)).send().await);
    assert_eq!(refused.status, 422);
    assert_eq!(refused.type_, "tag:nexus-telemetry,2026:problem:validation");
    assert_eq!(refused.errors[0].field, "host.metrics.cpu_percent");

    let rotated = admin
        .rotate_host_token()
        .host_id(host.id)
        .token_id(issued.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    let old = problem(agent.push_telemetry().body(snapshot(1.0)).send().await);
    assert_eq!(old.type_, "tag:nexus-telemetry,2026:problem:unauthorized");
    let revoked = admin
        .revoke_host_token()
        .host_id(host.id)
        .token_id(rotated.id)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let tokens = admin
        .list_host_tokens()
        .host_id(host.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|token| token.revoked_at.is_some()));
    assert!(
        tokens[0].last_used_at.is_some(),
        "the pushing token was used"
    );

    for name in ["web-02", "web-03", "web-04", "web-05"] {
        admin
            .create_host()
            .body_map(|body| body.name(name))
            .send()
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let mut request = admin.list_hosts().limit(2);
        if let Some(cursor) = cursor.take() {
            request = request.cursor(cursor);
        }
        let page = request.send().await.unwrap().into_inner();
        seen.extend(page.items.iter().map(|host| host.name.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["web-01", "web-02", "web-03", "web-04", "web-05"]);

    let series = admin
        .get_host_metrics()
        .host_id(host.id)
        .since(Utc::now() - Duration::hours(1))
        .until(Utc::now() + Duration::minutes(1))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(series.points.len(), 1);
    assert_eq!(series.points[0].cpu_percent.avg, Some(12.5));
    assert_eq!(series.points[0].load_average.avg, None, "never reported");

    let missing = problem(admin.get_host().host_id(999_999).send().await);
    assert_eq!(
        missing.type_,
        "tag:nexus-telemetry,2026:problem:host-not-found"
    );
}
