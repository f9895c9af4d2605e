//! Group commit: snapshots posted while the writer is busy share one transaction, and each
//! request still gets its own outcome.
//!
//! Each test runs the server with one ingest writer and holds that writer up: a test connection
//! locks one host's row, a snapshot of that host is posted (the writer's batch waits on the
//! lock), then the snapshots under test are posted and queue up; releasing the lock lets the
//! writer take them all in its next batch. Rows written by one transaction share its `xmin`.

use chrono::Duration;
use nexus_test_support::metrics;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::helpers::{TestApp, at, connect, payload};

/// A server whose only ingest writer is blocked until [`Held::release`].
struct Held {
    app: TestApp,
    lock: tokio_postgres::Client,
    blocked_post: JoinHandle<u16>,
}

impl Held {
    async fn start(extra_ddl: &str) -> Self {
        let app = TestApp::spawn_with(&["--ingest-writers", "1"]).await;
        if !extra_ddl.is_empty() {
            app.db.batch_execute(extra_ddl).await.unwrap();
        }
        let (host, token) = app.host_with_token("blocker").await;
        let lock = lock_hosts(&app, &[host]).await;
        let blocked_post = post_in_background(&app, &token, payload(&at(Duration::zero()), &[]));
        wait_for_lock_waiters(&app, 1).await;
        Self {
            app,
            lock,
            blocked_post,
        }
    }

    /// Posts a snapshot of `containers` (id, state) for each of `n` new hosts `web-0`, `web-1`…
    /// in the background; their ids and the posts' statuses to come.
    async fn post_for_new_hosts(
        &self,
        n: usize,
        containers: &[(&str, &str)],
    ) -> (Vec<i64>, Vec<JoinHandle<u16>>) {
        let mut hosts = Vec::new();
        let mut posts = Vec::new();
        for i in 0..n {
            let (host, token) = self.app.host_with_token(&format!("web-{i}")).await;
            let body = payload(&at(Duration::zero()), containers);
            posts.push(post_in_background(&self.app, &token, body));
            hosts.push(host);
        }
        (hosts, posts)
    }

    /// Waits until `n` snapshots are queued behind the blocked batch, then unblocks the writer.
    async fn release_when_queued(self, n: usize) -> TestApp {
        wait_until(&self.app, "the snapshots are queued", |app| async move {
            queued(app).await == n as f64
        })
        .await;
        self.lock.batch_execute("COMMIT").await.unwrap();
        assert_eq!(self.blocked_post.await.unwrap(), 204);
        self.app
    }
}

/// A test connection holding the rows of `hosts` locked until it commits.
async fn lock_hosts(app: &TestApp, hosts: &[i64]) -> tokio_postgres::Client {
    let lock = connect(&app.database_url).await;
    lock.batch_execute("BEGIN").await.unwrap();
    lock.execute(
        "SELECT 1 FROM hosts WHERE id = ANY($1) FOR UPDATE",
        &[&hosts],
    )
    .await
    .unwrap();
    lock
}

fn post_in_background(app: &TestApp, token: &str, body: Value) -> JoinHandle<u16> {
    let request = app
        .http
        .post(app.telemetry_url())
        .bearer_auth(token)
        .json(&body);
    tokio::spawn(async move {
        request
            .send()
            .await
            .expect("request sent")
            .status()
            .as_u16()
    })
}

/// The `nexus_ingest_queued_snapshots` gauge of the server's `/metrics`.
async fn queued(app: &TestApp) -> f64 {
    metrics::sum(
        &app.get_text("/metrics").await,
        "nexus_ingest_queued_snapshots",
    )
}

async fn wait_until<'a, F, Fut>(app: &'a TestApp, what: &str, condition: F)
where
    F: Fn(&'a TestApp) -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if condition(app).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until `n` sessions of the app's database wait on a row lock (writers held up).
async fn wait_for_lock_waiters(app: &TestApp, n: i64) {
    wait_until(
        app,
        &format!("{n} writer(s) wait on a locked host"),
        |app| async move {
            app.count(
                "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
                == n
        },
    )
    .await;
}

/// Transactions that wrote the host metric rows of `hosts`.
async fn transactions_of(app: &TestApp, hosts: &[i64]) -> i64 {
    app.db
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM host_metric_snapshots WHERE host_id = ANY($1)",
            &[&hosts],
        )
        .await
        .unwrap()
        .get(0)
}

async fn rows_of(app: &TestApp, host: i64) -> (i64, i64) {
    let row = app
        .db
        .query_one(
            "SELECT (SELECT count(*) FROM host_metric_snapshots WHERE host_id = $1), \
                    (SELECT count(*) FROM container_metric_snapshots WHERE host_id = $1)",
            &[&host],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn snapshots_that_arrive_while_the_writer_is_busy_are_stored_in_one_transaction() {
    let held = Held::start("").await;
    let (hosts, posts) = held
        .post_for_new_hosts(5, &[("a1", "running"), ("b2", "exited")])
        .await;
    let app = held.release_when_queued(5).await;

    for post in posts {
        assert_eq!(post.await.unwrap(), 204);
    }
    for &host in &hosts {
        assert_eq!(rows_of(&app, host).await, (1, 2), "host {host}");
    }
    assert_eq!(transactions_of(&app, &hosts).await, 1, "one shared commit");
    let container_transactions = app
        .count(
            "SELECT count(DISTINCT xmin::text) FROM container_metric_snapshots \
             WHERE host_id IN (SELECT id FROM hosts WHERE name LIKE 'web-%')",
        )
        .await;
    assert_eq!(container_transactions, 1);
}

#[tokio::test]
async fn two_snapshots_of_one_host_posted_together_are_both_stored_in_separate_transactions() {
    let held = Held::start("").await;
    let (host, token) = held.app.host_with_token("web-01").await;
    let first = post_in_background(
        &held.app,
        &token,
        payload(&at(Duration::seconds(-30)), &[("a1", "running")]),
    );
    let second = post_in_background(
        &held.app,
        &token,
        payload(&at(Duration::zero()), &[("a1", "exited")]),
    );
    let app = held.release_when_queued(2).await;

    assert_eq!((first.await.unwrap(), second.await.unwrap()), (204, 204));
    assert_eq!(rows_of(&app, host).await, (2, 2));
    assert_eq!(transactions_of(&app, &[host]).await, 2);
    let state: String = app
        .db
        .query_one("SELECT state FROM containers WHERE host_id = $1", &[&host])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "exited", "the newer snapshot's state is kept");
}

#[tokio::test]
async fn a_snapshot_the_database_refuses_fails_alone_and_its_batch_mates_are_stored() {
    // A rule only the database knows, so the snapshot passes validation and fails in the batch.
    let held =
        Held::start("ALTER TABLE hosts ADD CONSTRAINT no_poison CHECK (os <> 'poison')").await;
    let (good, posts) = held.post_for_new_hosts(3, &[("a1", "running")]).await;
    let (poisoned, token) = held.app.host_with_token("poisoned").await;
    let mut body = payload(&at(Duration::zero()), &[("a1", "running")]);
    body["host"]["facts"]["os"] = "poison".into();
    let poisoned_post = post_in_background(&held.app, &token, body);
    let app = held.release_when_queued(4).await;

    assert_eq!(poisoned_post.await.unwrap(), 500);
    assert_eq!(
        rows_of(&app, poisoned).await,
        (0, 0),
        "nothing of it written"
    );
    for (post, host) in posts.into_iter().zip(good) {
        assert_eq!(post.await.unwrap(), 204);
        assert_eq!(rows_of(&app, host).await, (1, 1), "host {host}");
    }
}

#[tokio::test]
async fn a_token_revoked_while_its_snapshot_waits_is_refused_and_its_batch_mates_are_stored() {
    let held = Held::start("").await;
    let (kept, kept_token) = held.app.host_with_token("web-01").await;
    let (revoked, revoked_token) = held.app.host_with_token("web-02").await;
    let kept_post = post_in_background(
        &held.app,
        &kept_token,
        payload(&at(Duration::zero()), &[("a1", "running")]),
    );
    let revoked_post = post_in_background(
        &held.app,
        &revoked_token,
        payload(&at(Duration::zero()), &[("a1", "running")]),
    );
    wait_until(&held.app, "both snapshots are queued", |app| async move {
        queued(app).await == 2.0
    })
    .await;
    held.app
        .db
        .execute(
            "UPDATE agent_tokens SET revoked_at = now() WHERE host_id = $1",
            &[&revoked],
        )
        .await
        .unwrap();
    let app = held.release_when_queued(2).await;

    assert_eq!(revoked_post.await.unwrap(), 401);
    assert_eq!(rows_of(&app, revoked).await, (0, 0));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM agent_tokens WHERE host_id = {revoked} AND last_used_at IS NOT NULL"
        ))
        .await,
        0,
        "a refused token is not stamped"
    );
    assert_eq!(kept_post.await.unwrap(), 204);
    assert_eq!(rows_of(&app, kept).await, (1, 1));
}

#[tokio::test]
async fn snapshots_of_one_host_posted_at_once_are_all_answered_without_further_traffic() {
    // Two writers; the test holds both up, one on another host's row and one on this host's,
    // while five snapshots of the host queue up. Four of them wait their turn (one per batch)
    // and must be written even though no further post arrives to wake a writer.
    let app = TestApp::spawn_with(&["--ingest-writers", "2"]).await;
    let (blocker, blocker_token) = app.host_with_token("blocker").await;
    let (host, token) = app.host_with_token("web-01").await;
    let lock = lock_hosts(&app, &[blocker, host]).await;
    let blocked_post =
        post_in_background(&app, &blocker_token, payload(&at(Duration::zero()), &[]));
    let posts: Vec<_> = (0..5)
        .map(|n| {
            let body = payload(&at(Duration::seconds(-n)), &[("a1", "running")]);
            post_in_background(&app, &token, body)
        })
        .collect();
    wait_for_lock_waiters(&app, 2).await;
    lock.batch_execute("COMMIT").await.unwrap();

    let answers = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        let mut statuses = vec![blocked_post.await.unwrap()];
        for post in posts {
            statuses.push(post.await.unwrap());
        }
        statuses
    })
    .await
    .expect("every post is answered");
    assert_eq!(answers, [204; 6]);
    assert_eq!(rows_of(&app, host).await, (5, 5));
}

#[tokio::test]
async fn a_retried_snapshot_is_skipped_and_its_batch_mates_are_stored() {
    let held = Held::start("").await;
    let (mates, posts) = held.post_for_new_hosts(3, &[("a1", "running")]).await;
    // What a stored snapshot leaves behind, as if the agent had lost the answer and posts again.
    let (retried, token) = held.app.host_with_token("retried").await;
    let recorded_at = at(Duration::seconds(-5));
    held.app
        .db
        .execute(
            "INSERT INTO host_metric_snapshots (host_id, recorded_at) \
             VALUES ($1, $2::text::timestamptz)",
            &[&retried, &recorded_at],
        )
        .await
        .unwrap();
    let retried_post = post_in_background(
        &held.app,
        &token,
        payload(&recorded_at, &[("a1", "running")]),
    );
    let app = held.release_when_queued(4).await;

    assert_eq!(retried_post.await.unwrap(), 204);
    assert_eq!(rows_of(&app, retried).await, (1, 0), "the first write wins");
    for (post, host) in posts.into_iter().zip(&mates) {
        assert_eq!(post.await.unwrap(), 204);
        assert_eq!(rows_of(&app, *host).await, (1, 1), "host {host}");
    }
    assert_eq!(transactions_of(&app, &mates).await, 1, "one shared commit");
}

#[tokio::test]
async fn a_writer_held_up_on_a_row_lock_does_not_hold_up_other_hosts() {
    let app = TestApp::spawn_with(&["--ingest-writers", "2"]).await;
    let (held_host, held_token) = app.host_with_token("held").await;
    let (_, token) = app.host_with_token("free").await;
    let lock = lock_hosts(&app, &[held_host]).await;
    let held_post = post_in_background(&app, &held_token, payload(&at(Duration::zero()), &[]));
    wait_for_lock_waiters(&app, 1).await;

    let free = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.post_telemetry(
            &token,
            &payload(&at(Duration::zero()), &[("a1", "running")]),
        ),
    )
    .await
    .expect("answered while the other writer waits on the lock");

    assert_eq!(free.status(), 204);
    assert!(!held_post.is_finished(), "the held snapshot still waits");
    lock.batch_execute("COMMIT").await.unwrap();
    assert_eq!(held_post.await.unwrap(), 204);
}
