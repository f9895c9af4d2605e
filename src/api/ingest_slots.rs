//! Bounds how many telemetry bodies are read, parsed and written at once.
//!
//! A snapshot costs several times its JSON size in memory while it is parsed, checked and
//! turned into statement parameters, and only `pool size` of them can be written at a time.
//! Without a bound, a burst of agents (500 posting at once after a restart) holds hundreds of
//! parsed snapshots while they wait for a connection, and the allocator keeps that peak
//! resident long after (measured: ~100 MiB, see BENCHMARKS.md). A request waits for a slot
//! after auth and rate limit and before its body is read, so waiting bodies stay in the socket;
//! it waits at most as long as for a database connection, then gets the same 503.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Error;

pub struct IngestSlots {
    slots: Semaphore,
    wait: Duration,
}

impl IngestSlots {
    /// Slots per pooled connection: one being written, one being parsed meanwhile.
    pub const PER_CONNECTION: usize = 2;

    pub fn new(pool_size: usize, wait: Duration) -> Self {
        Self {
            slots: Semaphore::new(pool_size.max(1) * Self::PER_CONNECTION),
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
