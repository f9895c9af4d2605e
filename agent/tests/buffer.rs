//! The snapshot buffer: order, bounds, expiry, and a spool directory that survives restarts.

use chrono::{Duration, TimeZone, Utc};
use nexus_agent::buffer::{PendingSnapshot, SnapshotBuffer};
use nexus_contract::{HostMetrics, HostPayload, TelemetryPayload};

fn snapshot_at(second: i64) -> PendingSnapshot {
    PendingSnapshot::encode(&TelemetryPayload {
        recorded_at: Utc
            .timestamp_opt(1_800_000_000 + second, 0)
            .unwrap()
            .fixed_offset(),
        host: HostPayload {
            metrics: HostMetrics::default(),
            facts: None,
        },
        containers: None,
    })
    .unwrap()
}

fn at(second: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap()
}

#[test]
fn snapshots_come_out_oldest_first() {
    let mut buffer = SnapshotBuffer::new(1 << 20, Duration::hours(1), None).unwrap();
    for second in 0..3 {
        buffer.push(snapshot_at(second));
    }
    let order: Vec<_> = std::iter::from_fn(|| buffer.pop_front())
        .map(|s| s.recorded_at)
        .collect();
    assert_eq!(order, vec![at(0), at(1), at(2)]);
}

#[test]
fn over_the_byte_bound_the_oldest_snapshot_gives_way() {
    let size = snapshot_at(0).gzip_body.len();
    let mut buffer = SnapshotBuffer::new(size * 2, Duration::hours(1), None).unwrap();
    buffer.push(snapshot_at(0));
    buffer.push(snapshot_at(1));

    assert_eq!(buffer.push(snapshot_at(2)), 1);
    assert_eq!(buffer.len(), 2);
    assert_eq!(buffer.front().unwrap().recorded_at, at(1));
}

#[test]
fn snapshots_older_than_the_servers_window_are_dropped_and_newer_ones_kept() {
    let mut buffer = SnapshotBuffer::new(1 << 20, Duration::seconds(3600), None).unwrap();
    buffer.push(snapshot_at(0));
    buffer.push(snapshot_at(100));

    assert_eq!(buffer.drop_expired(at(3650)), 1);
    assert_eq!(buffer.front().unwrap().recorded_at, at(100));
}

#[test]
fn a_spooled_buffer_survives_a_restart_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    {
        let mut buffer =
            SnapshotBuffer::new(1 << 20, Duration::hours(1), Some(spool.clone())).unwrap();
        buffer.push(snapshot_at(2));
        buffer.push(snapshot_at(1));
        buffer.push(snapshot_at(3));
        buffer.pop_front(); // delivered: gone from disk too
    }
    let mut restarted =
        SnapshotBuffer::new(1 << 20, Duration::hours(1), Some(spool.clone())).unwrap();
    assert_eq!(restarted.len(), 2);
    assert_eq!(restarted.pop_front().unwrap().recorded_at, at(1));
    let last = restarted.pop_front().unwrap();
    assert_eq!(last.recorded_at, at(3));
    assert!(
        String::from_utf8(last.json_body().unwrap())
            .unwrap()
            .contains("recorded_at")
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

#[test]
fn a_half_written_spool_file_is_ignored_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000001.json.tmp"), b"partial").unwrap();
    let buffer = SnapshotBuffer::new(1 << 20, Duration::hours(1), Some(dir.path().into())).unwrap();
    assert!(buffer.is_empty());
}
