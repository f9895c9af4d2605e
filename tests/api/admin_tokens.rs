//! `/api/v1/hosts/{id}/tokens`: issue, list, rotate, revoke; and admin vs agent credentials.

use nexus_telemetry::domain::token::TokenHash;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

fn now() -> Value {
    payload(&at(chrono::Duration::zero()), &[])
}

async fn issue(app: &TestApp, admin: &str, host: i64, name: &str) -> Value {
    let answer = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens"),
            Some(admin),
            Some(&json!({"name": name})),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

async fn tokens_table(app: &TestApp) -> String {
    app.db
        .query_one(
            "SELECT coalesce(string_agg(t::text, ''), '') FROM agent_tokens t",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn issuing_returns_the_plaintext_once_beside_the_metadata_and_it_works() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;

    let issued = issue(&app, &admin, host, "primary").await;

    let token = issued["token"].as_str().unwrap();
    let random = token.strip_prefix("nxa_").expect("agent token prefix");
    assert_eq!(random.len(), 64, "256 random bits as hex");
    assert!(issued["id"].is_i64());
    assert_eq!(issued["name"], "primary");
    assert_eq!(issued["host_id"], host);
    assert!(issued["created_at"].is_string());
    assert_eq!(app.post_telemetry(token, &now()).await.status(), 204);
    assert!(!tokens_table(&app).await.contains(token));
}

#[tokio::test]
async fn listing_shows_metadata_and_never_the_plaintext_or_the_hash() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;
    let first = issue(&app, &admin, host, "a").await;
    let second = issue(&app, &admin, host, "b").await;
    let token = first["token"].as_str().unwrap();
    app.post_telemetry(token, &now()).await;
    app.admin(
        Method::DELETE,
        &format!("/hosts/{host}/tokens/{}", second["id"]),
        Some(&admin),
        None,
    )
    .await;

    let answer = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            None,
        )
        .await;

    assert_eq!(answer.status, 200);
    let listed = answer.body.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for item in listed {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bind_fingerprint",
                "created_at",
                "fingerprint_bound",
                "host_id",
                "id",
                "last_used_at",
                "name",
                "revoked_at"
            ]
        );
    }
    assert!(listed[0]["last_used_at"].is_string());
    assert!(listed[0]["revoked_at"].is_null());
    assert!(listed[1]["revoked_at"].is_string());
    let text = answer.body.to_string();
    for secret in [
        token.to_owned(),
        second["token"].as_str().unwrap().to_owned(),
        TokenHash::of(token).as_str().to_owned(),
    ] {
        assert!(!text.contains(&secret), "the listing leaks {secret}");
    }
}

#[tokio::test]
async fn rotating_refuses_the_old_token_at_once_and_the_new_one_works() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;
    let old = issue(&app, &admin, host, "primary").await;
    let old_token = old["token"].as_str().unwrap();
    assert_eq!(app.post_telemetry(old_token, &now()).await.status(), 204);

    let rotated = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens/{}/rotate", old["id"]),
            Some(&admin),
            None,
        )
        .await;

    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let new_token = rotated.body["token"].as_str().unwrap();
    assert!(new_token.starts_with("nxa_"));
    assert_ne!(new_token, old_token);
    assert_ne!(rotated.body["id"], old["id"]);
    assert_eq!(
        rotated.body["name"], "primary",
        "the replacement keeps the name"
    );
    assert_eq!(app.post_telemetry(old_token, &now()).await.status(), 401);
    assert_eq!(
        app.post_telemetry(new_token, &payload(&at(chrono::Duration::seconds(-1)), &[]))
            .await
            .status(),
        204
    );
    let again = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens/{}/rotate", old["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, 409, "a revoked token cannot be rotated");
    assert_eq!(
        app.count("SELECT count(*) FROM agent_tokens").await,
        2,
        "the failed rotation issued nothing"
    );
}

#[tokio::test]
async fn revoking_is_idempotent_and_refuses_the_token_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = app.create_host("web").await;
    let issued = issue(&app, &admin, host, "primary").await;
    let token = issued["token"].as_str().unwrap();
    assert_eq!(app.post_telemetry(token, &now()).await.status(), 204);
    let path = format!("/hosts/{host}/tokens/{}", issued["id"]);

    let first = app.admin(Method::DELETE, &path, Some(&admin), None).await;
    let revoked_at: chrono::DateTime<chrono::Utc> = app
        .db
        .query_one("SELECT revoked_at FROM agent_tokens", &[])
        .await
        .unwrap()
        .get(0);
    let second = app.admin(Method::DELETE, &path, Some(&admin), None).await;

    assert_eq!((first.status, second.status), (204, 204));
    assert_eq!(app.post_telemetry(token, &now()).await.status(), 401);
    let still: chrono::DateTime<chrono::Utc> = app
        .db
        .query_one("SELECT revoked_at FROM agent_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, revoked_at, "the first revoked_at stays");
}

#[tokio::test]
async fn a_token_of_another_host_is_not_found_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mine = app.create_host("mine").await;
    let theirs = app.create_host("theirs").await;
    let token = issue(&app, &admin, theirs, "theirs").await;
    let before = tokens_table(&app).await;

    for (method, path) in [
        (
            Method::DELETE,
            format!("/hosts/{mine}/tokens/{}", token["id"]),
        ),
        (
            Method::POST,
            format!("/hosts/{mine}/tokens/{}/rotate", token["id"]),
        ),
        (Method::DELETE, format!("/hosts/{mine}/tokens/999999")),
        (
            Method::POST,
            format!("/hosts/999999/tokens/{}/rotate", token["id"]),
        ),
    ] {
        let answer = app.admin(method.clone(), &path, Some(&admin), None).await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }

    assert_eq!(tokens_table(&app).await, before, "nothing changed");
    assert_eq!(
        app.post_telemetry(token["token"].as_str().unwrap(), &now())
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn admin_and_agent_tokens_are_not_interchangeable() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, agent) = app.host_with_token("web").await;

    let agent_on_admin = app.admin(Method::GET, "/hosts", Some(&agent), None).await;
    let admin_on_agent = app.post_telemetry(&admin, &now()).await;
    let admin_on_admin = app.admin(Method::GET, "/hosts", Some(&admin), None).await;

    assert_eq!(agent_on_admin.status, 401);
    assert_eq!(
        agent_on_admin.headers["www-authenticate"],
        "Bearer realm=\"nexus-telemetry\""
    );
    assert_eq!(admin_on_agent.status(), 401);
    assert!(admin_on_agent.headers().contains_key("www-authenticate"));
    assert_eq!(admin_on_admin.status, 200);
    assert!(admin.starts_with("nxk_") && admin.len() == 4 + 64);
    assert_eq!(
        app.host_status(host).await,
        "pending",
        "nothing was ingested"
    );
}

#[tokio::test]
async fn every_admin_operation_refuses_missing_bad_and_revoked_credentials_with_a_problem() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let revoked = app.admin_token().await;
    let id = app
        .db
        .query_one(
            "SELECT id FROM admin_tokens WHERE hashed_token = $1",
            &[&TokenHash::of(&revoked).as_str()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    app.store.revoke_admin_token(id).await.unwrap();
    let host = app.create_host("web").await;
    let operations = [
        (
            Method::POST,
            "/hosts".to_string(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/hosts".to_string(), None),
        (Method::GET, format!("/hosts/{host}"), None),
        (
            Method::PATCH,
            format!("/hosts/{host}"),
            Some(json!({"name": "x"})),
        ),
        (Method::POST, format!("/hosts/{host}/archive"), None),
        (
            Method::POST,
            format!("/hosts/{host}/tokens"),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, format!("/hosts/{host}/tokens"), None),
        (Method::POST, format!("/hosts/{host}/tokens/1/rotate"), None),
        (Method::DELETE, format!("/hosts/{host}/tokens/1"), None),
    ];
    for (method, path, body) in &operations {
        for bearer in [None, Some("nxk_unknown"), Some(revoked.as_str())] {
            let answer = app.admin(method.clone(), path, bearer, body.as_ref()).await;
            assert_eq!(answer.status, 401, "{method} {path} with {bearer:?}");
            assert_eq!(
                answer.headers["content-type"], "application/problem+json",
                "{method} {path}"
            );
            assert_eq!(
                answer.headers["www-authenticate"],
                "Bearer realm=\"nexus-telemetry\""
            );
            assert_eq!(answer.body["status"], 401);
        }
        let basic = app
            .http
            .request(method.clone(), format!("{}/api/v1{path}", app.address))
            .basic_auth("admin", Some(&admin))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "Basic auth is not a bearer");
    }
    assert_eq!(app.host_status(host).await, "pending", "nothing changed");
    assert_eq!(app.count("SELECT count(*) FROM hosts").await, 1);
    let used: Option<chrono::DateTime<chrono::Utc>> = app
        .db
        .query_one(
            "SELECT last_used_at FROM admin_tokens WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(used.is_none(), "a refused token is not stamped");
}

#[tokio::test]
async fn imported_tokens_authenticate_by_their_sha256() {
    let app = TestApp::spawn().await;
    let host = app.create_host("legacy").await;
    let legacy = "a-token-minted-by-the-original-system";
    app.db
        .execute(
            "INSERT INTO agent_tokens (host_id, name, hashed_token) VALUES ($1, 'legacy', $2)",
            &[&host, &TokenHash::of(legacy).as_str()],
        )
        .await
        .unwrap();

    assert_eq!(app.post_telemetry(legacy, &now()).await.status(), 204);
}

#[tokio::test]
async fn guessing_admin_tokens_is_throttled_per_client_address() {
    let app = TestApp::spawn_with(&["--auth-failures-per-minute", "2"]).await;
    let admin = app.admin_token().await;

    let guesses = [
        app.admin(Method::GET, "/hosts", Some("nxk_guess1"), None)
            .await,
        app.admin(Method::GET, "/hosts", Some("nxk_guess2"), None)
            .await,
        app.admin(Method::GET, "/hosts", Some("nxk_guess3"), None)
            .await,
    ];
    let valid = app.admin(Method::GET, "/hosts", Some(&admin), None).await;

    assert_eq!(guesses[0].status, 401);
    assert_eq!(guesses[1].status, 401);
    assert_eq!(guesses[2].status, 429);
    assert!(guesses[2].headers.contains_key("retry-after"));
    assert_eq!(
        guesses[2].headers["content-type"],
        "application/problem+json"
    );
    assert_eq!(
        valid.status, 429,
        "the address is throttled, whatever it sends"
    );
}

#[tokio::test]
async fn token_tables_store_only_64_lowercase_hex_digit_hashes() {
    let app = TestApp::spawn().await;
    let host = app.create_host("hashes").await;
    let valid = "0123456789abcdef".repeat(4);
    let refused = [
        valid.to_uppercase(),
        valid[..63].to_string(),
        format!("{valid}0"),
        valid.replacen('a', "g", 1),
        valid.replacen('a', " ", 1),
        valid.replacen('a', "é", 1), // 64 characters, 65 bytes
        String::new(),
    ];
    let insert = [
        format!("INSERT INTO agent_tokens (host_id, name, hashed_token) VALUES ({host}, 'h', $1)"),
        "INSERT INTO admin_tokens (name, hashed_token) VALUES ('h', $1)".to_owned(),
    ];
    for sql in &insert {
        for hash in &refused {
            let error = app.db.execute(sql, &[hash]).await.unwrap_err();
            assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
                "{sql} with {hash:?}: {error}"
            );
        }
        assert_eq!(app.db.execute(sql, &[&valid]).await.unwrap(), 1, "{sql}");
    }
}
