//! Writes a validated snapshot: host facts and status, one host metric row, container dimension
//! upserts and one metric row per container, in one transaction of two statements, pipelined
//! so the whole ingest costs a single round trip.

use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::Store;
use crate::domain::snapshot::{Snapshot, memory_percent};
use crate::error::Error;

const INGEST_HOST: &str = include_str!("queries/ingest_host.sql");
const INGEST_CONTAINERS: &str = include_str!("queries/ingest_containers.sql");

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
        let host_params: [&(dyn ToSql + Sync); 15] = [
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
        ];
        let container_params: [&(dyn ToSql + Sync); 21] = [
            &host_id,
            &snapshot.recorded_at,
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
        let client = self.client().await?;
        let (host_statement, containers_statement) = tokio::try_join!(
            client.prepare_cached(INGEST_HOST),
            client.prepare_cached(INGEST_CONTAINERS)
        )?;
        // Sent back to back without waiting (tokio-postgres pipelines concurrent queries on one
        // connection). If a statement fails, the transaction is aborted and COMMIT rolls it back.
        let (_, host_row, containers_row, _) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.query_one(&host_statement, &host_params),
            client.query_one(&containers_statement, &container_params),
            client.batch_execute("COMMIT"),
        )?;
        if host_row.get::<_, i64>("hosts_updated") == 0 {
            return Ok(None);
        }
        let row = (host_row, containers_row);
        Ok(Some(Written {
            host_rows: row.0.get("host_rows"),
            container_rows: row.1.get("container_rows"),
        }))
    }
}
