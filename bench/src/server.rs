//! The server under test: spawned as its release binary on a free loopback port (one process per
//! scenario, so each peak resident memory is that scenario's), and stopped after it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nexus_test_support::metrics;
use tokio::process::{Child, Command};

use crate::procfs;

pub struct Server {
    child: Child,
    pub url: String,
    pub pid: u32,
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerSettings<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    pub rate_limit_per_minute: u32,
    pub pool_size: Option<usize>,
    /// A streaming replica for the read API (`--read-database-url`).
    pub read_database_url: Option<&'a str>,
    /// The container cache's bound (absent: the server's default).
    pub container_cache_mib: Option<u64>,
    /// Seconds of silence before a host is marked offline (absent: the server's default).
    pub heartbeat_timeout_seconds: Option<u64>,
    /// Whether the server evaluates the alert rules (its default, every 15 s and after events).
    pub alert_evaluation: bool,
    /// Alerts go to this Alertmanager, and webhooks may go to loopback (the bench's receiver).
    pub delivery: Option<Delivery<'a>>,
}

/// Where a spawned server delivers alerts and webhooks.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub alertmanager_url: Option<&'a str>,
}

impl Server {
    /// Starts `serve` (which migrates the database first) and waits until it accepts connections.
    pub async fn spawn(settings: &ServerSettings<'_>) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(settings.binary);
        command
            .arg("serve")
            .env("DATABASE_URL", settings.database_url)
            .env("NEXUS_LISTEN", &listen)
            .env(
                "NEXUS_RATE_LIMIT_PER_MINUTE",
                settings.rate_limit_per_minute.to_string(),
            )
            .env("NEXUS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Some(pool) = settings.pool_size {
            command.env("NEXUS_DB_POOL_SIZE", pool.to_string());
        }
        if let Some(seconds) = settings.heartbeat_timeout_seconds {
            command.env("NEXUS_HEARTBEAT_TIMEOUT_SECONDS", seconds.to_string());
        }
        if let Some(mib) = settings.container_cache_mib {
            command.env("NEXUS_CONTAINER_CACHE_MIB", mib.to_string());
        }
        if !settings.alert_evaluation {
            command.env("NEXUS_ALERT_EVALUATION_INTERVAL_SECONDS", "0");
        }
        if let Some(delivery) = settings.delivery {
            command.env("NEXUS_ALLOW_PRIVATE_WEBHOOKS", "true");
            if let Some(url) = delivery.alertmanager_url {
                command.env("NEXUS_ALERTMANAGER_URL", url);
            }
        }
        if let Some(url) = settings.read_database_url {
            command.env("NEXUS_READ_DATABASE_URL", url);
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "Failed to start {} (build it: cargo build --release)",
                settings.binary.display()
            )
        })?;
        let pid = child.id().context("server exited at once")?;
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(&listen).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the server exited during start-up: {status}");
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the server did not listen on {listen} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            url: format!("http://{listen}"),
            pid,
        })
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        procfs::status_kib(self.pid, "VmHWM")
    }

    /// Sends SIGKILL and waits: its data are committed per request, nothing is lost.
    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// The value of a metric of the server's `/metrics`, summed over its label sets.
pub async fn metric(url: &str, name: &str) -> Result<f64> {
    metrics(url, &[name]).await.map(|values| values[0])
}

/// The values of `names` in one read of the server's `/metrics`, each summed over its label
/// sets (0 for a metric not recorded yet).
pub async fn metrics(url: &str, names: &[&str]) -> Result<Vec<f64>> {
    let mut connection = crate::http::Connection::new(url)?;
    let (status, body) = connection.get("/metrics", "").await?;
    anyhow::ensure!(status.is_success(), "GET /metrics answered {status}");
    let text = String::from_utf8_lossy(&body);
    Ok(names.iter().map(|name| metrics::sum(&text, name)).collect())
}

/// Waits until the server's token index holds `tokens` tokens (every notification of their
/// creation applied); the time that took. Measuring before then measures the settling.
pub async fn token_index_settled(url: &str, tokens: usize) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if metric(url, "nexus_token_index_tokens").await? >= tokens as f64 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the token index did not reach {tokens} tokens within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
