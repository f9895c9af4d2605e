//! Prometheus metrics: what is recorded, and the exposition. One recorder per process.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets of the ingest histogram, in seconds.
const INGEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("nexus_ingest_duration_seconds".into()),
                INGEST_BUCKETS,
            )
            .expect("valid buckets")
            .set_buckets_for_metric(
                Matcher::Full("nexus_alert_evaluation_duration_seconds".into()),
                INGEST_BUCKETS,
            )
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may exist when the app is embedded; then this one stays local.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Makes sure the recorder exists before the first request records anything.
pub fn install() {
    handle();
}

pub fn record_request(route: &str, status: u16) {
    counter!("nexus_http_requests_total", "route" => route.to_owned(), "status" => status.to_string()).increment(1);
}

pub fn record_ingest(duration: Duration, container_rows: i64) {
    histogram!("nexus_ingest_duration_seconds").record(duration.as_secs_f64());
    counter!("nexus_snapshots_written_total").increment(1);
    counter!("nexus_container_rows_written_total").increment(container_rows.max(0) as u64);
}

/// Containers left out of stored snapshots because they broke the contract.
pub fn record_dropped_containers(count: usize) {
    counter!("nexus_containers_dropped_total").increment(count as u64);
}

/// A body the telemetry payload's reader left to the `Value` path, by why (`reason`).
pub fn record_fast_path_declined(reason: &'static str) {
    counter!("nexus_body_fast_path_declined_total", "reason" => reason).increment(1);
}

/// A post of alerts to an Alertmanager, by whether it got through.
pub fn record_alertmanager_post(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    counter!("nexus_alertmanager_posts_total", "result" => result).increment(1);
}

/// Whether this process holds the Alertmanager sender's lease.
pub fn set_alertmanager_sender(holding: bool) {
    gauge!("nexus_alertmanager_sender").set(if holding { 1.0 } else { 0.0 });
}

/// One alert evaluation cycle of this process (the lease holder): its time, start to commit,
/// and the alerts firing after it.
pub fn record_alert_evaluation(duration: Duration, firing: i64) {
    histogram!("nexus_alert_evaluation_duration_seconds").record(duration.as_secs_f64());
    gauge!("nexus_alerts_firing").set(firing as f64);
}

/// What the in-memory indexes hold right now.
pub struct Caches {
    pub tokens: usize,
    pub container_cache_hosts: u64,
    pub container_cache_bytes: u64,
}

/// The database pool's current state: connections open, the most it opens, idle ones, and
/// requests waiting for one.
pub struct Pool {
    pub size: usize,
    pub max_size: usize,
    pub available: usize,
    pub waiting: usize,
}

/// The exposition text, with the pool's and the caches' current state.
pub fn render(pool: Pool, caches: Caches) -> String {
    gauge!("nexus_token_index_tokens").set(caches.tokens as f64);
    gauge!("nexus_container_cache_hosts").set(caches.container_cache_hosts as f64);
    gauge!("nexus_container_cache_bytes").set(caches.container_cache_bytes as f64);
    gauge!("nexus_db_pool_size").set(pool.size as f64);
    gauge!("nexus_db_pool_max_size").set(pool.max_size as f64);
    gauge!("nexus_db_pool_available").set(pool.available as f64);
    gauge!("nexus_db_pool_waiting").set(pool.waiting as f64);
    handle().render()
}
