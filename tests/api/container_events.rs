//! Container lifecycle events (issue 25): what the ingest derives from each snapshot, exactly
//! once, and how the feed reads back (`/api/v1/events`, `/api/v1/hosts/{id}/events`).

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, payload};

/// `(kind, container_id, from_value, to_value)` of every event of `host`, in id order.
async fn events(
    app: &TestApp,
    host: i64,
) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    app.db
        .query(
            "SELECT kind, container_id, from_value, to_value FROM events
             WHERE host_id = $1 ORDER BY id",
            &[&host],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// The container events of `host` as `kind container from→to` lines, host events left out.
async fn container_events(app: &TestApp, host: i64) -> Vec<String> {
    events(app, host)
        .await
        .into_iter()
        .filter_map(|(kind, container, from, to)| {
            let container = container?;
            Some(format!(
                "{kind} {container} {}→{}",
                from.unwrap_or_default(),
                to.unwrap_or_default()
            ))
        })
        .collect()
}

/// A snapshot `seconds` from now with one container `c1` described by `fields` (over the
/// payload helper's description).
fn snapshot_with(seconds: i64, fields: Value) -> Value {
    let mut body = payload(&at(Duration::seconds(seconds)), &[("c1", "running")]);
    let container = body["containers"][0].as_object_mut().unwrap();
    for (key, value) in fields.as_object().unwrap() {
        container.insert(key.clone(), value.clone());
    }
    body
}

async fn post(app: &TestApp, token: &str, body: &Value) {
    let response = app.post_telemetry(token, body).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn each_change_of_state_health_restart_count_and_oom_kill_writes_one_event() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    let running = json!({"restart_count": 0, "exit_code": null, "oom_killed": false});
    post(&app, &token, &snapshot_with(-50, running.clone())).await;
    // Unchanged: nothing. Then health, then a crash by the OOM killer, then Docker restarts it.
    post(&app, &token, &snapshot_with(-40, running.clone())).await;
    post(
        &app,
        &token,
        &snapshot_with(
            -30,
            json!({"health_status": "unhealthy", "restart_count": 0, "oom_killed": false}),
        ),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(
            -20,
            json!({"state": "exited", "health_status": "unhealthy", "restart_count": 0,
                   "exit_code": 137, "oom_killed": true}),
        ),
    )
    .await;
    post(
        &app,
        &token,
        &snapshot_with(
            -10,
            json!({"restart_count": 1, "exit_code": null, "oom_killed": false}),
        ),
    )
    .await;

    assert_eq!(
        container_events(&app, host).await,
        [
            "created c1 →running",
            "health_changed c1 healthy→unhealthy",
            "state_changed c1 running→exited",
            "oom_killed c1 →",
            "state_changed c1 exited→running",
            "health_changed c1 unhealthy→healthy",
            "restarted c1 0→1",
        ]
    );
    let exit_code: Option<i64> = app
        .db
        .query_one(
            "SELECT exit_code FROM events WHERE kind = 'state_changed' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        exit_code,
        Some(137),
        "the exit code travels with the state change"
    );
    let latest = app
        .db
        .query_one(
            "SELECT restart_count, exit_code, oom_killed FROM containers_latest",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            latest.get::<_, Option<i64>>(0),
            latest.get::<_, Option<i64>>(1),
            latest.get::<_, Option<bool>>(2)
        ),
        (Some(1), None, Some(false))
    );
}

/// The original Node agent's container: no `restart_count`, `exit_code` or `oom_killed`.
fn node_agent_snapshot(seconds: i64, state: &str, health: &str) -> Value {
    json!({
        "recorded_at": at(Duration::seconds(seconds)),
        "host": {"metrics": {"cpu_percent": 3.5, "memory_used_mb": 900, "memory_total_mb": 2000}},
        "containers": [{
            "container_id": "9f8e7d6c5b4a", "name": "api", "image": "node", "image_tag": "20",
            "status": "Up 2 minutes", "state": state, "health_status": health,
            "ports": [], "labels": {},
            "metrics": {"cpu_percent": 1.5, "memory_usage_mb": 64, "memory_limit_mb": 2000},
            "started_at": "2024-05-01T09:00:00Z", "finished_at": null
        }]
    })
}

#[tokio::test]
async fn the_original_node_agents_payload_still_produces_state_and_health_events() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("legacy").await;
    post(
        &app,
        &token,
        &node_agent_snapshot(-30, "running", "starting"),
    )
    .await;
    post(
        &app,
        &token,
        &node_agent_snapshot(-20, "running", "healthy"),
    )
    .await;
    post(&app, &token, &node_agent_snapshot(-10, "exited", "healthy")).await;

    assert_eq!(
        container_events(&app, host).await,
        [
            "created 9f8e7d6c5b4a →running",
            "health_changed 9f8e7d6c5b4a starting→healthy",
            "state_changed 9f8e7d6c5b4a running→exited",
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE kind IN ('restarted', 'oom_killed')")
            .await,
        0,
        "no restart or OOM events without the fields"
    );
}

#[tokio::test]
async fn a_replayed_snapshot_writes_no_second_event() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    let first = payload(&at(Duration::seconds(-20)), &[("c1", "running")]);
    let exited = payload(&at(Duration::seconds(-10)), &[("c1", "exited")]);
    for body in [&first, &exited, &exited, &first, &exited] {
        post(&app, &token, body).await;
    }
    assert_eq!(
        container_events(&app, host).await,
        ["created c1 →running", "state_changed c1 running→exited"]
    );
}

#[tokio::test]
async fn a_late_older_snapshot_changes_nothing_and_writes_no_event() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &payload(
            &at(Duration::seconds(-10)),
            &[("c1", "exited"), ("c2", "running")],
        ),
    )
    .await;
    // Delayed in the agent's buffer: older than what is stored, and without c2.
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-60)), &[("c1", "running")]),
    )
    .await;
    assert_eq!(
        container_events(&app, host).await,
        ["created c1 →exited", "created c2 →running"]
    );
}

#[tokio::test]
async fn a_container_gone_from_the_next_snapshot_is_removed_once_and_created_if_it_returns() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &payload(
            &at(Duration::seconds(-40)),
            &[("c1", "running"), ("c2", "running")],
        ),
    )
    .await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-30)), &[("c1", "running")]),
    )
    .await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-20)), &[("c1", "running")]),
    )
    .await;
    post(
        &app,
        &token,
        &payload(
            &at(Duration::seconds(-10)),
            &[("c1", "running"), ("c2", "running")],
        ),
    )
    .await;

    assert_eq!(
        container_events(&app, host).await,
        [
            "created c1 →running",
            "created c2 →running",
            "removed c2 running→",
            "created c2 →running",
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM containers WHERE removed_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM containers").await,
        2,
        "rows stay"
    );
}

#[tokio::test]
async fn liveness_transitions_join_the_feed_and_host_events_keeps_its_name_and_columns() {
    let app = TestApp::spawn().await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-10)), &[("c1", "running")]),
    )
    .await;
    app.db
        .execute(
            "INSERT INTO host_events (host_id, kind) VALUES ($1, 'offline')",
            &[&host],
        )
        .await
        .expect("host_events takes writes as before");
    let kinds: Vec<String> = events(&app, host).await.into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["online", "created", "offline"]);
    let host_events: Vec<(i64, String)> = app
        .db
        .query("SELECT host_id, kind FROM host_events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("host_id"), row.get("kind")))
        .collect();
    assert_eq!(
        host_events,
        [(host, "online".to_string()), (host, "offline".to_string())]
    );
}

#[tokio::test]
async fn the_feed_lists_oldest_first_filters_and_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (web, web_token) = app.host_with_token("web-01").await;
    let (db, db_token) = app.host_with_token("db-01").await;
    post(
        &app,
        &web_token,
        &payload(
            &at(Duration::seconds(-30)),
            &[("w1", "running"), ("w2", "running")],
        ),
    )
    .await;
    post(
        &app,
        &db_token,
        &payload(&at(Duration::seconds(-20)), &[("d1", "running")]),
    )
    .await;
    let w1_exited_at = at(Duration::seconds(-10));
    post(
        &app,
        &web_token,
        &payload(&w1_exited_at, &[("w1", "exited"), ("w2", "running")]),
    )
    .await;

    let list = |query: &str| {
        let path = format!("/events{query}");
        let admin = admin.clone();
        let app = &app;
        async move {
            let answer = app.admin(Method::GET, &path, Some(&admin), None).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            answer.body
        }
    };
    let kinds = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["kind"].as_str().unwrap(),
                    e["container_id"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    let all = list("").await;
    assert_eq!(
        kinds(&all),
        [
            "online -",
            "created w1",
            "created w2",
            "online -",
            "created d1",
            "state_changed w1"
        ]
    );
    let ids: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        kinds(&list(&format!("?host_id={db}")).await),
        ["online -", "created d1"]
    );
    assert_eq!(
        kinds(&list("?container_id=w1").await),
        ["created w1", "state_changed w1"]
    );
    assert_eq!(
        kinds(&list("?kind=online&kind=state_changed").await),
        ["online -", "online -", "state_changed w1"]
    );
    assert_eq!(
        kinds(&list(&format!("?after={}", ids[3])).await),
        ["created d1", "state_changed w1"]
    );
    let since = at(Duration::seconds(-15)).replace('+', "%2B");
    assert_eq!(
        kinds(&list(&format!("?since={since}&host_id={web}")).await),
        ["online -", "state_changed w1"],
        "the host came online now, its container changed 10 s ago"
    );
    assert_eq!(
        kinds(&list(&format!("?until={since}&host_id={web}")).await),
        ["created w1", "created w2"],
        "events at or after `until` are left out: w1's change 10 s ago, the host's coming online now"
    );
    assert_eq!(
        kinds(&list(&format!("?until={w1_exited_at}")).await),
        ["created w1", "created w2", "created d1"],
        "`until` is exclusive: the change at exactly that instant is left out"
    );
    assert_eq!(
        kinds(
            &list(&format!(
                "?since={w1_exited_at}&until={}",
                at(Duration::seconds(-5))
            ))
            .await
        ),
        ["state_changed w1"],
        "`since` is inclusive"
    );

    // Pages of two, each continuing where the last ended, none repeated or skipped.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = list(&query).await;
        seen.extend(kinds(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, kinds(&all));

    for (query, field) in [
        ("?kind=exploded", "kind"),
        ("?cursor=nope", "cursor"),
        ("?limit=0", "limit"),
        ("?container_id=a%00b", "container_id"),
        ("?after=1&cursor=h2", "cursor"),
        (
            "?since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z",
            "until",
        ),
    ] {
        let answer = app
            .admin(Method::GET, &format!("/events{query}"), Some(&admin), None)
            .await;
        assert_eq!(answer.status, 422, "{query}: {}", answer.body);
        assert!(
            answer.error_fields().contains(&field.to_string()),
            "{query}: {}",
            answer.body
        );
    }
    assert_eq!(
        app.admin(Method::GET, "/events", None, None).await.status,
        401
    );
}

#[tokio::test]
async fn a_hosts_event_listing_includes_its_containers_events() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-20)), &[("c1", "running")]),
    )
    .await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-10)), &[("c1", "restarting")]),
    )
    .await;
    let answer = app
        .admin(
            Method::GET,
            &format!("/hosts/{host}/events"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let items = answer.body["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["state_changed", "created", "online"],
        "newest first"
    );
    assert_eq!(items[0]["from_value"], "running");
    assert_eq!(items[0]["to_value"], "restarting");
    assert_eq!(items[0]["container_id"], "c1");
    assert!(items[2]["container_id"].is_null(), "host events have none");
}

#[tokio::test]
async fn two_servers_ingesting_for_one_host_report_each_change_once() {
    let app = TestApp::spawn().await;
    let other = app.spawn_another_server().await;
    let (host, token) = app.host_with_token("web-01").await;
    let http = crate::helpers::http_client();
    // Each snapshot goes to both servers at once; states alternate so each one is a change.
    for step in 0..10i64 {
        let state = if step % 2 == 0 { "running" } else { "exited" };
        let body = payload(&at(Duration::seconds(step - 30)), &[("c1", state)]);
        let send = |address: String| {
            let http = http.clone();
            let body = body.clone();
            let token = token.clone();
            async move {
                http.post(format!("{address}/agent/telemetry"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (a, b) = tokio::join!(send(app.address.clone()), send(other.clone()));
        assert_eq!((a.as_u16(), b.as_u16()), (204, 204), "step {step}");
    }
    let events = container_events(&app, host).await;
    assert_eq!(events.len(), 10, "{events:?}");
    assert_eq!(events[0], "created c1 →running");
    for (step, event) in events.iter().enumerate().skip(1) {
        let (from, to) = if step % 2 == 1 {
            ("running", "exited")
        } else {
            ("exited", "running")
        };
        assert_eq!(
            event,
            &format!("state_changed c1 {from}→{to}"),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn events_are_derived_the_same_on_the_apache_edition() {
    let app = TestApp::spawn_on_apache_edition().await;
    let (host, token) = app.host_with_token("web-01").await;
    post(
        &app,
        &token,
        &payload(
            &at(Duration::seconds(-20)),
            &[("c1", "running"), ("c2", "running")],
        ),
    )
    .await;
    post(
        &app,
        &token,
        &payload(&at(Duration::seconds(-10)), &[("c1", "exited")]),
    )
    .await;
    assert_eq!(
        container_events(&app, host).await,
        [
            "created c1 →running",
            "created c2 →running",
            "state_changed c1 running→exited",
            "removed c2 running→",
        ]
    );
}

#[tokio::test]
async fn the_migration_keeps_host_events_ids_and_marks_containers_gone_before_it() {
    let url = crate::helpers::empty_database().await;
    let store =
        nexus_telemetry::store::Store::new(&crate::helpers::serve_args(&url, &[]).db.settings())
            .unwrap();
    store.migrate_up_to(Some(12)).await.unwrap();
    let db = crate::helpers::connect(&url).await;
    // A host whose newest snapshot lists `here` but not `gone`, and two liveness events with a
    // gap in their ids (a rolled-back insert).
    db.batch_execute(
        "INSERT INTO hosts (name, slug, status, last_seen_at)
           VALUES ('web-01', 'web-01', 'online', '2026-01-01T12:00:00Z');
         INSERT INTO containers (host_id, container_id, name, image, first_seen_at, recorded_at)
           SELECT h.id, c, c, 'i', '2026-01-01T10:00:00Z', '2026-01-01T10:00:00Z'
           FROM hosts h, unnest(ARRAY['here', 'gone']) AS c;
         INSERT INTO container_metric_snapshots (container_id, host_id, recorded_at)
           SELECT id, host_id, '2026-01-01T11:00:00Z' FROM containers;
         INSERT INTO container_metric_snapshots (container_id, host_id, recorded_at)
           SELECT id, host_id, '2026-01-01T12:00:00Z' FROM containers WHERE container_id = 'here';
         INSERT INTO host_events (host_id, kind, at) SELECT id, 'online', '2026-01-01T10:00:00Z' FROM hosts;",
    )
    .await
    .unwrap();
    db.batch_execute(
        "BEGIN; INSERT INTO host_events (host_id, kind) SELECT id, 'offline' FROM hosts; ROLLBACK;",
    )
    .await
    .unwrap();
    db.batch_execute(
        "INSERT INTO host_events (host_id, kind, at) SELECT id, 'offline', '2026-01-01T13:00:00Z' FROM hosts",
    )
    .await
    .unwrap();

    store.migrate().await.unwrap();

    let kept: Vec<(i64, String)> = db
        .query("SELECT id, kind FROM host_events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(kept, [(1, "online".into()), (3, "offline".into())]);
    let next: i64 = db
        .query_one(
            "INSERT INTO host_events (host_id, kind) SELECT id, 'recovered' FROM hosts RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 4, "new ids continue after the old ones");
    let removed: Vec<(String, bool)> = db
        .query(
            "SELECT container_id, removed_at IS NOT NULL FROM containers ORDER BY container_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(removed, [("gone".into(), true), ("here".into(), false)]);
}

#[tokio::test]
async fn on_the_apache_edition_the_server_drops_events_past_their_retention() {
    let app = TestApp::spawn_on_apache_edition().await;
    let host = app.create_host("web-01").await;
    app.db
        .execute(
            "INSERT INTO events (at, kind, host_id) VALUES
                 (now() - interval '400 days', 'online', $1), (now(), 'offline', $1)",
            &[&host],
        )
        .await
        .unwrap();
    // The server's hourly retention task ticks once at start and may have dropped it first.
    let dropped = app
        .store
        .drop_old_event_chunks(std::time::Duration::from_secs(365 * 86400))
        .await
        .unwrap();
    assert!(dropped <= 1, "only the old event's chunk: {dropped}");
    let kinds: Vec<String> = events(&app, host).await.into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["offline"]);
}

#[tokio::test]
async fn the_lifecycle_rollups_count_restarts_oom_kills_stops_and_unhealthy_turns_per_bucket() {
    for app in [
        TestApp::spawn().await,
        TestApp::spawn_on_apache_edition().await,
    ] {
        let (host, token) = app.host_with_token("web-01").await;
        let snapshots = [
            json!({"restart_count": 0, "oom_killed": false}),
            json!({"health_status": "unhealthy", "restart_count": 0, "oom_killed": false}),
            json!({"state": "exited", "health_status": "unhealthy", "restart_count": 0,
                   "exit_code": 137, "oom_killed": true}),
            json!({"restart_count": 1, "oom_killed": false}),
            // Docker restarted it twice between two snapshots: a jump of two counts two.
            json!({"restart_count": 3, "oom_killed": false}),
        ];
        for (i, fields) in snapshots.into_iter().enumerate() {
            post(&app, &token, &snapshot_with(10 * i as i64 - 60, fields)).await;
        }
        app.refresh_rollups().await;
        for rollup in [
            "container_lifecycle_5m",
            "container_lifecycle_1h",
            "container_lifecycle_5m_materialized",
            "container_lifecycle_1h_materialized",
        ] {
            // The snapshots may straddle a bucket's edge: the sums over buckets are exact.
            let row = app
                .db
                .query_one(
                    &format!(
                        "SELECT sum(restarts)::bigint, sum(oom_kills)::bigint, sum(stops)::bigint,
                                sum(turned_unhealthy)::bigint
                         FROM {rollup} WHERE host_id = $1 AND container_id = 'c1'"
                    ),
                    &[&host],
                )
                .await
                .unwrap();
            let counts: [Option<i64>; 4] = [row.get(0), row.get(1), row.get(2), row.get(3)];
            assert_eq!(counts, [Some(3), Some(1), Some(1), Some(1)], "{rollup}");
        }
    }
}

#[tokio::test]
async fn a_container_is_removed_only_from_the_host_whose_snapshot_lacks_it() {
    let app = TestApp::spawn().await;
    let mut hosts = Vec::new();
    for name in ["web-01", "web-02", "web-03"] {
        let (host, token) = app.host_with_token(name).await;
        let both = payload(
            &at(Duration::seconds(-20)),
            &[("c1", "running"), ("c2", "running")],
        );
        post(&app, &token, &both).await;
        hosts.push((host, token));
    }
    // The same Docker ids on every host; the sets move on two hosts at once (posted together,
    // so they may share a batch), differently.
    let next = |containers: &[(&str, &str)]| payload(&at(Duration::seconds(-10)), containers);
    let bodies = [
        next(&[("c2", "running")]),
        next(&[("c1", "running"), ("c3", "running")]),
        next(&[("c1", "running"), ("c2", "running")]),
    ];
    futures_util::future::join_all(
        hosts
            .iter()
            .zip(&bodies)
            .map(|((_, token), body)| post(&app, token, body)),
    )
    .await;

    let removed = |host: i64| {
        let app = &app;
        async move {
            container_events(app, host)
                .await
                .into_iter()
                .filter(|line| !line.starts_with("created"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(removed(hosts[0].0).await, ["removed c1 running→"]);
    assert_eq!(removed(hosts[1].0).await, ["removed c2 running→"]);
    assert!(removed(hosts[2].0).await.is_empty());
    let created_c3: i64 = app
        .count("SELECT count(*) FROM events WHERE kind = 'created' AND container_id = 'c3'")
        .await;
    assert_eq!(created_c3, 1);
}

#[tokio::test]
async fn compressed_event_chunks_still_serve_the_listing_a_resume_and_the_lifecycle_rollup() {
    // No alert evaluation: it would add events of its own.
    let app = TestApp::spawn_with(&["--alert-evaluation-interval-seconds", "0"]).await;
    if !app.is_community_edition().await {
        eprintln!("skipped: compression only on the community edition");
        return;
    }
    app.store
        .configure_lifecycle(&crate::helpers::serve_args("postgres://unused/x", &[]).lifecycle())
        .await
        .unwrap();
    let settings = app
        .db
        .query_one(
            "SELECT s.segmentby, s.orderby, j.config->>'compress_after'
             FROM timescaledb_information.hypertable_compression_settings s,
                  timescaledb_information.jobs j
             WHERE s.hypertable = 'events'::regclass
               AND j.proc_name = 'policy_compression' AND j.hypertable_name = 'events'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            settings.get::<_, String>(0),
            settings.get::<_, String>(1),
            settings.get::<_, String>(2)
        ),
        // TimescaleDB appends the time column to the order V13 gives.
        ("host_id".into(), "id,at DESC".into(), "14 days".into()),
        "V13's segments and order; the server's policy: a week-long chunk a week after it closes"
    );

    // Restarts three and two weeks back, each in a chunk of its own (a chunk is a week), then
    // today's events through the API.
    let (host, token) = app.host_with_token("web-01").await;
    app.db
        .execute(
            "INSERT INTO events (at, kind, host_id, container_id, from_value, to_value)
             SELECT time_bucket('5 minutes', now() - make_interval(days => d)), 'restarted', $1,
                    'c1', r::text, (r + d / 7)::text
             FROM (VALUES (21, 0), (14, 3)) AS old (d, r)",
            &[&host],
        )
        .await
        .unwrap();
    post(
        &app,
        &token,
        &snapshot_with(-10, json!({"restart_count": 5})),
    )
    .await;
    let all: Vec<(i64, String)> = app
        .db
        .query("SELECT id, kind FROM events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let kinds: Vec<&str> = all.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["restarted", "restarted", "online", "created"]);

    let chunks = app
        .count("SELECT count(compress_chunk(c)) FROM show_chunks('events') c")
        .await;
    assert!(
        chunks >= 3,
        "a chunk for each of the two old weeks and this one: {chunks}"
    );
    let uncompressed = app
        .count(
            "SELECT count(*) FROM timescaledb_information.chunks
             WHERE hypertable_name = 'events' AND NOT is_compressed",
        )
        .await;
    assert_eq!(uncompressed, 0);

    // The listing, whole and filtered, reads them back from the compressed chunks.
    let admin = app.admin_token().await;
    let listed = |query: String| {
        let admin = admin.clone();
        let app = &app;
        async move {
            let answer = app
                .admin(Method::GET, &format!("/events{query}"), Some(&admin), None)
                .await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
            answer.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["id"].as_i64().unwrap(),
                        e["kind"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(String::new()).await, all);
    assert_eq!(
        listed(format!(
            "?container_id=c1&kind=restarted&until={}",
            at(Duration::days(-7))
        ))
        .await,
        all[..2],
        "the two old restarts"
    );
    assert_eq!(listed(format!("?after={}", all[0].0)).await, all[1..]);

    // A stream resumed after the first event replays the rest from the compressed chunks, then
    // gets a live one (written into this week's compressed chunk).
    let mut stream =
        crate::event_stream::open(&app.address, "", Some(&admin), Some(all[0].0)).await;
    let replayed: Vec<i64> = stream
        .events(3)
        .await
        .iter()
        .map(|m| m.id.parse().unwrap())
        .collect();
    assert_eq!(
        replayed,
        all[1..].iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    post(
        &app,
        &token,
        &snapshot_with(-5, json!({"restart_count": 6})),
    )
    .await;
    let live = stream.events(1).await;
    assert_eq!(live[0].event, "restarted");
    assert!(live[0].id.parse::<i64>().unwrap() > all[3].0);

    // The lifecycle rollup refreshes from them: 3 restarts three weeks back, 2 two weeks back,
    // today's 1 → 2. (Its policy's window is hours, so the old weeks are materialized only by
    // this refresh, after the compression.)
    let old_buckets = "SELECT count(*) FROM container_lifecycle_5m_materialized
                       WHERE bucket < now() - interval '7 days'";
    assert_eq!(app.count(old_buckets).await, 0);
    app.refresh_rollups().await;
    assert_eq!(app.count(old_buckets).await, 2);
    let restarts: Vec<i64> = app
        .db
        .query(
            "SELECT restarts FROM container_lifecycle_5m_materialized
             WHERE host_id = $1 AND container_id = 'c1' AND restarts > 0 ORDER BY bucket",
            &[&host],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(restarts.iter().sum::<i64>(), 3 + 2 + 1, "{restarts:?}");
    assert_eq!(restarts[..2], [3, 2], "one bucket each for the old weeks");
}
