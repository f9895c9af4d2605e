//! The ingest transaction: its statements in order, where it commits, and what is retried. A
//! batch that loses a deadlock runs again; one whose new metric rows turn out to exist runs again
//! with the conflict checks ([`MetricWrite`]).

use std::pin::pin;
use std::sync::LazyLock;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use futures_util::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use super::columns::{
    Columns, DescriptionColumns, HostColumns, MetricColumns, binary_copy_data, expand,
};
use super::plan::ContainerPlan;
use super::removals::Removals;
use super::statements;
use super::{HostWrite, Outcome, Submission, Written};
use crate::error::Error;
use crate::store::Store;

static INGEST_HOSTS: LazyLock<String> =
    LazyLock::new(|| expand::<HostColumns>(statements::INGEST_HOSTS_SQL));
/// The clause of [`INGEST_HOSTS`] that skips a host metric row which exists (a retried post).
const HOST_ROW_CONFLICT: &str = "ON CONFLICT (host_id, recorded_at) DO NOTHING";
/// [`INGEST_HOSTS`] for [`MetricWrite::CopyAsNew`]: without [`HOST_ROW_CONFLICT`], so a host metric row
/// that exists fails the batch with a unique violation instead of being skipped.
static INGEST_NEW_HOSTS: LazyLock<String> = LazyLock::new(|| {
    assert!(INGEST_HOSTS.contains(HOST_ROW_CONFLICT));
    INGEST_HOSTS.replace(HOST_ROW_CONFLICT, "")
});
static INGEST_CONTAINERS: LazyLock<String> =
    LazyLock::new(|| expand::<DescriptionColumns>(statements::INGEST_CONTAINERS_SQL));
const INGEST_REMOVALS: &str = statements::INGEST_REMOVALS_SQL;
static INGEST_CONTAINER_METRICS: LazyLock<String> =
    LazyLock::new(|| expand::<MetricColumns>(statements::INGEST_CONTAINER_METRICS_SQL));
/// How container metric rows that cannot exist yet are written (see [`MetricWrite`]).
static COPY_CONTAINER_METRICS: LazyLock<String> =
    LazyLock::new(|| expand::<MetricColumns>(statements::COPY_CONTAINER_METRICS_SQL));

/// Attempts of a batch that lost a deadlock (e.g. against the liveness detector, which locks
/// hosts in another order) before its error is answered.
const DEADLOCK_ATTEMPTS: usize = 3;

impl Store {
    /// Stores `batch` atomically and tells each submission's outcome, in order. Host ids must be
    /// distinct within a batch (two snapshots of one host go in separate batches).
    pub async fn ingest(&self, batch: &[Submission]) -> Result<Vec<Outcome>, Error> {
        debug_assert!(
            {
                let mut hosts: Vec<_> = batch.iter().map(|s| s.host_id).collect();
                hosts.sort_unstable();
                hosts.windows(2).all(|pair| pair[0] != pair[1])
            },
            "host ids repeat within an ingest batch"
        );
        let mut attempt = 1;
        let mut metric_write = MetricWrite::CopyAsNew;
        loop {
            match self.ingest_once(batch, metric_write).await {
                Err(error) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&error) => {
                    tracing::info!(attempt, "ingest batch lost a deadlock; retrying");
                    attempt += 1;
                }
                Err(error)
                    if metric_write == MetricWrite::CopyAsNew && is_unique_violation(&error) =>
                {
                    tracing::info!("a metric row of the batch exists (a retried post?); retrying");
                    metric_write = MetricWrite::InsertSkippingExisting;
                }
                result => return result,
            }
        }
    }

    async fn ingest_once(
        &self,
        batch: &[Submission],
        metric_write: MetricWrite,
    ) -> Result<Vec<Outcome>, Error> {
        let client = self.client().await?;
        let (hosts_sql, metrics_sql) = match metric_write {
            MetricWrite::CopyAsNew => (&INGEST_NEW_HOSTS, &COPY_CONTAINER_METRICS),
            MetricWrite::InsertSkippingExisting => (&INGEST_HOSTS, &INGEST_CONTAINER_METRICS),
        };
        let (hosts, containers, removals, metrics) = tokio::try_join!(
            client.prepare_cached(hosts_sql),
            client.prepare_cached(&INGEST_CONTAINERS),
            client.prepare_cached(INGEST_REMOVALS),
            client.prepare_cached(metrics_sql),
        )?;
        let statements = Statements {
            hosts,
            containers,
            removals,
            metrics,
            metric_write,
        };
        let written = self.write(&client, &statements, batch).await;
        if written.is_err() && !client.is_closed() {
            // The transaction may still be open (and aborted): end it before the connection goes
            // back to the pool. A warning if it had ended already is harmless.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        written
    }

    /// One transaction: `BEGIN` goes with the first statement and `COMMIT` with the last, so a
    /// batch whose containers are all known costs two round trips.
    async fn write(
        &self,
        client: &Client,
        statements: &Statements,
        batch: &[Submission],
    ) -> Result<Vec<Outcome>, Error> {
        let hosts = HostColumns::of(batch);
        let post_log_len = i32::try_from(self.post_log_len).unwrap_or(i32::MAX);
        let mut params = hosts.params();
        params.push(&post_log_len);
        // No JIT: these statements' cost estimates grow with the batch, and past
        // `jit_above_cost` compiling took ~55 ms for a statement that runs in 2 (BENCHMARKS.md).
        let (_, host_rows) = tokio::try_join!(
            client.batch_execute("BEGIN; SET LOCAL jit = off"),
            client.query(&statements.hosts, &params),
        )?;
        let admitted: HashMap<i64, HostWrite> = host_rows
            .iter()
            .map(|row| {
                let write = HostWrite {
                    host_row_written: row.get("host_row_written"),
                    version_before: row.get("version_before"),
                    version_after: row.get("version_after"),
                    post_ages_ms: post_ages_ms(row.get("stamped_at"), row.get("recent_posts")),
                    containers_moved: row.get("containers_moved"),
                };
                (row.get("host_id"), write)
            })
            .collect();
        let mut plan = ContainerPlan::new(batch, &admitted, &self.containers);
        let descriptions = DescriptionColumns::of(plan.to_look_up());
        let removals = Removals::of(batch, &admitted);
        // Both only when needed; pipelined, in this order (a container that comes back is
        // described first).
        let (described, _) = tokio::try_join!(
            async {
                if descriptions.row_count() == 0 {
                    return Ok(Vec::new());
                }
                client
                    .query(&statements.containers, &descriptions.params())
                    .await
            },
            async {
                if removals.is_empty() {
                    return Ok(0);
                }
                client
                    .execute(&statements.removals, &removals.params())
                    .await
            },
        )?;
        {
            for row in described {
                plan.found(
                    row.get("host_id"),
                    row.get("container_id"),
                    row.get("id"),
                    row.get("current"),
                );
            }
        }
        let container_rows = if plan.rows().is_empty() {
            client.batch_execute("COMMIT").await?;
            HashMap::default()
        } else {
            let metrics = MetricColumns::of(&plan)?;
            match statements.metric_write {
                MetricWrite::CopyAsNew => {
                    copy_metrics_and_commit(client, &statements.metrics, &metrics).await?
                }
                MetricWrite::InsertSkippingExisting => {
                    insert_metrics_and_commit(client, &statements.metrics, &metrics).await?
                }
            }
        };
        plan.remember(&admitted, &self.containers);
        Ok(batch
            .iter()
            .map(|s| match admitted.get(&s.host_id) {
                None => Outcome::Refused,
                Some(write) => Outcome::Stored(Written {
                    host_rows: i64::from(write.host_row_written),
                    container_rows: container_rows.get(&s.host_id).copied().unwrap_or(0),
                    post_ages_ms: write.post_ages_ms.clone(),
                }),
            })
            .collect())
    }
}

/// How metric rows are written. Nearly every snapshot is new: a retried post (its host metric
/// row exists) is rare, and a snapshot's container rows are written only with its host row, so
/// they exist only if someone deleted host rows and kept container rows. New rows go in without
/// an `ON CONFLICT` check of the unique index before each row: the host rows by plain `INSERT`,
/// the container rows by binary `COPY`, both much cheaper (BENCHMARKS.md, "What was changed,
/// measured before and after"). If one exists after all, the batch fails with a unique violation and is written
/// again with the checks, first write winning as always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricWrite {
    CopyAsNew,
    InsertSkippingExisting,
}

/// The ingest statements, prepared once per connection.
struct Statements {
    /// `INSERT` of the host metric rows with the conflict check only for [`MetricWrite::InsertSkippingExisting`].
    hosts: Statement,
    containers: Statement,
    removals: Statement,
    /// `COPY` for [`MetricWrite::CopyAsNew`], `INSERT … ON CONFLICT` for [`MetricWrite::InsertSkippingExisting`].
    metrics: Statement,
    metric_write: MetricWrite,
}

/// Writes the metric rows with binary `COPY` and commits; the rows per host id. Every row is
/// written or the transaction fails (a unique violation if one existed).
async fn copy_metrics_and_commit(
    client: &Client,
    copy: &Statement,
    metrics: &MetricColumns,
) -> Result<HashMap<i64, i64>, Error> {
    let data = binary_copy_data(metrics)?;
    let mut sink = pin!(client.copy_in::<_, Bytes>(copy).await?);
    sink.send(data).await?;
    // The connection sends COMMIT after the copy's end, so both go in one round trip; if the
    // copy fails, the COMMIT ends the transaction as a rollback.
    tokio::try_join!(sink.finish(), client.batch_execute("COMMIT"))?;
    Ok(metrics.rows_per_host())
}

/// Inserts the metric rows, skipping those that exist, and commits; the rows written per host.
async fn insert_metrics_and_commit(
    client: &Client,
    insert: &Statement,
    metrics: &MetricColumns,
) -> Result<HashMap<i64, i64>, Error> {
    let params = metrics.params();
    // If the insert fails, the COMMIT sent after it ends the transaction as a rollback.
    let (rows, _) = tokio::try_join!(
        client.query(insert, &params),
        client.batch_execute("COMMIT"),
    )?;
    Ok(rows
        .iter()
        .map(|row| (row.get("host_id"), row.get("container_rows")))
        .collect())
}

/// The token's posts within the rate limit's window, as ages in ms at `stamped_at`.
fn post_ages_ms(stamped_at: DateTime<Utc>, posts: Vec<DateTime<Utc>>) -> Vec<i32> {
    posts
        .into_iter()
        .map(|at| (stamped_at - at).num_milliseconds())
        .filter(|&ms| (0..60_000).contains(&ms))
        .map(|ms| ms as i32)
        .collect()
}

fn is_deadlock(error: &Error) -> bool {
    sql_state(error).is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

fn is_unique_violation(error: &Error) -> bool {
    sql_state(error).is_some_and(|code| *code == SqlState::UNIQUE_VIOLATION)
}

fn sql_state(error: &Error) -> Option<&SqlState> {
    let Error::Internal(cause) = error else {
        return None;
    };
    cause
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
}
