//! Reading metrics back: aggregated series, containers with their latest state, host events.
//! Each query is served by an index that starts with the id it filters on and ends in time.

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use tokio_postgres::Row;

use super::Store;
use crate::domain::series::SeriesRequest;
use crate::error::Error;

/// Aggregate of one metric over one bucket.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Stat {
    /// Mean over the bucket's samples (null when none had the metric).
    #[oai(nullable)]
    pub avg: Option<f64>,
    /// Largest sample in the bucket.
    #[oai(nullable)]
    pub max: Option<f64>,
}

/// One bucket of host metrics.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct HostMetricsBucket {
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Snapshots in the bucket.
    pub samples: i64,
    pub cpu_percent: Stat,
    pub memory_used_mb: Stat,
    pub disk_used_gb: Stat,
    pub load_average: Stat,
    /// Cumulative counters: `max` is the last value in the bucket.
    pub network_rx_bytes: Stat,
    pub network_tx_bytes: Stat,
}

/// One bucket of container metrics.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ContainerMetricsBucket {
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub cpu_percent: Stat,
    pub memory_usage_mb: Stat,
    pub memory_percent: Stat,
    pub network_rx_bytes: Stat,
    pub network_tx_bytes: Stat,
    pub block_read_bytes: Stat,
    pub block_write_bytes: Stat,
}

/// A container of a host with its latest state and metrics.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ContainerState {
    /// Container row id (use it for `/api/v1/containers/{id}/metrics`).
    pub id: i64,
    pub host_id: i64,
    /// Docker's container id.
    pub container_id: String,
    pub name: String,
    pub image: String,
    #[oai(nullable)]
    pub image_tag: Option<String>,
    #[oai(nullable)]
    pub state: Option<String>,
    #[oai(nullable)]
    pub status: Option<String>,
    #[oai(nullable)]
    pub health_status: Option<String>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    /// `recorded_at` of its newest snapshot.
    #[oai(nullable)]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Not seen for longer than the staleness threshold: probably removed.
    pub stale: bool,
    #[oai(nullable)]
    pub cpu_percent: Option<f64>,
    #[oai(nullable)]
    pub memory_usage_mb: Option<i64>,
    #[oai(nullable)]
    pub memory_percent: Option<f64>,
}

/// A liveness transition of a host.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct HostEvent {
    pub id: i64,
    /// `online` (first contact), `offline` or `recovered`.
    pub kind: String,
    pub at: DateTime<Utc>,
}

fn stat(row: &Row, name: &str) -> Stat {
    Stat {
        avg: row.get(format!("{name}_avg").as_str()),
        max: row.get(format!("{name}_max").as_str()),
    }
}

/// `avg(x)::float8 AS x_avg, max(x)::float8 AS x_max` for each column.
fn aggregates(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("avg({c})::float8 AS {c}_avg, max({c})::float8 AS {c}_max"))
        .collect::<Vec<_>>()
        .join(", ")
}

const HOST_METRICS: [&str; 6] = [
    "cpu_percent",
    "memory_used_mb",
    "disk_used_gb",
    "load_average",
    "network_rx_bytes",
    "network_tx_bytes",
];
const CONTAINER_METRICS: [&str; 7] = [
    "cpu_percent",
    "memory_usage_mb",
    "memory_percent",
    "network_rx_bytes",
    "network_tx_bytes",
    "block_read_bytes",
    "block_write_bytes",
];

fn series_sql(table: &str, key: &str, columns: &[&str]) -> String {
    format!(
        "SELECT time_bucket(make_interval(secs => $1), recorded_at) AS bucket, count(*) AS samples, {}
         FROM {table} WHERE {key} = $2 AND recorded_at >= $3 AND recorded_at < $4
         GROUP BY bucket ORDER BY bucket",
        aggregates(columns)
    )
}

impl Store {
    pub async fn host_series(
        &self,
        host_id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<HostMetricsBucket>, Error> {
        let rows = self
            .series(
                "host_metric_snapshots",
                "host_id",
                &HOST_METRICS,
                host_id,
                request,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| HostMetricsBucket {
                bucket: row.get("bucket"),
                samples: row.get("samples"),
                cpu_percent: stat(row, "cpu_percent"),
                memory_used_mb: stat(row, "memory_used_mb"),
                disk_used_gb: stat(row, "disk_used_gb"),
                load_average: stat(row, "load_average"),
                network_rx_bytes: stat(row, "network_rx_bytes"),
                network_tx_bytes: stat(row, "network_tx_bytes"),
            })
            .collect())
    }

    pub async fn container_series(
        &self,
        container_id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<ContainerMetricsBucket>, Error> {
        let rows = self
            .series(
                "container_metric_snapshots",
                "container_id",
                &CONTAINER_METRICS,
                container_id,
                request,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ContainerMetricsBucket {
                bucket: row.get("bucket"),
                samples: row.get("samples"),
                cpu_percent: stat(row, "cpu_percent"),
                memory_usage_mb: stat(row, "memory_usage_mb"),
                memory_percent: stat(row, "memory_percent"),
                network_rx_bytes: stat(row, "network_rx_bytes"),
                network_tx_bytes: stat(row, "network_tx_bytes"),
                block_read_bytes: stat(row, "block_read_bytes"),
                block_write_bytes: stat(row, "block_write_bytes"),
            })
            .collect())
    }

    async fn series(
        &self,
        table: &str,
        key: &str,
        columns: &[&str],
        id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<Row>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&series_sql(table, key, columns))
            .await?;
        let width = request.bucket.as_secs_f64();
        Ok(client
            .query(&statement, &[&width, &id, &request.from, &request.to])
            .await?)
    }

    /// Whether a container row exists.
    pub async fn container_exists(&self, id: i64) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT 1 FROM containers WHERE id = $1")
            .await?;
        Ok(client.query_opt(&statement, &[&id]).await?.is_some())
    }

    /// The host's containers with their latest metrics, optionally only those in `state`.
    pub async fn host_containers(
        &self,
        host_id: i64,
        state: Option<&str>,
        stale_after: std::time::Duration,
    ) -> Result<Vec<ContainerState>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, host_id, container_id, name, image, image_tag, state, status, health_status,
                        started_at, last_seen_at, cpu_percent, memory_usage_mb, memory_percent,
                        coalesce(last_seen_at < now() - make_interval(secs => $3), true) AS stale
                 FROM containers_latest
                 WHERE host_id = $1 AND ($2::text IS NULL OR state = $2)
                 ORDER BY name, id",
            )
            .await?;
        let rows = client
            .query(&statement, &[&host_id, &state, &stale_after.as_secs_f64()])
            .await?;
        Ok(rows
            .iter()
            .map(|row| ContainerState {
                id: row.get("id"),
                host_id: row.get("host_id"),
                container_id: row.get("container_id"),
                name: row.get("name"),
                image: row.get("image"),
                image_tag: row.get("image_tag"),
                state: row.get("state"),
                status: row.get("status"),
                health_status: row.get("health_status"),
                started_at: row.get("started_at"),
                last_seen_at: row.get("last_seen_at"),
                stale: row.get("stale"),
                cpu_percent: row.get("cpu_percent"),
                memory_usage_mb: row.get("memory_usage_mb"),
                memory_percent: row.get("memory_percent"),
            })
            .collect())
    }

    /// A page of the host's events, newest first, after the event id `before` (exclusive).
    pub async fn host_events(
        &self,
        host_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<HostEvent>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, kind, at FROM host_events
                 WHERE host_id = $1 AND ($2::bigint IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
            )
            .await?;
        let rows = client
            .query(&statement, &[&host_id, &before, &limit])
            .await?;
        Ok(rows
            .iter()
            .map(|row| HostEvent {
                id: row.get("id"),
                kind: row.get("kind"),
                at: row.get("at"),
            })
            .collect())
    }
}
