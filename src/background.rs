//! The server's periodic work: liveness detection, the data's lifecycle, the read replica's lag,
//! alert evaluation, sending alerts to Alertmanager, and the periodic forgetting of idle
//! in-memory state (the HTTP layer's rate limits, handed in as a function). Every task is safe to
//! run in several server processes at once (alert evaluation and the sender by their leases), and
//! webhook delivery ([`crate::webhooks`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::alertmanager;
use crate::alerts::lease::process_holder_name;
use crate::alerts::task::{EvaluationSchedule, evaluate_forever};
use crate::domain::liveness::check_interval;
use crate::store::Store;
use crate::store::event_feed::EventFeed;
use crate::store::lifecycle::{Edition, Lifecycle};
use crate::store::replica::Reads;
use crate::webhooks::WebhookSettings;

const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(60);
const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
const RETENTION_RETRY: Duration = Duration::from_secs(30);

/// What the periodic tasks need to know.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub heartbeat_timeout: Duration,
    pub lifecycle: Lifecycle,
    pub alertmanager: alertmanager::Settings,
    pub alert_evaluation: EvaluationSchedule,
}

/// What the periodic tasks work on.
pub struct Resources {
    /// The primary.
    pub store: Store,
    /// The read API's route, whose replica lag is probed.
    pub reads: Reads,
    /// New events, which wake the Alertmanager sender.
    pub event_feed: Arc<EventFeed>,
    pub webhooks: WebhookSettings,
}

/// Running tasks; they stop when this is dropped.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Starts the periodic tasks; `forget_idle` runs every minute to drop in-memory state that no
/// longer counts at the given instant.
pub fn spawn(
    resources: Resources,
    schedule: Schedule,
    forget_idle: impl Fn(Instant) + Send + 'static,
) -> Tasks {
    let Resources {
        store,
        reads,
        event_feed,
        webhooks,
    } = resources;
    let webhooks = match crate::webhooks::spawn(store.clone(), webhooks) {
        Ok(tasks) => tasks,
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                "webhook delivery cannot start"
            );
            Vec::new()
        }
    };
    let mut tasks = vec![
        tokio::spawn(detect_silent_hosts(
            store.clone(),
            schedule.heartbeat_timeout,
        )),
        tokio::spawn(keep_lifecycle(store.clone(), schedule.lifecycle)),
        tokio::spawn(reads.probe_forever()),
        tokio::spawn(alertmanager::run(
            store.clone(),
            event_feed,
            schedule.alertmanager,
        )),
        tokio::spawn(evaluate_forever(
            store,
            schedule.alert_evaluation,
            process_holder_name(),
        )),
        tokio::spawn(forget_idle_forever(forget_idle)),
    ];
    tasks.extend(webhooks);
    Tasks(tasks)
}

async fn detect_silent_hosts(store: Store, timeout: Duration) {
    let mut tick = tokio::time::interval(check_interval(timeout));
    loop {
        tick.tick().await;
        match store.mark_silent_hosts_offline(timeout).await {
            Ok(hosts) if !hosts.is_empty() => tracing::info!(?hosts, "hosts went offline"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "liveness check failed"),
        }
    }
}

async fn keep_lifecycle(store: Store, lifecycle: Lifecycle) {
    let edition = loop {
        match store.configure_lifecycle(&lifecycle).await {
            Ok(edition) => break edition,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot set the data lifecycle up yet"
                );
                tokio::time::sleep(RETENTION_RETRY).await;
            }
        }
    };
    let raw_days = lifecycle.raw_retention.as_secs() / 86400;
    match edition {
        Edition::Community => tracing::info!(
            raw_days,
            rollup_5m_days = lifecycle.rollup_5m_retention.as_secs() / 86400,
            rollup_1h_days = lifecycle.rollup_1h_retention.as_secs() / 86400,
            compress_after_hours = lifecycle.compress_raw_after().as_secs() / 3600,
            "TimescaleDB community edition: compression, continuous aggregates (5m, 1h) and \
             retention run as database policies"
        ),
        Edition::Apache => {
            tracing::info!(
                raw_days,
                "TimescaleDB Apache edition: no compression; rollups are views over raw data; \
                 the server drops old chunks hourly"
            );
            let mut tick = tokio::time::interval(RETENTION_PERIOD);
            loop {
                tick.tick().await;
                let dropped = tokio::try_join!(
                    store.drop_old_chunks(lifecycle.raw_retention),
                    store.drop_old_event_chunks(lifecycle.event_retention),
                );
                match dropped {
                    Ok((0, 0)) => {}
                    Ok((raw, events)) => {
                        tracing::info!(raw, events, "dropped chunks past retention")
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "dropping old chunks failed")
                    }
                }
            }
        }
    }
}

async fn forget_idle_forever(forget_idle: impl Fn(Instant)) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        tick.tick().await;
        forget_idle(Instant::now());
    }
}
