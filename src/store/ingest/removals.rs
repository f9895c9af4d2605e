//! Which containers vanished from a host: the snapshots whose container set differs from their
//! host's previous snapshot, and the parameters of the statement that marks what vanished
//! ([`super::statements::INGEST_REMOVALS_SQL`]).
//!
//! The host row keeps a digest of its newest snapshot's container ids, so a snapshot with the
//! same containers as the last one (nearly all of them) costs a comparison of two numbers in the
//! host statement, and only one whose set moved looks at the container rows.

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use nexus_contract::ContainerPayload;
use tokio_postgres::types::ToSql;

use super::{HostWrite, Submission};

/// A digest of a snapshot's set of container ids, the same in every server process (the host row
/// keeps it): order does not matter, and FNV-1a (not a keyed hash) because processes must agree.
/// A crafted collision could only hide a removal from the agent's own host.
pub(super) fn containers_digest(containers: &[ContainerPayload]) -> i64 {
    let mut digest = containers.len() as u64;
    for container in containers {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in container.container_id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A final mix, so sums of near-identical ids do not cancel out.
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        digest = digest.wrapping_add(hash);
    }
    digest as i64
}

/// The parameters of the removals statement: each snapshot whose set moved (host id,
/// recorded_at, and its container ids as the keys of a jsonb object).
#[derive(Default)]
pub(super) struct Removals {
    host_ids: Vec<i64>,
    recorded_ats: Vec<DateTime<Utc>>,
    present: Vec<serde_json::Value>,
}

impl Removals {
    /// The snapshots of `batch` that the host statement stored and found with a moved set.
    pub(super) fn of(batch: &[Submission], admitted: &HashMap<i64, HostWrite>) -> Self {
        let mut removals = Self::default();
        for submission in batch {
            let moved = admitted
                .get(&submission.host_id)
                .is_some_and(|write| write.host_row_written && write.containers_moved);
            if !moved {
                continue;
            }
            removals.host_ids.push(submission.host_id);
            removals.recorded_ats.push(submission.snapshot.recorded_at);
            let ids = submission
                .snapshot
                .containers()
                .iter()
                .map(|container| (container.container_id.clone(), serde_json::Value::Null));
            removals
                .present
                .push(serde_json::Value::Object(ids.collect()));
        }
        removals
    }

    pub(super) fn is_empty(&self) -> bool {
        self.host_ids.is_empty()
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 3] {
        [&self.host_ids, &self.recorded_ats, &self.present]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn containers(ids: &[&str]) -> Vec<ContainerPayload> {
        ids.iter()
            .map(|id| {
                serde_json::from_value(json!({"container_id": id, "name": id, "image": "i"}))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_digest_depends_on_the_set_of_ids_alone() {
        let digest = |ids: &[&str]| containers_digest(&containers(ids));
        assert_eq!(digest(&["a", "b", "c"]), digest(&["c", "a", "b"]));
        assert_ne!(digest(&["a", "b", "c"]), digest(&["a", "b"]));
        assert_ne!(digest(&["a", "b"]), digest(&["a", "c"]));
        assert_ne!(digest(&[]), digest(&[""]));
        assert_ne!(digest(&["ab"]), digest(&["a", "b"]));
        let mut same = containers(&["a"]);
        same[0].state = Some("exited".into());
        assert_eq!(containers_digest(&same), digest(&["a"]), "the ids only");
    }

    #[test]
    fn the_digest_is_a_fixed_function_of_the_ids() {
        // Stored in the host row and compared by other processes (and releases): pinned.
        assert_eq!(
            containers_digest(&containers(&["3f2a9c1b7d4e"])),
            416_106_090_154_145_082
        );
        assert_eq!(containers_digest(&[]), 0);
    }
}
