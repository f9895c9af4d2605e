//! Delivery against a scripted fake server: headers, gzip and its fallback, and how each answer
//! is classified.

mod support;

use std::io::Read;
use std::time::Duration;

use chrono::Utc;
use flate2::read::GzDecoder;
use nexus_agent::buffer::PendingSnapshot;
use nexus_agent::config::Secret;
use nexus_agent::sender::{Delivery, Sender};
use nexus_contract::{HostMetrics, HostPayload, TelemetryPayload};
use reqwest::Url;
use support::fake_server::{FakeServer, Reply};

fn snapshot() -> PendingSnapshot {
    PendingSnapshot::encode(&TelemetryPayload {
        recorded_at: Utc::now().fixed_offset(),
        host: HostPayload {
            metrics: HostMetrics {
                cpu_percent: Some(12.5),
                ..Default::default()
            },
            facts: None,
        },
        containers: None,
    })
    .unwrap()
}

fn sender_to(url: &str, gzip: bool) -> Sender {
    Sender::new(
        &Url::parse(url).unwrap(),
        &Secret::new("nxa_test_token"),
        gzip,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn gunzip(body: &[u8]) -> String {
    let mut json = String::new();
    GzDecoder::new(body).read_to_string(&mut json).unwrap();
    json
}

#[tokio::test]
async fn a_delivery_carries_the_token_user_agent_and_a_gzip_body() {
    let server = FakeServer::start(vec![]);
    let mut sender = sender_to(&server.url(), true);

    assert_eq!(sender.deliver(&snapshot()).await, Delivery::Stored);

    let request = &server.received()[0];
    assert_eq!(request.headers["authorization"], "Bearer nxa_test_token");
    assert_eq!(
        request.headers["user-agent"],
        format!("nexus-agent/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["content-encoding"], "gzip");
    assert!(gunzip(&request.body).contains("\"cpu_percent\":12.5"));
}

#[tokio::test]
async fn a_415_to_gzip_resends_plain_and_keeps_sending_plain() {
    let server = FakeServer::start(vec![Reply::status(415)]);
    let mut sender = sender_to(&server.url(), true);

    assert_eq!(sender.deliver(&snapshot()).await, Delivery::Stored);
    assert_eq!(sender.deliver(&snapshot()).await, Delivery::Stored);

    let received = server.received();
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[0]
            .headers
            .get("content-encoding")
            .map(String::as_str),
        Some("gzip")
    );
    for plain in &received[1..] {
        assert_eq!(plain.headers.get("content-encoding"), None);
        assert!(String::from_utf8_lossy(&plain.body).starts_with('{'));
    }
    assert!(!sender.gzip_enabled());
}

#[tokio::test]
async fn a_genuine_400_is_not_mistaken_for_missing_gzip_support() {
    let problem = r#"{"type":"about:blank","title":"Bad Request","status":400,"detail":"broken"}"#;
    let server = FakeServer::start(vec![
        Reply::status(400).problem(problem),
        Reply::status(400).problem(problem),
    ]);
    let mut sender = sender_to(&server.url(), true);

    let delivery = sender.deliver(&snapshot()).await;
    assert_eq!(
        delivery,
        Delivery::Rejected {
            status: 400,
            problem: "Bad Request: broken".into()
        }
    );
    assert!(sender.gzip_enabled());
}

#[tokio::test]
async fn a_422_is_rejected_with_the_problem_details() {
    let problem = r#"{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"the body breaks the contract","errors":[{"field":"host.metrics.cpu_percent","message":"must be at most 100"}]}"#;
    let server = FakeServer::start(vec![Reply::status(422).problem(problem)]);
    let mut sender = sender_to(&server.url(), false);

    let Delivery::Rejected { status, problem } = sender.deliver(&snapshot()).await else {
        panic!("expected a rejection");
    };
    assert_eq!(status, 422);
    assert!(
        problem.contains("host.metrics.cpu_percent: must be at most 100"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_429_says_how_long_the_server_asked_to_wait() {
    let server = FakeServer::start(vec![Reply::status(429).header("Retry-After", "7")]);
    let mut sender = sender_to(&server.url(), false);
    assert_eq!(
        sender.deliver(&snapshot()).await,
        Delivery::RateLimited(Duration::from_secs(7))
    );
}

#[tokio::test]
async fn a_401_is_unauthorized() {
    let server = FakeServer::start(vec![
        Reply::status(401).header("WWW-Authenticate", "Bearer realm=\"nexus\""),
    ]);
    let mut sender = sender_to(&server.url(), true);
    assert_eq!(sender.deliver(&snapshot()).await, Delivery::Unauthorized);
}

#[tokio::test]
async fn a_503_is_unavailable_with_its_retry_after() {
    let server = FakeServer::start(vec![Reply::status(503).header("Retry-After", "5")]);
    let mut sender = sender_to(&server.url(), false);
    let Delivery::Unavailable { retry_after, .. } = sender.deliver(&snapshot()).await else {
        panic!("expected unavailable");
    };
    assert_eq!(retry_after, Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn no_listener_is_unavailable_not_rejected() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sender = sender_to(&format!("http://127.0.0.1:{port}"), true);
    assert!(matches!(
        sender.deliver(&snapshot()).await,
        Delivery::Unavailable {
            retry_after: None,
            ..
        }
    ));
}
