//! Writes a batch of validated snapshots in one transaction of set-based statements: per
//! snapshot its token's stamp, its host's facts and status and one host metric row; the
//! dimension rows of the containers not known unchanged (see [`super::container_cache`]); one
//! metric row per container. What a batch costs the database (statement start-up, chunk
//! routing, commit and WAL flush) is paid once for all its snapshots; see
//! [`queue`] for how batches are formed.
//!
//! - `queue`: group commit, the batches the requests wait on;
//! - `transaction`: the statements in order, the commit, and what is retried;
//! - `plan`: which containers need their description looked up and upserted, and what the
//!   container cache learns after the commit (no I/O);
//! - `removals`: which snapshots may have lost containers, for the statement that marks them;
//! - `columns`: the batch as the statements' parameters, each table's columns declared once,
//!   and the binary `COPY` encoder (no I/O).

mod columns;
mod plan;
pub mod queue;
mod removals;
mod statements;
mod transaction;

use crate::domain::snapshot::Snapshot;

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

/// What the host statement did for one admitted snapshot (a refused one has none).
struct HostWrite {
    /// Whether it wrote the snapshot's host metric row; `false`: a retried post, stored before.
    host_row_written: bool,
    /// Version of the host row before and after the transaction (see
    /// [`super::container_cache::ContainerCache`]).
    version_before: i64,
    version_after: i64,
    /// The token's fleet-wide log of stored posts (see [`Written::post_ages_ms`]).
    post_ages_ms: Vec<i32>,
    /// The newest snapshot of its host so far, with another set of containers than the last
    /// one: some may have vanished (see `removals`).
    containers_moved: bool,
}
