//! The data's lifecycle: chunk sizing, compression, rollup refresh and retention. Which of
//! these the database runs itself depends on its TimescaleDB edition, read at start:
//! the community edition (license `timescale`) has policies, compression and continuous
//! aggregates; the Apache edition has none, so the server drops old raw chunks itself and the
//! rollups are plain views over the raw rows (`sql/V6__lifecycle_rollups.sql`).

use std::time::Duration;

use super::Store;
use crate::error::Error;

/// Key of the advisory lock that serialises lifecycle set-up across server processes.
const LIFECYCLE_LOCK: i64 = 0x6e65_7875_735f_6c63; // "nexus_lc"

/// The raw hypertables (compression settings: `sql/V6__lifecycle_rollups.sql`,
/// `sql/V10__container_segments_carry_host.sql`).
const RAW_TABLES: [&str; 2] = ["host_metric_snapshots", "container_metric_snapshots"];

/// The TimescaleDB edition a database runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    /// License `timescale`: policies, compression and continuous aggregates in the database.
    Community,
    /// License `apache`: hypertables only; the server drops old chunks itself.
    Apache,
}

/// How long each level of data is kept, and how raw data is chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub raw_retention: Duration,
    pub rollup_5m_retention: Duration,
    pub rollup_1h_retention: Duration,
    /// How long events are kept (`events`, sql/V13__events.sql).
    pub event_retention: Duration,
    /// Time range of one raw chunk; a chunk is compressed once no ordinary data can reach it.
    pub chunk_interval: Duration,
    /// How far in the past a snapshot may be: the oldest ordinary data a chunk can receive.
    pub late_data: Duration,
}

/// The events hypertable; its chunks (a week each) are compressed once a week past them, when
/// no late snapshot can add to them.
const EVENTS_TABLE: &str = "events";
const EVENTS_COMPRESS_AFTER: Duration = Duration::from_secs(14 * 86400);

/// One rollup level: its views and its refresh window.
struct Rollup {
    views: [&'static str; 3],
    /// Refreshed up to this long ago; newer buckets come from real-time aggregation.
    end_offset: Duration,
    schedule: Duration,
    /// How long the configuration keeps this level.
    retention: fn(&Lifecycle) -> Duration,
}

const HOUR: Duration = Duration::from_secs(3600);

const ROLLUPS: [Rollup; 2] = [
    Rollup {
        views: [
            "host_metrics_5m",
            "container_metrics_5m",
            "container_lifecycle_5m",
        ],
        end_offset: Duration::from_secs(300),
        schedule: Duration::from_secs(300),
        retention: |lifecycle| lifecycle.rollup_5m_retention,
    },
    Rollup {
        views: [
            "host_metrics_1h",
            "container_metrics_1h",
            "container_lifecycle_1h",
        ],
        end_offset: HOUR,
        schedule: Duration::from_secs(1800),
        retention: |lifecycle| lifecycle.rollup_1h_retention,
    },
];

impl Lifecycle {
    /// Raw chunks are compressed once their whole range is older than late data can be, plus an
    /// hour's margin for agents replaying a buffer at the edge of the window.
    pub fn compress_raw_after(&self) -> Duration {
        self.late_data + HOUR
    }

    /// A rollup refresh reaches back far enough to pick up late data and the bucket it lands in.
    fn refresh_start_offset(&self, level: &Rollup) -> Duration {
        self.late_data + level.end_offset + HOUR
    }

    /// Rollup chunks are compressed an hour after the refresh window has passed them by (a
    /// refresh that runs late still finds them plain); every day they wait, a 5-minute rollup
    /// row takes ~5× its compressed bytes (BENCHMARKS.md).
    fn compress_rollup_after(&self, level: &Rollup) -> Duration {
        self.refresh_start_offset(level) + HOUR
    }
}

impl Store {
    /// From `timescaledb.license`: `timescale`, or `apache` (`community` on old versions).
    pub async fn edition(&self) -> Result<Edition, Error> {
        let client = self.client().await?;
        let license: String = client
            .query_one("SHOW timescaledb.license", &[])
            .await?
            .get(0);
        Ok(match license.as_str() {
            "timescale" => Edition::Community,
            _ => Edition::Apache,
        })
    }

    /// Sets chunk sizing and, on the community edition, compression, refresh and retention
    /// policies to match `lifecycle` (replacing earlier ones; no DDL on the views, so cached
    /// statements of running servers stay valid). Returns the edition found.
    pub async fn configure_lifecycle(&self, lifecycle: &Lifecycle) -> Result<Edition, Error> {
        let edition = self.edition().await?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LIFECYCLE_LOCK])
            .await?;
        // Each remove_*(if_exists) below that finds no policy says so in a NOTICE: expected on
        // every first start, so this transaction passes on warnings and errors only.
        tx.execute("SET LOCAL client_min_messages = warning", &[])
            .await?;
        for table in RAW_TABLES {
            tx.execute(
                "SELECT set_chunk_time_interval($1::text::regclass, justify_hours(make_interval(secs => $2)))",
                &[&table, &lifecycle.chunk_interval.as_secs_f64()],
            )
            .await?;
        }
        if edition == Edition::Community {
            for table in RAW_TABLES {
                replace_policies(
                    &tx,
                    table,
                    lifecycle.compress_raw_after(),
                    lifecycle.raw_retention,
                )
                .await?;
            }
            replace_policies(
                &tx,
                EVENTS_TABLE,
                EVENTS_COMPRESS_AFTER,
                lifecycle.event_retention,
            )
            .await?;
            for level in &ROLLUPS {
                for view in level.views {
                    replace_refresh_policy(&tx, view, lifecycle, level).await?;
                    replace_policies(
                        &tx,
                        view,
                        lifecycle.compress_rollup_after(level),
                        (level.retention)(lifecycle),
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(edition)
    }

    /// Drops every chunk of the raw hypertables whose data is all older than `keep`; returns
    /// how many were dropped. The Apache edition's retention, run by the server.
    pub async fn drop_old_chunks(&self, keep: Duration) -> Result<usize, Error> {
        self.drop_chunks_of(&RAW_TABLES, keep).await
    }

    /// As [`drop_old_chunks`](Self::drop_old_chunks), for the events.
    pub async fn drop_old_event_chunks(&self, keep: Duration) -> Result<usize, Error> {
        self.drop_chunks_of(&[EVENTS_TABLE], keep).await
    }

    async fn drop_chunks_of(&self, tables: &[&str], keep: Duration) -> Result<usize, Error> {
        let client = self.client().await?;
        let mut dropped = 0;
        for &table in tables {
            let rows = client
                .query(
                    "SELECT drop_chunks($1::text::regclass, older_than => now() - justify_hours(make_interval(secs => $2)))",
                    &[&table, &keep.as_secs_f64()],
                )
                .await?;
            dropped += rows.len();
        }
        Ok(dropped)
    }
}

/// Replaces `relation`'s compression and retention policies with ones for these ages.
async fn replace_policies(
    tx: &tokio_postgres::Transaction<'_>,
    relation: &str,
    compress_after: Duration,
    drop_after: Duration,
) -> Result<(), Error> {
    for statement in [
        "SELECT remove_compression_policy($1::text::regclass, if_exists => true)",
        "SELECT remove_retention_policy($1::text::regclass, if_exists => true)",
    ] {
        tx.execute(statement, &[&relation]).await?;
    }
    tx.execute(
        "SELECT add_compression_policy($1::text::regclass, compress_after => justify_hours(make_interval(secs => $2)))",
        &[&relation, &compress_after.as_secs_f64()],
    )
    .await?;
    tx.execute(
        "SELECT add_retention_policy($1::text::regclass, drop_after => justify_hours(make_interval(secs => $2)))",
        &[&relation, &drop_after.as_secs_f64()],
    )
    .await?;
    Ok(())
}

async fn replace_refresh_policy(
    tx: &tokio_postgres::Transaction<'_>,
    view: &str,
    lifecycle: &Lifecycle,
    level: &Rollup,
) -> Result<(), Error> {
    tx.execute(
        "SELECT remove_continuous_aggregate_policy($1::text::regclass, if_exists => true)",
        &[&view],
    )
    .await?;
    tx.execute(
        "SELECT add_continuous_aggregate_policy($1::text::regclass,
             start_offset => justify_hours(make_interval(secs => $2)),
             end_offset => justify_hours(make_interval(secs => $3)),
             schedule_interval => justify_hours(make_interval(secs => $4)))",
        &[
            &view,
            &lifecycle.refresh_start_offset(level).as_secs_f64(),
            &level.end_offset.as_secs_f64(),
            &level.schedule.as_secs_f64(),
        ],
    )
    .await?;
    Ok(())
}
