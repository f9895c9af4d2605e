//! The server's configuration: `serve`'s flags and the database settings every command shares,
//! from flags and environment, each default written once (and shown in `--help`). The command
//! grammar around them lives in `cli/`.

use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::alertmanager;
use crate::alerts::task::EvaluationSchedule;
use crate::domain::snapshot::SkewWindow;
use crate::store::DbSettings;
use crate::store::ingest::queue::BatchLimits;
use crate::store::lifecycle::Lifecycle;
use crate::webhooks::WebhookSettings;

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL URL of the database (TimescaleDB must be available in it)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// A direct URL of the same database for the sessions a transaction-mode pooler
    /// (PgBouncer) cannot carry: the token listener's LISTEN and the migrations' advisory lock.
    /// Default: --database-url
    #[arg(long, env = "NEXUS_DIRECT_DATABASE_URL", hide_env_values = true)]
    pub direct_database_url: Option<String>,
    /// Maximum number of pooled database connections
    #[arg(long, env = "NEXUS_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Seconds a request waits for a database connection before it is answered 503
    #[arg(long, env = "NEXUS_DB_TIMEOUT_SECONDS", default_value_t = 5)]
    pub db_timeout_seconds: u64,
}

impl DbArgs {
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            direct_url: self.direct_database_url.clone(),
            pool_size: self.db_pool_size,
            acquire_timeout: Duration::from_secs(self.db_timeout_seconds),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on
    #[arg(long, env = "NEXUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// PostgreSQL URL of a streaming replica for the read API (metrics, containers, events,
    /// host listings); writes, authentication and admin changes stay on `--database-url`.
    /// Without it every query goes to the primary
    #[arg(long, env = "NEXUS_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// Seconds a replica may be behind the primary and still answer reads; further behind, or
    /// unreachable, reads go to the primary until it catches up
    #[arg(long, env = "NEXUS_READ_MAX_LAG_SECONDS", default_value_t = 10)]
    pub read_max_lag_seconds: u64,
    /// Do not apply migrations at start
    #[arg(long)]
    pub no_migrate: bool,
    /// Telemetry requests admitted per token in any 60-second window (a sliding window: the
    /// request after this many within 60 s gets 429 until the oldest leaves the window)
    #[arg(long, env = "NEXUS_RATE_LIMIT_PER_MINUTE", default_value = "60")]
    pub rate_limit_per_minute: NonZeroU32,
    /// Failed authentications per client IP address per minute that may cost a database
    /// lookup. Agent requests beyond it are still answered (401 for unknown bearers, from
    /// memory); admin API requests beyond it get 429
    #[arg(long, env = "NEXUS_AUTH_FAILURES_PER_MINUTE", default_value = "30")]
    pub auth_failures_per_minute: NonZeroU32,
    /// Failed agent authentications per minute, all addresses together, that may cost a
    /// database lookup (bounds what a flood from many addresses costs); beyond it an unknown
    /// bearer is answered 401 from memory
    #[arg(
        long,
        env = "NEXUS_AUTH_FAILURE_LOOKUPS_PER_MINUTE",
        default_value = "300"
    )]
    pub auth_failure_lookups_per_minute: NonZeroU32,
    /// Addresses of reverse proxies whose `X-Forwarded-For` is believed (comma-separated IPs).
    /// Empty (the default): the peer address is the client, whatever the header says
    #[arg(long, env = "NEXUS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How far in the past `recorded_at` may lie, in seconds
    #[arg(long, env = "NEXUS_SKEW_PAST_SECONDS", default_value_t = 3600)]
    pub skew_past_seconds: u32,
    /// How far in the future `recorded_at` may lie, in seconds
    #[arg(long, env = "NEXUS_SKEW_FUTURE_SECONDS", default_value_t = 300)]
    pub skew_future_seconds: u32,
    /// Largest request body accepted, in bytes (4 MiB holds 500 containers of ~8 KiB each)
    #[arg(long, env = "NEXUS_BODY_LIMIT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Seconds a client may take to send a whole request body (slower → 408)
    #[arg(long, env = "NEXUS_BODY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub body_timeout_seconds: u64,
    /// Seconds a client may take to send a request's line and headers (slower: connection closed)
    #[arg(long, env = "NEXUS_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// Seconds a response may wait for the client to read any of it before the connection is
    /// closed (a live event stream whose client stopped reading is cut off by this)
    #[arg(long, env = "NEXUS_WRITE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub write_timeout_seconds: u64,
    /// Seconds a connection may stay silent before it is closed
    #[arg(long, env = "NEXUS_IDLE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub idle_timeout_seconds: u64,
    /// Seconds without telemetry after which an online host is marked offline
    #[arg(long, env = "NEXUS_HEARTBEAT_TIMEOUT_SECONDS", default_value_t = 120)]
    pub heartbeat_timeout_seconds: u64,
    /// Seconds after which a container missing from its host's snapshots is flagged stale
    #[arg(long, env = "NEXUS_CONTAINER_STALE_SECONDS", default_value_t = 300)]
    pub container_stale_seconds: u64,
    /// Days of raw snapshots to keep
    #[arg(long, env = "NEXUS_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u64,
    /// Days of the 5-minute rollups to keep (community edition; elsewhere they are views)
    #[arg(long, env = "NEXUS_ROLLUP_5M_RETENTION_DAYS", default_value_t = 90)]
    pub rollup_5m_retention_days: u64,
    /// Days of the 1-hour rollups to keep (community edition; elsewhere they are views)
    #[arg(long, env = "NEXUS_ROLLUP_1H_RETENTION_DAYS", default_value_t = 730)]
    pub rollup_1h_retention_days: u64,
    /// Events a live stream (`/api/v1/events/stream`) may fall behind by before it is cut off
    /// (the client resumes with `Last-Event-ID`)
    #[arg(long, env = "NEXUS_EVENT_STREAM_BUFFER", default_value_t = 1024)]
    pub event_stream_buffer: usize,
    /// Seconds between the comment heartbeats of a live event stream
    #[arg(
        long,
        env = "NEXUS_EVENT_STREAM_HEARTBEAT_SECONDS",
        default_value_t = 15
    )]
    pub event_stream_heartbeat_seconds: u64,
    /// Days of events (container lifecycle and host liveness, the `events` table) to keep
    #[arg(long, env = "NEXUS_EVENT_RETENTION_DAYS", default_value_t = 365)]
    pub event_retention_days: u64,
    /// Hours of raw data per chunk; a chunk is compressed soon after it closes, so smaller
    /// chunks compress sooner. 8 h of 30 s samples is one compressed batch per series (up to
    /// 1,000 rows). Big fleets may want fewer hours (see docs/analytics.md)
    #[arg(long, env = "NEXUS_CHUNK_HOURS", default_value_t = 8)]
    pub chunk_hours: u64,
    /// Ingest writers: transactions of telemetry in flight at once, each on its own pooled
    /// connection. Snapshots arriving while they are busy are written together (group commit);
    /// fewer writers make larger batches (2 measured best on 2 cores, see BENCHMARKS.md)
    #[arg(long, env = "NEXUS_INGEST_WRITERS", default_value_t = 2)]
    pub ingest_writers: usize,
    /// Telemetry bodies read, parsed and waiting for their commit at once; more wait unread in
    /// their connections. Bounds the server's memory under a burst of agents; more in flight
    /// make larger batches (96 measured best within the memory target, see BENCHMARKS.md)
    #[arg(long, env = "NEXUS_INGEST_IN_FLIGHT", default_value_t = 96)]
    pub ingest_in_flight: usize,
    /// Most snapshots one ingest transaction writes
    #[arg(long, env = "NEXUS_INGEST_BATCH_SNAPSHOTS", default_value_t = 256)]
    pub ingest_batch_snapshots: usize,
    /// Most container rows one ingest transaction writes (a lone snapshot may exceed it)
    #[arg(long, env = "NEXUS_INGEST_BATCH_CONTAINERS", default_value_t = 10_000)]
    pub ingest_batch_containers: usize,
    /// MiB of memory for remembering container rows, so an unchanged container costs only its
    /// metric row: about 64 bytes per container (README). A fleet with more containers keeps a
    /// part of them cached; the rest take the full path (a lookup and a compare)
    #[arg(long, env = "NEXUS_CONTAINER_CACHE_MIB", default_value_t = crate::store::container_cache::DEFAULT_MIB)]
    pub container_cache_mib: u64,
    /// Base URL of a Prometheus Alertmanager to send alerts to (`/api/v2/alerts` is added),
    /// e.g. `http://alertmanager:9093`; repeat the flag (or comma-separate the variable's
    /// values) for several. None: alerts are not sent to Alertmanager (docs/alerts.md). A
    /// user and password in the URL are sent as basic auth; the password is never logged
    #[arg(
        long = "alertmanager-url",
        value_name = "URL",
        env = "NEXUS_ALERTMANAGER_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub alertmanager_urls: Vec<reqwest::Url>,
    /// Seconds between re-sends of the firing alerts to Alertmanager; each is sent to end 4
    /// intervals later unless re-sent (as Prometheus does)
    #[arg(
        long,
        env = "NEXUS_ALERTMANAGER_RESEND_INTERVAL_SECONDS",
        default_value_t = 60
    )]
    pub alertmanager_resend_interval_seconds: u64,
    /// This server's URL as people reach it, for the links in alerts (e.g.
    /// `https://telemetry.example.com`). Default: `http://` and the listening address
    #[arg(long, env = "NEXUS_PUBLIC_URL", value_parser = http_url)]
    pub public_url: Option<String>,
    /// Seconds between two evaluations of the alert rules when no event arrives (new events
    /// start one within about a second); 0 turns evaluation off in this process. One server
    /// process evaluates at a time, the holder of a lease in the database
    #[arg(
        long,
        env = "NEXUS_ALERT_EVALUATION_INTERVAL_SECONDS",
        default_value_t = 15
    )]
    pub alert_evaluation_interval_seconds: u64,
    /// Seconds a claim on the alert evaluator's lease lasts: another process takes over within
    /// this plus a quarter of it (at most 5 s) after the evaluating one dies
    #[arg(long, env = "NEXUS_ALERT_LEASE_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub alert_lease_seconds: u64,
    /// Accept webhook endpoints, and deliver to them, whose host is or resolves to a loopback,
    /// private (RFC 1918, ULA), link-local, unspecified or multicast address. Off by default:
    /// an admin token must not become a way to reach the server's internal network
    #[arg(long, env = "NEXUS_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,
    /// Seconds one webhook attempt may take (connect, send, answer); a delivery's claim lasts
    /// twice this long, after which a server that died mid-delivery leaves it to another
    #[arg(long, env = "NEXUS_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10)]
    pub webhook_timeout_seconds: u64,
    /// Milliseconds of the webhook retry schedule's unit: retries come 1, 6, 24, 120, 360,
    /// 720, 1440, 2880, 5760 and 5760 units after each failed attempt (5 s to 8 h, about 24 h
    /// in all, ±20% jitter), then the delivery is `failed`
    #[arg(long, env = "NEXUS_WEBHOOK_RETRY_BASE_MS", default_value_t = 5000)]
    pub webhook_retry_base_ms: u64,
    /// Webhook deliveries in flight at once in this process (one per endpoint at most)
    #[arg(long, env = "NEXUS_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,
    /// Log format
    #[arg(long, env = "NEXUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

impl ServeArgs {
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            writers: self.ingest_writers.max(1),
            max_snapshots: self.ingest_batch_snapshots.max(1),
            max_container_rows: self.ingest_batch_containers,
        }
    }

    pub fn lifecycle(&self) -> Lifecycle {
        let days = |n: u64| Duration::from_secs(n * 86400);
        Lifecycle {
            raw_retention: days(self.retention_days),
            rollup_5m_retention: days(self.rollup_5m_retention_days),
            rollup_1h_retention: days(self.rollup_1h_retention_days),
            event_retention: days(self.event_retention_days),
            chunk_interval: Duration::from_secs(self.chunk_hours.max(1) * 3600),
            late_data: Duration::from_secs(self.skew_past_seconds.into()),
        }
    }

    /// The Alertmanager sender's settings; links use `local_addr` when no public URL is set.
    pub fn alertmanager(&self, local_addr: std::net::SocketAddr) -> alertmanager::Settings {
        alertmanager::Settings {
            urls: self.alertmanager_urls.clone(),
            resend_interval: Duration::from_secs(self.alertmanager_resend_interval_seconds.max(1)),
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{local_addr}")),
            holder: crate::store::leases::process_holder_name(),
        }
    }

    pub fn alert_evaluation(&self) -> EvaluationSchedule {
        EvaluationSchedule {
            interval: (self.alert_evaluation_interval_seconds > 0)
                .then(|| Duration::from_secs(self.alert_evaluation_interval_seconds)),
            lease_ttl: Duration::from_secs(self.alert_lease_seconds),
        }
    }

    pub fn webhooks(&self) -> WebhookSettings {
        WebhookSettings {
            allow_private: self.allow_private_webhooks,
            attempt_timeout: Duration::from_secs(self.webhook_timeout_seconds.max(1)),
            retry_base: Duration::from_millis(self.webhook_retry_base_ms.max(1)),
            concurrency: self.webhook_concurrency.max(1),
        }
    }

    pub fn skew(&self) -> SkewWindow {
        SkewWindow {
            past: chrono::Duration::seconds(self.skew_past_seconds.into()),
            future: chrono::Duration::seconds(self.skew_future_seconds.into()),
        }
    }
}

/// An `http(s)://` URL, kept as written (a parsed `Url` would weigh every command's arguments).
fn http_url(text: &str) -> Result<String, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(text.to_owned()),
        Ok(_) => Err("must be an http:// or https:// URL".into()),
        Err(error) => Err(error.to_string()),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Human,
    /// One JSON object per line
    Json,
}
