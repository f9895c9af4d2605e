//! The server through PgBouncer 1.24 (Debian 13's package) in transaction mode: prepared
//! statements with `max_prepared_statements`, and `--direct-database-url` for the sessions a
//! transaction pooler cannot carry (the token listener's LISTEN, the migrations' lock).

use std::time::Duration;

use chrono::Duration as Age;
use nexus_telemetry::startup::Application;
use nexus_test_support::clusters::{PgBouncer, wait_for};
use reqwest::Method;

use crate::helpers::{
    TestApp, at, call, connect, fresh_database, http_client, payload, serve_args,
};

/// Three rounds of concurrent posts by every agent; the statuses.
async fn post_rounds(helper: &TestApp, agents: &[(i64, String)]) -> Vec<reqwest::StatusCode> {
    let mut all = Vec::new();
    for round in 0..3 {
        let mut posts = tokio::task::JoinSet::new();
        for (_, token) in agents {
            let body = payload(
                &at(Age::seconds(-30 + round)),
                &[("c1", "running"), ("c2", "exited")],
            );
            let request = helper
                .http
                .post(helper.telemetry_url())
                .bearer_auth(token)
                .json(&body);
            posts.spawn(async move { request.send().await.expect("request sent").status() });
        }
        all.extend(posts.join_all().await);
    }
    all
}

/// 48 reads at once: on many pooled connections, each preparing its statements on whichever
/// server connection PgBouncer hands it and running them on another.
async fn concurrent_reads(helper: &TestApp, agents: &[(i64, String)], admin: &str) -> Vec<u16> {
    let mut reads = tokio::task::JoinSet::new();
    for (host, _) in agents.iter().cycle().take(48) {
        let (http, address, admin, host) = (
            helper.http.clone(),
            helper.address.clone(),
            admin.to_owned(),
            *host,
        );
        reads.spawn(async move {
            let path = format!("/hosts/{host}/containers");
            call(&http, &address, Method::GET, &path, Some(&admin), None)
                .await
                .status
        });
    }
    reads.join_all().await
}

/// A server on `pooled` (through PgBouncer) with its sessions on `direct`, and a helper whose
/// own store and client use `direct`.
async fn serve_through(pooled: &str, direct: &str) -> TestApp {
    let app = Application::build(&serve_args(pooled, &["--direct-database-url", direct]))
        .await
        .expect("the app builds");
    let address = format!("http://{}", app.local_addr);
    tokio::spawn(app.run(std::future::pending()));
    TestApp {
        address,
        database_url: direct.to_owned(),
        store: nexus_telemetry::store::Store::new(&serve_args(direct, &[]).db.settings()).unwrap(),
        db: connect(direct).await,
        http: http_client(),
    }
}

#[tokio::test]
async fn through_pgbouncer_in_transaction_mode_ingest_reads_and_revocations_work_with_a_direct_url_for_sessions()
 {
    let direct = fresh_database().await;
    let bouncer = PgBouncer::start(&direct, 200).await;
    // 16 pooled connections on the server's side share PgBouncer's 4 to PostgreSQL, so
    // prepared statements run on server connections other than the one they were prepared on.
    let helper = serve_through(&bouncer.url(&direct), &direct).await;
    let admin = helper.admin_token().await;
    let mut agents = Vec::new();
    for i in 0..12 {
        agents.push(helper.host_with_token(&format!("pooled-{i}")).await);
    }
    let statuses = post_rounds(&helper, &agents).await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(helper.written().await, (36, 24, 72));
    let reads = concurrent_reads(&helper, &agents, &admin).await;
    assert!(reads.iter().all(|&s| s == 200), "{reads:?}");

    let (host, token) = &agents[0];
    let answer = call(
        &helper.http,
        &helper.address,
        Method::GET,
        &format!("/hosts/{host}/containers"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["items"].as_array().unwrap().len(), 2);

    helper
        .db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[host],
        )
        .await
        .unwrap();
    let body = payload(&at(Age::seconds(-5)), &[]);
    assert_eq!(helper.post_telemetry(token, &body).await.status(), 401);
}

#[tokio::test]
async fn through_pgbouncer_without_max_prepared_statements_concurrent_requests_fail() {
    let direct = fresh_database().await;
    let bouncer = PgBouncer::start(&direct, 0).await;
    let helper = serve_through(&bouncer.url(&direct), &direct).await;
    let admin = helper.admin_token().await;
    let mut agents = Vec::new();
    for i in 0..12 {
        agents.push(helper.host_with_token(&format!("pooled-{i}")).await);
    }
    let mut statuses: Vec<u16> = post_rounds(&helper, &agents)
        .await
        .iter()
        .map(|s| s.as_u16())
        .collect();
    statuses.extend(concurrent_reads(&helper, &agents, &admin).await);
    assert!(
        statuses.iter().any(|&s| s >= 500),
        "a statement prepared on one server connection and run on another fails: {statuses:?}"
    );
}

#[tokio::test]
async fn through_pgbouncer_the_alert_evaluator_takes_its_lease_and_is_woken_over_the_direct_url() {
    let direct = fresh_database().await;
    let bouncer = PgBouncer::start(&direct, 200).await;
    let helper = serve_through(&bouncer.url(&direct), &direct).await;
    helper
        .db
        .execute(
            "UPDATE alert_rules SET for_seconds = 0 WHERE kind = 'container_not_running'",
            &[],
        )
        .await
        .unwrap();
    let (_, token) = helper.host_with_token("pooled").await;
    let running = payload(&at(Age::seconds(-2)), &[("c1", "running")]);
    assert_eq!(helper.post_telemetry(&token, &running).await.status(), 204);
    let exited = payload(&at(Age::seconds(-1)), &[("c1", "exited")]);
    assert_eq!(helper.post_telemetry(&token, &exited).await.status(), 204);
    // The evaluation interval is the default 15 s: only the LISTEN wake-up fires it sooner.
    wait_for("the alert fires", Duration::from_secs(10), || async {
        helper
            .count("SELECT count(*) FROM alerts WHERE state = 'firing' AND container_id = 'c1'")
            .await
            == 1
    })
    .await;
}
