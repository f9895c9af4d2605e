//! The bench's database: a fresh one per run on the given server (migrated by the server on its
//! first start), hosts and tokens inserted with SQL (tokens stored as the server stores them:
//! lower-case hex SHA-256 of the bearer), row counts, and the drop at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::procfs;

pub use nexus_test_support::database::{ServerUrl, connect, drop_database};

/// Creates `bench_<unix time>` and returns its URL.
pub async fn create_fresh(server: &ServerUrl) -> Result<(String, String)> {
    let name = format!("bench_{}", chrono::Utc::now().format("%Y%m%d_%H%M%S"));
    let admin = connect(&server.database("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("Failed to create database {name}"))?;
    Ok((name.clone(), server.database(&name)))
}

/// A provisioned host and its bearer token.
#[derive(Debug, Clone)]
pub struct Agent {
    pub host_id: i64,
    pub token: String,
}

/// Creates `count` hosts named `<prefix>-<n>`, each with its own token.
pub async fn provision_hosts(db: &Client, prefix: &str, count: usize) -> Result<Vec<Agent>> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:05}")).collect();
    let rows = db
        .query(
            "INSERT INTO hosts (name, slug) SELECT n, n FROM unnest($1::text[]) WITH ORDINALITY \
             AS t(n, o) ORDER BY o RETURNING id",
            &[&names],
        )
        .await
        .context("Failed to insert hosts")?;
    let host_ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let tokens: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "nxa_{}",
                hex::encode(Sha256::digest(format!("bench {n} {prefix}")))
            )
        })
        .collect();
    let hashes: Vec<String> = tokens
        .iter()
        .map(|t| hex::encode(Sha256::digest(t.as_bytes())))
        .collect();
    db.execute(
        "INSERT INTO agent_tokens (host_id, name, hashed_token) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[])",
        &[&host_ids, &vec!["bench".to_owned(); count], &hashes],
    )
    .await
    .context("Failed to insert agent tokens")?;
    Ok(host_ids
        .into_iter()
        .zip(tokens)
        .map(|(host_id, token)| Agent { host_id, token })
        .collect())
}

/// Waits until the database and the kernel have written out what earlier scenarios left
/// dirty: a `VACUUM (ANALYZE)` of what they and the warm-up inserted (else autovacuum takes it
/// up during the next scenario, which then pays for its predecessor: a second scenario's
/// PostgreSQL CPU per post came out 2-3x the first's), a `CHECKPOINT`, then until the kernel's
/// dirty and in-writeback pages are below [`SETTLED_DIRTY_MIB`] (at most [`SETTLE_LIMIT`]).
/// Otherwise a scenario is measured while the previous one's hundreds of MB are flushed: on
/// this machine's disk that writeback holds WAL flushes, so every commit, for up to a few
/// hundred ms (BENCHMARKS.md). Returns the time taken.
pub async fn settle(db: &Client) -> Duration {
    let start = Instant::now();
    if let Err(error) = db.batch_execute("VACUUM (ANALYZE, SKIP_LOCKED)").await {
        eprintln!("bench: no VACUUM before the scenario ({error})");
    }
    if let Err(error) = db.batch_execute("CHECKPOINT").await {
        // A role without pg_checkpoint: measure anyway, as before this step existed.
        eprintln!("bench: no CHECKPOINT before the scenario ({error})");
    }
    while start.elapsed() < SETTLE_LIMIT {
        let dirty = procfs::meminfo_mib("Dirty").unwrap_or(0)
            + procfs::meminfo_mib("Writeback").unwrap_or(0);
        if dirty < SETTLED_DIRTY_MIB {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

const SETTLED_DIRTY_MIB: u64 = 32;
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Process ids of the backends of the server's connections to this database (its pool
/// names itself `nexus-telemetry`; other servers on the cluster use other databases).
pub async fn server_backends(db: &Client) -> Result<Vec<u32>> {
    let rows = db
        .query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'nexus-telemetry'",
            &[],
        )
        .await
        .context("Failed to list the server's backends")?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, i32>(0).unsigned_abs())
        .collect())
}

/// Process id of this client's backend.
pub async fn own_backend(db: &Client) -> Result<u32> {
    let row = db.query_one("SELECT pg_backend_pid()", &[]).await?;
    Ok(row.get::<_, i32>(0).unsigned_abs())
}

/// Tokens in the database (the token index holds them all once it has settled).
pub async fn token_count(db: &Client) -> Result<usize> {
    let row = db
        .query_one("SELECT count(*) FROM agent_tokens", &[])
        .await?;
    Ok(row.get::<_, i64>(0) as usize)
}

/// WAL written (the whole cluster: `pg_stat_wal`) and this database's buffer reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    pub wal_bytes: f64,
    pub wal_records: f64,
    pub wal_fpi: f64,
    pub blocks_hit: f64,
    pub blocks_read: f64,
}

impl DbCounters {
    pub async fn take(db: &Client) -> Result<Self> {
        let row = db
            .query_one(
                "SELECT w.wal_bytes::float8, w.wal_records::float8, w.wal_fpi::float8, \
                        d.blks_hit::float8, d.blks_read::float8 \
                 FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = current_database()",
                &[],
            )
            .await
            .context("Failed to read pg_stat_wal and pg_stat_database")?;
        Ok(Self {
            wal_bytes: row.get(0),
            wal_records: row.get(1),
            wal_fpi: row.get(2),
            blocks_hit: row.get(3),
            blocks_read: row.get(4),
        })
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &Self) -> Self {
        Self {
            wal_bytes: later.wal_bytes - self.wal_bytes,
            wal_records: later.wal_records - self.wal_records,
            wal_fpi: later.wal_fpi - self.wal_fpi,
            blocks_hit: later.blocks_hit - self.blocks_hit,
            blocks_read: later.blocks_read - self.blocks_read,
        }
    }

    /// Share of buffer reads found in shared buffers.
    pub fn hit_ratio(&self) -> f64 {
        self.blocks_hit / (self.blocks_hit + self.blocks_read).max(1.0)
    }
}

/// Rows in the two hypertables: (host rows, container rows).
pub async fn snapshot_rows(db: &Client) -> Result<(i64, i64)> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM host_metric_snapshots), \
                    (SELECT count(*) FROM container_metric_snapshots)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The `containers.id` of each (host, Docker container id) of the given hosts.
pub async fn container_ids(db: &Client, hosts: &[i64]) -> Result<HashMap<(i64, String), i64>> {
    let rows = db
        .query(
            "SELECT host_id, container_id, id FROM containers WHERE host_id = ANY($1)",
            &[&hosts],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}
