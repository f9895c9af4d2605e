//! Reading metrics back: aggregated series, containers with their latest state, host events.
//! Series come from the coarsest level that has the bucket's resolution: raw rows, or the
//! 5-minute or 1-hour rollups (continuous aggregates, or views on the Apache edition).

use chrono::{DateTime, Utc};
use poem_openapi::Object;
use tokio_postgres::Row;

use super::Store;
use crate::domain::series::{SeriesRequest, Source};
use crate::error::Error;

/// A gauge's aggregates over one bucket (each null when no sample in the bucket had it). The
/// average has `real` precision (7 significant digits, as the rollups store it); the extremes
/// are samples as stored, so a value posted as `12.34` reads back as `12.34`.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct Stat {
    /// Mean of the bucket's samples.
    #[oai(nullable)]
    pub avg: Option<f64>,
    /// Smallest sample in the bucket.
    #[oai(nullable)]
    pub min: Option<f64>,
    /// Largest sample in the bucket.
    #[oai(nullable)]
    pub max: Option<f64>,
}

/// One bucket of host metrics. Counters are rates in bytes per second: the growth between
/// consecutive samples inside each 5-minute window (the bucket itself when finer), a drop
/// counting as a reset to zero, divided by the time those samples span; null when the bucket
/// has fewer than two samples of the counter in any window.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct HostMetricsBucket {
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Snapshots in the bucket.
    pub samples: i64,
    /// CPU use, percent of one core (100 per busy core).
    pub cpu_percent: Stat,
    /// Memory in use, MiB.
    pub memory_used_mb: Stat,
    /// Disk in use, GiB.
    pub disk_used_gb: Stat,
    /// 1-minute load average.
    pub load_average: Stat,
    /// Bytes received per second, from the cumulative `network_rx_bytes` counter.
    #[oai(nullable)]
    pub network_rx_bytes_per_second: Option<f64>,
    /// Bytes sent per second, from the cumulative `network_tx_bytes` counter.
    #[oai(nullable)]
    pub network_tx_bytes_per_second: Option<f64>,
}

/// One bucket of container metrics. Counters are rates in bytes per second, computed as for
/// hosts.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize)]
pub struct ContainerMetricsBucket {
    /// Start of the bucket.
    pub bucket: DateTime<Utc>,
    /// Snapshots in the bucket.
    pub samples: i64,
    /// CPU use, percent of one core (100 per busy core).
    pub cpu_percent: Stat,
    /// Memory in use, MiB.
    pub memory_usage_mb: Stat,
    /// Memory in use as a percentage of the container's limit.
    pub memory_percent: Stat,
    /// Bytes received per second.
    #[oai(nullable)]
    pub network_rx_bytes_per_second: Option<f64>,
    /// Bytes sent per second.
    #[oai(nullable)]
    pub network_tx_bytes_per_second: Option<f64>,
    /// Bytes read from block devices per second.
    #[oai(nullable)]
    pub block_read_bytes_per_second: Option<f64>,
    /// Bytes written to block devices per second.
    #[oai(nullable)]
    pub block_write_bytes_per_second: Option<f64>,
}

/// A container of a host with its latest state and metrics.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ContainerState {
    /// Container row id (use it for `/api/v1/containers/{container_id}/metrics`).
    pub id: i64,
    /// The host it runs on.
    pub host_id: i64,
    /// Docker's container id.
    pub container_id: String,
    /// Docker's container name.
    pub name: String,
    /// Image name, without the tag.
    pub image: String,
    #[oai(nullable)]
    /// Image tag.
    pub image_tag: Option<String>,
    #[oai(nullable)]
    /// Docker's state (`running`, `exited`, …).
    pub state: Option<String>,
    #[oai(nullable)]
    /// Docker's status text, e.g. `Up 3 hours (healthy)`.
    pub status: Option<String>,
    #[oai(nullable)]
    /// Docker's health check result, when the container has one.
    pub health_status: Option<String>,
    #[oai(nullable)]
    /// When Docker last started it.
    pub started_at: Option<DateTime<Utc>>,
    /// `recorded_at` of its newest snapshot.
    #[oai(nullable)]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Not seen for longer than the staleness threshold: probably removed.
    pub stale: bool,
    #[oai(nullable)]
    /// CPU use in its newest snapshot, percent of one core.
    pub cpu_percent: Option<f64>,
    #[oai(nullable)]
    /// Memory use in its newest snapshot, MiB.
    pub memory_usage_mb: Option<i64>,
    #[oai(nullable)]
    /// Memory use in its newest snapshot as a percentage of its limit.
    pub memory_percent: Option<f64>,
}

/// What a liveness transition was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum HostEventKind {
    /// First contact.
    Online,
    /// Silent past the heartbeat timeout.
    Offline,
    /// Back from offline.
    Recovered,
}

/// A liveness transition of a host.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct HostEvent {
    /// The event's id; pages continue from it.
    pub id: i64,
    pub kind: HostEventKind,
    /// When the transition was recorded.
    pub at: DateTime<Utc>,
}

fn stat(row: &Row, name: &str, stored: Stored) -> Stat {
    let extreme = |column: String| match stored {
        Stored::Real => real(row, &column),
        Stored::Integer => row.get(column.as_str()),
    };
    Stat {
        avg: real(row, &format!("{name}_avg")),
        min: extreme(format!("{name}_min")),
        max: extreme(format!("{name}_max")),
    }
}

/// A `real` column as the number it holds: the shortest decimal that reads back as the same
/// `f32` (`12.34`, not the `12.34000015258789` a plain widening to `f64` prints).
fn real(row: &Row, column: &str) -> Option<f64> {
    let value: Option<f32> = row.get(column);
    value.map(shortest)
}

fn shortest(value: f32) -> f64 {
    if !value.is_finite() {
        return f64::from(value);
    }
    ryu::Buffer::new()
        .format_finite(value)
        .parse()
        .unwrap_or(f64::from(value))
}

fn rate(row: &Row, counter: &str) -> Option<f64> {
    row.get(format!("{counter}_per_second").as_str())
}

/// How a gauge's samples are stored, and so the precision its extremes are answered with.
#[derive(Clone, Copy)]
enum Stored {
    /// `real` (or rounded into one by the rollups): 7 significant digits.
    Real,
    /// `bigint`: exact.
    Integer,
}

impl Stored {
    fn cast(self) -> &'static str {
        match self {
            Stored::Real => "real",
            Stored::Integer => "float8",
        }
    }
}

/// The metrics of one kind of series: where they live and how each is aggregated.
struct SeriesKind {
    raw_table: &'static str,
    rollup_prefix: &'static str,
    key: &'static str,
    /// Gauges by name, with the expression that gives them from a raw row and how they are
    /// stored.
    gauges: &'static [(&'static str, &'static str, Stored)],
    counters: &'static [&'static str],
}

const HOST_SERIES: SeriesKind = SeriesKind {
    raw_table: "host_metric_snapshots",
    rollup_prefix: "host_metrics",
    key: "host_id",
    gauges: &[
        ("cpu_percent", "cpu_percent", Stored::Real),
        ("memory_used_mb", "memory_used_mb", Stored::Integer),
        ("disk_used_gb", "disk_used_gb", Stored::Integer),
        ("load_average", "load_average", Stored::Real),
    ],
    counters: &["network_rx_bytes", "network_tx_bytes"],
};

const CONTAINER_SERIES: SeriesKind = SeriesKind {
    raw_table: "container_metric_snapshots",
    rollup_prefix: "container_metrics",
    key: "container_id",
    gauges: &[
        ("cpu_percent", "cpu_percent", Stored::Real),
        ("memory_usage_mb", "memory_usage_mb", Stored::Integer),
        // Two decimals, as `real` in the rollups: answered at that precision from raw rows too.
        (
            "memory_percent",
            "memory_percent(memory_usage_mb, memory_limit_mb)",
            Stored::Real,
        ),
    ],
    counters: &[
        "network_rx_bytes",
        "network_tx_bytes",
        "block_read_bytes",
        "block_write_bytes",
    ],
};

impl SeriesKind {
    /// The query for one series: `$1` the bucket width in seconds, `$2` the id, `[$3, $4)` the
    /// range. Rollup rows are combined exactly as the 1 h rollup combines 5 min ones
    /// (sql/V6__lifecycle_rollups.sql), so every source gives the raw rows' answer. Averages
    /// are `real`, as the rollups store them; extremes keep their column's type.
    fn sql(&self, source: Source) -> String {
        let mut columns = Vec::new();
        let (from, time) = match source {
            Source::Raw => {
                columns.push("count(*) AS samples".to_owned());
                for (gauge, expression, stored) in self.gauges {
                    let cast = stored.cast();
                    columns.push(format!(
                        "avg({expression})::real AS {gauge}_avg, min({expression})::{cast} AS {gauge}_min, max({expression})::{cast} AS {gauge}_max"
                    ));
                }
                for counter in self.counters {
                    columns.push(format!(
                        "counter_increase({counter} ORDER BY recorded_at)::float8 / nullif(extract(epoch FROM max(recorded_at) - min(recorded_at)), 0)::float8 AS {counter}_per_second"
                    ));
                }
                (self.raw_table.to_owned(), "recorded_at")
            }
            Source::FiveMinutes | Source::OneHour => {
                columns.push("sum(samples)::int8 AS samples".to_owned());
                for (gauge, _, stored) in self.gauges {
                    let cast = stored.cast();
                    columns.push(format!(
                        "(sum({gauge}_avg * samples) / sum(samples))::real AS {gauge}_avg, min({gauge}_min)::{cast} AS {gauge}_min, max({gauge}_max)::{cast} AS {gauge}_max"
                    ));
                }
                for counter in self.counters {
                    columns.push(format!(
                        "sum({counter}_increase)::float8 / nullif(sum(counter_seconds), 0) AS {counter}_per_second"
                    ));
                }
                let level = if source == Source::OneHour {
                    "1h"
                } else {
                    "5m"
                };
                (format!("{}_{level}", self.rollup_prefix), "bucket")
            }
        };
        format!(
            "SELECT time_bucket(make_interval(secs => $1), {time}) AS bucket, {}
             FROM {from} WHERE {key} = $2 AND {time} >= $3 AND {time} < $4
             GROUP BY 1 ORDER BY 1",
            columns.join(", "),
            key = self.key,
        )
    }
}

impl Store {
    pub async fn host_series(
        &self,
        host_id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<HostMetricsBucket>, Error> {
        let rows = self.series(&HOST_SERIES, host_id, request).await?;
        Ok(rows
            .iter()
            .map(|row| HostMetricsBucket {
                bucket: row.get("bucket"),
                samples: row.get("samples"),
                cpu_percent: stat(row, "cpu_percent", Stored::Real),
                memory_used_mb: stat(row, "memory_used_mb", Stored::Integer),
                disk_used_gb: stat(row, "disk_used_gb", Stored::Integer),
                load_average: stat(row, "load_average", Stored::Real),
                network_rx_bytes_per_second: rate(row, "network_rx_bytes"),
                network_tx_bytes_per_second: rate(row, "network_tx_bytes"),
            })
            .collect())
    }

    pub async fn container_series(
        &self,
        container_id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<ContainerMetricsBucket>, Error> {
        let rows = self
            .series(&CONTAINER_SERIES, container_id, request)
            .await?;
        Ok(rows
            .iter()
            .map(|row| ContainerMetricsBucket {
                bucket: row.get("bucket"),
                samples: row.get("samples"),
                cpu_percent: stat(row, "cpu_percent", Stored::Real),
                memory_usage_mb: stat(row, "memory_usage_mb", Stored::Integer),
                memory_percent: stat(row, "memory_percent", Stored::Real),
                network_rx_bytes_per_second: rate(row, "network_rx_bytes"),
                network_tx_bytes_per_second: rate(row, "network_tx_bytes"),
                block_read_bytes_per_second: rate(row, "block_read_bytes"),
                block_write_bytes_per_second: rate(row, "block_write_bytes"),
            })
            .collect())
    }

    async fn series(
        &self,
        kind: &SeriesKind,
        id: i64,
        request: &SeriesRequest,
    ) -> Result<Vec<Row>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&kind.sql(request.bucket.source()))
            .await?;
        let width = request.bucket.width().as_secs_f64();
        Ok(client
            .query(&statement, &[&width, &id, &request.since, &request.until])
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
                cpu_percent: real(row, "cpu_percent"),
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
                kind: match row.get::<_, &str>("kind") {
                    "online" => HostEventKind::Online,
                    "offline" => HostEventKind::Offline,
                    _ => HostEventKind::Recovered,
                },
                at: row.get("at"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::shortest;

    #[test]
    fn a_real_widens_to_the_shortest_decimal_that_holds_it() {
        assert_eq!(f64::from(12.34_f32), 12.34000015258789);
        for (stored, answered) in [(12.34_f32, 12.34), (0.42, 0.42), (100.0, 100.0), (0.0, 0.0)] {
            assert_eq!(shortest(stored), answered);
        }
        // Every f32 survives: the answer reads back as the very value stored.
        for bits in (0..u32::MAX).step_by(65_537) {
            let stored = f32::from_bits(bits);
            if stored.is_finite() {
                assert_eq!(shortest(stored) as f32, stored, "{stored:e}");
            }
        }
    }
}
