//! The agent's life: take a snapshot every interval, buffer it, deliver the buffer oldest-first,
//! and react to what the server answers.
//!
//! | answer            | reaction                                                         |
//! |-------------------|------------------------------------------------------------------|
//! | 204               | drop from the buffer, deliver the next                           |
//! | 401               | log and exit with [`EXIT_UNAUTHORIZED`]                          |
//! | 429               | wait `Retry-After`, then continue (snapshots keep being taken)   |
//! | 5xx, no answer    | keep everything, retry with backoff (≤ interval) and every tick  |
//! | other 4xx         | log the problem details, drop that snapshot                      |

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::buffer::{PendingSnapshot, SnapshotBuffer};
use crate::collector::Collector;
use crate::sender::{Delivery, Sender};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
pub const EXIT_UNAUTHORIZED: u8 = 3;

/// Delay between the baseline sample and the first snapshot.
const WARM_UP: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What a flush of the buffer ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Flush {
    /// Everything delivered (or dropped for good).
    Drained,
    /// Try again at this instant; the buffer still holds snapshots. `server_asked` when the
    /// server named the wait (`Retry-After`): a new snapshot does not cut it short then.
    RetryAt { at: Instant, server_asked: bool },
    /// Stop the agent with this exit code.
    Exit(u8),
}

pub struct Agent {
    collector: Collector,
    sender: Sender,
    buffer: SnapshotBuffer,
    interval: Duration,
    backoff: Duration,
    /// Set while the server is away, so the outage is logged once.
    outage: Option<String>,
}

impl Agent {
    pub fn new(
        collector: Collector,
        sender: Sender,
        buffer: SnapshotBuffer,
        interval: Duration,
    ) -> Self {
        Self {
            collector,
            sender,
            buffer,
            interval,
            backoff: FIRST_BACKOFF,
            outage: None,
        }
    }

    /// Runs until a signal (exit 0) or a 401 (exit 3).
    pub async fn run(mut self) -> u8 {
        tracing::info!(
            url = %self.sender.url(),
            interval_seconds = self.interval.as_secs(),
            buffered = self.buffer.len(),
            "nexus-agent started"
        );
        self.collector.prime().await;
        let mut next_tick = Instant::now() + WARM_UP.min(self.interval);
        // When to try delivering again; `None` while the buffer is empty.
        let mut next_send = (!self.buffer.is_empty()).then(Instant::now);
        let mut wait_is_server_asked = false;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let wake = next_send.map_or(next_tick, |send| send.min(next_tick));
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick += self.interval;
                if next_tick <= now {
                    next_tick = now + self.interval; // collection overran; skip missed ticks
                }
                self.take_snapshot().await;
                // A new snapshot is a reason to try now, unless the server asked us to wait.
                next_send = match next_send {
                    Some(send) if wait_is_server_asked => Some(send),
                    Some(send) => Some(send.min(now)),
                    None => Some(now),
                };
            }
            if next_send.is_some_and(|send| Instant::now() >= send) {
                match self.flush().await {
                    Flush::Drained => next_send = None,
                    Flush::RetryAt { at, server_asked } => {
                        next_send = Some(at);
                        wait_is_server_asked = server_asked;
                    }
                    Flush::Exit(code) => return code,
                }
            }
        }
        if !self.buffer.is_empty() {
            tracing::info!(
                unsent = self.buffer.len(),
                "stopping with snapshots not yet delivered{}",
                if self.buffer.is_spooled() {
                    " (kept in the spool directory)"
                } else {
                    " (lost: no --spool-dir)"
                }
            );
        }
        tracing::info!("nexus-agent stopped");
        EXIT_OK
    }

    async fn take_snapshot(&mut self) {
        let payload = self.collector.snapshot().await;
        match PendingSnapshot::encode(&payload) {
            Ok(snapshot) => {
                tracing::debug!(recorded_at = %snapshot.recorded_at, "snapshot taken");
                let evicted = self.buffer.push(snapshot);
                if evicted > 0 {
                    tracing::warn!(
                        evicted,
                        "the buffer is full; dropped the oldest unsent snapshots"
                    );
                }
            }
            Err(error) => tracing::error!("could not encode a snapshot: {error}"),
        }
    }

    /// Delivers buffered snapshots oldest-first until the buffer is empty or the server says
    /// to stop for now.
    async fn flush(&mut self) -> Flush {
        let mut delivered = 0usize;
        loop {
            let expired = self.buffer.drop_expired(Utc::now());
            if expired > 0 {
                tracing::warn!(
                    expired,
                    "dropped unsent snapshots older than the server's window"
                );
            }
            let Some(snapshot) = self.buffer.front() else {
                self.end_outage(delivered);
                return Flush::Drained;
            };
            let recorded_at = snapshot.recorded_at;
            match self.sender.deliver(snapshot).await {
                Delivery::Stored => {
                    self.buffer.pop_front();
                    delivered += 1;
                    self.backoff = FIRST_BACKOFF;
                }
                Delivery::Unauthorized => {
                    tracing::error!(
                        "the server refused the agent token (401): check NEXUS_AGENT_TOKEN; it may be wrong or revoked"
                    );
                    return Flush::Exit(EXIT_UNAUTHORIZED);
                }
                Delivery::RateLimited(wait) => {
                    self.end_outage(delivered);
                    tracing::warn!(
                        retry_after_seconds = wait.as_secs(),
                        buffered = self.buffer.len(),
                        "rate limited by the server (429); waiting before sending again"
                    );
                    return Flush::RetryAt {
                        at: Instant::now() + wait,
                        server_asked: true,
                    };
                }
                Delivery::Unavailable {
                    reason,
                    retry_after,
                } => {
                    if self.outage.is_none() {
                        tracing::warn!(
                            buffered = self.buffer.len(),
                            "server unavailable ({reason}); buffering snapshots until it answers"
                        );
                    } else {
                        tracing::debug!(
                            buffered = self.buffer.len(),
                            "still unavailable: {reason}"
                        );
                    }
                    self.outage = Some(reason);
                    let wait = retry_after.unwrap_or(self.backoff);
                    self.backoff = (self.backoff * 2).min(self.interval.max(FIRST_BACKOFF));
                    return Flush::RetryAt {
                        at: Instant::now() + wait,
                        server_asked: retry_after.is_some(),
                    };
                }
                Delivery::Rejected { status, problem } => {
                    tracing::error!(
                        status,
                        %recorded_at,
                        "the server refused a snapshot; dropping it: {problem}"
                    );
                    self.buffer.pop_front();
                }
            }
        }
    }

    fn end_outage(&mut self, delivered: usize) {
        if self.outage.take().is_some() {
            tracing::info!(
                delivered,
                "server reachable again; buffered snapshots delivered"
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
