//! Faults: the database going away and coming back, an exhausted pool, and SIGTERM under load.
//! The database is reached through a proxy the test can cut, as a network or restart would.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use nexus_telemetry::startup::Application;
use nexus_telemetry::store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{at, connect, fresh_database, payload, rfc3339, serve_args};

/// A TCP proxy to PostgreSQL that can be cut: cutting drops every open connection and refuses
/// new ones until it is restored.
struct DbProxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl DbProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_through(&self, url: &str) -> String {
        let target = target_of(url);
        url.replacen(
            &format!("{}:{}", target.ip(), target.port()),
            &format!("127.0.0.1:{}", self.port),
            1,
        )
    }
}

fn target_of(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("TCP DATABASE_URL expected, got {other:?}"),
    };
    format!("{host}:{}", config.get_ports()[0])
        .parse()
        .expect("DATABASE_URL host is an IP address")
}

/// A migrated database with one host and token, and an app reaching it through a proxy.
struct ProxiedApp {
    address: String,
    proxy: DbProxy,
    direct: tokio_postgres::Client,
    tokens: Vec<String>,
}

async fn proxied_app(hosts: usize, extra: &[&str], proxy_up: bool) -> ProxiedApp {
    let url = fresh_database().await;
    let direct_store = Store::new(&serve_args(&url, &[]).db.settings()).unwrap();
    let mut tokens = Vec::new();
    for i in 0..hosts {
        let host = direct_store
            .create_host(&format!("host {i}"), &format!("host-{i}"))
            .await
            .unwrap();
        tokens.push(
            direct_store
                .issue_agent_token(host.id, "t", false)
                .await
                .unwrap()
                .token
                .plaintext
                .clone(),
        );
    }
    let proxy = DbProxy::start(target_of(&url)).await;
    proxy.set_up(proxy_up);
    let mut args = vec!["--db-timeout-seconds", "1"];
    args.extend_from_slice(extra);
    let app = Application::build(&serve_args(&proxy.url_through(&url), &args))
        .await
        .unwrap();
    let address = format!("http://{}", app.local_addr);
    tokio::spawn(app.run(std::future::pending()));
    ProxiedApp {
        address,
        proxy,
        direct: connect(&url).await,
        tokens,
    }
}

#[tokio::test]
async fn with_the_database_down_at_start_the_server_serves_503_and_recovers_by_itself() {
    let app = proxied_app(1, &[], false).await;
    let http = crate::helpers::http_client();
    let ready = || http.get(format!("{}/readyz", app.address)).send();
    let post = || {
        http.post(format!("{}/agent/telemetry", app.address))
            .bearer_auth(&app.tokens[0])
            .json(&payload(&at(Duration::zero()), &[]))
            .send()
    };

    assert_eq!(ready().await.unwrap().status(), 503);
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");

    app.proxy.set_up(true);
    let deadline = Instant::now() + StdDuration::from_secs(15);
    while ready().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    assert_eq!(post().await.unwrap().status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_cut_under_load_leaves_every_snapshot_whole_or_absent() {
    let app = Arc::new(proxied_app(8, &[], true).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (accepted_so_far, failed_so_far) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut agents = Vec::new();
    for (host, token) in app.tokens.clone().into_iter().enumerate() {
        let (app, stop) = (app.clone(), stop.clone());
        let (accepted_so_far, failed_so_far) = (accepted_so_far.clone(), failed_so_far.clone());
        agents.push(tokio::spawn(async move {
            let http = crate::helpers::http_client();
            let mut outcomes = Vec::new();
            // Each post a millisecond earlier than the last from one fixed instant: distinct by
            // construction (now minus a count repeats when a post takes exactly that long).
            let start = Utc::now();
            let mut offset = 0;
            while !stop.load(Ordering::SeqCst) {
                offset += 1;
                let recorded_at = rfc3339(start - Duration::milliseconds(offset));
                let sent = http
                    .post(format!("{}/agent/telemetry", app.address))
                    .bearer_auth(&token)
                    .json(&payload(
                        &recorded_at,
                        &[("a", "running"), ("b", "running"), ("c", "running")],
                    ))
                    .send()
                    .await;
                let status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
                let tally = if status == 204 {
                    &accepted_so_far
                } else {
                    &failed_so_far
                };
                tally.fetch_add(1, Ordering::SeqCst);
                // A snapshot is its host and instant: two hosts may post the same instant.
                outcomes.push(((format!("host-{host}"), recorded_at), status));
            }
            outcomes
        }));
    }
    // The cut comes once posts are stored and lasts until one has failed (at least 700 ms): on
    // a loaded box no post may be in flight for a fixed window. Both waits are bounded.
    let until = |count: Arc<AtomicUsize>| async move {
        let deadline = Instant::now() + StdDuration::from_secs(10);
        while count.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    };
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    until(accepted_so_far).await;
    app.proxy.set_up(false);
    tokio::time::sleep(StdDuration::from_millis(700)).await;
    until(failed_so_far).await;
    app.proxy.set_up(true);
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for agent in agents {
        outcomes.extend(agent.await.unwrap());
    }

    let rows = app
        .direct
        .query(
            "SELECT (SELECT slug FROM hosts WHERE id = h.host_id),
                    to_char(h.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    (SELECT count(*) FROM container_metric_snapshots c WHERE c.host_id = h.host_id AND c.recorded_at = h.recorded_at)
             FROM host_metric_snapshots h",
            &[],
        )
        .await
        .unwrap();
    let stored: HashSet<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for row in &rows {
        assert_eq!(row.get::<_, i64>(2), 3, "a snapshot was written partially");
    }
    let accepted = outcomes.iter().filter(|o| o.1 == 204).count();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.1 != 204).collect();
    assert!(
        accepted > 0 && !failed.is_empty(),
        "the cut happened under load: {accepted} ok, {} failed",
        failed.len()
    );
    for (snapshot, _) in outcomes.iter().filter(|o| o.1 == 204) {
        assert!(
            stored.contains(snapshot),
            "a 204 without its rows: {snapshot:?}"
        );
    }
    for (_, status) in &failed {
        assert!([500, 503].contains(status), "unexpected status {status}");
    }
    // A statement that committed just before the cut can lose its reply; it is whole (checked
    // above) and an agent's retry of it is acknowledged without a duplicate.
    let committed_but_failed = failed.iter().filter(|o| stored.contains(&o.0)).count();
    assert!(
        committed_but_failed <= app.tokens.len(),
        "at most one in-flight request per agent: {committed_but_failed}"
    );
    assert_eq!(stored.len(), accepted + committed_but_failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_after_the_configured_wait() {
    let app = proxied_app(2, &["--db-pool-size", "1"], true).await;
    let http = crate::helpers::http_client();
    // Hold the first host's row so its ingest keeps the only connection busy.
    app.direct
        .batch_execute("BEGIN; SELECT * FROM hosts WHERE slug = 'host-0' FOR UPDATE")
        .await
        .unwrap();
    let post_blocked = || {
        let (http, address, token) = (http.clone(), app.address.clone(), app.tokens[0].clone());
        tokio::spawn(async move {
            http.post(format!("{address}/agent/telemetry"))
                .bearer_auth(token)
                .json(&payload(&at(Duration::zero()), &[]))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Until the blocked ingest holds the pool's only connection, waiting on the row lock. The
    // server's start-up work may hold that connection longer than the wait: then the first
    // post is a 503 before it reaches the lock, and it is posted again.
    let mut blocked = post_blocked();
    let deadline = Instant::now() + StdDuration::from_secs(10);
    loop {
        // Activity statistics are a snapshot per transaction, and this one stays open.
        app.direct
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let waiting_on_lock: i64 = app
            .direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting_on_lock > 0 {
            break;
        }
        if blocked.is_finished() {
            assert_eq!(
                blocked.await.unwrap(),
                503,
                "the first post passed the lock"
            );
            blocked = post_blocked();
        }
        assert!(
            Instant::now() < deadline,
            "the first ingest never reached the lock"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }

    let started = Instant::now();
    let waiting = http
        .post(format!("{}/agent/telemetry", app.address))
        .bearer_auth(&app.tokens[1])
        .json(&payload(&at(Duration::zero()), &[]))
        .send()
        .await
        .unwrap();

    assert_eq!(waiting.status(), 503);
    let waited = started.elapsed();
    assert!(
        waited >= StdDuration::from_millis(900) && waited < StdDuration::from_secs(5),
        "waited {waited:?}"
    );
    app.direct.batch_execute("COMMIT").await.unwrap();
    assert_eq!(blocked.await.unwrap(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_load_finishes_in_flight_requests_and_exits_cleanly() {
    let url = fresh_database().await;
    let store = Store::new(&serve_args(&url, &[]).db.settings()).unwrap();
    let host = store.create_host("web", "web").await.unwrap();
    let token = store
        .issue_agent_token(host.id, "t", false)
        .await
        .unwrap()
        .token
        .plaintext
        .clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_nexus-telemetry"))
        .args(["serve", "--rate-limit-per-minute", "100000"])
        .env("DATABASE_URL", &url)
        .env("NEXUS_LISTEN", format!("127.0.0.1:{port}"))
        .env("NEXUS_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address = format!("http://127.0.0.1:{port}");
    let http = crate::helpers::http_client();
    let deadline = Instant::now() + StdDuration::from_secs(20);
    while http.get(format!("{address}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }

    let mut agents = Vec::new();
    // One instant for all agents: recorded_at is then distinct by construction across the
    // agents of the one host (see the test above).
    let start = Utc::now();
    for agent in 0..4 {
        let (http, address, token) = (http.clone(), address.clone(), token.clone());
        agents.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0.. {
                let recorded_at = rfc3339(start - Duration::milliseconds(i * 4 + agent));
                match http
                    .post(format!("{address}/agent/telemetry"))
                    .bearer_auth(&token)
                    .json(&payload(&recorded_at, &[("a", "running")]))
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 204 => accepted.push(recorded_at),
                    Ok(response) => panic!("unexpected {}", response.status()),
                    Err(_) => break, // the server stopped accepting
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(StdDuration::from_millis(800)).await;
    let pid = server.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    let status = tokio::time::timeout(StdDuration::from_secs(30), server.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut accepted = Vec::new();
    for agent in agents {
        accepted.extend(agent.await.unwrap());
    }
    assert!(!accepted.is_empty());
    let db = connect(&url).await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM host_metric_snapshots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize,
        accepted.len(),
        "every 204 has its rows, and nothing else was written"
    );
}
