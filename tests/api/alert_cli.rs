//! The operator commands `alert-rule list|show|create|update|delete` and
//! `alert list|show|ack|silence`, run as an operator would run them, against the API's view.

use std::process::{Command, Output};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn nexus(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(args)
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("the binary runs")
}

fn json(app: &TestApp, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = nexus(app, &args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document on stdout")
}

#[tokio::test]
async fn the_cli_creates_a_rule_the_api_lists() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let web = app.create_host("web").await.to_string();
    let created = json(
        &app,
        &[
            "alert-rule",
            "create",
            "--name",
            "hot cpu",
            "--kind",
            "metric_threshold",
            "--metric",
            "host_cpu_percent",
            "--operator",
            ">=",
            "--threshold",
            "95",
            "--for-seconds",
            "300",
            "--severity",
            "critical",
            "--host-id",
            &web,
            "--host-label",
            "env=prod",
            "--summary",
            "CPU pegged",
        ],
    );
    let id = created["id"].as_i64().unwrap();
    let shown = app
        .admin(
            Method::GET,
            &format!("/alert-rules/{id}"),
            Some(&admin),
            None,
        )
        .await;
    let without_times = |rule: &Value| {
        let mut rule = rule.clone();
        for time in ["created_at", "updated_at"] {
            assert!(rule[time].is_string(), "{time}");
            rule.as_object_mut().unwrap().remove(time);
        }
        rule
    };
    assert_eq!(
        without_times(&shown.body),
        without_times(&created),
        "the CLI prints the API's shape"
    );
    assert_eq!(shown.body["operator"], "ge");
    assert_eq!(shown.body["host_ids"], json!([web.parse::<i64>().unwrap()]));
    assert_eq!(shown.body["host_labels"], json!({"env": "prod"}));

    let updated = json(
        &app,
        &[
            "alert-rule",
            "update",
            &id.to_string(),
            "--kind",
            "container_restarting",
            "--restarts",
            "4",
            "--window-seconds",
            "120",
            "--all-hosts",
        ],
    );
    assert_eq!(updated["kind"], "container_restarting");
    assert_eq!(
        updated["metric"],
        Value::Null,
        "the old kind's parameters went with it"
    );
    assert_eq!(
        updated["severity"], "critical",
        "flags not given stay as they are"
    );
    assert_eq!(updated["host_ids"], Value::Null);

    let page = json(&app, &["alert-rule", "list", "--limit", "10"]);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.last(), Some(&"hot cpu"));
    assert_eq!(names.len(), 5);

    let deleted = nexus(&app, &["alert-rule", "delete", &id.to_string()]);
    assert!(deleted.status.success());
    let gone = app
        .admin(
            Method::GET,
            &format!("/alert-rules/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn the_cli_refuses_a_rule_naming_each_field_as_the_api_does() {
    let app = TestApp::spawn().await;
    let refused = nexus(
        &app,
        &[
            "alert-rule",
            "create",
            "--name",
            "x",
            "--kind",
            "host_offline",
            "--restarts",
            "0",
            "--threshold",
            "3",
            "--for-seconds",
            "-1",
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for line in [
        "  for_seconds: must be at least 0",
        "  restarts: must be at least 1",
        "  threshold: does not apply to kind `host_offline` (only to `metric_threshold`)",
    ] {
        assert!(stderr.contains(line), "{line:?} in:\n{stderr}");
    }
    let taken = nexus(
        &app,
        &[
            "alert-rule",
            "create",
            "--name",
            "host offline",
            "--kind",
            "host_offline",
        ],
    );
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    assert_eq!(app.count("SELECT count(*) FROM alert_rules").await, 4);
}

#[tokio::test]
async fn the_cli_lists_acknowledges_and_silences_alerts() {
    let app = TestApp::spawn().await;
    let host = app.create_host("web").await;
    let id: i64 = app
        .db
        .query_one(
            "INSERT INTO alerts (rule_id, host_id, fingerprint, state, pending_since, started_at)
             SELECT id, $1, 'f', 'firing', now(), now() FROM alert_rules WHERE name = 'host offline'
             RETURNING id",
            &[&host],
        )
        .await
        .unwrap()
        .get(0);
    let page = json(&app, &["alert", "list"]);
    assert_eq!(page["items"][0]["id"], id);
    assert_eq!(page["items"][0]["subject"]["host_name"], "web");
    assert_eq!(
        json(&app, &["alert", "list", "--history"])["items"],
        json!([])
    );

    let acked = json(&app, &["alert", "ack", &id.to_string(), "--by", "alice"]);
    assert_eq!(acked["acknowledged_by"], "alice");
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE kind = 'alert_acknowledged'")
            .await,
        1
    );
    let silenced = json(
        &app,
        &[
            "alert",
            "silence",
            &id.to_string(),
            "--until",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert_eq!(silenced["silenced_until"], "2099-01-01T00:00:00Z");
    let cleared = json(&app, &["alert", "silence", &id.to_string()]);
    assert_eq!(cleared["silenced_until"], Value::Null);

    let table = nexus(&app, &["alert", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("host offline") && text.contains("firing"),
        "{text}"
    );
}
