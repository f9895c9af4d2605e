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

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use nexus_contract::ContainerPayload;

/// Memory the cache may hold by default: about 150,000 hosts of 20 containers (44 bytes a
/// container), beyond the measured capacity of one box (docs/SCALING.md).
pub const DEFAULT_MIB: u64 = 128;

/// The keys (container ids) and fingerprints are hashed with keys random per process, so agents
/// cannot aim for collisions.
static KEYS: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

fn hashed(value: impl Hash) -> u64 {
    KEYS.hash_one(value)
}

/// A container's description (everything of it stored in `containers`, and its id), hashed.
/// foldhash's quality hasher, not std's SipHash, for speed (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    pub fn of(container: &ContainerPayload) -> Self {
        let mut hasher = KEYS.build_hasher();
        // The id too: entries are keyed by a hash of it, so a false hit needs two collisions.
        container.container_id.hash(&mut hasher);
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

/// Hosts' entries, within a bound on their bytes. A host is admitted while there is room, or
/// in the place of one that has not posted for [`IDLE_BEFORE_EVICTION`]; otherwise it is not
/// cached. A fleet larger than the cache so keeps a stable part of it cached (hit share =
/// bound ÷ fleet), where LRU, CLOCK, and moka's TinyLFU as measured lose most or all of a
/// fleet that posts round-robin (docs/ARCHITECTURE.md).
pub struct ContainerCache {
    state: Mutex<Entries>,
}

/// A host that has not posted for this long may give its place to another (it is offline,
/// gone, or posts rarely enough that the full path costs little).
const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(300);

/// Entries looked at for an idle one when a host needs room: bounds the work of one post.
const EXAMINED_FOR_ROOM: usize = 8;

struct Entries {
    hosts: foldhash::HashMap<i64, HostEntry>,
    /// Every cached host once; room is sought from the front, and looked-at hosts that stay
    /// go to the back (a clock hand).
    ring: VecDeque<i64>,
    bytes: usize,
    capacity_bytes: usize,
}

struct HostEntry {
    /// The host row version every entry is exact for.
    version: i64,
    /// Containers by a hash of their id (8 bytes, not the id's 64 and a `String`).
    containers: foldhash::HashMap<u64, KnownContainer>,
    last_used: Instant,
}

/// Bytes a host's entry takes besides its containers: the entry, its slot in the hosts table
/// and in the ring.
const HOST_BYTES: usize = size_of::<(i64, HostEntry)>() + 1 + size_of::<i64>();

/// Bytes of one container slot: key, value and the SwissTable's control byte.
const CONTAINER_SLOT_BYTES: usize = size_of::<(u64, KnownContainer)>() + 1;

impl HostEntry {
    /// Takes in what a committed transaction left the host's containers as.
    fn follow(&mut self, update: HostContainersSeen, now: Instant) {
        if self.version != update.version_before {
            // Someone else wrote the host since our entries were made: keep only what this
            // transaction itself proved.
            self.containers.clear();
        }
        self.version = update.version_after;
        self.last_used = now;
        for container_id in &update.stale {
            self.containers.remove(&hashed(container_id));
        }
        for (container_id, known) in update.current {
            self.containers.insert(hashed(&container_id), known);
        }
    }

    /// Memory the entry holds (a table of capacity c has c × 8/7 slots).
    fn bytes(&self) -> usize {
        HOST_BYTES + self.containers.capacity() * 8 / 7 * CONTAINER_SLOT_BYTES
    }
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

impl Default for ContainerCache {
    fn default() -> Self {
        Self::with_capacity_bytes(DEFAULT_MIB << 20)
    }
}

impl ContainerCache {
    /// A cache holding at most about `bytes` of entries.
    pub fn with_capacity_bytes(bytes: u64) -> Self {
        Self {
            state: Mutex::new(Entries {
                hosts: Default::default(),
                ring: VecDeque::new(),
                bytes: 0,
                capacity_bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            }),
        }
    }

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
                    .and_then(|entry| entry.containers.get(&hashed(container_id)))
                    .filter(|known| known.fingerprint == fingerprint)
                    .map(|known| known.id)
            })
            .collect()
    }

    /// Records what a committed transaction wrote; called by the ingest alone, after its
    /// commit.
    pub(in crate::store) fn update(&self, update: HostContainersSeen) {
        self.update_at(update, Instant::now());
    }

    fn update_at(&self, update: HostContainersSeen, now: Instant) {
        let mut state = self.state.lock().expect("container cache");
        let state = &mut *state;
        if let Some(entry) = state.hosts.get_mut(&update.host_id) {
            let before = entry.bytes();
            entry.follow(update, now);
            state.bytes = state.bytes - before + entry.bytes();
            return;
        }
        let host_id = update.host_id;
        let mut entry = HostEntry {
            version: update.version_before,
            containers: foldhash::HashMap::default(),
            last_used: now,
        };
        entry.follow(update, now);
        let bytes = entry.bytes();
        if !state.make_room(bytes, now) {
            return; // full of hosts that post: this one takes the full path
        }
        state.bytes += bytes;
        state.ring.push_back(host_id);
        state.hosts.insert(host_id, entry);
    }

    /// Hosts with an entry, and the bytes their entries hold.
    pub fn usage(&self) -> (u64, u64) {
        let state = self.state.lock().expect("container cache");
        (state.hosts.len() as u64, state.bytes as u64)
    }
}

impl Entries {
    /// Whether `bytes` more fit, after evicting idle hosts among the next few the hand finds.
    fn make_room(&mut self, bytes: usize, now: Instant) -> bool {
        for _ in 0..EXAMINED_FOR_ROOM {
            if self.bytes + bytes <= self.capacity_bytes {
                break;
            }
            let Some(host_id) = self.ring.pop_front() else {
                break;
            };
            let entry = &self.hosts[&host_id];
            if now.duration_since(entry.last_used) >= IDLE_BEFORE_EVICTION {
                self.bytes -= entry.bytes();
                self.hosts.remove(&host_id);
            } else {
                self.ring.push_back(host_id);
            }
        }
        self.bytes + bytes <= self.capacity_bytes
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

    fn post(cache: &ContainerCache, host_id: i64, version: i64, c1: &ContainerPayload) -> bool {
        let hit =
            cache.lookup(host_id, version, [("c1", Fingerprint::of(c1))].into_iter()) == [Some(1)];
        cache.update(HostContainersSeen {
            host_id,
            version_before: version,
            version_after: version + 1,
            current: if hit {
                vec![]
            } else {
                vec![("c1".into(), known(1, c1))]
            },
            stale: vec![],
        });
        hit
    }

    #[test]
    fn a_fleet_within_the_bound_stays_cached_whole() {
        let cache = ContainerCache::with_capacity_bytes(1 << 20);
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let hosts = 1_000;
        for round in 0..3 {
            let hits = (0..hosts).filter(|&h| post(&cache, h, round, &c1)).count();
            if round > 0 {
                assert_eq!(hits, hosts as usize, "round {round}");
            }
        }
        let (entries, bytes) = cache.usage();
        assert_eq!(entries, hosts as u64);
        assert!(bytes <= 1 << 20, "{bytes} bytes");
    }

    #[test]
    fn a_fleet_twice_the_bound_keeps_half_of_it_cached_instead_of_starting_over() {
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let one_host = HostEntry {
            version: 0,
            containers: [(1, known(1, &c1))].into_iter().collect(),
            last_used: Instant::now(),
        }
        .bytes() as u64;
        let fits = 1_000;
        let cache = ContainerCache::with_capacity_bytes(fits * one_host);
        let hosts = 2 * fits as i64;
        let mut hits = 0;
        for round in 0..4 {
            // Every host posts once a round, in the same order, as a fleet at a steady interval.
            let round_hits = (0..hosts).filter(|&h| post(&cache, h, round, &c1)).count();
            if round > 0 {
                hits += round_hits;
            }
        }
        let share = hits as f64 / (3 * hosts) as f64;
        assert!(
            share >= 0.49,
            "a cache holding half of the fleet hit {share:.2} of its posts"
        );
        let (_, bytes) = cache.usage();
        assert!(bytes <= fits * one_host, "{bytes} bytes");
    }

    #[test]
    fn a_host_of_twenty_containers_takes_under_a_kib() {
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let entry = HostEntry {
            version: 0,
            containers: (0..20).map(|i| (i, known(i as i64, &c1))).collect(),
            last_used: Instant::now(),
        };
        let bytes = entry.bytes();
        assert!(
            bytes < 1024,
            "{bytes} bytes (README: NEXUS_CONTAINER_CACHE_MIB)"
        );
    }

    #[test]
    fn a_host_silent_past_the_idle_bound_gives_its_place_to_a_new_one() {
        let c1 = container(json!({}), "2024-05-01T12:00:00Z");
        let seen = |host_id| HostContainersSeen {
            host_id,
            version_before: 1,
            version_after: 2,
            current: vec![("c1".into(), known(1, &c1))],
            stale: vec![],
        };
        let probe = |cache: &ContainerCache, host_id| {
            cache.lookup(host_id, 2, [("c1", Fingerprint::of(&c1))].into_iter()) == [Some(1)]
        };
        let start = Instant::now();
        let cache = ContainerCache::with_capacity_bytes(0);
        cache.update_at(seen(1), start);
        assert!(!probe(&cache, 1), "nothing fits in no room");

        let cache = ContainerCache::with_capacity_bytes(1);
        let fits_one = {
            cache.state.lock().unwrap().capacity_bytes = usize::MAX;
            cache.update_at(seen(1), start);
            cache.usage().1 as usize
        };
        cache.state.lock().unwrap().capacity_bytes = fits_one;
        cache.update_at(seen(2), start + Duration::from_secs(10));
        assert!(probe(&cache, 1) && !probe(&cache, 2), "host 1 still posts");
        cache.update_at(seen(2), start + IDLE_BEFORE_EVICTION);
        assert!(!probe(&cache, 1) && probe(&cache, 2), "host 1 fell silent");
        assert_eq!(cache.usage(), (1, fits_one as u64));
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
