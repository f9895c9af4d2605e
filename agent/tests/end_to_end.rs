//! The agent binary against the real server and TimescaleDB: rows appear, a bad token exits 3,
//! 429 is honoured, and an outage followed by recovery loses and duplicates nothing.
//!
//! Needs `target/debug/nexus-telemetry` (built with the workspace) and `DATABASE_URL` (or
//! `scripts/timescaledb`).

mod support;

use std::time::Duration;

use support::e2e::{
    ReservedPort, TestAgent, TestDatabase, TestServer, eventually, free_port, host_with_token,
};
use support::fake_docker::{FakeDocker, recorded_routes};

#[tokio::test]
async fn snapshots_from_the_agent_appear_as_host_and_container_rows() {
    let database = TestDatabase::create().await;
    let (host_id, token) = host_with_token(&database, "e2e rows");
    let server = TestServer::start(&database, free_port(), &[]);
    let docker = FakeDocker::start(recorded_routes(), Duration::ZERO);
    let agent = TestAgent::start(
        &server.url(),
        &token,
        &[("DOCKER_HOST", &docker.docker_host())],
    );

    let arrived = eventually(Duration::from_secs(30), || async {
        database.host_rows(host_id).await.len() >= 3
    })
    .await;
    assert!(arrived, "no host rows; agent log:\n{}", agent.log());
    assert!(
        database.container_row_count(host_id).await > 0,
        "container rows expected; agent log:\n{}",
        agent.log()
    );
    assert!(
        !agent.log().contains(&token),
        "the token must never be logged"
    );
}

#[tokio::test]
async fn a_wrong_token_makes_the_agent_exit_with_code_3() {
    let database = TestDatabase::create().await;
    let server = TestServer::start(&database, free_port(), &[]);
    let mut agent = TestAgent::start(&server.url(), "nxa_not_a_real_token", &[]);

    let code = agent.wait_for_exit(Duration::from_secs(20));
    assert_eq!(code, Some(3), "agent log:\n{}", agent.log());
    assert!(agent.log().contains("401"));
    assert!(
        !agent.log().contains("nxa_not_a_real_token"),
        "the token must never be logged"
    );
}

#[tokio::test]
async fn a_rate_limited_agent_waits_for_retry_after_before_sending_again() {
    let database = TestDatabase::create().await;
    let (host_id, token) = host_with_token(&database, "e2e rate limit");
    // A burst of 2, then one request per 30 s.
    let server = TestServer::start(
        &database,
        free_port(),
        &[("NEXUS_RATE_LIMIT_PER_MINUTE", "2")],
    );
    let agent = TestAgent::start(&server.url(), &token, &[("NEXUS_AGENT_GZIP", "false")]);

    let limited = eventually(Duration::from_secs(20), || async {
        agent.log_lines("rate limited") >= 1
    })
    .await;
    assert!(limited, "expected a 429; agent log:\n{}", agent.log());
    // Several ticks pass while the server asked to wait ~30 s.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let log = agent.log();
    assert_eq!(
        agent.log_lines("rate limited"),
        1,
        "retried before Retry-After:\n{log}"
    );
    let waited: u64 = log
        .split("retry_after_seconds=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|seconds| seconds.parse().ok())
        .expect("the wait is logged");
    assert!(
        waited >= 20,
        "Retry-After of a 2/min limit is ~30 s, got {waited}"
    );
    assert_eq!(
        database.host_rows(host_id).await.len(),
        2,
        "the burst, nothing more"
    );
    assert!(
        agent.log_lines("snapshot taken") >= 6,
        "snapshots keep being taken while waiting"
    );
}

#[tokio::test]
async fn an_outage_followed_by_recovery_loses_no_snapshot_and_duplicates_none() {
    let database = TestDatabase::create().await;
    let (host_id, token) = host_with_token(&database, "e2e outage");
    // Held for the whole outage: a port merely free when picked can meanwhile be taken by another
    // test's server, which answers this agent 401.
    let port = ReservedPort::new();
    let mut agent = TestAgent::start(&format!("http://127.0.0.1:{}", port.port), &token, &[]);

    // Nothing listens yet: every delivery fails and the snapshots pile up.
    let buffered = eventually(Duration::from_secs(20), || async {
        agent.log_lines("snapshot taken") >= 4
    })
    .await;
    assert!(buffered, "agent log:\n{}", agent.log());
    assert_eq!(
        agent.log_lines("server unavailable"),
        1,
        "the outage is logged once"
    );

    let _server = TestServer::start(&database, port.port, &[]);
    let caught_up = eventually(Duration::from_secs(30), || async {
        // The buffered snapshots and a few taken since.
        database.host_rows(host_id).await.len() >= 7
    })
    .await;
    assert!(caught_up, "agent log:\n{}", agent.log());

    assert_eq!(agent.terminate(), Some(0), "agent log:\n{}", agent.log());
    let log = agent.log();
    let taken = agent.log_lines("snapshot taken");
    let rows = database.host_rows(host_id).await;
    assert!(
        !log.contains("not yet delivered"),
        "everything delivered before stopping:\n{log}"
    );
    assert_eq!(rows.len(), taken, "one row per snapshot taken:\n{log}");
    for pair in rows.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > chrono::Duration::milliseconds(500) && gap < chrono::Duration::milliseconds(1800),
            "snapshots are a tick apart, found a gap of {gap} between {} and {}",
            pair[0],
            pair[1]
        );
    }
    assert!(log.contains("server reachable again"), "{log}");
}
