//! `/api/v1/alert-rules`: the defaults a fresh install has, creating, showing, replacing and
//! deleting rules, and the 422s, 404s and 409s, each named by field.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp};

async fn rules(
    app: &TestApp,
    admin: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    app.admin(method, &format!("/alert-rules{path}"), Some(admin), body)
        .await
}

fn restarting(name: &str) -> Value {
    json!({
        "name": name, "kind": "container_restarting", "restarts": 5, "window_seconds": 300,
        "for_seconds": 30, "severity": "critical", "summary": "Crash loop",
        "host_labels": {"env": "prod"}
    })
}

#[tokio::test]
async fn the_fresh_install_has_the_four_default_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let page = rules(&app, &admin, Method::GET, "", None).await;
    assert_eq!(page.status, 200);
    let items = page.body["items"].as_array().unwrap();
    let summary: Vec<(&str, &str, i64)> = items
        .iter()
        .map(|rule| {
            (
                rule["name"].as_str().unwrap(),
                rule["kind"].as_str().unwrap(),
                rule["for_seconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("host offline", "host_offline", 0),
            ("container not running", "container_not_running", 120),
            ("container restarting", "container_restarting", 0),
            ("disk almost full", "metric_threshold", 600),
        ]
    );
    assert_eq!(items[1]["ignore_exit_code_zero"], true);
    assert_eq!(
        (&items[2]["restarts"], &items[2]["window_seconds"]),
        (&json!(3), &json!(600))
    );
    assert_eq!(
        (
            &items[3]["metric"],
            &items[3]["operator"],
            &items[3]["threshold"]
        ),
        (&json!("host_disk_used_percent"), &json!("gt"), &json!(90.0))
    );
    assert_eq!(
        items[0]["ignore_exit_code_zero"],
        Value::Null,
        "only for its kind"
    );
    assert!(page.body["next_cursor"].is_null());

    let first = rules(&app, &admin, Method::GET, "?limit=3", None).await;
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let rest = rules(
        &app,
        &admin,
        Method::GET,
        &format!("?limit=3&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest.body["items"][0]["name"], "disk almost full");
}

#[tokio::test]
async fn a_rule_is_created_shown_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = rules(&app, &admin, Method::POST, "", Some(&restarting("loops"))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/api/v1/alert-rules/{id}")
    );
    assert_eq!(created.body["severity"], "critical");
    assert_eq!(created.body["host_labels"], json!({"env": "prod"}));
    assert_eq!(created.body["host_ids"], Value::Null);
    assert_eq!(created.body["enabled"], true);

    let shown = rules(&app, &admin, Method::GET, &format!("/{id}"), None).await;
    assert_eq!(shown.body, created.body);

    let replacement = json!({"name": "loops", "kind": "metric_threshold",
        "metric": "container_memory_percent", "operator": "ge", "threshold": 95.5,
        "host_ids": [app.create_host("web").await], "enabled": false});
    let replaced = rules(
        &app,
        &admin,
        Method::PUT,
        &format!("/{id}"),
        Some(&replacement),
    )
    .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["kind"], "metric_threshold");
    assert_eq!(
        replaced.body["restarts"],
        Value::Null,
        "a replacement drops the old kind's parameters"
    );
    assert_eq!(
        replaced.body["severity"], "warning",
        "fields left out take their defaults"
    );
    assert_eq!(replaced.body["host_labels"], Value::Null);
    assert_eq!(replaced.body["enabled"], false);

    let deleted = rules(&app, &admin, Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(deleted.status, 204);
    for method in [Method::GET, Method::DELETE] {
        let gone = rules(&app, &admin, method, &format!("/{id}"), None).await;
        assert_eq!(gone.status, 404);
        assert_eq!(
            gone.body["type"],
            "tag:nexus-telemetry,2026:problem:alert-rule-not-found"
        );
    }
    let gone = rules(
        &app,
        &admin,
        Method::PUT,
        &format!("/{id}"),
        Some(&restarting("x")),
    )
    .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_rule_with_parameters_of_another_kind_is_refused_naming_each_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let cases = [
        (
            json!({"name": "x", "kind": "host_offline", "restarts": 3, "threshold": 1,
                   "ignore_exit_code_zero": true}),
            vec!["ignore_exit_code_zero", "restarts", "threshold"],
            "parameters of other kinds are refused by name",
        ),
        (
            json!({"name": "x", "kind": "container_restarting"}),
            vec!["restarts", "window_seconds"],
            "a kind's required parameters are named",
        ),
        (
            json!({"name": "", "kind": "metric_threshold", "metric": "host_disk_free",
                   "operator": "!=", "threshold": "high", "severity": "loud",
                   "for_seconds": -5, "host_ids": [0], "summary": "x".repeat(1001)}),
            // In the schema's order: closed sets are schema enumerations, checked with the rest.
            vec![
                "name",
                "host_ids.0",
                "for_seconds",
                "severity",
                "summary",
                "metric",
                "operator",
                "threshold",
            ],
            "bounds, types and closed sets together",
        ),
        (
            json!({"kind": "nope"}),
            vec!["name", "kind"],
            "a missing name and an unknown kind",
        ),
    ];
    for (body, fields, why) in cases {
        for (method, path) in [
            (Method::POST, String::new()),
            (Method::PUT, "/1".to_owned()),
        ] {
            let refused = rules(&app, &admin, method.clone(), &path, Some(&body)).await;
            assert_eq!(refused.status, 422, "{why} ({method}): {}", refused.body);
            assert_eq!(
                refused.body["type"],
                "tag:nexus-telemetry,2026:problem:validation"
            );
            assert_eq!(refused.error_fields(), fields, "{why} ({method})");
        }
    }
    let refused = rules(
        &app,
        &admin,
        Method::POST,
        "",
        Some(&json!({"name": "x", "kind": "host_offline", "restarts": 3})),
    )
    .await;
    assert_eq!(
        refused.body["errors"][0]["message"],
        "does not apply to kind `host_offline` (only to `container_restarting`)"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM alert_rules").await,
        4,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_duplicate_rule_name_is_a_conflict() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let taken = rules(
        &app,
        &admin,
        Method::POST,
        "",
        Some(&restarting("host offline")),
    )
    .await;
    assert_eq!(taken.status, 409);
    assert_eq!(
        taken.body["type"],
        "tag:nexus-telemetry,2026:problem:rule-name-taken"
    );
    let mine = rules(&app, &admin, Method::POST, "", Some(&restarting("mine"))).await;
    let id = mine.body["id"].as_i64().unwrap();
    let renamed = rules(
        &app,
        &admin,
        Method::PUT,
        &format!("/{id}"),
        Some(&restarting("host offline")),
    )
    .await;
    assert_eq!(renamed.status, 409);
    let kept = rules(
        &app,
        &admin,
        Method::PUT,
        &format!("/{id}"),
        Some(&restarting("mine")),
    )
    .await;
    assert_eq!(kept.status, 200, "its own name is not a conflict");
}

#[tokio::test]
async fn the_rule_operations_refuse_a_missing_token_and_a_malformed_id_or_cursor() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let anonymous = app.admin(Method::GET, "/alert-rules", None, None).await;
    assert_eq!(anonymous.status, 401);
    let bad_id = rules(&app, &admin, Method::GET, "/abc", None).await;
    assert_eq!(
        (bad_id.status, bad_id.error_fields()),
        (422, vec!["alert_rule_id".to_owned()])
    );
    let bad_cursor = rules(&app, &admin, Method::GET, "?cursor=zz", None).await;
    assert_eq!(
        (bad_cursor.status, bad_cursor.error_fields()),
        (422, vec!["cursor".to_owned()])
    );
}
