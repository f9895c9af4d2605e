//! Who gets in at `POST /agent/telemetry`, and what a refusal costs: failed authentications never
//! refuse a valid token, a revoked or unknown token always gets 401 (never 429), an unknown
//! bearer beyond its address's budget costs no query, archived hosts are refused by either mark,
//! fingerprint-bound tokens refuse other clients, and every refusal is counted by reason.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, http_client_builder, payload};

/// A client whose requests come from `ip` (any 127.x address works on loopback).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    http_client_builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

fn snapshot(seconds_ago: i64) -> Value {
    payload(&at(Duration::seconds(-seconds_ago)), &[])
}

async fn post(app: &TestApp, client: &reqwest::Client, token: &str, seconds_ago: i64) -> u16 {
    client
        .post(app.telemetry_url())
        .bearer_auth(token)
        .json(&snapshot(seconds_ago))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn token_id(app: &TestApp, host: i64) -> i64 {
    app.db
        .query_one(
            "SELECT id FROM agent_tokens WHERE host_id = $1 ORDER BY id DESC LIMIT 1",
            &[&host],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_valid_token_behind_an_address_with_40_failures_is_admitted_and_a_revoked_one_gets_401() {
    let app = TestApp::spawn().await;
    let (_, valid) = app.host_with_token("web-01").await;
    let (revoked_host, revoked) = app.host_with_token("web-02").await;
    app.db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&revoked_host],
        )
        .await
        .unwrap();
    let nat = client_from([127, 0, 0, 1]);

    for guess in 0..40 {
        assert_eq!(
            post(&app, &nat, &format!("nxa_broken{guess}"), 0).await,
            401,
            "failure {guess} is a 401, never a 429"
        );
    }

    assert_eq!(post(&app, &nat, &valid, 0).await, 204);
    assert_eq!(post(&app, &nat, &revoked, 0).await, 401);
    assert_eq!(
        post(&app, &nat, "nxa_broken0", 1).await,
        401,
        "an unknown token is still told to stop"
    );
    assert_eq!(app.written().await.0, 1);
}

#[tokio::test]
async fn unknown_and_revoked_bearers_are_answered_from_memory_without_a_query() {
    let app = TestApp::spawn_with(&["--auth-failures-per-minute", "3"]).await;
    let (revoked_host, revoked) = app.host_with_token("web-01").await;
    app.db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&revoked_host],
        )
        .await
        .unwrap();
    let flood = client_from([127, 0, 0, 3]);
    for guess in 0..3 {
        assert_eq!(post(&app, &flood, &format!("nxa_g{guess}"), 0).await, 401);
    }
    // Past the budget no bearer may cost a query: with the token table out of reach, a
    // query would fail (500), while answers from memory are still 401s.
    app.db
        .batch_execute("ALTER TABLE agent_tokens RENAME TO agent_tokens_away")
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for guess in 3..53 {
        statuses.push(post(&app, &flood, &format!("nxa_g{guess}"), 0).await);
    }
    statuses.push(post(&app, &flood, &revoked, 0).await);
    app.db
        .batch_execute("ALTER TABLE agent_tokens_away RENAME TO agent_tokens")
        .await
        .unwrap();

    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
}

#[tokio::test]
async fn a_flood_from_many_addresses_costs_no_query_past_the_shared_budget() {
    let app = TestApp::spawn_with(&["--auth-failure-lookups-per-minute", "4"]).await;
    let (_, valid) = app.host_with_token("web-01").await;
    for ip in [[127, 0, 0, 5], [127, 0, 0, 6]] {
        for guess in 0..2 {
            let status = post(&app, &client_from(ip), &format!("nxa_f{guess}"), 0).await;
            assert_eq!(status, 401);
        }
    }
    app.db
        .batch_execute("ALTER TABLE agent_tokens RENAME TO agent_tokens_away")
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for last in 7..27 {
        statuses.push(post(&app, &client_from([127, 0, 0, last]), "nxa_flood", 0).await);
    }
    app.db
        .batch_execute("ALTER TABLE agent_tokens_away RENAME TO agent_tokens")
        .await
        .unwrap();

    assert!(statuses.iter().all(|&s| s == 401), "{statuses:?}");
    assert_eq!(
        post(&app, &client_from([127, 0, 0, 5]), &valid, 0).await,
        204,
        "valid tokens are still admitted"
    );
}

#[tokio::test]
async fn a_token_issued_through_another_process_is_admitted_at_once() {
    let app = TestApp::spawn().await;
    for n in 0..5 {
        let (_, token) = app.host_with_token(&format!("new-{n}")).await;
        assert_eq!(
            post(&app, &app.http, &token, 0).await,
            204,
            "token {n}, milliseconds old"
        );
    }
}

#[tokio::test]
async fn archived_at_alone_archives_the_host_and_refuses_its_tokens() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    assert_eq!(post(&app, &app.http, &token, 1).await, 204);

    app.db
        .execute(
            "UPDATE hosts SET archived_at = now() WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();

    assert_eq!(post(&app, &app.http, &token, 0).await, 401);
    assert_eq!(app.host_status(host).await, "archived");
    let unarchive = app
        .db
        .execute(
            "UPDATE hosts SET status = 'online', archived_at = NULL WHERE id = $1",
            &[&host],
        )
        .await
        .unwrap();
    assert_eq!(unarchive, 1);
    assert_eq!(
        app.host_status(host).await,
        "archived",
        "archiving is for good"
    );
    assert_eq!(post(&app, &app.http, &token, 2).await, 401);
}

#[tokio::test]
async fn the_database_keeps_status_and_archived_at_in_agreement() {
    let app = TestApp::spawn().await;
    let host = app.create_host("web-01").await;
    app.db
        .batch_execute(
            "ALTER TABLE hosts DISABLE TRIGGER hosts_archive_marks; \
             ALTER TABLE hosts DISABLE TRIGGER hosts_archive_marks_insert",
        )
        .await
        .unwrap();
    for sql in [
        "UPDATE hosts SET archived_at = now() WHERE id = $1",
        "UPDATE hosts SET status = 'archived' WHERE id = $1",
    ] {
        let error = app.db.execute(sql, &[&host]).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
            "{sql}: {error}"
        );
    }
}

#[tokio::test]
async fn a_fingerprint_bound_token_refuses_a_different_user_agent() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web-01").await;
    let issued = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            Some(&json!({"name": "bound", "bind_fingerprint": true})),
        )
        .await;
    assert_eq!(issued.status, 201);
    assert_eq!(issued.body["bind_fingerprint"], true);
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let post_as = |user_agent: &'static str, seconds_ago: i64| {
        app.http
            .post(app.telemetry_url())
            .bearer_auth(&token)
            .header("User-Agent", user_agent)
            .json(&snapshot(seconds_ago))
            .send()
    };

    assert_eq!(post_as("nexus-agent/1.0", 0).await.unwrap().status(), 204);
    assert_eq!(post_as("curl/8.11", 1).await.unwrap().status(), 401);
    assert_eq!(post_as("nexus-agent/1.0", 2).await.unwrap().status(), 204);

    let listed = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(listed.body[0]["bind_fingerprint"], true);
    assert_eq!(listed.body[0]["fingerprint_bound"], true);
    let rotated = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens/{}/rotate", token_id(&app, host).await),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, 201);
    let listed = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        listed.body[1]["bind_fingerprint"], true,
        "rotation keeps the option"
    );
    assert_eq!(
        listed.body[1]["fingerprint_bound"], false,
        "and starts unbound"
    );
    let replacement = rotated.body["token"].as_str().unwrap();
    let from_curl = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(replacement)
        .header("User-Agent", "curl/8.11")
        .json(&snapshot(3))
        .send()
        .await
        .unwrap();
    assert_eq!(
        from_curl.status(),
        204,
        "the replacement binds to its first client"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_fingerprint_and_elsewhere_it_is_ignored()
 {
    for (trusted, second_status) in [(true, 401), (false, 204)] {
        let flags: &[&str] = if trusted {
            &["--trusted-proxies", "127.0.0.1"]
        } else {
            &[]
        };
        let app = TestApp::spawn_with(flags).await;
        let host = app.create_host("web-01").await;
        let token = app
            .store
            .issue_agent_token(host, "bound", true)
            .await
            .unwrap()
            .token
            .plaintext
            .clone();
        let post_for = |client: &'static str, seconds_ago: i64| {
            app.http
                .post(app.telemetry_url())
                .bearer_auth(&token)
                .header("X-Forwarded-For", client)
                .json(&snapshot(seconds_ago))
                .send()
        };

        assert_eq!(post_for("192.0.2.10", 0).await.unwrap().status(), 204);
        assert_eq!(
            post_for("192.0.2.11", 1).await.unwrap().status(),
            second_status,
            "trusted proxy: {trusted}"
        );
    }
}

#[tokio::test]
async fn refusals_are_counted_by_reason_and_summarised_by_address_for_an_hour() {
    let app = TestApp::spawn_with(&["--rate-limit-per-minute", "1"]).await;
    let admin = app.admin_token().await;
    let (revoked_host, revoked) = app.host_with_token("web-01").await;
    let (_, limited) = app.host_with_token("web-02").await;
    app.db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&revoked_host],
        )
        .await
        .unwrap();
    let agent = client_from([127, 0, 0, 4]);
    for n in 0..3 {
        assert_eq!(post(&app, &agent, "nxa_unknown", n).await, 401);
    }
    assert_eq!(post(&app, &agent, &revoked, 0).await, 401);
    assert_eq!(post(&app, &agent, &limited, 0).await, 204);
    assert_eq!(post(&app, &agent, &limited, 1).await, 429);
    let missing = agent
        .post(app.telemetry_url())
        .json(&snapshot(0))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);

    let report = app
        .admin(Method::GET, "/auth-failures", Some(&admin), None)
        .await;
    assert_eq!(report.status, 200);
    let lines: Vec<(String, String, u64)> = report.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["address"] == "127.0.0.4")
        .map(|line| {
            (
                line["address"].as_str().unwrap().to_owned(),
                line["reason"].as_str().unwrap().to_owned(),
                line["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, u64)> = [
        ("invalid", 3),
        ("missing", 1),
        ("rate_limited", 1),
        ("revoked", 1),
    ]
    .into_iter()
    .map(|(reason, count)| ("127.0.0.4".to_owned(), reason.to_owned(), count))
    .collect();
    assert_eq!(lines, expected);
    let metrics = app.get_text("/metrics").await;
    for reason in ["invalid", "missing", "rate_limited", "revoked"] {
        assert!(
            metrics.contains(&format!("nexus_auth_failures_total{{reason=\"{reason}\"}}")),
            "{reason} is counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_migration_archives_hosts_whose_marks_disagreed_and_revokes_their_tokens() {
    let url = crate::helpers::empty_database().await;
    let store =
        nexus_telemetry::store::Store::new(&crate::helpers::serve_args(&url, &[]).db.settings())
            .unwrap();
    store.migrate_up_to(Some(5)).await.unwrap();
    let db = crate::helpers::connect(&url).await;
    db.batch_execute(
        "INSERT INTO hosts (name, slug, status, archived_at) VALUES \
           ('by-date', 'by-date', 'online', now() - interval '1 day'), \
           ('by-status', 'by-status', 'archived', NULL), \
           ('live', 'live', 'online', NULL); \
         INSERT INTO agent_tokens (host_id, name, hashed_token) \
           SELECT id, 't', md5(slug) || md5(slug) FROM hosts",
    )
    .await
    .unwrap();

    store.migrate().await.unwrap();

    let rows = db
        .query(
            "SELECT h.slug, h.status, h.archived_at IS NOT NULL, t.revoked_at IS NOT NULL \
             FROM hosts h JOIN agent_tokens t ON t.host_id = h.id ORDER BY h.slug",
            &[],
        )
        .await
        .unwrap();
    let view: Vec<(String, String, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        view,
        [
            ("by-date".into(), "archived".into(), true, true),
            ("by-status".into(), "archived".into(), true, true),
            ("live".into(), "online".into(), false, false),
        ]
    );
}
