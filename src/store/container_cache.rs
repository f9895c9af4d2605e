//! What this process knows of each host's container rows, so an unchanged container costs its
//! metric row and nothing else: no description sent, parsed, looked up or compared.
//!
//! Exactness comes from the host row, not from a timer. Every write to a host's containers
//! happens in a transaction that also updates (and locks) the host's row, so the row's version
//! (`xmin`, the id of the transaction that wrote it last) changes whenever the host's containers
//! may have changed, whoever changed them (another server process, the liveness detector, an
//! administrator). An entry is recorded with the host row version it is exact for and used only
//! while the locked row still carries that version; otherwise the container goes the full way
//! (lookup, compare, upsert) and the entry is refreshed after the commit.
//!
//! Its one writer is the ingest, after each commit (`ContainerPlan::remember` in
//! `src/store/ingest/plan.rs`, where the invariant every entry keeps is stated).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};

use nexus_contract::ContainerPayload;

/// Containers remembered at most; past this the cache starts over (it only ever saves work).
const MAX_CONTAINERS: usize = 200_000;

/// A container's description (everything of it stored in `containers`), hashed with a key
/// random per process, so agents cannot aim for collisions. foldhash's quality hasher, not
/// std's SipHash, for speed (BENCHMARKS.md, commit 74752f0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    pub fn of(container: &ContainerPayload) -> Self {
        static KEYS: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);
        let mut hasher = KEYS.build_hasher();
        container.name.hash(&mut hasher);
        container.image.hash(&mut hasher);
        container.image_tag.hash(&mut hasher);
        container.status.hash(&mut hasher);
        container.state.hash(&mut hasher);
        container.health_status.hash(&mut hasher);
        container
            .ports
            .as_deref()
            .unwrap_or_default()
            .hash(&mut hasher);
        match &container.labels {
            Some(labels) => labels.hash(&mut hasher),
            None => 0usize.hash(&mut hasher), // as an empty map: both are stored as `{}`
        }
        // Instants, as PostgreSQL compares them: the same moment in another offset is equal.
        container.started_at.map(|t| t.to_utc()).hash(&mut hasher);
        container.finished_at.map(|t| t.to_utc()).hash(&mut hasher);
        container.restart_count.hash(&mut hasher);
        container.exit_code.hash(&mut hasher);
        container.oom_killed.hash(&mut hasher);
        Self(hasher.finish())
    }
}

/// A container row as stored: its id and the fingerprint of its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownContainer {
    pub id: i64,
    pub fingerprint: Fingerprint,
}

#[derive(Default)]
pub struct ContainerCache {
    state: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    hosts: foldhash::HashMap<i64, HostEntry>,
    containers: usize,
}

struct HostEntry {
    /// The host row version every entry is exact for.
    version: i64,
    containers: foldhash::HashMap<String, KnownContainer>,
}

/// What one committed transaction left a host's containers as.
pub struct HostContainersSeen {
    pub host_id: i64,
    /// The host row's version before and after the transaction.
    pub version_before: i64,
    pub version_after: i64,
    /// Containers whose stored description is now the given one. Those known already at
    /// `version_before` may be left out: while the entry follows on, it keeps them.
    pub current: Vec<(String, KnownContainer)>,
    /// Containers whose stored description is not what was sent (a newer one is kept).
    pub stale: Vec<String>,
}

impl ContainerCache {
    /// The id of each of `containers` of `host_id` whose stored description is known to equal
    /// the given fingerprint while the host row is at `version`; `None` where it is not known.
    pub(in crate::store) fn lookup<'a>(
        &self,
        host_id: i64,
        version: i64,
        containers: impl Iterator<Item = (&'a str, Fingerprint)>,
    ) -> Vec<Option<i64>> {
        let state = self.state.lock().expect("container cache");
        let entry = state
            .hosts
            .get(&host_id)
            .filter(|entry| entry.version == version);
        containers
            .map(|(container_id, fingerprint)| {
                entry
                    .and_then(|entry| entry.containers.get(container_id))
                    .filter(|known| known.fingerprint == fingerprint)
                    .map(|known| known.id)
            })
            .collect()
    }

    /// Records what a committed transaction wrote; called by the ingest alone, after its
    /// commit.
    pub(in crate::store) fn update(&self, update: HostContainersSeen) {
        let mut state = self.state.lock().expect("container cache");
        let state = &mut *state;
        let entry = state.hosts.entry(update.host_id).or_insert(HostEntry {
            version: update.version_before,
            containers: foldhash::HashMap::default(),
        });
        if entry.version != update.version_before {
            // Someone else wrote the host since our entries were made: keep only what this
            // transaction itself proved.
            state.containers -= entry.containers.len();
            entry.containers.clear();
        }
        entry.version = update.version_after;
        for container_id in &update.stale {
            if entry.containers.remove(container_id).is_some() {
                state.containers -= 1;
            }
        }
        for (container_id, known) in update.current {
            if entry.containers.insert(container_id, known).is_none() {
                state.containers += 1;
            }
        }
        if state.containers > MAX_CONTAINERS {
            state.hosts.clear();
            state.containers = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(labels: serde_json::Value, started_at: &str) -> ContainerPayload {
        serde_json::from_value(json!({
            "container_id": "c1", "name": "web", "image": "nginx", "labels": labels,
            "started_at": started_at
        }))
        .unwrap()
    }

    fn known(id: i64, container: &ContainerPayload) -> KnownContainer {
        KnownContainer {
            id,
            fingerprint: Fingerprint::of(container),
        }
    }

    #[test]
    fn a_fingerprint_changes_with_the_description_but_not_with_the_offset_of_an_instant() {
        let base = container(json!({"a": "1"}), "2024-05-01T12:00:00Z");
        let same_instant = container(json!({"a": "1"}), "2024-05-01T14:00:00+02:00");
        let other_label = container(json!({"a": "2"}), "2024-05-01T12:00:00Z");
        assert_eq!(Fingerprint::of(&base), Fingerprint::of(&same_instant));
        assert_ne!(Fingerprint::of(&base), Fingerprint::of(&other_label));
        let mut metrics_only = base.clone();
        metrics_only.metrics = Some(Default::default());
        assert_eq!(Fingerprint::of(&base), Fingerprint::of(&metrics_only));
    }

    #[test]
    fn an_entry_is_used_only_at_the_host_version_it_was_recorded_for() {
        let cache = ContainerCache::default();
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        cache.update(HostContainersSeen {
            host_id: 7,
            version_before: 100,
            version_after: 101,
            current: vec![("c1".into(), known(42, &c1))],
            stale: vec![],
        });
        let probe = |version| cache.lookup(7, version, [("c1", Fingerprint::of(&c1))].into_iter());
        assert_eq!(probe(101), [Some(42)]);
        assert_eq!(probe(100), [None], "the host row changed since");
        let changed = container(json!({"new": "label"}), "2024-05-01T12:00:00Z");
        assert_eq!(
            cache.lookup(7, 101, [("c1", Fingerprint::of(&changed))].into_iter()),
            [None],
            "a changed description is not known"
        );
    }

    #[test]
    fn a_transaction_that_followed_another_writer_drops_the_hosts_other_entries() {
        let cache = ContainerCache::default();
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let record = |before, after, id: &str| {
            cache.update(HostContainersSeen {
                host_id: 7,
                version_before: before,
                version_after: after,
                current: vec![(id.into(), known(1, &c1))],
                stale: vec![],
            })
        };
        record(100, 101, "c1");
        record(101, 102, "c2"); // follows our own write: c1 is still exact
        let probe = |id| cache.lookup(7, 102, [(id, Fingerprint::of(&c1))].into_iter());
        assert_eq!(probe("c1"), [Some(1)]);
        record(150, 151, "c3"); // someone else wrote at 102..150: only c3 is known
        let probe = |id| cache.lookup(7, 151, [(id, Fingerprint::of(&c1))].into_iter());
        assert_eq!((probe("c1"), probe("c3")), (vec![None], vec![Some(1)]));
    }

    #[test]
    fn a_stale_container_is_forgotten() {
        let cache = ContainerCache::default();
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let update = |current: Vec<(String, KnownContainer)>, stale: Vec<String>, before, after| {
            cache.update(HostContainersSeen {
                host_id: 7,
                version_before: before,
                version_after: after,
                current,
                stale,
            })
        };
        update(vec![("c1".into(), known(1, &c1))], vec![], 1, 2);
        update(vec![], vec!["c1".into()], 2, 3);
        assert_eq!(
            cache.lookup(7, 3, [("c1", Fingerprint::of(&c1))].into_iter()),
            [None]
        );
    }
}
