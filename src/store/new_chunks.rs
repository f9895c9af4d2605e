//! Serialises the writes that may create a TimescaleDB chunk, so concurrent ingests cannot
//! deadlock on it.
//!
//! The first write into a new chunk (every day, per hypertable) creates it under a lock on the
//! hypertable, then adds the chunk's foreign keys, which needs a share lock on `hosts` and
//! `containers`. Every ingest statement holds a row-exclusive lock on those from its start; so
//! two ingests that both find the chunk missing each wait for the other: PostgreSQL aborts
//! one with "deadlock detected" after `deadlock_timeout`, a 500 to the agent (measured: dozens
//! at once when many agents post into a fresh chunk, see BENCHMARKS.md).
//!
//! An ingest whose day (chunks are whole UTC days, `sql/V1__schema.sql`) this process has not
//! yet written runs in a transaction that first takes an advisory lock, while it holds no table
//! lock: such writes run one at a time (across server processes too), and writes into known
//! days never create chunks, so the cycle cannot form. Once a write of a day succeeds, the day
//! is known and its writes skip the lock.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// Takes the transaction-scoped advisory lock that serialises writes into days not known to
/// hold chunks yet (released at commit or rollback, also when a request is dropped midway).
pub const LOCK_NEW_CHUNKS: &str = "SELECT pg_advisory_xact_lock(7954896762661989987)"; // "nexus_nc"

/// Days kept in memory; older ones are forgotten (snapshots are at most an hour old).
const KEPT_DAYS: usize = 8;

/// UTC days (days since the epoch) this process has written snapshots into.
#[derive(Debug, Clone, Default)]
pub struct KnownDays(Arc<Mutex<BTreeSet<i64>>>);

impl KnownDays {
    fn day_of(time: DateTime<Utc>) -> i64 {
        time.timestamp().div_euclid(86_400)
    }

    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        let days = self.0.lock().expect("known days");
        days.contains(&Self::day_of(time))
    }

    pub fn insert(&self, time: DateTime<Utc>) {
        let mut days = self.0.lock().expect("known days");
        days.insert(Self::day_of(time));
        while days.len() > KEPT_DAYS {
            days.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_days_and_only_recent_ones_are_kept() {
        let known = KnownDays::default();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        known.insert(t("2024-05-01T23:59:59Z"));
        assert!(known.contains(t("2024-05-01T00:00:00Z")));
        assert!(!known.contains(t("2024-05-02T00:00:00Z")));
        assert!(!known.contains(t("2024-04-30T23:59:59Z")));
        for day in 2..=9 {
            known.insert(t(&format!("2024-05-{day:02}T12:00:00Z")));
        }
        assert!(!known.contains(t("2024-05-01T12:00:00Z")));
        assert!(known.contains(t("2024-05-09T12:00:00Z")));
    }
}
