//! The real server (`target/debug/nexus-telemetry`) on a fresh TimescaleDB database, and the
//! agent binary, as child processes.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::NoTls;

/// `DATABASE_URL`, or what `scripts/timescaledb` prints (it starts the database if needed).
pub fn base_database_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let script = workspace_root().join("scripts/timescaledb");
    let output = Command::new(&script)
        .output()
        .unwrap_or_else(|error| panic!("DATABASE_URL is unset and {script:?} failed: {error}"));
    assert!(
        output.status.success(),
        "{script:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The server binary the workspace build left behind.
pub fn server_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let binary = target.join("debug/nexus-telemetry");
    assert!(
        binary.exists(),
        "{binary:?} is missing: build the workspace first (`cargo build -p nexus-telemetry`)"
    );
    binary
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port held for a server that starts later: bound (so no other test's `free_port` can get it)
/// but not listening (so connections are refused, as with no server at all). The server may bind
/// it while this is held because both sockets set `SO_REUSEADDR` and neither listens yet.
pub struct ReservedPort {
    socket: socket2::Socket,
    pub port: u16,
}

impl ReservedPort {
    pub fn new() -> Self {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any_port.into()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        Self { socket, port }
    }
}

/// A database of its own for one test.
pub struct TestDatabase {
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let base = base_database_url();
        let (prefix, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /dbname");
        let name = format!(
            "agent_test_{}_{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap()
        );
        let (client, connection) = tokio_postgres::connect(&format!("{prefix}/postgres"), NoTls)
            .await
            .expect("connect to the postgres database");
        tokio::spawn(connection);
        drop_stale_databases(&client).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Self {
            url: format!("{prefix}/{name}"),
        }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// `recorded_at` of every host row, oldest first.
    pub async fn host_rows(&self, host_id: i64) -> Vec<DateTime<Utc>> {
        let rows = self
            .client()
            .await
            .query(
                "SELECT recorded_at FROM host_metric_snapshots WHERE host_id = $1 ORDER BY recorded_at",
                &[&host_id],
            )
            .await
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    }

    pub async fn container_row_count(&self, host_id: i64) -> i64 {
        self.client()
            .await
            .query_one(
                "SELECT count(*) FROM container_metric_snapshots WHERE host_id = $1",
                &[&host_id],
            )
            .await
            .unwrap()
            .get(0)
    }
}

/// A passing test's database goes with it (idle databases each keep a TimescaleDB scheduler
/// asking for a worker); a failing test's stays for inspection until a later run drops it.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let (prefix, name) = self.url.rsplit_once('/').expect("a database URL");
        let (admin, name) = (format!("{prefix}/postgres"), name.to_owned());
        // Drop may run inside the test's runtime, which cannot be blocked on; a thread can.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(async {
                    let (client, connection) = tokio_postgres::connect(&admin, NoTls).await?;
                    tokio::spawn(connection);
                    client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await
                })
        })
        .join();
    }
}

/// Test databases are kept for inspection after a run and dropped by a run hours later (as the
/// server's tests do), so they do not pile up on a developer's database server.
async fn drop_stale_databases(admin: &tokio_postgres::Client) {
    let cutoff = Utc::now().timestamp_nanos_opt().unwrap() - 3 * 3600 * 1_000_000_000;
    let rows = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'agent\\_test\\_%'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let created = name.rsplit('_').next().and_then(|t| t.parse::<i64>().ok());
        if created.is_none_or(|created| created < cutoff) {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Runs the server CLI against `database`; returns its JSON output.
pub fn server_cli(database: &TestDatabase, args: &[&str]) -> serde_json::Value {
    let output = Command::new(server_binary())
        .args(args)
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A host and a token for it.
pub fn host_with_token(database: &TestDatabase, name: &str) -> (i64, String) {
    let host = server_cli(database, &["host", "create", "--name", name, "--json"]);
    let host_id = host["id"].as_i64().unwrap();
    let token = server_cli(
        database,
        &["token", "issue", "--host", &host_id.to_string(), "--json"],
    );
    (host_id, token["token"].as_str().unwrap().to_owned())
}

/// A running `nexus-telemetry serve`, killed on drop.
pub struct TestServer {
    child: Child,
    pub port: u16,
}

impl TestServer {
    pub fn start(database: &TestDatabase, port: u16, env: &[(&str, &str)]) -> Self {
        let child = Command::new(server_binary())
            .arg("serve")
            .env("DATABASE_URL", &database.url)
            .env("NEXUS_LISTEN", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `nexus-agent` whose stderr goes to a file, killed on drop.
pub struct TestAgent {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl TestAgent {
    /// Starts the agent with a 1-second interval and no Docker, plus `env`.
    pub fn start(url: &str, token: &str, env: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nexus-agent"))
            .env_clear()
            .env("NEXUS_URL", url)
            .env("NEXUS_AGENT_TOKEN", token)
            .env("NEXUS_AGENT_INTERVAL_SECONDS", "1")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("NEXUS_LOG", "info,nexus_agent=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Waits up to `timeout` for the agent to exit by itself.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, then waits for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.wait_for_exit(Duration::from_secs(10))
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
