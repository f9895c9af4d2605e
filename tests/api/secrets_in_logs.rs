//! Plaintext tokens never reach the server's logs, even at debug level.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{at, call, fresh_database, http_client, payload};

#[tokio::test]
async fn no_plaintext_token_appears_in_the_debug_log_of_issuing_and_using_it() {
    let database_url = fresh_database().await;
    let admin = {
        let output = Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
            .args(["admin-token", "create", "--name", "ops", "--json"])
            .env("DATABASE_URL", &database_url)
            .output()
            .unwrap();
        assert!(output.status.success());
        let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        created["token"].as_str().unwrap().to_owned()
    };
    let mut server = Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &database_url)
        .env("NEXUS_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let log = Arc::new(Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let stderr = server.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let found = log
            .lock()
            .unwrap()
            .lines()
            .filter(|line| line.contains("serving"))
            .find_map(|line| {
                let at = line.find("127.0.0.1:")?;
                let port: String = line[at + 10..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                Some(format!("http://127.0.0.1:{port}"))
            });
        if let Some(address) = found {
            break address;
        }
        assert!(
            Instant::now() < deadline,
            "the server never logged its address"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let http = http_client();

    let host = call(
        &http,
        &address,
        Method::POST,
        "/hosts",
        Some(&admin),
        Some(&json!({"name": "web"})),
    )
    .await;
    let host_id = host.body["id"].as_i64().unwrap();
    let issued = call(
        &http,
        &address,
        Method::POST,
        &format!("/hosts/{host_id}/tokens"),
        Some(&admin),
        Some(&json!({"name": "primary"})),
    )
    .await;
    assert_eq!(issued.status, 201);
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let telemetry = format!("{address}/agent/telemetry");
    let stored = http
        .post(&telemetry)
        .bearer_auth(&token)
        .json(&payload(&at(chrono::Duration::zero()), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);
    let refused = http
        .post(&telemetry)
        .bearer_auth(&token)
        .json(&json!({"recorded_at": "yesterday"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let rotated = call(
        &http,
        &address,
        Method::POST,
        &format!("/hosts/{host_id}/tokens/{}/rotate", issued.body["id"]),
        Some(&admin),
        None,
    )
    .await;
    let new_token = rotated.body["token"].as_str().unwrap().to_owned();
    let old = http
        .post(&telemetry)
        .bearer_auth(&token)
        .json(&payload(&at(chrono::Duration::zero()), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    assert!(
        !old.text().await.unwrap().contains(&token),
        "nor in error bodies"
    );
    let unknown = "nxa_an_unknown_bearer_in_a_retry_loop";
    for _ in 0..5 {
        let guess = http
            .post(&telemetry)
            .bearer_auth(unknown)
            .json(&payload(&at(chrono::Duration::zero()), &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(guess.status(), 401);
    }

    server.kill().unwrap();
    server.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap();
    assert!(
        log.lines().count() > 5 && log.contains("DEBUG"),
        "the debug log was captured:\n{log}"
    );
    for secret in [&admin, &token, &new_token, unknown] {
        assert!(
            !log.contains(secret),
            "the log holds a plaintext token:\n{log}"
        );
    }
    // Refusals are logged with address, reason and token id, once per address and reason
    // per minute: five retries of one unknown bearer make one line.
    let plain = regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(&log, "");
    let refusals: Vec<&str> = plain
        .lines()
        .filter(|line| line.contains("agent request refused"))
        .collect();
    let invalid: Vec<&&str> = refusals
        .iter()
        .filter(|l| l.contains("reason=\"invalid\""))
        .collect();
    assert_eq!(invalid.len(), 1, "{refusals:#?}");
    assert!(invalid[0].contains("address=127.0.0.1"), "{}", invalid[0]);
    let old_id = format!("token_id={}", issued.body["id"]);
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("reason=\"revoked\"") && l.contains(&old_id)),
        "the revoked token's refusal names its id: {refusals:#?}"
    );
}
