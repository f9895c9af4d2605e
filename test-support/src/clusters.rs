//! Throwaway PostgreSQL clusters and the daemons of a scaled-out deployment, inside the Debian
//! root that `scripts/timescaledb` provisions and `scripts/scaleout-tools` names
//! (`NEXUS_PG_ROOT`): a primary with TimescaleDB and a streaming standby made from it with
//! `pg_basebackup -R` ([`StreamingPair`]), PgBouncer and HAProxy; each on loopback ports of its
//! own, stopped and deleted when dropped. What the bench uses too answers errors; what only the
//! tests use panics, naming what failed.
//!
//! The primary is the caller's own rather than the shared cluster: a base backup copies a whole
//! cluster, and the shared one holds every test's database (tens of GB).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::process::Command;

use crate::database::{ServerUrl, connect};

const BIN: &str = "/usr/lib/postgresql/17/bin";

/// The database each pair is made with (on the primary before the backup, so on both).
const DATABASE: &str = "nexus";

/// Small and fast settings for a cluster that lives for one test. Replication needs only the
/// defaults (wal_level = replica, max_wal_senders = 10, replication trusted on loopback).
pub const SMALL: &str = "max_connections = 60\nshared_buffers = 32MB\n\
     max_locks_per_transaction = 256\nfsync = off\nsynchronous_commit = off\n\
     max_worker_processes = 16\ntimescaledb.max_background_workers = 4\n";

/// What every cluster here needs, whatever its size: loopback only, TimescaleDB loaded.
const BASE_SETTINGS: &str = "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
     shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n\
     dynamic_shared_memory_type = mmap\n";

/// The Debian root holding PostgreSQL 17 and TimescaleDB (`NEXUS_PG_ROOT`, which `scripts/test`
/// exports).
pub fn pg_root() -> PathBuf {
    PathBuf::from(std::env::var("NEXUS_PG_ROOT").expect(
        "NEXUS_PG_ROOT must name the Debian root with PostgreSQL and TimescaleDB (run scripts/test)",
    ))
}

/// A free loopback port (free when asked; the caller binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local address")
        .port()
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

/// A primary and its streaming standby, each with a database `nexus`.
pub struct StreamingPair {
    root: PathBuf,
    /// The clusters' directory inside the root, e.g. `/var/lib/nexus/pair-1a2b3c4d`.
    dir: String,
    pub primary_port: u16,
    pub standby_port: u16,
}

impl StreamingPair {
    /// Starts a primary in `root` with `settings` (e.g. [`SMALL`]) and a standby streaming from
    /// it; returns once the primary lists the standby as streaming.
    pub async fn start(root: &Path, settings: &str) -> Result<Self> {
        ensure!(
            root.join(&BIN[1..]).join("pg_basebackup").exists(),
            "{} has no PostgreSQL 17 (eval \"$(scripts/scaleout-tools)\" names the root)",
            root.display()
        );
        let dir = format!(
            "/var/lib/nexus/pair-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let host_dir = root.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&host_dir)
            .with_context(|| format!("Failed to create {}", host_dir.display()))?;
        // From here on, dropping the pair removes whatever was made.
        let pair = Self {
            root: root.to_owned(),
            dir,
            primary_port: free_port(),
            standby_port: free_port(),
        };
        let status = Command::new("chroot")
            .arg(&pair.root)
            .args(["chown", "postgres:postgres", &pair.dir])
            .status()
            .await
            .context("chroot runs")?;
        ensure!(
            status.success(),
            "chown {} inside the root failed",
            pair.dir
        );
        let primary = format!("{}/primary", pair.dir);
        in_root(
            &pair.root,
            &[
                &format!("{BIN}/initdb"),
                "-D",
                &primary,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )
        .await?;
        pair.append_settings(
            "primary",
            &format!("{BASE_SETTINGS}{settings}port = {}\n", pair.primary_port),
        )?;
        pair.start_cluster("primary").await?;
        connect(&pair.primary().database("postgres"))
            .await?
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("Failed to create the pair's database")?;
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
                &format!("{}/standby", pair.dir),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )
        .await?;
        // Later lines win: the copied configuration names the primary's port.
        pair.append_settings("standby", &format!("port = {}\n", pair.standby_port))?;
        pair.start_cluster("standby").await?;
        pair.wait_streaming().await?;
        Ok(pair)
    }

    /// The primary's server, for URLs of its other databases.
    pub fn primary(&self) -> ServerUrl {
        server(self.primary_port)
    }

    /// The standby's server.
    pub fn standby(&self) -> ServerUrl {
        server(self.standby_port)
    }

    /// The URL of the database `nexus` on the primary.
    pub fn primary_url(&self) -> String {
        self.primary().database(DATABASE)
    }

    /// The URL of the database `nexus` on the standby.
    pub fn standby_url(&self) -> String {
        self.standby().database(DATABASE)
    }

    /// Where the clusters are, as seen from outside the root.
    pub fn host_dir(&self) -> PathBuf {
        self.root.join(self.dir.trim_start_matches('/'))
    }

    /// Stops the standby at once (as a crash would).
    pub fn stop_standby(&self) {
        self.stop("standby");
    }

    fn append_settings(&self, cluster: &str, settings: &str) -> Result<()> {
        let conf = self.host_dir().join(cluster).join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .with_context(|| format!("Failed to read {}", conf.display()))?;
        text.push_str(settings);
        std::fs::write(&conf, text).with_context(|| format!("Failed to write {}", conf.display()))
    }

    /// Starts a cluster; an error carries its log.
    async fn start_cluster(&self, name: &str) -> Result<()> {
        let data = format!("{}/{name}", self.dir);
        let log = format!("{data}.log");
        let started = in_root(
            &self.root,
            &[
                &format!("{BIN}/pg_ctl"),
                "-D",
                &data,
                "-l",
                &log,
                "-w",
                "-t",
                "120",
                "start",
            ],
        )
        .await;
        started.with_context(|| {
            let log = std::fs::read_to_string(self.root.join(log.trim_start_matches('/')))
                .unwrap_or_default();
            format!("the {name} did not start; its log:\n{log}")
        })
    }

    /// Waits (at most 60 s) until the primary lists the standby as streaming.
    async fn wait_streaming(&self) -> Result<()> {
        let primary = connect(&self.primary().database("postgres")).await?;
        let start = Instant::now();
        loop {
            let row = primary
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await?;
            if row.get::<_, i64>(0) > 0 {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the standby was not streaming within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops a cluster at once; runs from `Drop` too, so it blocks rather than awaits.
    fn stop(&self, name: &str) {
        let _ = std::process::Command::new("chroot")
            .arg("--userspec=postgres:postgres")
            .arg(&self.root)
            .arg(format!("{BIN}/pg_ctl"))
            .args(["-D", &format!("{}/{name}", self.dir)])
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for StreamingPair {
    fn drop(&mut self) {
        self.stop("standby");
        self.stop("primary");
        let _ = std::fs::remove_dir_all(self.host_dir());
    }
}

fn server(port: u16) -> ServerUrl {
    ServerUrl::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .expect("a loopback URL")
}

/// Runs `args` inside `root` as its `postgres` user; an error carries the output.
async fn in_root(root: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("chroot")
        .arg("--userspec=postgres:postgres")
        .arg(root)
        .args(["env", "LANG=C.UTF-8"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("chroot runs")?;
    ensure!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A daemon inside the root, run from a scratch directory of its own; killed, and the directory
/// deleted, when dropped. For the tests: a failure to start panics.
struct Daemon {
    child: std::process::Child,
    dir: PathBuf,
}

impl Daemon {
    /// A scratch directory `/tmp/nexus-<what>-<random>` inside the root: its path there, and
    /// outside.
    fn scratch(root: &Path, what: &str) -> (String, PathBuf) {
        let inside = format!(
            "/tmp/nexus-{what}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let outside = root.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(&outside).expect("a scratch directory in the root");
        (inside, outside)
    }

    /// Runs `command` in `root`, as `postgres` when `user` says so, with `env` set.
    fn spawn(
        root: &Path,
        dir: PathBuf,
        user: Option<&str>,
        command: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let mut chroot = std::process::Command::new("chroot");
        if let Some(user) = user {
            chroot.arg(format!("--userspec={user}:{user}"));
        }
        let child = chroot
            .arg(root)
            .args(command)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{command:?} starts (scripts/scaleout-tools installs it): {e}")
            });
        Self { child, dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PgBouncer from the root (`NEXUS_PGBOUNCER_BIN`, which `scripts/scaleout-tools` exports) in
/// transaction mode, on a loopback port.
pub struct PgBouncer {
    _daemon: Daemon,
    port: u16,
}

impl PgBouncer {
    /// Transaction pooling in front of the cluster of `database_url`, on a loopback port.
    pub async fn start(database_url: &str, max_prepared_statements: u32) -> Self {
        let upstream: tokio_postgres::Config = database_url.parse().expect("a database URL");
        let upstream_port = upstream.get_ports()[0];
        let root = pg_root();
        let (name, dir) = Daemon::scratch(&root, "pgbouncer");
        let port = free_port();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port={upstream_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {name}/userlist.txt\n\
                 pool_mode = transaction\nmax_prepared_statements = {max_prepared_statements}\n\
                 default_pool_size = 4\nmax_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits\n"
            ),
        )
        .unwrap();
        let status = std::process::Command::new("chroot")
            .arg(&root)
            .args(["chown", "-R", "postgres:postgres", &name])
            .status()
            .unwrap();
        assert!(status.success());
        let pgbouncer =
            std::env::var("NEXUS_PGBOUNCER_BIN").unwrap_or_else(|_| "/usr/sbin/pgbouncer".into());
        let config = format!("{name}/pgbouncer.ini");
        let daemon = Daemon::spawn(&root, dir, Some("postgres"), &[&pgbouncer, &config], &[]);
        wait_for("PgBouncer listens", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Self {
            _daemon: daemon,
            port,
        }
    }

    /// `database_url` with PgBouncer's port.
    pub fn url(&self, database_url: &str) -> String {
        let config: tokio_postgres::Config = database_url.parse().unwrap();
        let database = config.get_dbname().expect("a database name");
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// HAProxy from the root (`NEXUS_HAPROXY_BIN`, which `scripts/scaleout-tools` exports).
pub struct HaProxy {
    _daemon: Daemon,
    /// `http://127.0.0.1:<port>`, where it listens.
    pub address: String,
}

impl HaProxy {
    /// HAProxy running the configuration at `config`, which binds where `NEXUS_LB_BIND` says (a
    /// free loopback port) and reads the rest from `env`. Returns once started: whether it
    /// answers depends on what it balances, which the caller waits for.
    pub fn start(config: &Path, env: &[(&str, String)]) -> Self {
        let root = pg_root();
        let (name, dir) = Daemon::scratch(&root, "lb");
        std::fs::copy(config, dir.join("haproxy.cfg")).expect("copy the configuration");
        let port = free_port();
        let haproxy =
            std::env::var("NEXUS_HAPROXY_BIN").unwrap_or_else(|_| "/usr/sbin/haproxy".into());
        let mut env = env.to_vec();
        env.push(("NEXUS_LB_BIND", format!("127.0.0.1:{port}")));
        let config = format!("{name}/haproxy.cfg");
        let daemon = Daemon::spawn(&root, dir, None, &[&haproxy, "-db", "-f", &config], &env);
        Self {
            _daemon: daemon,
            address: format!("http://127.0.0.1:{port}"),
        }
    }
}
