//! Where the read API's queries go: a streaming replica when one is configured and fresh
//! enough, otherwise the primary.
//!
//! A background probe (once a second) compares the primary's WAL position with what the replica
//! has replayed, so choosing costs no round trip on the request path. A replica that lags more
//! than the allowed staleness, or does not answer, is skipped; a read that fails on the replica
//! is run again on the primary. Why fall back rather than answer 503: docs/SCALING.md.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{counter, gauge};

use super::Store;
use crate::error::Error;

/// How often the replica's lag is measured.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// What the last probe found about the replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicaState {
    /// Caught up to within the allowed staleness: reads go there.
    Fresh { behind: Duration },
    /// Replaying, but further behind than allowed: reads go to the primary.
    Lagging { behind: Duration },
    /// Did not answer the probe: reads go to the primary.
    Down,
}

impl ReplicaState {
    fn gauge_value(self) -> f64 {
        match self {
            ReplicaState::Fresh { .. } => 0.0,
            ReplicaState::Lagging { .. } => 1.0,
            ReplicaState::Down => 2.0,
        }
    }
}

struct Replica {
    store: Store,
    max_lag: Duration,
    state: Mutex<ReplicaState>,
}

/// The stores reads may use; cheap to clone.
#[derive(Clone)]
pub struct Reads {
    primary: Store,
    replica: Option<Arc<Replica>>,
}

impl Reads {
    /// Reads from the primary only.
    pub fn primary_only(primary: Store) -> Self {
        Self {
            primary,
            replica: None,
        }
    }

    /// Reads from `replica` while it is at most `max_lag` behind `primary`. Until the first
    /// probe has answered, reads go to the primary.
    pub fn with_replica(primary: Store, replica: Store, max_lag: Duration) -> Self {
        Self {
            primary,
            replica: Some(Arc::new(Replica {
                store: replica,
                max_lag,
                state: Mutex::new(ReplicaState::Down),
            })),
        }
    }

    /// The replica's state as last probed; `None` without a replica.
    pub fn replica_state(&self) -> Option<ReplicaState> {
        self.replica
            .as_ref()
            .map(|replica| *replica.state.lock().expect("replica state"))
    }

    /// Runs the read `query` on the replica when it is fresh, else on the primary. A read that
    /// fails on the replica with anything but a client error (404, 422) runs again on the
    /// primary: a read is idempotent, and a standby may cancel a query that conflicts with
    /// recovery (SQLSTATE 40001) or go away between two probes.
    pub async fn run<'s, T, F, Fut>(&'s self, query: F) -> Result<T, Error>
    where
        F: Fn(&'s Store) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if let Some(replica) = &self.replica
            && matches!(
                *replica.state.lock().expect("replica state"),
                ReplicaState::Fresh { .. }
            )
        {
            match query(&replica.store).await {
                Err(Error::Unavailable(error) | Error::Internal(error)) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "read failed on the replica; reading from the primary"
                    );
                    counter!("nexus_reads_total", "source" => "primary_after_replica_error")
                        .increment(1);
                }
                answer => {
                    counter!("nexus_reads_total", "source" => "replica").increment(1);
                    return answer;
                }
            }
        } else {
            counter!("nexus_reads_total", "source" => "primary").increment(1);
        }
        query(&self.primary).await
    }

    /// Measures the replica's lag every [`PROBE_INTERVAL`] until dropped (a task per process);
    /// nothing to do without a replica.
    pub async fn probe_forever(self) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let mut positions = WalPositions::default();
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            tick.tick().await;
            // A primary that does not answer leaves the last sample: reads then stay where
            // they were (the replica, if fresh, is then the only thing that can answer).
            if let Ok(Ok(lsn)) =
                tokio::time::timeout(PROBE_INTERVAL, self.primary.current_wal_lsn()).await
            {
                positions.record(Instant::now(), lsn);
            }
            let state = match tokio::time::timeout(PROBE_INTERVAL, replica.store.replayed_wal_lsn())
                .await
            {
                Ok(Ok(replayed)) => {
                    let behind = positions.behind(Instant::now(), replayed);
                    if behind <= replica.max_lag {
                        ReplicaState::Fresh { behind }
                    } else {
                        ReplicaState::Lagging { behind }
                    }
                }
                _ => ReplicaState::Down,
            };
            *replica.state.lock().expect("replica state") = state;
            gauge!("nexus_read_replica_state").set(state.gauge_value());
            if let ReplicaState::Fresh { behind } | ReplicaState::Lagging { behind } = state {
                gauge!("nexus_read_replica_lag_seconds").set(behind.as_secs_f64());
            }
            if last.as_ref().map(std::mem::discriminant) != Some(std::mem::discriminant(&state)) {
                tracing::info!(?state, "read replica state changed");
                last = Some(state);
            }
        }
    }
}

/// The primary's WAL positions over the last minutes, oldest first, to tell how old the newest
/// change a replica lacks is.
#[derive(Debug, Default)]
struct WalPositions(VecDeque<(Instant, i64)>);

impl WalPositions {
    const KEPT: usize = 600;

    fn record(&mut self, at: Instant, lsn: i64) {
        // Only advances matter: an idle primary keeps its first sample at that position.
        if self.0.back().is_none_or(|&(_, last)| lsn > last) {
            self.0.push_back((at, lsn));
        }
        while self.0.len() > Self::KEPT {
            self.0.pop_front();
        }
    }

    /// How long the replica, having replayed up to `replayed`, has been missing a change the
    /// primary had: the age of the oldest sample beyond `replayed` (zero when it has all).
    fn behind(&mut self, now: Instant, replayed: i64) -> Duration {
        while self.0.len() > 1 && self.0[1].1 <= replayed {
            self.0.pop_front();
        }
        self.0
            .iter()
            .find(|&&(_, lsn)| lsn > replayed)
            .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at))
    }
}

impl Store {
    async fn current_wal_lsn(&self) -> Result<i64, Error> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
            .await?;
        Ok(row.get(0))
    }

    /// What a standby has replayed; a server that is not in recovery (a promoted replica, or a
    /// primary named as the replica) has everything, as far as this process can tell.
    async fn replayed_wal_lsn(&self) -> Result<i64, Error> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() \
                 THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint \
                 ELSE 9223372036854775807 END",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_has_replayed_everything_is_not_behind() {
        let start = Instant::now();
        let mut positions = WalPositions::default();
        positions.record(start, 100);
        positions.record(start + Duration::from_secs(1), 200);
        assert_eq!(
            positions.behind(start + Duration::from_secs(2), 200),
            Duration::ZERO
        );
    }

    #[test]
    fn a_replica_is_as_far_behind_as_the_oldest_change_it_lacks() {
        let start = Instant::now();
        let mut positions = WalPositions::default();
        for (second, lsn) in [(0, 100), (1, 200), (2, 300), (3, 300)] {
            positions.record(start + Duration::from_secs(second), lsn);
        }
        // It has 100, lacks 200 (seen at 1 s): at 5 s it is 4 s behind.
        assert_eq!(
            positions.behind(start + Duration::from_secs(5), 150),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn an_idle_primary_does_not_make_a_replica_look_behind() {
        let start = Instant::now();
        let mut positions = WalPositions::default();
        for second in 0..10 {
            positions.record(start + Duration::from_secs(second), 100);
        }
        assert_eq!(
            positions.behind(start + Duration::from_secs(10), 100),
            Duration::ZERO
        );
    }
}
