//! The server's periodic work: liveness detection, retention, and forgetting idle rate-limit
//! state. Every task is safe to run in several server processes at once.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::api::AppState;
use crate::domain::liveness::check_interval;
use crate::store::retention::RetentionMode;

const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(60);
const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
const RETENTION_RETRY: Duration = Duration::from_secs(30);

/// What the periodic tasks need to know.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub heartbeat_timeout: Duration,
    pub retention: Duration,
}

/// Running tasks; they stop when this is dropped.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

pub fn spawn(state: AppState, schedule: Schedule) -> Tasks {
    Tasks(vec![
        tokio::spawn(detect_silent_hosts(
            state.clone(),
            schedule.heartbeat_timeout,
        )),
        tokio::spawn(keep_retention(state.clone(), schedule.retention)),
        tokio::spawn(forget_idle_limits(state)),
    ])
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

async fn keep_retention(state: AppState, keep: Duration) {
    let mode = loop {
        match state.store.configure_retention(keep).await {
            Ok(mode) => break mode,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "cannot set retention up yet");
                tokio::time::sleep(RETENTION_RETRY).await;
            }
        }
    };
    match mode {
        RetentionMode::Policies => {
            tracing::info!(
                days = keep.as_secs() / 86400,
                "retention: TimescaleDB policies (timescale license), compression after 7 days"
            );
        }
        RetentionMode::DropChunks => {
            tracing::info!(
                days = keep.as_secs() / 86400,
                "retention: the server drops old chunks hourly (apache license: no policies, no compression)"
            );
            let mut tick = tokio::time::interval(RETENTION_PERIOD);
            loop {
                tick.tick().await;
                match state.store.drop_old_chunks(keep).await {
                    Ok(0) => {}
                    Ok(dropped) => tracing::info!(dropped, "dropped chunks past retention"),
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
