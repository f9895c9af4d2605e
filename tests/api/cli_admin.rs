//! The operator commands `host list|show|update|archive`, `token list|rotate|revoke` and
//! `admin-token create|list|revoke`, run as an operator would run them.

use std::process::{Command, Output};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, at, payload};

fn nexus(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("the binary runs")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&nexus(app, &args))).expect("one JSON document on stdout")
}

fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "the command should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn host_commands_create_list_show_update_and_archive() {
    let app = TestApp::spawn().await;
    let web = json(
        &app,
        &["host", "create", "--name", "Web", "--label", "env=prod"],
    );
    let db = json(
        &app,
        &["host", "create", "--name", "DB", "--label", "env=dev"],
    );
    let (web_id, db_id) = (web["id"].to_string(), db["id"].to_string());
    assert_eq!(web["labels"]["env"], "prod");

    let page = json(&app, &["host", "list", "--label", "env:prod"]);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], web["id"]);
    assert!(page["next_cursor"].is_null());
    let first = json(&app, &["host", "list", "--limit", "1"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = json(&app, &["host", "list", "--limit", "1", "--cursor", cursor]);
    assert_eq!(second["items"][0]["id"], db["id"]);
    let table = ok(&nexus(&app, &["host", "list"]));
    assert!(table.starts_with("ID"), "a table with a header:\n{table}");
    assert!(table.contains("web") && table.contains("env=prod"));

    let shown = json(&app, &["host", "show", &web_id]);
    assert_eq!(shown, web);
    let text = ok(&nexus(&app, &["host", "show", &web_id]));
    assert!(text.contains("status") && text.contains("pending"));

    let updated = json(
        &app,
        &[
            "host",
            "update",
            &db_id,
            "--name",
            "Primary DB",
            "--label",
            "tier=db",
        ],
    );
    assert_eq!(updated["name"], "Primary DB");
    assert_eq!(updated["labels"], serde_json::json!({"tier": "db"}));
    let cleared = json(&app, &["host", "update", &db_id, "--clear-labels"]);
    assert_eq!(cleared["labels"], serde_json::json!({}));

    let archived = json(&app, &["host", "archive", &db_id]);
    let again = json(&app, &["host", "archive", &db_id]);
    assert_eq!(archived["status"], "archived");
    assert_eq!(again["archived_at"], archived["archived_at"]);
    let listed = json(&app, &["host", "list", "--status", "archived"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn host_commands_report_bad_input_and_unknown_hosts() {
    let app = TestApp::spawn().await;
    let long = "x".repeat(256);

    let bad_slug = failure(&nexus(
        &app,
        &["host", "create", "--name", "a", "--slug", "A B"],
    ));
    let bad_label = failure(&nexus(
        &app,
        &["host", "create", "--name", "a", "--label", "x"],
    ));
    let long_value = format!("k={long}");
    let long_label = failure(&nexus(
        &app,
        &["host", "create", "--name", "a", "--label", &long_value],
    ));
    let unknown = failure(&nexus(&app, &["host", "show", "999999"]));
    let bad_filter = failure(&nexus(&app, &["host", "list", "--label", "nocolon"]));
    let bad_status = failure(&nexus(&app, &["host", "list", "--status", "sleeping"]));

    assert!(bad_slug.contains("slug"), "{bad_slug}");
    assert!(bad_label.contains("KEY=VALUE"), "{bad_label}");
    assert!(long_label.contains("labels.k"), "{long_label}");
    assert!(unknown.contains("host not found"), "{unknown}");
    assert!(bad_filter.contains("label"), "{bad_filter}");
    assert!(bad_status.contains("sleeping"), "{bad_status}");
    assert_eq!(app.count("SELECT count(*) FROM hosts").await, 0);
}

#[tokio::test]
async fn token_commands_list_rotate_and_revoke() {
    let app = TestApp::spawn().await;
    let host = json(&app, &["host", "create", "--name", "web"]);
    let host_id = host["id"].to_string();
    let issued = json(
        &app,
        &["token", "issue", "--host", &host_id, "--name", "primary"],
    );
    let old = issued["token"].as_str().unwrap().to_owned();
    let now = || payload(&at(chrono::Duration::zero()), &[]);
    assert_eq!(app.post_telemetry(&old, &now()).await.status(), 204);

    let rotated = json(
        &app,
        &[
            "token",
            "rotate",
            "--host",
            &host_id,
            "--token",
            &issued["id"].to_string(),
        ],
    );
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(rotated["name"], "primary");
    assert_eq!(app.post_telemetry(&old, &now()).await.status(), 401);
    assert_eq!(
        app.post_telemetry(&new, &payload(&at(chrono::Duration::seconds(-1)), &[]))
            .await
            .status(),
        204
    );
    let plain = ok(&nexus(
        &app,
        &[
            "token",
            "rotate",
            "--host",
            &host_id,
            "--token",
            &rotated["id"].to_string(),
        ],
    ));
    let newest = plain.trim();
    assert!(
        newest.starts_with("nxa_"),
        "the plaintext alone on stdout: {plain}"
    );

    let listed = json(&app, &["token", "list", "--host", &host_id]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let text = listed.to_string();
    for secret in [&old, &new, &newest.to_owned()] {
        assert!(!text.contains(secret.as_str()));
    }
    assert!(!text.contains("hash"));
    let table = ok(&nexus(&app, &["token", "list", "--host", &host_id]));
    assert!(
        table.starts_with("ID") && !table.contains("nxa_"),
        "{table}"
    );

    let newest_id = app
        .count("SELECT max(id) FROM agent_tokens")
        .await
        .to_string();
    let revoked = json(
        &app,
        &["token", "revoke", "--host", &host_id, "--token", &newest_id],
    );
    let again = json(
        &app,
        &["token", "revoke", "--host", &host_id, "--token", &newest_id],
    );
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    assert_eq!(app.post_telemetry(newest, &now()).await.status(), 401);

    let other = json(&app, &["host", "create", "--name", "other"])["id"].to_string();
    let mismatch = failure(&nexus(
        &app,
        &[
            "token",
            "revoke",
            "--host",
            &other,
            "--token",
            &issued["id"].to_string(),
        ],
    ));
    assert!(mismatch.contains("token not found"), "{mismatch}");
}

#[tokio::test]
async fn token_issue_bind_fingerprint_binds_on_first_use_and_the_listing_shows_it() {
    let app = TestApp::spawn().await;
    let host_id = json(&app, &["host", "create", "--name", "web"])["id"].to_string();
    let issued = json(
        &app,
        &["token", "issue", "--host", &host_id, "--bind-fingerprint"],
    );
    assert_eq!(issued["bind_fingerprint"], true);
    let binding = || {
        let table = ok(&nexus(&app, &["token", "list", "--host", &host_id]));
        table.lines().nth(1).unwrap_or_default().to_owned()
    };
    assert!(binding().ends_with("binds on first use"), "{}", binding());

    let token = issued["token"].as_str().unwrap();
    let now = payload(&at(chrono::Duration::zero()), &[]);
    assert_eq!(app.post_telemetry(token, &now).await.status(), 204);

    assert!(binding().ends_with("bound"), "{}", binding());
    let listed = json(&app, &["token", "list", "--host", &host_id]);
    assert_eq!(listed[0]["fingerprint_bound"], true);
}

#[tokio::test]
async fn admin_token_commands_create_list_and_revoke_working_credentials() {
    let app = TestApp::spawn().await;
    let created = json(&app, &["admin-token", "create", "--name", "ci"]);
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("nxk_") && token.len() == 68);
    let plain = ok(&nexus(&app, &["admin-token", "create", "--name", "ops"]));
    assert!(plain.trim().starts_with("nxk_"));
    assert_eq!(
        app.admin(Method::GET, "/hosts", Some(&token), None)
            .await
            .status,
        200
    );

    let listed = json(&app, &["admin-token", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed[0]["last_used_at"].is_string(), "stamped on use");
    assert!(!listed.to_string().contains(&token));
    assert!(!listed.to_string().contains("hash"));
    let table = ok(&nexus(&app, &["admin-token", "list"]));
    assert!(table.contains("ci") && table.contains("ops") && !table.contains("nxk_"));

    let revoked = json(&app, &["admin-token", "revoke", &created["id"].to_string()]);
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        app.admin(Method::GET, "/hosts", Some(&token), None)
            .await
            .status,
        401
    );
    let unknown = failure(&nexus(&app, &["admin-token", "revoke", "999999"]));
    assert!(unknown.contains("admin token not found"), "{unknown}");
    let empty = failure(&nexus(&app, &["admin-token", "create", "--name", ""]));
    assert!(empty.contains("name"), "{empty}");
}

#[test]
fn every_admin_command_has_help() {
    for args in [
        &["host", "list", "--help"][..],
        &["host", "show", "--help"],
        &["host", "update", "--help"],
        &["host", "archive", "--help"],
        &["token", "list", "--help"],
        &["token", "rotate", "--help"],
        &["token", "revoke", "--help"],
        &["admin-token", "create", "--help"],
        &["admin-token", "list", "--help"],
        &["admin-token", "revoke", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
            .args(args)
            .env("DATABASE_URL", "postgres://unused")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("Usage:") && help.contains("--json"),
            "{args:?}"
        );
    }
}
