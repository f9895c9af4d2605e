//! Writes a validated snapshot: host facts and status, one host metric row, container dimension
//! upserts and one metric row per container, all in one statement.

use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::Store;
use super::new_chunks::LOCK_NEW_CHUNKS;
use crate::domain::snapshot::{Snapshot, memory_percent};
use crate::error::Error;

const INGEST: &str = include_str!("queries/ingest.sql");

/// Tries of the ingest statement when PostgreSQL aborts it to break a deadlock: the backstop for
/// a chunk created behind `new_chunks`' back (e.g. a day's chunk dropped and written again).
/// The statement is atomic and idempotent, so running it again is safe.
const DEADLOCK_TRIES: usize = 3;

/// What one ingest wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub host_rows: i64,
    pub container_rows: i64,
}

/// The payload's containers as one array per column, the shape `unnest` takes.
#[derive(Default)]
struct ContainerColumns {
    container_id: Vec<String>,
    name: Vec<String>,
    image: Vec<String>,
    image_tag: Vec<Option<String>>,
    status: Vec<Option<String>>,
    state: Vec<Option<String>>,
    health_status: Vec<Option<String>>,
    ports: Vec<Value>,
    labels: Vec<Value>,
    started_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    finished_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    cpu_percent: Vec<Option<f64>>,
    memory_usage_mb: Vec<Option<i64>>,
    memory_limit_mb: Vec<Option<i64>>,
    memory_percent: Vec<Option<f64>>,
    network_rx_bytes: Vec<Option<i64>>,
    network_tx_bytes: Vec<Option<i64>>,
    block_read_bytes: Vec<Option<i64>>,
    block_write_bytes: Vec<Option<i64>>,
}

impl ContainerColumns {
    fn of(snapshot: &Snapshot) -> Self {
        let mut columns = Self::default();
        for container in snapshot.containers() {
            let metrics = container.metrics.clone().unwrap_or_default();
            columns.container_id.push(container.container_id.clone());
            columns.name.push(container.name.clone());
            columns.image.push(container.image.clone());
            columns.image_tag.push(container.image_tag.clone());
            columns.status.push(container.status.clone());
            columns.state.push(container.state.clone());
            columns.health_status.push(container.health_status.clone());
            columns.ports.push(serde_json::json!(
                container.ports.clone().unwrap_or_default()
            ));
            columns.labels.push(serde_json::json!(
                container.labels.clone().unwrap_or_default()
            ));
            columns
                .started_at
                .push(container.started_at.map(|t| t.to_utc()));
            columns
                .finished_at
                .push(container.finished_at.map(|t| t.to_utc()));
            columns.cpu_percent.push(metrics.cpu_percent);
            columns.memory_usage_mb.push(metrics.memory_usage_mb);
            columns.memory_limit_mb.push(metrics.memory_limit_mb);
            columns.memory_percent.push(memory_percent(
                metrics.memory_usage_mb,
                metrics.memory_limit_mb,
            ));
            columns.network_rx_bytes.push(metrics.network_rx_bytes);
            columns.network_tx_bytes.push(metrics.network_tx_bytes);
            columns.block_read_bytes.push(metrics.block_read_bytes);
            columns.block_write_bytes.push(metrics.block_write_bytes);
        }
        columns
    }
}

impl Store {
    /// Stores `snapshot` for `host_id`. `None` when the host no longer accepts telemetry
    /// (archived or deleted since its token was checked); nothing is written then.
    pub async fn ingest(
        &self,
        host_id: i64,
        snapshot: &Snapshot,
    ) -> Result<Option<Written>, Error> {
        let host = &snapshot.payload.host;
        let metrics = &host.metrics;
        let facts = host.facts.clone().unwrap_or_default();
        let c = ContainerColumns::of(snapshot);
        let params: [&(dyn ToSql + Sync); 34] = [
            &host_id,
            &snapshot.recorded_at,
            &metrics.cpu_percent,
            &metrics.memory_used_mb,
            &metrics.memory_total_mb,
            &metrics.disk_used_gb,
            &metrics.disk_total_gb,
            &metrics.network_rx_bytes,
            &metrics.network_tx_bytes,
            &metrics.load_average,
            &facts.cpu_count,
            &facts.memory_total_mb,
            &facts.disk_total_gb,
            &facts.os,
            &facts.docker_version,
            &c.container_id,
            &c.name,
            &c.image,
            &c.image_tag,
            &c.status,
            &c.state,
            &c.health_status,
            &c.ports,
            &c.labels,
            &c.started_at,
            &c.finished_at,
            &c.cpu_percent,
            &c.memory_usage_mb,
            &c.memory_limit_mb,
            &c.memory_percent,
            &c.network_rx_bytes,
            &c.network_tx_bytes,
            &c.block_read_bytes,
            &c.block_write_bytes,
        ];
        let mut client = self.client().await?;
        let statement = client.prepare_cached(INGEST).await?;
        let known_day = self.known_days.contains(snapshot.recorded_at);
        let row = if known_day {
            let mut tries = 1;
            loop {
                match client.query_one(&statement, &params).await {
                    Err(error)
                        if tries < DEADLOCK_TRIES
                            && error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
                    {
                        tracing::warn!(host_id, tries, "ingest deadlocked; retrying");
                        tries += 1;
                    }
                    result => break result?,
                }
            }
        } else {
            // Possibly the first write into a new chunk: one at a time (see `new_chunks`).
            let transaction = client.transaction().await?;
            transaction.batch_execute(LOCK_NEW_CHUNKS).await?;
            let row = transaction.query_one(&statement, &params).await?;
            transaction.commit().await?;
            row
        };
        if row.get::<_, i64>("hosts_updated") == 0 {
            return Ok(None);
        }
        if !known_day {
            self.known_days.insert(snapshot.recorded_at); // its chunks exist now
        }
        Ok(Some(Written {
            host_rows: row.get("host_rows"),
            container_rows: row.get("container_rows"),
        }))
    }
}
