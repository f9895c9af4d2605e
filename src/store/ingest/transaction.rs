//! Writes a batch of validated snapshots in one transaction of set-based statements: per
//! snapshot its token's stamp, its host's facts and status and one host metric row; the
//! dimension rows of the containers not known unchanged (see [`super::container_cache`]); one
//! metric row per container. What a batch costs the database (statement start-up, chunk
//! routing, commit and WAL flush) is paid once for all its snapshots; see
//! [`super::ingest_queue`] for how batches are formed.

use std::pin::pin;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use futures_util::SinkExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, Json, ToSql, Type};
use tokio_postgres::{Client, Statement};

use nexus_contract::{ContainerPayload, Labels};

use super::Store;
use super::container_cache::{ContainerCache, Fingerprint, HostUpdate, Known};
use crate::domain::snapshot::Snapshot;
use crate::error::Error;

const INGEST_HOSTS: &str = include_str!("queries/ingest_hosts.sql");
/// The clause of [`INGEST_HOSTS`] that skips a host metric row which exists (a retried post).
const HOST_ROW_CONFLICT: &str = "ON CONFLICT (host_id, recorded_at) DO NOTHING";
/// [`INGEST_HOSTS`] for [`MetricRows::New`]: without [`HOST_ROW_CONFLICT`], so a host metric row
/// that exists fails the batch with a unique violation instead of being skipped.
static INGEST_NEW_HOSTS: LazyLock<String> = LazyLock::new(|| {
    assert!(INGEST_HOSTS.contains(HOST_ROW_CONFLICT));
    INGEST_HOSTS.replace(HOST_ROW_CONFLICT, "")
});
const INGEST_CONTAINERS: &str = include_str!("queries/ingest_containers.sql");
const INGEST_CONTAINER_METRICS: &str = include_str!("queries/ingest_container_metrics.sql");
/// How container metric rows that cannot exist yet are written (see [`MetricRows`]).
const COPY_CONTAINER_METRICS: &str = include_str!("queries/copy_container_metrics.sql");
/// The column types of [`COPY_CONTAINER_METRICS`], in its order.
const CONTAINER_METRIC_TYPES: [Type; 10] = [
    Type::INT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::FLOAT4,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

/// About what one row of [`COPY_CONTAINER_METRICS`] takes in the binary format: the row's
/// 2-byte column count, then each value (8 bytes) after its 4-byte length.
const COPY_ROW_BYTES: usize = 2 + CONTAINER_METRIC_TYPES.len() * (4 + 8);

/// Attempts of a batch that lost a deadlock (e.g. against the liveness detector, which locks
/// hosts in another order) before its error is answered.
const DEADLOCK_ATTEMPTS: usize = 3;

/// One snapshot to store, from the agent of `token_id` on `host_id`.
#[derive(Debug)]
pub struct Submission {
    pub host_id: i64,
    pub token_id: i64,
    pub snapshot: Snapshot,
}

/// What became of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: its rows, or none when the same host and instant was already stored.
    Stored(Written),
    /// Its host was archived or its token revoked since the token was checked; nothing written.
    Refused,
}

/// What one stored snapshot wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub host_rows: i64,
    pub container_rows: i64,
    /// Ages (ms, at the commit) of the token's stored posts in the last 60 s by every server
    /// process, this one included: the fleet-wide count for the rate limit.
    pub post_ages_ms: Vec<i32>,
}

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
        let mut metric_rows = MetricRows::New;
        loop {
            match self.ingest_once(batch, metric_rows).await {
                Err(error) if attempt < DEADLOCK_ATTEMPTS && is_deadlock(&error) => {
                    tracing::info!(attempt, "ingest batch lost a deadlock; retrying");
                    attempt += 1;
                }
                Err(error) if metric_rows == MetricRows::New && is_unique_violation(&error) => {
                    tracing::info!("a metric row of the batch exists (a retried post?); retrying");
                    metric_rows = MetricRows::MayExist;
                }
                result => return result,
            }
        }
    }

    async fn ingest_once(
        &self,
        batch: &[Submission],
        metric_rows: MetricRows,
    ) -> Result<Vec<Outcome>, Error> {
        let client = self.client().await?;
        let (hosts_sql, metrics_sql) = match metric_rows {
            MetricRows::New => (INGEST_NEW_HOSTS.as_str(), COPY_CONTAINER_METRICS),
            MetricRows::MayExist => (INGEST_HOSTS, INGEST_CONTAINER_METRICS),
        };
        let (hosts, containers, metrics) = tokio::try_join!(
            client.prepare_cached(hosts_sql),
            client.prepare_cached(INGEST_CONTAINERS),
            client.prepare_cached(metrics_sql),
        )?;
        let statements = Statements {
            hosts,
            containers,
            metrics,
            metric_rows,
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
        let mut params = hosts.params().to_vec();
        params.push(&post_log_len);
        let (_, host_rows) = tokio::try_join!(
            client.batch_execute("BEGIN"),
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
                };
                (row.get("host_id"), write)
            })
            .collect();
        // A snapshot whose host row was there already is a retry, stored before: skipped.
        let stored: Vec<&Submission> = batch
            .iter()
            .filter(|s| admitted.get(&s.host_id).is_some_and(|w| w.host_row_written))
            .collect();
        let mut containers = ContainerRows::plan(&stored, &admitted, &self.containers);
        if containers.unknown_count() > 0 {
            let descriptions = DescriptionColumns::of(&containers);
            for row in client
                .query(&statements.containers, &descriptions.params())
                .await?
            {
                containers.found(
                    row.get("host_id"),
                    row.get("container_id"),
                    row.get("id"),
                    row.get("current"),
                );
            }
        }
        let container_rows = if containers.rows.is_empty() {
            client.batch_execute("COMMIT").await?;
            HashMap::new()
        } else {
            let metrics = MetricColumns::of(&containers)?;
            match statements.metric_rows {
                MetricRows::New => copy_metrics(client, &statements.metrics, &metrics).await?,
                MetricRows::MayExist => {
                    insert_metrics(client, &statements.metrics, &metrics).await?
                }
            }
        };
        containers.remember(&admitted, &self.containers);
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
/// an `ON CONFLICT` check of the unique index before each row: the host rows by plain `INSERT`
/// (a tenth of the host statement's cost), the container rows by binary `COPY` (40% of an
/// insert's cost; TimescaleDB writes them in multi-row batches per chunk, PostgreSQL CPU per
/// post −8% against `INSERT … SELECT unnest`). If one exists after all, the batch fails with a
/// unique violation and is written again with the checks, first write winning as always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricRows {
    New,
    MayExist,
}

/// The ingest statements, prepared once per connection.
struct Statements {
    /// `INSERT` of the host metric rows with the conflict check only for [`MetricRows::MayExist`].
    hosts: Statement,
    containers: Statement,
    /// `COPY` for [`MetricRows::New`], `INSERT … ON CONFLICT` for [`MetricRows::MayExist`].
    metrics: Statement,
    metric_rows: MetricRows,
}

/// Writes the metric rows with binary `COPY` and commits; the rows per host id. Every row is
/// written or the transaction fails (a unique violation if one existed).
async fn copy_metrics(
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
    let mut per_host = HashMap::new();
    for host_id in &metrics.host_id {
        *per_host.entry(*host_id).or_insert(0) += 1;
    }
    Ok(per_host)
}

/// The rows in PostgreSQL's binary `COPY` format, whole. Sent as one message, they reach the
/// database at once: written row by row (`BinaryCopyInWriter` sends every 4 KB), the database
/// waited for the next piece while this process's threads parsed other bodies.
fn binary_copy_data(metrics: &MetricColumns) -> Result<Bytes, Error> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let rows = metrics.container_id.len();
    // Signature, flags and header extension length; the rows; the 2-byte end marker.
    let mut data = BytesMut::with_capacity(SIGNATURE.len() + 4 + 4 + rows * COPY_ROW_BYTES + 2);
    data.put_slice(SIGNATURE);
    data.put_i32(0); // flags
    data.put_i32(0); // header extension length
    for row in 0..rows {
        data.put_i16(CONTAINER_METRIC_TYPES.len() as i16);
        for (value, column_type) in metrics.row(row).into_iter().zip(&CONTAINER_METRIC_TYPES) {
            let length_at = data.len();
            data.put_i32(0); // the length, known once the value is written
            let length = match value
                .to_sql_checked(column_type, &mut data)
                .map_err(|error| Error::Internal(anyhow::anyhow!(error)))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(data.len() - length_at - 4)
                    .map_err(|error| Error::Internal(error.into()))?,
            };
            data[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        }
    }
    data.put_i16(-1); // end of data
    Ok(data.freeze())
}

/// Inserts the metric rows, skipping those that exist, and commits; the rows written per host.
async fn insert_metrics(
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

/// What the first statement did for one admitted snapshot.
struct HostWrite {
    host_row_written: bool,
    /// Version of the host row before and after the transaction (see [`ContainerCache`]).
    version_before: i64,
    version_after: i64,
    /// The token's fleet-wide log of stored posts (see [`Written::post_ages_ms`]).
    post_ages_ms: Vec<i32>,
}

/// One container of a stored snapshot, and its id once known.
struct ContainerRow<'a> {
    host_id: i64,
    recorded_at: DateTime<Utc>,
    container: &'a ContainerPayload,
    fingerprint: Fingerprint,
    /// From the cache, or from the description statement.
    id: Option<i64>,
    /// Whether the description stored is the one sent; `None` until known.
    current: Option<bool>,
    from_cache: bool,
}

/// The containers of a batch's stored snapshots, split into those whose row this process knows
/// unchanged and those the description statement must look up.
struct ContainerRows<'a> {
    rows: Vec<ContainerRow<'a>>,
    /// Position in `rows` of each (host id, container id) the description statement looks up.
    index: HashMap<(i64, &'a str), usize>,
}

impl<'a> ContainerRows<'a> {
    fn plan(
        stored: &[&'a Submission],
        admitted: &HashMap<i64, HostWrite>,
        cache: &ContainerCache,
    ) -> Self {
        let mut rows = Vec::new();
        let mut index = HashMap::new();
        for submission in stored {
            let containers = submission.snapshot.containers();
            let fingerprints: Vec<_> = containers.iter().map(Fingerprint::of).collect();
            let known = cache.lookup(
                submission.host_id,
                admitted[&submission.host_id].version_before,
                containers
                    .iter()
                    .zip(&fingerprints)
                    .map(|(c, f)| (c.container_id.as_str(), *f)),
            );
            for ((container, fingerprint), id) in containers.iter().zip(fingerprints).zip(known) {
                if id.is_none() {
                    index.insert(
                        (submission.host_id, container.container_id.as_str()),
                        rows.len(),
                    );
                }
                rows.push(ContainerRow {
                    host_id: submission.host_id,
                    recorded_at: submission.snapshot.recorded_at,
                    container,
                    fingerprint,
                    id,
                    current: id.map(|_| true),
                    from_cache: id.is_some(),
                });
            }
        }
        Self { rows, index }
    }

    fn unknown(&self) -> impl Iterator<Item = &ContainerRow<'a>> {
        self.rows.iter().filter(|row| !row.from_cache)
    }

    fn unknown_count(&self) -> usize {
        self.unknown().count()
    }

    /// Records what the description statement found for one container.
    fn found(&mut self, host_id: i64, container_id: &str, id: i64, current: bool) {
        if let Some(&position) = self.index.get(&(host_id, container_id)) {
            let row = &mut self.rows[position];
            row.id = Some(id);
            row.current = Some(current);
        }
    }

    /// Tells the cache what the committed transaction left each admitted host's containers as.
    fn remember(self, admitted: &HashMap<i64, HostWrite>, cache: &ContainerCache) {
        let mut updates: HashMap<i64, HostUpdate> = admitted
            .iter()
            .map(|(&host_id, write)| {
                let update = HostUpdate {
                    host_id,
                    version_before: write.version_before,
                    version_after: write.version_after,
                    current: Vec::new(),
                    stale: Vec::new(),
                };
                (host_id, update)
            })
            .collect();
        for row in self.rows {
            let Some(update) = updates.get_mut(&row.host_id) else {
                continue;
            };
            if row.from_cache {
                // Known at `version_before` already: the entry keeps it if nobody else wrote
                // the host meanwhile, and drops the host's entries otherwise.
                continue;
            }
            let container_id = row.container.container_id.clone();
            match (row.id, row.current) {
                (Some(id), Some(true)) => update.current.push((
                    container_id,
                    Known {
                        id,
                        fingerprint: row.fingerprint,
                    },
                )),
                _ => update.stale.push(container_id),
            }
        }
        for update in updates.into_values() {
            cache.update(update);
        }
    }
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

/// The batch's snapshots as one array per host column, the shape `unnest` takes.
#[derive(Default)]
struct HostColumns<'a> {
    host_id: Vec<i64>,
    token_id: Vec<i64>,
    recorded_at: Vec<DateTime<Utc>>,
    cpu_percent: Vec<Option<f64>>,
    memory_used_mb: Vec<Option<i64>>,
    memory_total_mb: Vec<Option<i64>>,
    disk_used_gb: Vec<Option<i64>>,
    disk_total_gb: Vec<Option<i64>>,
    network_rx_bytes: Vec<Option<i64>>,
    network_tx_bytes: Vec<Option<i64>>,
    load_average: Vec<Option<f64>>,
    cpu_count: Vec<Option<i32>>,
    facts_memory_total_mb: Vec<Option<i64>>,
    facts_disk_total_gb: Vec<Option<i64>>,
    os: Vec<Option<&'a str>>,
    docker_version: Vec<Option<&'a str>>,
}

impl<'a> HostColumns<'a> {
    fn of(batch: &'a [Submission]) -> Self {
        let mut c = Self::default();
        for submission in batch {
            let snapshot = &submission.snapshot;
            let metrics = &snapshot.payload.host.metrics;
            let facts = snapshot.payload.host.facts.as_ref();
            c.host_id.push(submission.host_id);
            c.token_id.push(submission.token_id);
            c.recorded_at.push(snapshot.recorded_at);
            c.cpu_percent.push(metrics.cpu_percent);
            c.memory_used_mb.push(metrics.memory_used_mb);
            c.memory_total_mb.push(metrics.memory_total_mb);
            c.disk_used_gb.push(metrics.disk_used_gb);
            c.disk_total_gb.push(metrics.disk_total_gb);
            c.network_rx_bytes.push(metrics.network_rx_bytes);
            c.network_tx_bytes.push(metrics.network_tx_bytes);
            c.load_average.push(metrics.load_average);
            c.cpu_count.push(facts.and_then(|f| f.cpu_count));
            c.facts_memory_total_mb
                .push(facts.and_then(|f| f.memory_total_mb));
            c.facts_disk_total_gb
                .push(facts.and_then(|f| f.disk_total_gb));
            c.os.push(facts.and_then(|f| f.os.as_deref()));
            c.docker_version
                .push(facts.and_then(|f| f.docker_version.as_deref()));
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.host_id,
            &self.token_id,
            &self.recorded_at,
            &self.cpu_percent,
            &self.memory_used_mb,
            &self.memory_total_mb,
            &self.disk_used_gb,
            &self.disk_total_gb,
            &self.network_rx_bytes,
            &self.network_tx_bytes,
            &self.load_average,
            &self.cpu_count,
            &self.facts_memory_total_mb,
            &self.facts_disk_total_gb,
            &self.os,
            &self.docker_version,
        ]
    }
}

static NO_LABELS: Labels = Labels::new();

/// The descriptions of the containers to look up, one array per column, borrowing the strings.
#[derive(Default)]
struct DescriptionColumns<'a> {
    host_id: Vec<i64>,
    recorded_at: Vec<DateTime<Utc>>,
    container_id: Vec<&'a str>,
    name: Vec<&'a str>,
    image: Vec<&'a str>,
    image_tag: Vec<Option<&'a str>>,
    status: Vec<Option<&'a str>>,
    state: Vec<Option<&'a str>>,
    health_status: Vec<Option<&'a str>>,
    /// Serialised straight from the payload into `jsonb`, no intermediate JSON value.
    ports: Vec<Json<&'a [String]>>,
    labels: Vec<Json<&'a Labels>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> DescriptionColumns<'a> {
    fn of(rows: &'a ContainerRows<'a>) -> Self {
        let mut c = Self::default();
        for row in rows.unknown() {
            let container = row.container;
            c.host_id.push(row.host_id);
            c.recorded_at.push(row.recorded_at);
            c.container_id.push(&container.container_id);
            c.name.push(&container.name);
            c.image.push(&container.image);
            c.image_tag.push(container.image_tag.as_deref());
            c.status.push(container.status.as_deref());
            c.state.push(container.state.as_deref());
            c.health_status.push(container.health_status.as_deref());
            c.ports
                .push(Json(container.ports.as_deref().unwrap_or_default()));
            c.labels
                .push(Json(container.labels.as_ref().unwrap_or(&NO_LABELS)));
            c.started_at.push(container.started_at.map(|t| t.to_utc()));
            c.finished_at
                .push(container.finished_at.map(|t| t.to_utc()));
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.host_id,
            &self.recorded_at,
            &self.container_id,
            &self.name,
            &self.image,
            &self.image_tag,
            &self.status,
            &self.state,
            &self.health_status,
            &self.ports,
            &self.labels,
            &self.started_at,
            &self.finished_at,
        ]
    }
}

/// One metric row per container, one array per column.
#[derive(Default)]
struct MetricColumns {
    container_id: Vec<i64>,
    host_id: Vec<i64>,
    recorded_at: Vec<DateTime<Utc>>,
    /// `real` in the table: agents send two decimals, which 32 bits keep.
    cpu_percent: Vec<Option<f32>>,
    memory_usage_mb: Vec<Option<i64>>,
    memory_limit_mb: Vec<Option<i64>>,
    network_rx_bytes: Vec<Option<i64>>,
    network_tx_bytes: Vec<Option<i64>>,
    block_read_bytes: Vec<Option<i64>>,
    block_write_bytes: Vec<Option<i64>>,
}

impl MetricColumns {
    fn of(rows: &ContainerRows<'_>) -> Result<Self, Error> {
        let mut c = Self::default();
        for row in &rows.rows {
            let id = row.id.ok_or_else(|| {
                Error::Internal(anyhow::anyhow!(
                    "container {} of host {} has no id after its upsert",
                    row.container.container_id,
                    row.host_id
                ))
            })?;
            let metrics = row.container.metrics.clone().unwrap_or_default();
            c.container_id.push(id);
            c.host_id.push(row.host_id);
            c.recorded_at.push(row.recorded_at);
            c.cpu_percent.push(metrics.cpu_percent.map(|v| v as f32));
            c.memory_usage_mb.push(metrics.memory_usage_mb);
            c.memory_limit_mb.push(metrics.memory_limit_mb);
            c.network_rx_bytes.push(metrics.network_rx_bytes);
            c.network_tx_bytes.push(metrics.network_tx_bytes);
            c.block_read_bytes.push(metrics.block_read_bytes);
            c.block_write_bytes.push(metrics.block_write_bytes);
        }
        Ok(c)
    }

    /// Row `i`, in [`COPY_CONTAINER_METRICS`]'s column order.
    fn row(&self, i: usize) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.container_id[i],
            &self.host_id[i],
            &self.recorded_at[i],
            &self.cpu_percent[i],
            &self.memory_usage_mb[i],
            &self.memory_limit_mb[i],
            &self.network_rx_bytes[i],
            &self.network_tx_bytes[i],
            &self.block_read_bytes[i],
            &self.block_write_bytes[i],
        ]
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.container_id,
            &self.host_id,
            &self.recorded_at,
            &self.cpu_percent,
            &self.memory_usage_mb,
            &self.memory_limit_mb,
            &self.network_rx_bytes,
            &self.network_tx_bytes,
            &self.block_read_bytes,
            &self.block_write_bytes,
        ]
    }
}
