//! `/api/v1/alerts`: listings of what is open and of the history, one alert, acknowledging
//! (with its event in the feed) and silencing. Alerts are written with SQL here: opening and
//! resolving them is the evaluator's work, tested with it.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

/// The id of a default rule, by name.
async fn rule_id(app: &TestApp, name: &str) -> i64 {
    app.db
        .query_one("SELECT id FROM alert_rules WHERE name = $1", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// Writes an alert as the evaluator would; `resolved` alerts get a `resolved_at`.
async fn alert(app: &TestApp, rule: i64, host: i64, container: Option<&str>, state: &str) -> i64 {
    app.db
        .query_one(
            "INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                                 pending_since, started_at, resolved_at)
             SELECT $1, $2, $3, encode(sha256(convert_to(
                        $1::bigint || '/' || $2::bigint || '/' || coalesce($3::text, ''), 'UTF8')), 'hex'),
                    $4::text, 3, now() - interval '10 minutes',
                    CASE WHEN $4::text <> 'pending' THEN now() - interval '5 minutes' END,
                    CASE WHEN $4::text = 'resolved' THEN now() END
             RETURNING id",
            &[&rule, &host, &container, &state],
        )
        .await
        .unwrap()
        .get(0)
}

/// A host reporting one container (`c0ffee`, named `app-c0ffee`).
async fn host_with_container(app: &TestApp, name: &str) -> i64 {
    let (host, token) = app.host_with_token(name).await;
    let snapshot = payload(&at(Duration::minutes(-1)), &[("c0ffee", "running")]);
    assert_eq!(app.post_telemetry(&token, &snapshot).await.status(), 204);
    host
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| alert["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_listing_shows_what_is_open_by_default_and_the_history_on_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = host_with_container(&app, "web").await;
    let other = app.create_host("db").await;
    let (offline, restarting) = (
        rule_id(&app, "host offline").await,
        rule_id(&app, "container restarting").await,
    );
    let old = alert(&app, offline, host, None, "resolved").await;
    let firing = alert(&app, restarting, host, Some("c0ffee"), "firing").await;
    let pending = alert(&app, offline, other, None, "pending").await;
    let resolved = alert(&app, offline, host, None, "resolved").await;

    let list = |query: String| {
        let (app, admin) = (&app, &admin);
        async move {
            app.admin(Method::GET, &format!("/alerts{query}"), Some(admin), None)
                .await
        }
    };
    let open = list(String::new()).await;
    assert_eq!(open.status, 200);
    assert_eq!(
        ids(&open.body),
        [pending, firing],
        "open ones, newest first"
    );
    assert_eq!(
        ids(&list("?history=true".into()).await.body),
        [resolved, old]
    );
    assert_eq!(
        ids(&list("?state=firing&state=resolved".into()).await.body),
        [resolved, firing, old]
    );
    assert_eq!(
        ids(&list(format!("?rule_id={restarting}")).await.body),
        [firing]
    );
    assert_eq!(
        ids(&list(format!("?host_id={other}")).await.body),
        [pending]
    );
    assert_eq!(
        ids(&list("?container_id=c0ffee".into()).await.body),
        [firing]
    );

    let first = list("?history=true&limit=1".into()).await;
    assert_eq!(ids(&first.body), [resolved]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = list(format!("?history=true&limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&second.body), [old]);
    assert!(second.body["next_cursor"].is_null());

    let shown = open.body["items"][1].clone();
    assert_eq!(shown["rule_name"], "container restarting");
    assert_eq!(shown["kind"], "container_restarting");
    assert_eq!(shown["severity"], "warning");
    assert_eq!(shown["state"], "firing");
    assert_eq!(shown["value"], 3.0);
    assert_eq!(
        shown["subject"],
        json!({"host_id": host, "host_name": "web", "container_id": "c0ffee", "container_name": "app-c0ffee"})
    );
    assert_eq!(shown["fingerprint"].as_str().unwrap().len(), 64);
    let one = app
        .admin(
            Method::GET,
            &format!("/alerts/{firing}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(one.body, shown);

    let refused = list("?history=true&state=firing&container_id=&cursor=x".into()).await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.error_fields(),
        ["history", "container_id", "cursor"]
    );
    let missing = app
        .admin(Method::GET, "/alerts/999999", Some(&admin), None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["type"],
        "tag:nexus-telemetry,2026:problem:alert-not-found"
    );
}

#[tokio::test]
async fn acknowledging_an_alert_writes_one_event_in_the_feed() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = host_with_container(&app, "web").await;
    let rule = rule_id(&app, "container restarting").await;
    let firing = alert(&app, rule, host, Some("c0ffee"), "firing").await;
    let path = format!("/alerts/{firing}/acknowledge");

    let acknowledged = app.admin(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(acknowledged.status, 200, "{}", acknowledged.body);
    let token: i64 = app
        .db
        .query_one("SELECT max(id) FROM admin_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        acknowledged.body["acknowledged_by"],
        format!("test (admin token {token})")
    );
    let at = acknowledged.body["acknowledged_at"].clone();
    assert!(at.is_string());
    let again = app.admin(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["acknowledged_at"], at,
        "the first acknowledgement stays"
    );

    let feed = app
        .admin(
            Method::GET,
            "/events?kind=alert_acknowledged",
            Some(&admin),
            None,
        )
        .await;
    let events = feed.body["items"].as_array().unwrap();
    assert_eq!(
        events.len(),
        1,
        "one event, however often it is acknowledged"
    );
    let event = &events[0];
    assert_eq!(
        (
            &event["alert_id"],
            &event["host_id"],
            &event["container_id"]
        ),
        (&json!(firing), &json!(host), &json!("c0ffee"))
    );
    assert_eq!(
        (&event["from_value"], &event["to_value"]),
        (&json!("firing"), &json!("firing"))
    );
}

#[tokio::test]
async fn a_resolved_alert_cannot_be_acknowledged_or_silenced() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;
    let resolved = alert(
        &app,
        rule_id(&app, "host offline").await,
        host,
        None,
        "resolved",
    )
    .await;
    for (action, body) in [
        ("acknowledge", None),
        ("silence", Some(json!({"until": at(Duration::hours(1))}))),
    ] {
        let refused = app
            .admin(
                Method::POST,
                &format!("/alerts/{resolved}/{action}"),
                Some(&admin),
                body.as_ref(),
            )
            .await;
        assert_eq!(refused.status, 409, "{action}");
        assert_eq!(
            refused.body["type"],
            "tag:nexus-telemetry,2026:problem:alert-resolved"
        );
        let missing = app
            .admin(
                Method::POST,
                &format!("/alerts/999999/{action}"),
                Some(&admin),
                body.as_ref(),
            )
            .await;
        assert_eq!(missing.status, 404, "{action}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE alert_id IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_silence_is_set_until_a_future_time_and_cleared_by_a_past_one_or_null() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;
    let pending = alert(
        &app,
        rule_id(&app, "host offline").await,
        host,
        None,
        "pending",
    )
    .await;
    let path = format!("/alerts/{pending}/silence");
    let silence = |body: Value| {
        let (app, admin, path) = (&app, &admin, &path);
        async move {
            app.admin(Method::POST, path, Some(admin), Some(&body))
                .await
        }
    };
    let until = "2099-01-01T00:00:00Z";
    let set = silence(json!({"until": until})).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["silenced_until"], "2099-01-01T00:00:00+00:00");
    let cleared = silence(json!({"until": at(Duration::minutes(-1))})).await;
    assert_eq!(
        cleared.body["silenced_until"],
        Value::Null,
        "a past time clears it"
    );
    silence(json!({"until": until})).await;
    assert_eq!(
        silence(json!({"until": null})).await.body["silenced_until"],
        Value::Null
    );
    let refused = silence(json!({"until": "tomorrow"})).await;
    assert_eq!(
        (refused.status, refused.error_fields()),
        (422, vec!["until".to_owned()])
    );
}
