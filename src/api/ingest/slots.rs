//! Bounds how many telemetry bodies are read, parsed and written at once (`--ingest-in-flight`).
//!
//! A snapshot costs several times its JSON size in memory while it is parsed, checked and
//! waits for its batch to commit. Without a bound, a burst of agents (500 posting at once after
//! a restart) holds hundreds of parsed snapshots, and the allocator keeps that peak resident
//! long after (measured: ~100 MiB, see BENCHMARKS.md). A request waits for a slot after auth and
//! rate limit and before its body is read, so waiting bodies stay in the socket; it waits at
//! most as long as for a database connection, then gets the same 503. Enough slots must be in
//! flight to keep the writers' batches full while the next bodies are parsed.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;

pub struct IngestSlots {
    slots: Semaphore,
    wait: Duration,
}

impl IngestSlots {
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Semaphore::new(slots.max(1)),
            wait,
        }
    }

    /// A slot, held until the response is built; a 503 after waiting `wait` in vain.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, Error> {
        match tokio::time::timeout(self.wait, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(Error::Unavailable(closed.into())),
            Err(_) => Err(Error::Unavailable(anyhow::anyhow!(
                "no ingest slot became free within {:?}",
                self.wait
            ))),
        }
    }
}
