//! Which containers of a batch the description statement must look up and upsert, and what the
//! container cache learns once the batch is committed.
//!
//! Pure: the cache is this process's memory, and what the description statement answers comes
//! in through [`ContainerPlan::found`], so every step is testable without a database.

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};
use nexus_contract::ContainerPayload;

use super::{HostWrite, Submission};
use crate::store::container_cache::{
    ContainerCache, Fingerprint, HostContainersSeen, KnownContainer,
};

/// Where one container's row stands in the batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RowState {
    /// The cache knows the stored description is the one sent: neither looked up nor written.
    Cached { id: i64 },
    /// Not known: the description statement looks it up and writes it if it changed.
    Unknown,
    /// Looked up: the stored description is now the one sent (unchanged, inserted or updated).
    Current { id: i64 },
    /// Looked up: the stored description is newer than the one sent, and was kept.
    Stale { id: i64 },
}

impl RowState {
    /// The container's row id, known unless [`RowState::Unknown`].
    pub(super) fn id(self) -> Option<i64> {
        match self {
            Self::Cached { id } | Self::Current { id } | Self::Stale { id } => Some(id),
            Self::Unknown => None,
        }
    }
}

/// One container of a stored snapshot.
pub(super) struct ContainerRow<'a> {
    pub(super) host_id: i64,
    pub(super) recorded_at: DateTime<Utc>,
    pub(super) container: &'a ContainerPayload,
    fingerprint: Fingerprint,
    pub(super) state: RowState,
}

/// The containers of a batch's stored snapshots, in batch order.
pub(super) struct ContainerPlan<'a> {
    rows: Vec<ContainerRow<'a>>,
    /// Position in `rows` of each (host id, container id) that is [`RowState::Unknown`].
    unknown: HashMap<(i64, &'a str), usize>,
}

impl<'a> ContainerPlan<'a> {
    /// The containers of each snapshot of `batch` whose host metric row the host statement
    /// wrote: a refused snapshot (absent from `admitted`) writes nothing, and a retried one
    /// (its host row existed) was stored before. Each is [`RowState::Cached`] if the cache knows
    /// it at the host row's version before this transaction, [`RowState::Unknown`] otherwise.
    pub(super) fn new(
        batch: &'a [Submission],
        admitted: &HashMap<i64, HostWrite>,
        cache: &ContainerCache,
    ) -> Self {
        let mut rows = Vec::new();
        let mut unknown = HashMap::new();
        for submission in batch {
            let Some(write) = admitted.get(&submission.host_id) else {
                continue;
            };
            if !write.host_row_written {
                continue;
            }
            let containers = submission.snapshot.containers();
            let fingerprints: Vec<_> = containers.iter().map(Fingerprint::of).collect();
            let known = cache.lookup(
                submission.host_id,
                write.version_before,
                containers
                    .iter()
                    .zip(&fingerprints)
                    .map(|(c, f)| (c.container_id.as_str(), *f)),
            );
            for ((container, fingerprint), id) in containers.iter().zip(fingerprints).zip(known) {
                let state = match id {
                    Some(id) => RowState::Cached { id },
                    None => {
                        let key = (submission.host_id, container.container_id.as_str());
                        unknown.insert(key, rows.len());
                        RowState::Unknown
                    }
                };
                rows.push(ContainerRow {
                    host_id: submission.host_id,
                    recorded_at: submission.snapshot.recorded_at,
                    container,
                    fingerprint,
                    state,
                });
            }
        }
        let (hits, misses) = ((rows.len() - unknown.len()) as u64, unknown.len() as u64);
        metrics::counter!("nexus_container_cache_lookups_total", "result" => "hit").increment(hits);
        metrics::counter!("nexus_container_cache_lookups_total", "result" => "miss")
            .increment(misses);
        Self { rows, unknown }
    }

    /// Every planned container, in batch order: one metric row each.
    pub(super) fn rows(&self) -> &[ContainerRow<'a>] {
        &self.rows
    }

    /// The containers the description statement must look up, in batch order.
    pub(super) fn to_look_up(&self) -> impl Iterator<Item = &ContainerRow<'a>> {
        self.rows
            .iter()
            .filter(|row| row.state == RowState::Unknown)
    }

    /// Records what the description statement answered for one container: its row id, and
    /// whether the stored description is now the one sent. Other containers are ignored.
    pub(super) fn found(&mut self, host_id: i64, container_id: &str, id: i64, current: bool) {
        if let Some(&position) = self.unknown.get(&(host_id, container_id)) {
            self.rows[position].state = if current {
                RowState::Current { id }
            } else {
                RowState::Stale { id }
            };
        }
    }

    /// Tells the cache what the committed transaction left each admitted host's containers as.
    ///
    /// The only writer of the [`ContainerCache`], and it keeps the cache's invariant: an entry
    /// (host, container) → (row id, fingerprint) recorded at host row version V holds if a
    /// committed transaction that left the host row at V left that container's row with that id
    /// and a description of that fingerprint. Every write to a host's containers updates the
    /// host row in the same transaction, so while the row is still at V the entry is exact and
    /// an ingest may skip the container's lookup and upsert. Hence: call only after the
    /// commit; record a container only as the description statement found it ([`RowState::
    /// Current`]) and forget it otherwise; leave [`RowState::Cached`] ones as they are (the
    /// cache keeps them only if no other transaction wrote the host since `version_before`).
    pub(super) fn remember(self, admitted: &HashMap<i64, HostWrite>, cache: &ContainerCache) {
        let mut updates: HashMap<i64, HostContainersSeen> = admitted
            .iter()
            .map(|(&host_id, write)| {
                let update = HostContainersSeen {
                    host_id,
                    version_before: write.version_before,
                    version_after: write.version_after,
                    current: Vec::new(),
                    stale: Vec::new(),
                };
                (host_id, update)
            })
            .collect();
        for row in self.rows {
            let Some(update) = updates.get_mut(&row.host_id) else {
                continue;
            };
            let container_id = || row.container.container_id.clone();
            match row.state {
                RowState::Cached { .. } => {}
                RowState::Current { id } => {
                    let known = KnownContainer {
                        id,
                        fingerprint: row.fingerprint,
                    };
                    update.current.push((container_id(), known));
                }
                RowState::Stale { .. } | RowState::Unknown => update.stale.push(container_id()),
            }
        }
        for update in updates.into_values() {
            cache.update(update);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::snapshot::Snapshot;
    use crate::error::Error;
    use crate::store::ingest::columns::MetricColumns;

    /// A snapshot of `host_id` with one container per `(container id, image)`.
    fn submission(host_id: i64, containers: &[(&str, &str)]) -> Submission {
        let containers: Vec<_> = containers
            .iter()
            .map(|(id, image)| json!({"container_id": id, "name": id, "image": image}))
            .collect();
        let payload: nexus_contract::TelemetryPayload = serde_json::from_value(json!({
            "recorded_at": "2024-05-01T12:00:00Z",
            "host": {"metrics": {}},
            "containers": containers,
        }))
        .unwrap();
        Submission {
            host_id,
            token_id: host_id * 10,
            snapshot: Snapshot {
                recorded_at: payload.recorded_at.to_utc(),
                payload,
            },
        }
    }

    /// The host statement's answer: each `(host id, version before)` admitted and written,
    /// the host row one version further after the transaction.
    fn admitted(hosts: &[(i64, i64)]) -> HashMap<i64, HostWrite> {
        hosts
            .iter()
            .map(|&(host_id, version)| {
                let write = HostWrite {
                    host_row_written: true,
                    version_before: version,
                    version_after: version + 1,
                    post_ages_ms: Vec::new(),
                };
                (host_id, write)
            })
            .collect()
    }

    fn states<'p>(plan: &'p ContainerPlan<'_>) -> Vec<(i64, &'p str, RowState)> {
        plan.rows()
            .iter()
            .map(|row| (row.host_id, row.container.container_id.as_str(), row.state))
            .collect()
    }

    fn looked_up<'p>(plan: &'p ContainerPlan<'_>) -> Vec<&'p str> {
        plan.to_look_up()
            .map(|row| row.container.container_id.as_str())
            .collect()
    }

    /// One whole transaction as the database would answer it: every container looked up is
    /// found current with row id `100 + its position`, then the cache is told.
    fn commit(batch: &[Submission], admitted: &HashMap<i64, HostWrite>, cache: &ContainerCache) {
        let mut plan = ContainerPlan::new(batch, admitted, cache);
        let found: Vec<(i64, String)> = plan
            .to_look_up()
            .map(|row| (row.host_id, row.container.container_id.clone()))
            .collect();
        for (position, (host_id, container_id)) in found.iter().enumerate() {
            plan.found(*host_id, container_id, 100 + position as i64, true);
        }
        plan.remember(admitted, cache);
    }

    /// A cache that saw one post of host 1 with `containers` committed, which left the host row
    /// at version 11.
    fn cache_after_a_post(containers: &[(&str, &str)]) -> ContainerCache {
        let cache = ContainerCache::default();
        commit(&[submission(1, containers)], &admitted(&[(1, 10)]), &cache);
        cache
    }

    #[test]
    fn containers_the_cache_does_not_know_are_all_looked_up_in_batch_order() {
        let cache = ContainerCache::default();
        let batch = [
            submission(1, &[("a", "nginx"), ("b", "redis")]),
            submission(2, &[("c", "postgres")]),
        ];
        let plan = ContainerPlan::new(&batch, &admitted(&[(1, 10), (2, 20)]), &cache);
        assert_eq!(
            states(&plan),
            [
                (1, "a", RowState::Unknown),
                (1, "b", RowState::Unknown),
                (2, "c", RowState::Unknown)
            ]
        );
        assert_eq!(looked_up(&plan), ["a", "b", "c"]);
    }

    #[test]
    fn a_cached_container_is_spared_its_lookup_while_its_description_and_host_row_are_unchanged() {
        use RowState::{Cached, Unknown};
        let cache = cache_after_a_post(&[("a", "nginx"), ("b", "redis")]);
        // Our own commit left the host row at version 11; any other version means another
        // transaction (another server, the liveness detector) wrote the host since.
        let cases = [
            (
                "both posted again",
                "redis",
                11,
                [Cached { id: 100 }, Cached { id: 101 }],
            ),
            (
                "b's image changed",
                "redis:7",
                11,
                [Cached { id: 100 }, Unknown],
            ),
            ("the host row moved on", "redis", 15, [Unknown, Unknown]),
        ];
        for (case, image_of_b, version, expected) in cases {
            let batch = [submission(1, &[("a", "nginx"), ("b", image_of_b)])];
            let plan = ContainerPlan::new(&batch, &admitted(&[(1, version)]), &cache);
            let found: Vec<_> = plan.rows().iter().map(|row| row.state).collect();
            assert_eq!(found, expected, "{case}");
            let unknown = expected.iter().filter(|state| **state == Unknown).count();
            assert_eq!(plan.to_look_up().count(), unknown, "{case}: looked up");
            if unknown == 0 {
                let metrics = MetricColumns::of(&plan).expect("cached rows have their ids");
                assert_eq!(
                    metrics.rows_per_host(),
                    HashMap::from_iter([(1, 2)]),
                    "{case}"
                );
            }
        }
    }

    #[test]
    fn a_retried_post_and_a_refused_snapshot_plan_no_container() {
        let cache = ContainerCache::default();
        let batch = [
            submission(1, &[("a", "nginx")]),
            submission(2, &[("b", "redis")]),
            submission(3, &[("c", "postgres")]),
        ];
        let mut hosts = admitted(&[(1, 10), (2, 20)]); // host 3 refused: archived, revoked
        hosts.get_mut(&2).unwrap().host_row_written = false; // host 2's row existed: a retry
        let plan = ContainerPlan::new(&batch, &hosts, &cache);
        assert_eq!(states(&plan), [(1, "a", RowState::Unknown)]);
    }

    #[test]
    fn what_the_description_statement_found_decides_what_the_cache_remembers() {
        let cache = ContainerCache::default();
        let batch = [submission(1, &[("a", "nginx"), ("b", "redis"), ("c", "x")])];
        let hosts = admitted(&[(1, 10)]);
        let mut plan = ContainerPlan::new(&batch, &hosts, &cache);
        plan.found(1, "a", 7, true);
        plan.found(1, "b", 8, false); // a newer description is stored: kept
        plan.found(1, "zz", 9, true); // not asked for: ignored
        assert_eq!(
            states(&plan),
            [
                (1, "a", RowState::Current { id: 7 }),
                (1, "b", RowState::Stale { id: 8 }),
                (1, "c", RowState::Unknown)
            ]
        );
        let Err(Error::Internal(cause)) = MetricColumns::of(&plan) else {
            panic!("a container still unknown has no row id for its metric row");
        };
        assert!(
            cause.to_string().contains("c of host 1 has no id"),
            "{cause}"
        );
        plan.remember(&hosts, &cache);

        let again = [submission(1, &[("a", "nginx"), ("b", "redis"), ("c", "x")])];
        let plan = ContainerPlan::new(&again, &admitted(&[(1, 11)]), &cache);
        assert_eq!(
            states(&plan),
            [
                (1, "a", RowState::Cached { id: 7 }),
                (1, "b", RowState::Unknown),
                (1, "c", RowState::Unknown)
            ]
        );
    }

    #[test]
    fn a_stale_container_the_cache_knew_is_forgotten() {
        let cache = cache_after_a_post(&[("a", "nginx")]);
        // The agent sends an older description (say, a delayed post): looked up, found stale.
        let older = [submission(1, &[("a", "nginx:old")])];
        let hosts = admitted(&[(1, 11)]);
        let mut plan = ContainerPlan::new(&older, &hosts, &cache);
        plan.found(1, "a", 100, false);
        plan.remember(&hosts, &cache);

        let current = [submission(1, &[("a", "nginx")])];
        let plan = ContainerPlan::new(&current, &admitted(&[(1, 12)]), &cache);
        assert_eq!(states(&plan), [(1, "a", RowState::Unknown)]);
    }
}
