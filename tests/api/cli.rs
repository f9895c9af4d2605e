//! The binary's commands, run as an operator would run them.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{TestApp, at, payload};

fn nexus(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("the binary runs")
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[tokio::test]
async fn host_create_and_token_issue_give_a_working_token_whose_plaintext_is_not_stored() {
    let app = TestApp::spawn().await;

    let host = json_of(&nexus(
        &app.database_url,
        &["host", "create", "--name", "Web 01", "--json"],
    ));
    assert_eq!(host["status"], "pending");
    assert_eq!(host["slug"], "web-01");
    let host_id = host["id"].as_i64().expect("an id").to_string();
    let issued = json_of(&nexus(
        &app.database_url,
        &["token", "issue", "--host", &host_id, "--json"],
    ));
    let token = issued["token"].as_str().expect("the plaintext");
    assert!(token.starts_with("nxa_"));
    assert!(issued["id"].is_i64());

    assert_eq!(
        app.post_telemetry(token, &payload(&at(chrono::Duration::zero()), &[]))
            .await
            .status(),
        204
    );
    let stored = app
        .count(&format!(
            "SELECT count(*) FROM agent_tokens WHERE hashed_token = '{}'",
            nexus_telemetry::domain::token::TokenHash::of(token).as_str()
        ))
        .await;
    assert_eq!(stored, 1);
    let dump = app
        .db
        .query_one("SELECT string_agg(t::text, '') FROM agent_tokens t", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    assert!(
        !dump.contains(token),
        "the plaintext is nowhere in the table"
    );
}

#[tokio::test]
async fn a_duplicate_slug_and_an_unknown_host_fail_with_a_message() {
    let app = TestApp::spawn().await;
    json_of(&nexus(
        &app.database_url,
        &["host", "create", "--name", "web", "--json"],
    ));

    let duplicate = nexus(&app.database_url, &["host", "create", "--name", "web"]);
    let unknown = nexus(&app.database_url, &["token", "issue", "--host", "999999"]);

    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("host not found"));
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["openapi", "--help"],
        &["host", "create", "--help"],
        &["token", "issue", "--help"],
    ] {
        let output = nexus("postgres://unused", args);
        assert!(output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    let serve = String::from_utf8(nexus("postgres://unused", &["serve", "--help"]).stdout).unwrap();
    for setting in [
        "DATABASE_URL",
        "NEXUS_LISTEN",
        "NEXUS_RATE_LIMIT_PER_MINUTE",
        "NEXUS_SKEW_PAST_SECONDS",
        "NEXUS_BODY_LIMIT_BYTES",
        "NEXUS_DB_POOL_SIZE",
    ] {
        assert!(serve.contains(setting), "serve --help mentions {setting}");
    }
}

#[test]
fn openapi_prints_yaml_or_json() {
    let yaml = nexus("postgres://unused", &["openapi"]);
    let json = nexus("postgres://unused", &["openapi", "--json"]);
    assert!(String::from_utf8_lossy(&yaml.stdout).starts_with("openapi: 3"));
    let parsed: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(parsed["paths"]["/agent/telemetry"].is_object());
}
