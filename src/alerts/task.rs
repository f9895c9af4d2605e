//! The evaluator's background task, run in every server process: the lease holder evaluates
//! every interval, and soon after new events (LISTEN on the events channel, debounced); the
//! others retry the lease often enough to take over within 30 s of the holder's death.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_postgres::AsyncMessage;

use super::evaluation::{Cycle, Evaluator};
use crate::store::Store;
use crate::store::events::EVENTS_CHANNEL;

/// `application_name` of the evaluator's LISTEN connection.
pub const EVALUATOR_APPLICATION_NAME: &str = "nexus-telemetry-alerts";

/// Shortest time between two cycles started by new events.
pub const EVENT_DEBOUNCE: Duration = Duration::from_secs(1);

/// Longest pause between two attempts on the lease, whatever the lease's length.
const MAX_LEASE_CHECK: Duration = Duration::from_secs(5);

/// How long to wait before reconnecting a lost LISTEN connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// When the evaluator runs.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationSchedule {
    /// Between two cycles when nothing happens; `None`: the evaluator is off.
    pub interval: Option<Duration>,
    /// How long a claim on the lease lasts: a dead holder is replaced within this plus
    /// [`Self::lease_check`].
    pub lease_ttl: Duration,
}

impl EvaluationSchedule {
    /// How often the lease is renewed (holder) or tried (the others): a quarter of its length,
    /// at most 5 s, at least 100 ms, and no less often than the cycles.
    pub fn lease_check(&self) -> Duration {
        let check = (self.lease_ttl / 4).clamp(Duration::from_millis(100), MAX_LEASE_CHECK);
        self.interval.map_or(check, |interval| check.min(interval))
    }
}

/// Evaluates forever as `holder` (stops when the task is aborted).
pub async fn evaluate_forever(store: Store, schedule: EvaluationSchedule, holder: String) {
    let Some(interval) = schedule.interval else {
        return;
    };
    let evaluator = Evaluator::new(store.clone(), holder, schedule.lease_ttl);
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen_for_events(
        store.session_url().to_owned(),
        wake.clone(),
    ));
    let _listener = AbortOnDrop(listener);
    let mut check = tokio::time::interval(schedule.lease_check());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut holding = false;
    let mut last_cycle: Option<Instant> = None;
    loop {
        let woken = tokio::select! {
            _ = check.tick() => false,
            _ = wake.notified(), if holding => true,
        };
        if woken && let Some(last) = last_cycle {
            // Events often come in bursts: one cycle for all that arrive within the debounce.
            tokio::time::sleep_until(last + EVENT_DEBOUNCE).await;
        }
        let due = woken || !holding || last_cycle.is_none_or(|last| last.elapsed() >= interval);
        if !due {
            match evaluator.renew().await {
                Ok(held) => holding = held,
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "renewing the alert evaluator's lease failed"
                ),
            }
            continue;
        }
        match evaluator.cycle().await {
            Ok(Cycle::NotHolder) => holding = false,
            Ok(Cycle::Evaluated(report)) => {
                if !holding {
                    tracing::info!("this process now evaluates the alert rules");
                }
                holding = true;
                last_cycle = Some(Instant::now());
                tracing::debug!(?report, "alert evaluation cycle");
            }
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "alert evaluation failed")
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wakes `wake` on every notification of the events channel, reconnecting when the session
/// ends. A session, not a pooled connection: LISTEN does not survive a transaction pooler.
async fn listen_for_events(url: String, wake: Arc<Notify>) {
    loop {
        if let Err(error) = listen_session(&url, &wake).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "the alert evaluator's event listener ended; evaluating on its interval only"
            );
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn listen_session(url: &str, wake: &Notify) -> anyhow::Result<()> {
    let (client, mut connection) =
        crate::store::listener_connection(url, EVALUATOR_APPLICATION_NAME).await?;
    let driver = async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    let listen = async {
        client
            .batch_execute(&format!("LISTEN {EVENTS_CHANNEL}"))
            .await
            .context("Failed to LISTEN")?;
        // Keep the session checked: a dead one ends this session so it is reconnected.
        let mut check = tokio::time::interval(Duration::from_secs(30));
        loop {
            check.tick().await;
            client
                .simple_query("")
                .await
                .context("The listener connection is dead")?;
        }
    };
    tokio::select! {
        () = driver => anyhow::bail!("the listener connection closed"),
        result = listen => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_checked_four_times_per_length_at_most_every_5_seconds() {
        let schedule = |interval: u64, ttl: u64| EvaluationSchedule {
            interval: Some(Duration::from_secs(interval)),
            lease_ttl: Duration::from_secs(ttl),
        };
        assert_eq!(schedule(15, 20).lease_check(), Duration::from_secs(5));
        assert_eq!(schedule(15, 8).lease_check(), Duration::from_secs(2));
        assert_eq!(schedule(1, 20).lease_check(), Duration::from_secs(1));
        assert_eq!(schedule(15, 60).lease_check(), Duration::from_secs(5));
    }
}
