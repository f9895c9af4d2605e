//! Retention of raw snapshots. Under the Timescale license TimescaleDB's own policies do it
//! (plus compression of chunks older than 7 days); under the Apache license, which has no
//! background policies, the server drops old chunks itself on a schedule.

use std::time::Duration;

use super::Store;
use crate::error::Error;

/// The metric hypertables and the column compressed chunks are segmented by.
const HYPERTABLES: [(&str, &str); 2] = [
    ("host_metric_snapshots", "host_id"),
    ("container_metric_snapshots", "container_id"),
];

/// How old a chunk must be before the Timescale-license compression policy compresses it.
const COMPRESS_AFTER_DAYS: f64 = 7.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    /// TimescaleDB policies (retention and compression) run inside the database.
    Policies,
    /// The server runs `drop_chunks` itself.
    DropChunks,
}

impl Store {
    /// `timescale` or `apache` (or `community` on older versions).
    pub async fn timescaledb_license(&self) -> Result<String, Error> {
        let client = self.client().await?;
        Ok(client
            .query_one("SHOW timescaledb.license", &[])
            .await?
            .get(0))
    }

    /// Sets retention up for `keep`: policies where the license has them, else reports that the
    /// server must drop chunks itself.
    pub async fn configure_retention(&self, keep: Duration) -> Result<RetentionMode, Error> {
        if self.timescaledb_license().await? != "timescale" {
            return Ok(RetentionMode::DropChunks);
        }
        let client = self.client().await?;
        for (table, segment_by) in HYPERTABLES {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = '{segment_by}')"
                ))
                .await?;
            client
                .execute(
                    "SELECT add_compression_policy($1::text::regclass, make_interval(days => $2::int), if_not_exists => true)",
                    &[&table, &(COMPRESS_AFTER_DAYS as i32)],
                )
                .await?;
            client
                .execute(
                    "SELECT remove_retention_policy($1::text::regclass, if_exists => true)",
                    &[&table],
                )
                .await?;
            client
                .execute(
                    "SELECT add_retention_policy($1::text::regclass, make_interval(secs => $2))",
                    &[&table, &keep.as_secs_f64()],
                )
                .await?;
        }
        Ok(RetentionMode::Policies)
    }

    /// Drops every chunk of the metric hypertables whose data is all older than `keep`;
    /// returns how many were dropped.
    pub async fn drop_old_chunks(&self, keep: Duration) -> Result<usize, Error> {
        let client = self.client().await?;
        let mut dropped = 0;
        for (table, _) in HYPERTABLES {
            let rows = client
                .query(
                    "SELECT drop_chunks($1::text::regclass, older_than => now() - make_interval(secs => $2))",
                    &[&table, &keep.as_secs_f64()],
                )
                .await?;
            dropped += rows.len();
        }
        Ok(dropped)
    }
}
