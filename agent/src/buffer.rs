//! Snapshots not yet acknowledged by the server, oldest first.
//!
//! Each snapshot is kept gzip-compressed (a 50-container snapshot is ~10× smaller that way), in
//! memory and, with a spool directory, as one file per snapshot that survives restarts. The
//! buffer is bounded twice: by total compressed bytes (the oldest snapshot gives way to a new
//! one) and by age — a snapshot older than the server's past window would be refused anyway, so
//! it is dropped instead of sent.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use nexus_contract::TelemetryPayload;

const SPOOL_SUFFIX: &str = ".json.gz";

/// One encoded snapshot waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSnapshot {
    pub recorded_at: DateTime<Utc>,
    /// The JSON payload, gzip-compressed.
    pub gzip_body: Vec<u8>,
}

impl PendingSnapshot {
    pub fn encode(payload: &TelemetryPayload) -> io::Result<Self> {
        let json = serde_json::to_vec(payload)?;
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
        encoder.write_all(&json)?;
        Ok(Self {
            recorded_at: payload.recorded_at.to_utc(),
            gzip_body: encoder.finish()?,
        })
    }

    /// The uncompressed JSON body.
    pub fn json_body(&self) -> io::Result<Vec<u8>> {
        let mut json = Vec::with_capacity(self.gzip_body.len() * 8);
        GzDecoder::new(self.gzip_body.as_slice()).read_to_end(&mut json)?;
        Ok(json)
    }

    fn spool_name(&self) -> String {
        format!("{:020}{SPOOL_SUFFIX}", self.recorded_at.timestamp_micros())
    }
}

/// Bounded, ordered store of undelivered snapshots, optionally mirrored to a spool directory.
#[derive(Debug)]
pub struct SnapshotBuffer {
    queue: VecDeque<PendingSnapshot>,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
    spool_dir: Option<PathBuf>,
}

impl SnapshotBuffer {
    /// An empty buffer, or with `spool_dir` the snapshots a previous run left there.
    pub fn new(
        max_bytes: usize,
        max_age: Duration,
        spool_dir: Option<PathBuf>,
    ) -> io::Result<Self> {
        let mut buffer = Self {
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age,
            spool_dir,
        };
        if let Some(dir) = buffer.spool_dir.clone() {
            std::fs::create_dir_all(&dir)?;
            for snapshot in load_spool(&dir)? {
                buffer.bytes += snapshot.gzip_body.len();
                buffer.queue.push_back(snapshot);
            }
            buffer.evict_over_budget();
        }
        Ok(buffer)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether snapshots are also kept in a spool directory.
    pub fn is_spooled(&self) -> bool {
        self.spool_dir.is_some()
    }

    /// Compressed bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds the newest snapshot; returns how many old ones gave way to stay under the byte
    /// bound. A spool write failure is logged and the snapshot kept in memory.
    pub fn push(&mut self, snapshot: PendingSnapshot) -> usize {
        if let Some(dir) = &self.spool_dir
            && let Err(error) =
                write_atomically(&dir.join(snapshot.spool_name()), &snapshot.gzip_body)
        {
            tracing::warn!(dir = %dir.display(), "could not spool a snapshot ({error}); keeping it in memory only");
        }
        self.bytes += snapshot.gzip_body.len();
        self.queue.push_back(snapshot);
        self.evict_over_budget()
    }

    /// The oldest snapshot.
    pub fn front(&self) -> Option<&PendingSnapshot> {
        self.queue.front()
    }

    /// Forgets the oldest snapshot (delivered, or refused for good).
    pub fn pop_front(&mut self) -> Option<PendingSnapshot> {
        let snapshot = self.queue.pop_front()?;
        self.bytes -= snapshot.gzip_body.len();
        if let Some(dir) = &self.spool_dir {
            let _ = std::fs::remove_file(dir.join(snapshot.spool_name()));
        }
        Some(snapshot)
    }

    /// Drops snapshots recorded more than the maximum age before `now`; returns how many.
    pub fn drop_expired(&mut self, now: DateTime<Utc>) -> usize {
        let oldest_allowed = now - self.max_age;
        let mut dropped = 0;
        while self
            .front()
            .is_some_and(|snapshot| snapshot.recorded_at < oldest_allowed)
        {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn evict_over_budget(&mut self) -> usize {
        let mut evicted = 0;
        while self.bytes > self.max_bytes && self.queue.len() > 1 {
            self.pop_front();
            evicted += 1;
        }
        evicted
    }
}

fn load_spool(dir: &Path) -> io::Result<Vec<PendingSnapshot>> {
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if name.ends_with(".tmp") {
            let _ = std::fs::remove_file(&path); // a write interrupted by a crash
            continue;
        }
        let Some(micros) = name
            .strip_suffix(SPOOL_SUFFIX)
            .and_then(|stem| stem.parse::<i64>().ok())
        else {
            continue;
        };
        let Some(recorded_at) = Utc.timestamp_micros(micros).single() else {
            continue;
        };
        match std::fs::read(&path) {
            Ok(gzip_body) => snapshots.push(PendingSnapshot {
                recorded_at,
                gzip_body,
            }),
            Err(error) => {
                tracing::warn!(path = %path.display(), "skipping unreadable spool file: {error}")
            }
        }
    }
    snapshots.sort_by_key(|snapshot| snapshot.recorded_at);
    Ok(snapshots)
}

fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}
