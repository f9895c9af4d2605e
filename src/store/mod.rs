//! PostgreSQL/TimescaleDB access: the pool, migrations, and one module of queries per table group.
//! Migrations are files in `sql/`; statements are inline, beside the code that runs them (the
//! long ingest statements in `ingest/statements.rs`), prepared once per connection with
//! `prepare_cached`.

pub mod admin_tokens;
pub mod agent_cache;
pub mod alert_rules;
pub mod alertmanager;
pub mod alerts;
pub mod container_cache;
pub mod event_feed;
pub mod events;
pub mod hosts;
pub mod ingest;
pub mod leases;
pub mod lifecycle;
pub mod liveness;
pub mod readings;
pub mod replica;
pub mod tokens;
pub mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, QueueMode, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;

use crate::error::Error;
use container_cache::ContainerCache;

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Key of the advisory lock that serialises migrations across server processes.
const MIGRATION_LOCK: i64 = 0x6e65_7875_735f_6d69; // "nexus_mi"

/// `--rate-limit-per-minute`'s default, for stores built without a server's settings.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// A connection of its own for `LISTEN` (a session, which a transaction-mode pooler cannot
/// carry), named `application_name` so it can be told apart in `pg_stat_activity`. Its
/// notifications arrive only while the returned connection is polled for messages.
pub(crate) async fn listener_connection(
    url: &str,
    application_name: &str,
) -> anyhow::Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
)> {
    let mut config = tokio_postgres::Config::from_str(url).context("Failed to parse the URL")?;
    config
        .application_name(application_name)
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    config
        .connect(NoTls)
        .await
        .with_context(|| format!("Failed to connect the {application_name} connection"))
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    /// A direct connection to the same database for what a transaction-mode pooler cannot
    /// carry: the token listener (`LISTEN`) and migrations (a session advisory lock). `None`:
    /// `url`.
    pub direct_url: Option<String>,
    pub pool_size: usize,
    /// Longest a request waits for a free connection (or for a new one) before a 503.
    pub acquire_timeout: Duration,
}

pub enum Readiness {
    Ready,
    MigrationsPending { applied: Option<i32>, expected: i32 },
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Where sessions go (the token listener, migrations): the direct URL when one is set.
    url: String,
    /// This process's knowledge of container rows, shared by every clone.
    containers: Arc<ContainerCache>,
    /// How many of a token's latest posts the database remembers for the fleet-wide rate
    /// limit: the limit itself (more could never change an answer).
    post_log_len: u32,
}

impl Store {
    /// Builds the pool; connections are opened lazily, so a database that is down at start
    /// only makes requests answer 503 until it is back.
    pub fn new(settings: &DbSettings) -> anyhow::Result<Self> {
        let mut config = tokio_postgres::Config::from_str(&settings.url)
            .context("Failed to parse DATABASE_URL")?;
        config.connect_timeout(settings.acquire_timeout);
        config.application_name("nexus-telemetry");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            // The most recently used connection first: the few the writers need stay hot, and
            // the rest keep small buffers. FIFO rotated every batch through all 16 connections,
            // each then holding a buffer as large as the largest batch (~15 MiB more resident).
            .queue_mode(QueueMode::Lifo)
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.acquire_timeout))
            .recycle_timeout(Some(settings.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .context("Failed to build the connection pool")?;
        Ok(Self {
            pool,
            url: settings
                .direct_url
                .clone()
                .unwrap_or_else(|| settings.url.clone()),
            containers: Arc::default(),
            post_log_len: DEFAULT_RATE_LIMIT_PER_MINUTE,
        })
    }

    /// Bounds the container cache to about `mib` MiB (see [`container_cache`]).
    pub fn with_container_cache_mib(mut self, mib: u64) -> Self {
        self.containers = Arc::new(ContainerCache::with_capacity_bytes(mib << 20));
        self
    }

    /// The per-token rate limit this server enforces (see `post_log_len`).
    pub fn with_rate_limit(mut self, per_minute: u32) -> Self {
        self.post_log_len = per_minute;
        self
    }

    /// Applies the migrations in `sql/` that have not run yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrate_up_to(None).await
    }

    /// Applies the migrations that have not run yet, up to and including `version` (all of
    /// them when `None`); tests use it to build a database as an older release left it.
    pub async fn migrate_up_to(&self, version: Option<i32>) -> anyhow::Result<()> {
        let (mut client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .context("Failed to connect to the database to migrate it")?;
        let connection = tokio::spawn(log_migration_notices(connection));
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .context("Failed to take the migration lock")?;
        let mut runner = embedded::migrations::runner();
        if let Some(version) = version {
            runner = runner.set_target(refinery::Target::Version(version));
        }
        let report = runner
            .run_async(&mut client)
            .await
            .context("Failed to apply migrations")?;
        for migration in report.applied_migrations() {
            tracing::info!(migration = %migration, "applied migration");
        }
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// Whether the database answers and every embedded migration is applied.
    pub async fn readiness(&self) -> Result<Readiness, Error> {
        let expected = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .max()
            .unwrap_or(0);
        let client = self.client().await?;
        let applied = client
            .query_one("SELECT max(version) FROM refinery_schema_history", &[])
            .await
            .ok()
            .and_then(|row| row.get::<_, Option<i32>>(0));
        Ok(if applied == Some(expected) {
            Readiness::Ready
        } else {
            Readiness::MigrationsPending { applied, expected }
        })
    }

    /// Hosts in the container cache, and the bytes their entries weigh.
    pub fn container_cache_usage(&self) -> (u64, u64) {
        self.containers.usage()
    }

    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Where sessions go (LISTEN needs one): the direct URL when one is set.
    pub fn session_url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn client(&self) -> Result<Object, Error> {
        Ok(self.pool.get().await?)
    }
}

/// TimescaleDB's notice on new compression settings; on a first start no chunk is compressed yet.
const FUTURE_COMPRESSIONS_ONLY: &str =
    "updated compression settings will only apply to future compressions";

/// Drives the migration connection, logging what PostgreSQL says on it. The notices every first
/// start gets (an `IF EXISTS` with nothing to do, "…, skipping"; new compression settings on a
/// database without compressed chunks) are logged at debug; other notices stay at info,
/// warnings at warn.
async fn log_migration_notices<S, T>(mut connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        let notice = match message {
            Ok(tokio_postgres::AsyncMessage::Notice(notice)) => notice,
            Ok(_) => continue,
            Err(_) => return, // the migration itself reports the failure
        };
        let (severity, text) = (notice.severity(), notice.message());
        if severity == "WARNING" {
            tracing::warn!(severity, "{text}");
        } else if text.ends_with("skipping") || text == FUTURE_COMPRESSIONS_ONLY {
            tracing::debug!(severity, "{text}");
        } else {
            tracing::info!(severity, "{text}");
        }
    }
}
