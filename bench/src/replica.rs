//! `--replica`: the scenario runs against a throwaway primary and its streaming standby (made
//! with `pg_basebackup -R`) in the Debian root that `scripts/scaleout-tools` names
//! (`NEXUS_PG_ROOT`), both on loopback ports of their own; the spawned server reads from the
//! standby (`NEXUS_READ_DATABASE_URL`), so its own lag probe runs too; and the standby's lag is
//! sampled once a second from three places: the primary's `pg_stat_replication`, the standby's
//! last replayed commit, and the server's `/metrics`.
//!
//! The pair is the tests' own (`nexus_test_support::clusters`). Its primary gets the shared
//! cluster's settings (`scripts/timescaledb`) with `fsync` on, so the ingest costs what it costs
//! there and the WAL the standby replays is the real amount.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nexus_test_support::clusters::StreamingPair;
use nexus_test_support::metrics;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::database;
use crate::http::Connection;
use crate::procfs;

/// The primary's settings: the shared development cluster's (scripts/timescaledb), so a run
/// here compares with the runs logged in BENCHMARKS.md.
pub const PRIMARY_SETTINGS: &str = "max_connections = 100\nshared_buffers = 256MB\n\
     max_locks_per_transaction = 256\nmax_wal_size = 4GB\nmin_wal_size = 1GB\n\
     checkpoint_timeout = 15min\nmax_worker_processes = 32\n\
     timescaledb.max_background_workers = 16\n";

/// Longest the sampler runs, whatever the scenario does (one sample a second).
const MAX_SAMPLES: usize = 3600;
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// What the scenario is doing, for labelling the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Start-up, provisioning, warm-up, and the checks after the load.
    Other = 0,
    /// A measured slice of load through the server.
    Load = 1,
    /// A bulk COPY slice of the baseline (the server idles).
    BulkCopy = 2,
    /// After the last slice: the per-post COPY baseline and the row checks.
    Done = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Phase::Load,
            2 => Phase::BulkCopy,
            3 => Phase::Done,
            _ => Phase::Other,
        }
    }
}

/// One second's look at the standby. `None`: that source did not answer (or had no value).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// The phase the whole second before the sample was in; `None` when it changed meanwhile.
    phase: Option<Phase>,
    /// The whole second before the sample lay between the start of the first measured slice
    /// and the end of the last slice (or of its bulk COPY). The second before the first slice
    /// is the bench's idle settling, in which no commit happens to be replayed.
    measured: bool,
    /// Standby: `now() - pg_last_xact_replay_timestamp()`, seconds.
    replay_age: Option<f64>,
    /// Primary: `pg_current_wal_lsn() - replay_lsn`, bytes of WAL not yet replayed.
    behind_bytes: Option<f64>,
    /// Primary: `sent_lsn - replay_lsn`, bytes sent but not yet replayed.
    unreplayed_sent_bytes: Option<f64>,
    /// Primary: `pg_stat_replication.replay_lag`, seconds (NULL once caught up and idle).
    replay_lag: Option<f64>,
    /// Primary: `pg_current_wal_lsn()` in bytes, for the WAL rate the standby had to replay.
    wal_position: Option<f64>,
    /// Standby: CPU seconds so far of its startup process (the replay) and WAL receiver.
    standby_cpu: Option<f64>,
    /// The server: `nexus_read_replica_lag_seconds` (its own probe, once a second).
    server_lag: Option<f64>,
    /// The server: `nexus_read_replica_state` (0 fresh, 1 lagging, 2 down).
    server_state: Option<f64>,
}

impl Sample {
    /// One line for the log, so a figure in the report can be traced to its second.
    fn line(&self) -> String {
        let value = |v: Option<f64>, format: fn(f64) -> String| v.map_or("n/a".into(), format);
        format!(
            "{}, last replayed commit {} s ago, replay_lag {} s, server {} s, {} not replayed",
            self.phase
                .map_or("phase changed".to_owned(), |p| format!("{p:?}")),
            value(self.replay_age, seconds),
            value(self.replay_lag, seconds),
            value(self.server_lag, seconds),
            value(self.behind_bytes, bytes),
        )
    }
}

struct Shared {
    phase: AtomicU8,
    /// Bumped on every phase change, so a sample knows whether its second saw one.
    changes: AtomicU64,
    measuring: std::sync::atomic::AtomicBool,
    server_url: Mutex<Option<String>>,
}

/// Samples the standby's lag once a second from its start until `finish`.
pub struct LagMonitor {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Vec<Sample>>,
}

impl LagMonitor {
    /// Connects to both clusters (their `postgres` databases) and starts sampling.
    pub async fn start(pair: &StreamingPair) -> Result<Self> {
        let primary = database::connect(&pair.primary().database("postgres")).await?;
        let standby = database::connect(&pair.standby().database("postgres")).await?;
        let shared = Arc::new(Shared {
            phase: AtomicU8::new(Phase::Other as u8),
            changes: AtomicU64::new(0),
            measuring: Default::default(),
            server_url: Mutex::new(None),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_loop(primary, standby, shared.clone(), stopped));
        Ok(Self {
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The spawned server, whose `/metrics` the sampler reads from now on.
    pub fn server(&self, url: &str) {
        *self.shared.server_url.lock().expect("server url") = Some(url.to_owned());
    }

    pub fn phase(&self, phase: Phase) {
        match phase {
            Phase::Load => self.shared.measuring.store(true, Ordering::SeqCst),
            Phase::Done => self.shared.measuring.store(false, Ordering::SeqCst),
            Phase::Other | Phase::BulkCopy => {}
        }
        if self.shared.phase.swap(phase as u8, Ordering::SeqCst) != phase as u8 {
            self.shared.changes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Stops sampling; the samples summarised.
    pub async fn finish(mut self) -> Result<LagReport> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let samples = (&mut self.task).await.context("the lag sampler failed")?;
        Ok(LagReport { samples })
    }
}

impl Drop for LagMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sample_loop(
    primary: Client,
    standby: Client,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut server: Option<(String, Connection)> = None;
    let mut was_measuring = false;
    // The processes that receive and replay the WAL live as long as the standby does.
    let standby_pids: Vec<u32> = standby
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type IN ('startup', 'walreceiver')",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| r.get::<_, i32>(0).unsigned_abs())
                .collect()
        })
        .unwrap_or_default();
    let mut changes_before = shared.changes.load(Ordering::SeqCst);
    while samples.len() < MAX_SAMPLES {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        let changes = shared.changes.load(Ordering::SeqCst);
        let phase = Phase::from_u8(shared.phase.load(Ordering::SeqCst));
        let steady = std::mem::replace(&mut changes_before, changes) == changes;
        let measuring = shared.measuring.load(Ordering::SeqCst);
        let url = shared.server_url.lock().expect("server url").clone();
        if let Some(url) = url
            && server.as_ref().is_none_or(|(known, _)| *known != url)
        {
            server = Connection::new(&url).ok().map(|c| (url, c));
        }
        let (on_primary, on_standby, on_server) = tokio::join!(
            bounded(primary.query_one(
                "WITH r AS (SELECT * FROM pg_stat_replication WHERE state = 'streaming' LIMIT 1) \
                 SELECT (SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 FROM r), \
                        (SELECT pg_wal_lsn_diff(sent_lsn, replay_lsn)::float8 FROM r), \
                        (SELECT extract(epoch FROM replay_lag)::float8 FROM r), \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
                &[],
            )),
            bounded(standby.query_one(
                "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
                &[],
            )),
            scrape(server.as_mut().map(|(_, c)| c)),
        );
        samples.push(Sample {
            at: Instant::now(),
            phase: steady.then_some(phase),
            measured: std::mem::replace(&mut was_measuring, measuring) && measuring,
            replay_age: on_standby.and_then(|row| row.get(0)),
            behind_bytes: on_primary.as_ref().and_then(|row| row.get(0)),
            unreplayed_sent_bytes: on_primary.as_ref().and_then(|row| row.get(1)),
            replay_lag: on_primary.as_ref().and_then(|row| row.get(2)),
            wal_position: on_primary.as_ref().map(|row| row.get(3)),
            standby_cpu: (!standby_pids.is_empty()).then(|| {
                standby_pids
                    .iter()
                    .filter_map(|&p| procfs::cpu_seconds(p))
                    .sum()
            }),
            server_lag: on_server.and_then(|(lag, _)| lag),
            server_state: on_server.and_then(|(_, state)| state),
        });
        if let Some(sample) = samples.last() {
            eprintln!("bench: lag: {}", sample.line());
        }
    }
    samples
}

/// A sampling query's answer, or `None` when it failed or took longer than a sample interval.
async fn bounded<T>(query: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Option<T> {
    tokio::time::timeout(SAMPLE_INTERVAL, query)
        .await
        .ok()
        .and_then(Result::ok)
}

/// The server's lag gauge and replica state from `/metrics`.
async fn scrape(connection: Option<&mut Connection>) -> Option<(Option<f64>, Option<f64>)> {
    let connection = connection?;
    let (status, body) = tokio::time::timeout(SAMPLE_INTERVAL, connection.get("/metrics", ""))
        .await
        .ok()?
        .ok()?;
    if !status.is_success() {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    Some((
        metrics::value(&text, "nexus_read_replica_lag_seconds"),
        metrics::value(&text, "nexus_read_replica_state"),
    ))
}

/// Which samples a row of the report summarises.
type SampleFilter = fn(&Sample) -> bool;

/// The samples of one run.
pub struct LagReport {
    samples: Vec<Sample>,
}

impl LagReport {
    /// Markdown: per phase, p50 / p99 / max of each lag measure.
    pub fn print(&self) {
        println!();
        println!(
            "Replica lag, sampled once a second: p50 / p99 / max (values); nearest rank, so \
             with 100 samples or fewer p99 is the max"
        );
        println!();
        println!(
            "| samples | n | standby: now() − last replayed commit, s | primary: replay_lag, s | server: nexus_read_replica_lag_seconds | WAL not yet replayed (current − replay) | sent, not yet replayed | WAL written | standby's replay + receiver CPU per MB of WAL |"
        );
        println!("|---|---:|---|---|---|---|---|---:|---:|");
        let groups: [(&str, SampleFilter); 3] = [
            ("load slices (whole second under load)", |s| {
                s.phase == Some(Phase::Load)
            }),
            ("bulk COPY slices (whole second)", |s| {
                s.phase == Some(Phase::BulkCopy)
            }),
            (
                "every sample from the first slice to the end of the last",
                |s| s.measured,
            ),
        ];
        for (label, keep) in &groups {
            let chosen: Vec<&Sample> = self.samples.iter().filter(|s| keep(s)).collect();
            if chosen.is_empty() {
                continue;
            }
            let column = |value: fn(&Sample) -> Option<f64>, format: fn(f64) -> String| {
                spread(chosen.iter().filter_map(|s| value(s)).collect(), format)
            };
            // WAL and the standby's CPU over the seconds that end in a chosen sample.
            let (wal, secs, cpu) = self
                .samples
                .windows(2)
                .filter(|pair| keep(&pair[1]))
                .filter_map(|pair| {
                    let written = pair[1].wal_position? - pair[0].wal_position?;
                    let cpu = pair[1].standby_cpu? - pair[0].standby_cpu?;
                    Some((written, (pair[1].at - pair[0].at).as_secs_f64(), cpu))
                })
                .fold((0.0, 0.0, 0.0), |(w, s, c), (dw, ds, dc)| {
                    (w + dw, s + ds, c + dc)
                });
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} | {}/s | {} |",
                chosen.len(),
                column(|s| s.replay_age, seconds),
                column(|s| s.replay_lag, seconds),
                column(|s| s.server_lag, seconds),
                column(|s| s.behind_bytes, bytes),
                column(|s| s.unreplayed_sent_bytes, bytes),
                bytes(if secs > 0.0 { wal / secs } else { 0.0 }),
                if wal > 0.0 {
                    format!("{:.1} ms", 1e3 * cpu / (wal / 1e6))
                } else {
                    "n/a".to_owned()
                },
            );
        }
        let states: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.measured)
            .filter_map(|s| s.server_state)
            .collect();
        let fresh = states.iter().filter(|&&s| s == 0.0).count();
        println!();
        println!(
            "The server judged the replica fresh (reads would go there) in {fresh} of {} \
             samples between the first slice and the end of the last (`nexus_read_replica_state` \
             0; --read-max-lag-seconds is the server's default, 10).",
            states.len()
        );
    }
}

/// "p50 / p99 / max (n)" of `values` (nearest rank), or "n/a".
fn spread(mut values: Vec<f64>, format: fn(f64) -> String) -> String {
    if values.is_empty() {
        return "n/a".to_owned();
    }
    values.sort_by(f64::total_cmp);
    let rank =
        |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    format!(
        "{} / {} / {} ({})",
        format(rank(0.50)),
        format(rank(0.99)),
        format(values[values.len() - 1]),
        values.len()
    )
}

fn seconds(value: f64) -> String {
    format!("{value:.3}")
}

fn bytes(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1} MB", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} kB", value / 1e3)
    } else {
        format!("{value:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes, spread};

    #[test]
    fn the_spread_is_nearest_rank_and_says_how_many_values_it_had() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(
            spread(values, |v| format!("{v:.0}")),
            "100 / 198 / 200 (200)"
        );
        assert_eq!(spread(vec![3.0], |v| format!("{v:.0}")), "3 / 3 / 3 (1)");
        assert_eq!(spread(Vec::new(), |v| format!("{v:.0}")), "n/a");
    }

    #[test]
    fn bytes_read_in_decimal_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(12_345.0), "12.3 kB");
        assert_eq!(bytes(4_500_000.0), "4.5 MB");
    }
}
