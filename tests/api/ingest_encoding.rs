//! Compressed request bodies, and bodies that arrive too slowly.

use std::io::Write;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::helpers::{TestApp, at, payload};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post_raw(app: &TestApp, token: &str, encoding: &str, body: Vec<u8>) -> reqwest::Response {
    app.http
        .post(app.telemetry_url())
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", encoding)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_gzip_compressed_snapshot_is_stored() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = serde_json::to_vec(&payload(&at(Duration::zero()), &[("a1", "running")])).unwrap();

    let response = post_raw(&app, &token, "gzip", gzip(&body)).await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.written().await, (1, 1, 1));
}

#[tokio::test]
async fn a_gzip_bomb_is_413_quickly_without_inflating_it_all() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    // ~1 GiB of spaces compresses to about 1 MB; the default limit is 4 MiB inflated.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        encoder.write_all(&chunk).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(
        bomb.len() < 2 << 20,
        "the bomb itself is small: {}",
        bomb.len()
    );

    let started = Instant::now();
    let response = post_raw(&app, &token, "gzip", bomb).await;

    assert_eq!(response.status(), 413);
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn unknown_encodings_are_415_and_broken_gzip_is_400() {
    let app = TestApp::spawn().await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = serde_json::to_vec(&payload(&at(Duration::zero()), &[])).unwrap();

    assert_eq!(
        post_raw(&app, &token, "br", body.clone()).await.status(),
        415
    );
    assert_eq!(
        post_raw(&app, &token, "gzip", body.clone()).await.status(),
        400,
        "plain JSON declared as gzip"
    );
    let mut truncated = gzip(&body);
    truncated.truncate(truncated.len() / 2);
    assert_eq!(
        post_raw(&app, &token, "gzip", truncated).await.status(),
        400
    );
    assert_eq!(post_raw(&app, &token, "identity", body).await.status(), 204);
}

#[tokio::test]
async fn a_body_trickling_in_slower_than_the_timeout_is_408() {
    let app = TestApp::spawn_with(&["--body-timeout-seconds", "1"]).await;
    let (_, token) = app.host_with_token("web-01").await;
    let body = serde_json::to_vec(&payload(&at(Duration::zero()), &[])).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8).map(|c| Ok(c.to_vec())).collect();
    let trickle = tokio_stream::StreamExt::throttle(
        tokio_stream::iter(chunks),
        StdDuration::from_millis(200),
    );

    let started = Instant::now();
    let response = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(trickle))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 408);
    assert!(started.elapsed() < StdDuration::from_secs(5));
    assert_eq!(app.written().await, (0, 0, 0));
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_and_keep_alive_still_works() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&["--header-timeout-seconds", "1"]).await;
    let addr = app.address.trim_start_matches("http://").to_owned();

    // One header byte every 200 ms: never idle, never done.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"POST /agent/telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nxa_"
        .iter()
        .cycle()
        .take(100)
    {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(read) =
            tokio::time::timeout(StdDuration::from_millis(200), slow.read(&mut buf)).await
        {
            closed = matches!(read, Ok(0) | Err(_));
            if closed {
                break;
            }
        }
    }
    assert!(closed, "the trickling connection was closed");
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "within the header timeout: {:?}",
        started.elapsed()
    );

    // A normal keep-alive client idling longer than the header timeout between requests is fine.
    let client = crate::helpers::http_client();
    let url = format!("{}/healthz", app.address);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
}
