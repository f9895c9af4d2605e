//! The baseline: the same rows an end-to-end run wrote (one host row and C container rows per
//! post, from the same generator and the same hosts and containers) written straight into the
//! hypertables with binary `COPY` from one client: no HTTP, no auth, no JSON, no upserts.
//!
//! Each batch is one transaction of two `COPY`s (host rows, then container rows). Two batch
//! sizes are measured: one post per transaction (the server's unit of atomicity) and bulk
//! batches of about 10 000 rows (what a bulk loader would do: the ceiling of the database).

use std::collections::HashMap;
use std::pin::pin;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use crate::database::Agent;
use crate::payload::{HostFeed, micros};

/// Rows per bulk transaction (host + container rows), roughly.
pub const BULK_ROWS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct CopyOutcome {
    pub posts: u64,
    pub rows: u64,
    pub elapsed: Duration,
    pub posts_per_batch: usize,
}

impl CopyOutcome {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }
}

/// What to copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyPlan {
    pub containers: usize,
    /// Posts to copy at most.
    pub posts: u64,
    pub posts_per_batch: usize,
    /// The first `recorded_at`: every post gets its own microsecond after it, so no row
    /// collides with another.
    pub base: DateTime<Utc>,
    /// Stop early after this long.
    pub budget: Duration,
}

/// Copies the rows of `plan.posts` posts of `agents` (whose containers exist), round-robin over
/// the hosts, `plan.posts_per_batch` posts per transaction.
pub async fn run(
    db: &mut Client,
    agents: &[Agent],
    container_ids: &HashMap<(i64, String), i64>,
    plan: CopyPlan,
) -> Result<CopyOutcome> {
    let CopyPlan {
        containers,
        posts,
        posts_per_batch,
        base,
        budget,
    } = plan;
    let mut feeds: Vec<HostFeed> = (0..agents.len())
        .map(|i| HostFeed::new(i, containers))
        .collect();
    let started = Instant::now();
    let mut done = 0u64;
    let mut rows = 0u64;
    while done < posts && started.elapsed() < budget {
        let batch = (posts - done).min(posts_per_batch as u64);
        let mut host_rows = Vec::with_capacity(batch as usize);
        let mut container_rows = Vec::with_capacity(batch as usize * containers);
        for p in done..done + batch {
            let h = (p % agents.len() as u64) as usize;
            let feed = &mut feeds[h];
            let host_id = agents[h].host_id;
            feed.advance_to(micros(base) + chrono::Duration::microseconds(p as i64));
            host_rows.push(HostRow::of(host_id, feed));
            for c in feed.payload.container_list() {
                let id = *container_ids
                    .get(&(host_id, c.container_id.clone()))
                    .context("a container of the end-to-end run is missing")?;
                container_rows.push(ContainerRow::of(id, host_id, feed.recorded_at(), c));
            }
        }
        rows += write_batch(db, &host_rows, &container_rows).await?;
        done += batch;
    }
    Ok(CopyOutcome {
        posts: done,
        rows,
        elapsed: started.elapsed(),
        posts_per_batch,
    })
}

struct HostRow {
    host_id: i64,
    recorded_at: DateTime<Utc>,
    cpu_percent: Option<f32>,
    ints: [Option<i64>; 6],
    load_average: Option<f32>,
}

impl HostRow {
    fn of(host_id: i64, feed: &HostFeed) -> Self {
        let m = &feed.payload.host.metrics;
        Self {
            host_id,
            recorded_at: feed.recorded_at(),
            cpu_percent: m.cpu_percent.map(|v| v as f32),
            ints: [
                m.memory_used_mb,
                m.memory_total_mb,
                m.disk_used_gb,
                m.disk_total_gb,
                m.network_rx_bytes,
                m.network_tx_bytes,
            ],
            load_average: m.load_average.map(|v| v as f32),
        }
    }
}

struct ContainerRow {
    /// The container's row id and its host's.
    ids: [i64; 2],
    recorded_at: DateTime<Utc>,
    cpu_percent: Option<f32>,
    /// Usage and limit.
    memory_mb: [Option<i64>; 2],
    counters: [Option<i64>; 4],
}

impl ContainerRow {
    fn of(
        container_id: i64,
        host_id: i64,
        recorded_at: DateTime<Utc>,
        c: &nexus_contract::ContainerPayload,
    ) -> Self {
        let m = c.metrics.clone().unwrap_or_default();
        Self {
            ids: [container_id, host_id],
            recorded_at,
            cpu_percent: m.cpu_percent.map(|v| v as f32),
            memory_mb: [m.memory_usage_mb, m.memory_limit_mb],
            counters: [
                m.network_rx_bytes,
                m.network_tx_bytes,
                m.block_read_bytes,
                m.block_write_bytes,
            ],
        }
    }
}

async fn write_batch(
    db: &mut Client,
    hosts: &[HostRow],
    containers: &[ContainerRow],
) -> Result<u64> {
    let tx = db.transaction().await?;
    let mut rows = copy_rows(
        &tx,
        "COPY host_metric_snapshots (host_id, recorded_at, cpu_percent, memory_used_mb, \
         memory_total_mb, disk_used_gb, disk_total_gb, network_rx_bytes, network_tx_bytes, \
         load_average) FROM STDIN (FORMAT binary)",
        [
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::FLOAT4,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::FLOAT4,
        ],
        hosts,
    )
    .await?;
    if !containers.is_empty() {
        rows += copy_rows(
            &tx,
            "COPY container_metric_snapshots (container_id, host_id, recorded_at, \
             cpu_percent, memory_usage_mb, memory_limit_mb, \
             network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes) \
             FROM STDIN (FORMAT binary)",
            [
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
            ],
            containers,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// A row's values in its `COPY` statement's column order.
trait CopyRow<const N: usize> {
    fn values(&self) -> [&(dyn ToSql + Sync); N];
}

impl CopyRow<10> for HostRow {
    fn values(&self) -> [&(dyn ToSql + Sync); 10] {
        let [a, b, c, d, e, f] = &self.ints;
        [
            &self.host_id,
            &self.recorded_at,
            &self.cpu_percent,
            a,
            b,
            c,
            d,
            e,
            f,
            &self.load_average,
        ]
    }
}

impl CopyRow<10> for ContainerRow {
    fn values(&self) -> [&(dyn ToSql + Sync); 10] {
        let [a, b, c, d] = &self.counters;
        [
            &self.ids[0],
            &self.ids[1],
            &self.recorded_at,
            &self.cpu_percent,
            &self.memory_mb[0],
            &self.memory_mb[1],
            a,
            b,
            c,
            d,
        ]
    }
}

/// One binary `COPY` of `rows` by `statement`, whose columns have `types`.
async fn copy_rows<const N: usize>(
    tx: &Transaction<'_>,
    statement: &str,
    types: [Type; N],
    rows: &[impl CopyRow<N>],
) -> Result<u64> {
    let sink = tx.copy_in(statement).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for row in rows {
        writer.as_mut().write(&row.values()).await?;
    }
    Ok(writer.finish().await?)
}
