//! Throwaway PostgreSQL clusters for the scale-out tests: a small primary with TimescaleDB and a
//! streaming standby made from it with `pg_basebackup -R`, both on loopback ports of their own,
//! inside the Debian root `scripts/timescaledb` provisions (`NEXUS_PG_ROOT`, exported by
//! `scripts/test`). Stopped and deleted when dropped.
//!
//! The primary is the test's own rather than the shared cluster on 54329: a base backup copies a
//! whole cluster, and the shared one holds every test's database (tens of GB).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/17/bin";

/// The Debian root holding PostgreSQL 17 and TimescaleDB (see `scripts/test`).
pub fn pg_root() -> PathBuf {
    PathBuf::from(std::env::var("NEXUS_PG_ROOT").expect(
        "NEXUS_PG_ROOT must name the Debian root with PostgreSQL and TimescaleDB (run scripts/test)",
    ))
}

/// A free loopback port (free when asked; the cluster binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
}

/// Runs `program` inside the root as its `postgres` user; panics with the output on failure.
pub fn in_root(root: &std::path::Path, args: &[&str]) -> Output {
    let output = Command::new("chroot")
        .arg("--userspec=postgres:postgres")
        .arg(root)
        .args(["env", "LANG=C.UTF-8"])
        .args(args)
        .output()
        .expect("chroot runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A primary and its streaming standby, each with a database `nexus`.
pub struct StreamingPair {
    root: PathBuf,
    /// The directory inside the root, e.g. `/var/lib/nexus/standby-1a2b3c4d`.
    dir: String,
    pub primary_port: u16,
    pub standby_port: u16,
}

impl StreamingPair {
    pub async fn start() -> Self {
        let root = pg_root();
        let dir = format!(
            "/var/lib/nexus/standby-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let host_dir = root.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&host_dir).expect("create the clusters' directory");
        let chown = Command::new("chroot")
            .arg(&root)
            .args(["chown", "postgres:postgres", &dir])
            .status()
            .expect("chown runs");
        assert!(chown.success(), "chown {dir}");
        let pair = Self {
            root,
            dir,
            primary_port: free_port(),
            standby_port: free_port(),
        };
        pair.init_primary();
        pair.start_cluster("primary");
        crate::helpers::connect(&pair.url(pair.primary_port, "postgres"))
            .await
            .batch_execute("CREATE DATABASE nexus")
            .await
            .expect("create the database");
        let standby = format!("{}/standby", pair.dir);
        in_root(
            &pair.root,
            &[
                &format!("{BIN}/pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                &pair.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &standby,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        // Later lines win: the copied configuration names the primary's port.
        let conf = pair.host_path("standby/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("standby configuration");
        text.push_str(&format!("port = {}\n", pair.standby_port));
        std::fs::write(&conf, text).expect("write the standby configuration");
        pair.start_cluster("standby");
        pair
    }

    pub fn primary_url(&self) -> String {
        self.url(self.primary_port, "nexus")
    }

    pub fn standby_url(&self) -> String {
        self.url(self.standby_port, "nexus")
    }

    fn url(&self, port: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{database}")
    }

    fn host_path(&self, inside: &str) -> PathBuf {
        self.root
            .join(self.dir.trim_start_matches('/'))
            .join(inside)
    }

    fn init_primary(&self) {
        let data = format!("{}/primary", self.dir);
        in_root(
            &self.root,
            &[
                &format!("{BIN}/initdb"),
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        let conf = self.host_path("primary/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("primary configuration");
        // Small and fast: this cluster lives for one test. Replication needs only the defaults
        // (wal_level = replica, max_wal_senders = 10, replication trusted on loopback).
        text.push_str(&format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
             shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n\
             max_connections = 60\nshared_buffers = 32MB\ndynamic_shared_memory_type = mmap\n\
             max_locks_per_transaction = 256\nfsync = off\nsynchronous_commit = off\n\
             max_worker_processes = 16\ntimescaledb.max_background_workers = 4\n",
            self.primary_port
        ));
        std::fs::write(&conf, text).expect("write the primary configuration");
    }

    fn start_cluster(&self, name: &str) {
        let data = format!("{}/{name}", self.dir);
        in_root(
            &self.root,
            &[
                &format!("{BIN}/pg_ctl"),
                "-D",
                &data,
                "-l",
                &format!("{data}.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the standby at once (as a crash would).
    pub fn stop_standby(&self) {
        self.stop("standby");
    }

    fn stop(&self, name: &str) {
        let data = format!("{}/{name}", self.dir);
        let _ = Command::new("chroot")
            .arg("--userspec=postgres:postgres")
            .arg(&self.root)
            .args([
                &format!("{BIN}/pg_ctl"),
                "-D",
                &data,
                "-m",
                "immediate",
                "-w",
            ])
            .arg("stop")
            .output();
    }
}

impl Drop for StreamingPair {
    fn drop(&mut self) {
        self.stop("standby");
        self.stop("primary");
        let _ = std::fs::remove_dir_all(self.root.join(self.dir.trim_start_matches('/')));
    }
}

/// Polls `condition` every 100 ms until it holds; panics after `limit` naming `what`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
