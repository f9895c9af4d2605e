//! Command line and environment (each flag has an environment variable, shown in `--help`), and
//! the check that turns them into a [`Settings`] or a message naming what is missing.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use reqwest::Url;

/// A value that must never reach a log: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "nexus-agent",
    version,
    about = "Reads this host and its Docker containers and pushes telemetry to nexus-telemetry"
)]
pub struct Cli {
    /// Base URL of the nexus-telemetry server, e.g. https://nexus.example.com
    #[arg(long, env = "NEXUS_URL")]
    pub url: Option<String>,
    /// Agent token issued for this host (`nexus-telemetry token issue`)
    #[arg(long, env = "NEXUS_AGENT_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub token: Option<Secret>,
    /// Seconds between snapshots
    #[arg(long, env = "NEXUS_AGENT_INTERVAL_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_seconds: u64,
    /// Mount point whose size and use are reported as disk_*_gb
    #[arg(long, env = "NEXUS_AGENT_DISK_MOUNT", default_value = "/")]
    pub disk_mount: PathBuf,
    /// Where the host's root is mounted (`/proc`, `/etc/os-release` and the disk mount are read
    /// below it); set it to e.g. /host when the agent runs in a container
    #[arg(long, env = "NEXUS_AGENT_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// Docker Engine address: unix:///path/to/docker.sock or tcp://host:port
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub docker_host: String,
    /// Containers inspected and measured at once
    #[arg(long, env = "NEXUS_AGENT_DOCKER_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub docker_concurrency: u64,
    /// Seconds one Docker Engine API call may take
    #[arg(long, env = "NEXUS_AGENT_DOCKER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub docker_timeout_seconds: u64,
    /// Directory where unsent snapshots are kept across restarts (memory only when unset)
    #[arg(long, env = "NEXUS_AGENT_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Most bytes of (gzip-compressed) unsent snapshots kept; the oldest give way first
    #[arg(long, env = "NEXUS_AGENT_BUFFER_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub buffer_max_bytes: usize,
    /// Unsent snapshots older than this are dropped (the server's past window, 1 hour by default)
    #[arg(
        long,
        env = "NEXUS_AGENT_MAX_SNAPSHOT_AGE_SECONDS",
        default_value_t = 3600
    )]
    pub max_snapshot_age_seconds: u64,
    /// Compress request bodies with gzip (turned off by itself if the server answers 415)
    #[arg(long, env = "NEXUS_AGENT_GZIP", default_value_t = true, action = ArgAction::Set)]
    pub gzip: bool,
    /// Seconds to wait for a connection to the server
    #[arg(long, env = "NEXUS_AGENT_CONNECT_TIMEOUT_SECONDS", default_value_t = 5)]
    pub connect_timeout_seconds: u64,
    /// Seconds one request to the server may take in all
    #[arg(
        long,
        env = "NEXUS_AGENT_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 20
    )]
    pub request_timeout_seconds: u64,
    /// Take one snapshot, send it and exit
    #[arg(long)]
    pub once: bool,
    /// With --once: print the payload as JSON instead of sending it (needs no URL or token)
    #[arg(long, requires = "once")]
    pub print: bool,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: Url,
    pub token: Secret,
}

/// A configuration error, shown to the user; the process exits with code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Cli {
    /// The server and token, required unless the agent only prints (`--once --print`).
    pub fn destination(&self) -> Result<Option<Destination>, ConfigError> {
        if self.print {
            return Ok(None);
        }
        let url = self
            .url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .ok_or_else(|| {
                ConfigError("NEXUS_URL is not set (or pass --url): the server's base URL".into())
            })?;
        let url = Url::parse(url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                ConfigError(format!(
                    "NEXUS_URL must be an http:// or https:// URL, got {url:?}"
                ))
            })?;
        let token = self
            .token
            .clone()
            .filter(|token| !token.expose().trim().is_empty())
            .ok_or_else(|| {
                ConfigError(
                    "NEXUS_AGENT_TOKEN is not set (or pass --token): the agent token for this host"
                        .into(),
                )
            })?;
        Ok(Some(Destination { url, token }))
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let cli = Cli::parse_from(["nexus-agent", "--token", "nxa_secret", "--url", "http://h"]);
        assert!(!format!("{cli:?}").contains("nxa_secret"));
    }

    #[test]
    fn a_missing_token_is_reported_by_its_variable_name() {
        let cli = Cli::parse_from(["nexus-agent", "--url", "http://h"]);
        let error = cli.destination().unwrap_err();
        assert!(error.0.contains("NEXUS_AGENT_TOKEN"), "{error}");
    }
}
