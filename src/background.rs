//! The server's periodic work: liveness detection, the data's lifecycle, the read replica's lag,
//! alert evaluation, sending alerts to Alertmanager, and forgetting idle rate-limit state. Every
//! task is safe to run in several server processes at once (alert evaluation and the sender by
//! their leases), and webhook delivery ([`crate::webhooks`]).

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::alertmanager;
use crate::alerts::lease::process_holder_name;
use crate::alerts::task::{EvaluationSchedule, evaluate_forever};
use crate::api::AppState;
use crate::domain::liveness::check_interval;
use crate::store::lifecycle::{Edition, Lifecycle};

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

/// Running tasks; they stop when this is dropped.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

pub fn spawn(state: AppState, schedule: Schedule) -> Tasks {
    let webhooks = match crate::webhooks::spawn(state.store.clone(), state.webhooks) {
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
            state.clone(),
            schedule.heartbeat_timeout,
        )),
        tokio::spawn(keep_lifecycle(state.clone(), schedule.lifecycle)),
        tokio::spawn(state.reads.clone().probe_forever()),
        tokio::spawn(alertmanager::run(
            state.store.clone(),
            state.event_feed.clone(),
            schedule.alertmanager,
        )),
        tokio::spawn(evaluate_forever(
            state.store.clone(),
            schedule.alert_evaluation,
            process_holder_name(),
        )),
        tokio::spawn(forget_idle_limits(state)),
    ];
    tasks.extend(webhooks);
    Tasks(tasks)
}

async fn detect_silent_hosts(state: AppState, timeout: Duration) {
    let mut tick = tokio::time::interval(check_interval(timeout));
    loop {
        tick.tick().await;
        match state.store.mark_silent_hosts_offline(timeout).await {
            Ok(hosts) if !hosts.is_empty() => tracing::info!(?hosts, "hosts went offline"),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = format!("{error:#}"), "liveness check failed"),
        }
    }
}

async fn keep_lifecycle(state: AppState, lifecycle: Lifecycle) {
    let edition = loop {
        match state.store.configure_lifecycle(&lifecycle).await {
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
                    state.store.drop_old_chunks(lifecycle.raw_retention),
                    state.store.drop_old_event_chunks(lifecycle.event_retention),
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

async fn forget_idle_limits(state: AppState) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        tick.tick().await;
        let now = Instant::now();
        state.rate_limit.forget_idle(now);
        state.auth_failures.forget_idle(now);
        state.admin_auth_failures.forget_idle(now);
        state.auth_failure_lookups.forget_idle(now);
        state.auth_failure_log.forget_old(chrono::Utc::now());
    }
}
