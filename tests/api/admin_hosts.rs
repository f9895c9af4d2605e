//! `/api/v1/hosts`: create, list (filters, pagination), show, update, archive.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

async fn create(app: &TestApp, admin: &str, body: Value) -> Value {
    let answer = app
        .admin(Method::POST, "/hosts", Some(admin), Some(&body))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|host| host["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn creating_a_host_answers_201_with_the_whole_host() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;

    let host = create(
        &app,
        &admin,
        json!({"name": "Web 01 (Frankfurt)", "labels": {"env": "prod"}}),
    )
    .await;

    assert!(host["id"].is_i64());
    assert_eq!(host["slug"], "web-01-frankfurt");
    assert_eq!(host["status"], "pending");
    assert_eq!(host["labels"], json!({"env": "prod"}));
    for field in [
        "last_seen_at",
        "cpu_count",
        "memory_total_mb",
        "disk_total_gb",
        "os",
        "docker_version",
        "archived_at",
    ] {
        assert!(host[field].is_null(), "{field} is null for a new host");
    }
    assert!(host["created_at"].is_string() && host["updated_at"].is_string());
    let shown = app
        .admin(
            Method::GET,
            &format!("/hosts/{}", host["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, host);
}

#[tokio::test]
async fn a_duplicate_slug_is_a_409_problem() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    create(&app, &admin, json!({"name": "web", "slug": "web"})).await;

    let answer = app
        .admin(
            Method::POST,
            "/hosts",
            Some(&admin),
            Some(&json!({"name": "other", "slug": "web"})),
        )
        .await;

    assert_eq!(answer.status, 409);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert!(answer.body["detail"].as_str().unwrap().contains("web"));
    assert_eq!(app.count("SELECT count(*) FROM hosts").await, 1);
}

#[tokio::test]
async fn invalid_bodies_are_422s_naming_every_failing_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let long_key = format!("labels.{}", "x".repeat(256));
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"slug": "ok"}), vec!["name"], "name is required"),
        (
            json!({"name": "", "slug": "Not A Slug"}),
            vec!["name", "slug"],
            "empty name, slug with spaces and capitals",
        ),
        (
            json!({"name": "x".repeat(256)}),
            vec!["name"],
            "name over 255 characters",
        ),
        (
            json!({"name": "n", "labels": many}),
            vec!["labels"],
            "more than 64 labels",
        ),
        (
            json!({"name": "n", "labels": {"k": "v".repeat(256), "x".repeat(256): "v"}}),
            vec!["labels.k", long_key.as_str()],
            "label value and key over 255 characters",
        ),
        (
            json!({"name": "n", "labels": {"k": 1}}),
            vec!["labels.k"],
            "label values are strings",
        ),
    ];
    for (body, fields, why) in cases {
        let answer = app
            .admin(Method::POST, "/hosts", Some(&admin), Some(&body))
            .await;
        assert_eq!(answer.status, 422, "{why}: {}", answer.body);
        let mut got = answer.error_fields();
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{why}");
    }
    let not_json = app
        .http
        .post(format!("{}/api/v1/hosts", app.address))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(app.count("SELECT count(*) FROM hosts").await, 0);
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_422_problems_naming_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let cases = [
        (Method::GET, "/hosts/abc", "host_id"),
        (Method::POST, "/hosts/abc/archive", "host_id"),
        (Method::GET, "/hosts/1x/tokens", "host_id"),
        (Method::DELETE, "/hosts/1/tokens/x", "token_id"),
        (Method::POST, "/hosts/1/tokens/x/rotate", "token_id"),
        (Method::GET, "/hosts?status=sleeping", "status"),
        (Method::GET, "/hosts?limit=0", "limit"),
        (Method::GET, "/hosts?limit=201", "limit"),
        (Method::GET, "/hosts?limit=ten", "limit"),
        (Method::GET, "/hosts?cursor=bogus", "cursor"),
        (Method::GET, "/hosts?label=nocolon", "label"),
        (Method::GET, "/hosts?label=k:%00", "label"),
        (Method::GET, "/hosts?name=a%00", "name"),
    ];
    for (method, path, field) in cases {
        let answer = app.admin(method.clone(), path, Some(&admin), None).await;
        assert_eq!(answer.status, 422, "{method} {path}: {}", answer.body);
        assert_eq!(
            answer.headers["content-type"], "application/problem+json",
            "{path}"
        );
        assert_eq!(answer.error_fields(), [field], "{path}");
    }
}

#[tokio::test]
async fn an_unknown_host_is_a_404_everywhere() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for (method, path, body) in [
        (Method::GET, "/hosts/999999", None),
        (Method::PATCH, "/hosts/999999", Some(json!({"name": "x"}))),
        (Method::POST, "/hosts/999999/archive", None),
        (Method::GET, "/hosts/999999/tokens", None),
        (
            Method::POST,
            "/hosts/999999/tokens",
            Some(json!({"name": "x"})),
        ),
    ] {
        let answer = app
            .admin(method.clone(), path, Some(&admin), body.as_ref())
            .await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(answer.body["status"], 404);
    }
}

#[tokio::test]
async fn patch_renames_and_replaces_labels_leaving_absent_fields_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let host = create(&app, &admin, json!({"name": "a", "labels": {"env": "dev"}})).await;
    let path = format!("/hosts/{}", host["id"]);

    let renamed = app
        .admin(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(&json!({"name": "b"})),
        )
        .await;
    let relabelled = app
        .admin(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(&json!({"labels": {"tier": "db"}})),
        )
        .await;
    let invalid = app
        .admin(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(&json!({"name": ""})),
        )
        .await;

    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.body["name"], "b");
    assert_eq!(renamed.body["labels"], json!({"env": "dev"}));
    assert_eq!(relabelled.body["name"], "b");
    assert_eq!(relabelled.body["labels"], json!({"tier": "db"}));
    assert_eq!(relabelled.body["slug"], "a", "the slug never changes");
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.error_fields(), ["name"]);
}

#[tokio::test]
async fn list_filters_by_status_label_and_name() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let web = create(
        &app,
        &admin,
        json!({"name": "Web Frontend", "labels": {"env": "prod", "tier": "web"}}),
    )
    .await;
    let db = create(
        &app,
        &admin,
        json!({"name": "Database", "labels": {"env": "prod", "tier": "db"}}),
    )
    .await;
    let staging = create(
        &app,
        &admin,
        json!({"name": "web staging 100%", "labels": {"env": "staging"}}),
    )
    .await;
    app.admin(
        Method::POST,
        &format!("/hosts/{}/archive", db["id"]),
        Some(&admin),
        None,
    )
    .await;
    let list = |query: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let answer = app
                .admin(Method::GET, &format!("/hosts{query}"), Some(&admin), None)
                .await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
            ids(&answer.body)
        }
    };
    let (web, db, staging) = (
        web["id"].as_i64().unwrap(),
        db["id"].as_i64().unwrap(),
        staging["id"].as_i64().unwrap(),
    );

    assert_eq!(list("").await, [web, db, staging]);
    assert_eq!(list("?status=archived").await, [db]);
    assert_eq!(list("?status=pending").await, [web, staging]);
    assert_eq!(list("?label=env:prod").await, [web, db]);
    assert_eq!(list("?label=env:prod&label=tier:web").await, [web]);
    assert_eq!(list("?label=env:dev").await, Vec::<i64>::new());
    assert_eq!(list("?name=WEB").await, [web, staging]);
    assert_eq!(list("?name=100%25").await, [staging], "% is literal");
    assert_eq!(list("?name=_").await, Vec::<i64>::new(), "_ is literal");
    assert_eq!(
        list("?name=web&status=pending&label=env:staging").await,
        [staging]
    );
}

#[tokio::test]
async fn pages_list_every_host_once_in_order_even_when_hosts_are_created_meanwhile() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(app.create_host(&format!("host {i:02}")).await);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(cursor) => format!("/hosts?limit=10&cursor={cursor}"),
            None => "/hosts?limit=10".into(),
        };
        let page = app.admin(Method::GET, &query, Some(&admin), None).await;
        assert_eq!(page.status, 200);
        assert!(ids(&page.body).len() <= 10);
        seen.extend(ids(&page.body));
        pages += 1;
        if pages == 1 {
            created.push(app.create_host("late arrival").await);
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }

    assert_eq!(seen, created, "every host exactly once, in id order");
    assert_eq!(pages, 3);
    let default = app.admin(Method::GET, "/hosts", Some(&admin), None).await;
    assert_eq!(ids(&default.body).len(), 26, "the default page holds 50");
    assert!(default.body["next_cursor"].is_null());
}

#[tokio::test]
async fn archiving_revokes_every_token_at_once_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web").await;
    let second = app
        .store
        .issue_agent_token(host, "second", false)
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let (_, other_token) = app.host_with_token("other").await;
    let now = || payload(&at(chrono::Duration::zero()), &[]);
    assert_eq!(app.post_telemetry(&token, &now()).await.status(), 204);
    let path = format!("/hosts/{host}/archive");

    let first = app.admin(Method::POST, &path, Some(&admin), None).await;
    let again = app.admin(Method::POST, &path, Some(&admin), None).await;

    assert_eq!(first.status, 200);
    assert_eq!(first.body["status"], "archived");
    assert!(first.body["archived_at"].is_string());
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["archived_at"], first.body["archived_at"],
        "the first archived_at stays"
    );
    assert_eq!(again.body["updated_at"], first.body["updated_at"]);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM agent_tokens WHERE host_id = {host} AND revoked_at IS NULL"
        ))
        .await,
        0
    );
    for token in [&token, &second] {
        assert_eq!(app.post_telemetry(token, &now()).await.status(), 401);
    }
    assert_eq!(
        app.post_telemetry(&other_token, &now()).await.status(),
        204,
        "other hosts' tokens are untouched"
    );
    let issue = app
        .admin(
            Method::POST,
            &format!("/hosts/{host}/tokens"),
            Some(&admin),
            Some(&json!({"name": "new"})),
        )
        .await;
    assert_eq!(issue.status, 409, "an archived host gets no new token");
}
