//! Realistic snapshots built from the shared contract types (`nexus_contract`): per host a
//! stable set of Docker-Compose-style containers (64-hex ids, compose and OCI labels, ports,
//! health), whose metrics and counters move on every post, with a fresh `recorded_at`.
//!
//! A [`HostFeed`] keeps one payload per host and updates it in place. The load generator shares
//! the machine with the server, so it does little per post: the body is serialised afresh (new
//! metrics) every [`FRESH_METRICS_EVERY`] posts, and in between only `recorded_at` is rewritten
//! in the serialised body. The server does the same work for every post either way.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use nexus_contract::{
    ContainerMetrics, ContainerPayload, HostFacts, HostMetrics, HostPayload, TelemetryPayload,
};

use crate::rng::Rng;

const PROJECTS: &[&str] = &[
    "shop",
    "billing",
    "analytics",
    "auth",
    "monitoring",
    "search",
    "cms",
    "ci",
];

/// (service, image, tag, published port, health-checked)
const SERVICES: &[(&str, &str, &str, Option<&str>, bool)] = &[
    ("web", "nginx", "1.27.2-alpine", Some("80/tcp"), true),
    (
        "api",
        "ghcr.io/acme/shop-api",
        "2.14.3",
        Some("8080/tcp"),
        true,
    ),
    ("worker", "ghcr.io/acme/shop-worker", "2.14.3", None, false),
    ("scheduler", "ghcr.io/acme/scheduler", "0.9.1", None, false),
    (
        "postgres",
        "postgres",
        "16.4-bookworm",
        Some("5432/tcp"),
        true,
    ),
    ("redis", "redis", "7.4.1-alpine", Some("6379/tcp"), true),
    (
        "prometheus",
        "prom/prometheus",
        "v2.54.1",
        Some("9090/tcp"),
        false,
    ),
    (
        "grafana",
        "grafana/grafana",
        "11.2.2",
        Some("3000/tcp"),
        true,
    ),
    (
        "node-exporter",
        "prom/node-exporter",
        "v1.8.2",
        Some("9100/tcp"),
        false,
    ),
    (
        "cadvisor",
        "gcr.io/cadvisor/cadvisor",
        "v0.49.1",
        Some("8080/tcp"),
        false,
    ),
    ("traefik", "traefik", "v3.1.6", Some("443/tcp"), true),
    (
        "rabbitmq",
        "rabbitmq",
        "3.13-management",
        Some("5672/tcp"),
        true,
    ),
    (
        "elasticsearch",
        "docker.elastic.co/elasticsearch/elasticsearch",
        "8.15.2",
        Some("9200/tcp"),
        true,
    ),
    (
        "minio",
        "minio/minio",
        "RELEASE.2024-10-02T17-50-41Z",
        Some("9000/tcp"),
        true,
    ),
    (
        "keycloak",
        "quay.io/keycloak/keycloak",
        "25.0.6",
        Some("8443/tcp"),
        true,
    ),
    (
        "clickhouse",
        "clickhouse/clickhouse-server",
        "24.8",
        Some("8123/tcp"),
        false,
    ),
];

/// Posts of one host between two serialisations of its whole payload (see the module docs).
pub const FRESH_METRICS_EVERY: u32 = 8;

/// One host's evolving snapshot.
pub struct HostFeed {
    pub payload: TelemetryPayload,
    rng: Rng,
    last_recorded_at: DateTime<Utc>,
    /// The payload as last serialised, and posts left before the next serialisation.
    body: Vec<u8>,
    posts_left: u32,
}

impl HostFeed {
    /// Host number `index` of the fleet with `containers` containers.
    pub fn new(index: usize, containers: usize) -> Self {
        let mut rng = Rng::seeded(index as u64 * 1_000_003 + containers as u64);
        let memory_total_mb = [8192, 16384, 32768, 65536][rng.below(4) as usize];
        let started = Utc::now() - Duration::hours(3 + rng.below(24 * 30) as i64);
        let containers = (0..containers)
            .map(|i| container(&mut rng, i, memory_total_mb, started))
            .collect();
        let payload = TelemetryPayload {
            recorded_at: Utc::now().fixed_offset(),
            host: HostPayload {
                metrics: HostMetrics {
                    cpu_percent: Some(0.0),
                    memory_used_mb: Some(memory_total_mb / 3),
                    memory_total_mb: Some(memory_total_mb),
                    disk_used_gb: Some(120 + rng.below(200) as i64),
                    disk_total_gb: Some(500),
                    network_rx_bytes: Some(rng.below(1 << 40) as i64),
                    network_tx_bytes: Some(rng.below(1 << 40) as i64),
                    load_average: Some(0.0),
                },
                facts: Some(HostFacts {
                    cpu_count: Some([4, 8, 16][rng.below(3) as usize]),
                    memory_total_mb: Some(memory_total_mb),
                    disk_total_gb: Some(500),
                    os: Some("Debian GNU/Linux 12 (bookworm)".into()),
                    docker_version: Some("27.3.1".into()),
                }),
            },
            containers: Some(containers),
        };
        Self {
            payload,
            rng,
            last_recorded_at: DateTime::<Utc>::MIN_UTC,
            body: Vec::new(),
            posts_left: 0,
        }
    }

    /// The next post's body: a fresh `recorded_at`, and fresh metrics every
    /// [`FRESH_METRICS_EVERY`] posts.
    pub fn next_body(&mut self) -> Vec<u8> {
        if self.posts_left == 0 {
            self.advance();
            self.body = serde_json::to_vec(&self.payload).expect("payloads serialise");
            self.posts_left = FRESH_METRICS_EVERY;
        } else {
            let now = self.next_instant();
            let old = serde_json::to_string(&self.payload.recorded_at).expect("serialises");
            self.last_recorded_at = now;
            self.payload.recorded_at = now.fixed_offset();
            let new = serde_json::to_string(&self.payload.recorded_at).expect("serialises");
            // The first field of the payload, so its first occurrence in the body.
            let at = find(&self.body, old.as_bytes()).expect("recorded_at is in the body");
            self.body.splice(at..at + old.len(), new.into_bytes());
        }
        self.posts_left -= 1;
        self.body.clone()
    }

    /// Moves the snapshot on: `recorded_at` = now at microsecond precision, strictly later
    /// than this host's previous one (the server keeps one row per host and instant), and
    /// new metrics with counters that only grow.
    pub fn advance(&mut self) {
        self.advance_to(self.next_instant());
    }

    /// Now at microsecond precision, strictly later than this host's previous snapshot.
    fn next_instant(&self) -> DateTime<Utc> {
        micros(Utc::now()).max(self.last_recorded_at + Duration::microseconds(1))
    }

    /// As [`advance`](Self::advance), at a given instant (the COPY baseline uses past ones).
    pub fn advance_to(&mut self, recorded_at: DateTime<Utc>) {
        self.last_recorded_at = recorded_at;
        let rng = &mut self.rng;
        let payload = &mut self.payload;
        payload.recorded_at = recorded_at.fixed_offset();
        let m = &mut payload.host.metrics;
        m.cpu_percent = Some(round2(rng.unit() * 100.0));
        let total = m.memory_total_mb.unwrap_or(16384);
        m.memory_used_mb = Some(total / 4 + rng.below(total as u64 / 2) as i64);
        m.load_average = Some(round2(rng.unit() * 4.0));
        bump(&mut m.network_rx_bytes, rng.below(50_000_000));
        bump(&mut m.network_tx_bytes, rng.below(20_000_000));
        for c in payload.containers.iter_mut().flatten() {
            let Some(metrics) = c.metrics.as_mut() else {
                continue;
            };
            if c.state.as_deref() != Some("running") {
                continue;
            }
            metrics.cpu_percent = Some(round2(rng.unit() * 120.0));
            let limit = metrics.memory_limit_mb.unwrap_or(1024);
            metrics.memory_usage_mb = Some(limit / 8 + rng.below(limit as u64 / 2) as i64);
            bump(&mut metrics.network_rx_bytes, rng.below(5_000_000));
            bump(&mut metrics.network_tx_bytes, rng.below(2_000_000));
            bump(&mut metrics.block_read_bytes, rng.below(1_000_000));
            bump(&mut metrics.block_write_bytes, rng.below(3_000_000));
        }
    }

    pub fn recorded_at(&self) -> DateTime<Utc> {
        self.last_recorded_at
    }
}

fn container(
    rng: &mut Rng,
    index: usize,
    host_memory_mb: i64,
    host_started: DateTime<Utc>,
) -> ContainerPayload {
    let project = PROJECTS[(index / SERVICES.len()) % PROJECTS.len()];
    let (service, image, tag, port, health_checked) = SERVICES[index % SERVICES.len()];
    let number = 1 + index / (SERVICES.len() * PROJECTS.len());
    let name = format!("{project}-{service}-{number}");
    let running = rng.below(15) != 0;
    let started_at = host_started + Duration::seconds(rng.below(3600) as i64);
    let mut labels = BTreeMap::from([
        ("com.docker.compose.project".into(), project.to_owned()),
        ("com.docker.compose.service".into(), service.to_owned()),
        (
            "com.docker.compose.container-number".into(),
            number.to_string(),
        ),
        ("com.docker.compose.oneoff".into(), "False".into()),
        ("com.docker.compose.version".into(), "2.29.7".into()),
        ("com.docker.compose.config-hash".into(), rng.hex64()),
        ("com.docker.compose.depends_on".into(), String::new()),
        (
            "com.docker.compose.image".into(),
            format!("sha256:{}", rng.hex64()),
        ),
        (
            "com.docker.compose.project.config_files".into(),
            format!("/srv/{project}/compose.yaml"),
        ),
        (
            "com.docker.compose.project.working_dir".into(),
            format!("/srv/{project}"),
        ),
        (
            "org.opencontainers.image.source".into(),
            format!("https://github.com/acme/{service}"),
        ),
        ("org.opencontainers.image.version".into(), tag.to_owned()),
    ]);
    let mut ports = Vec::new();
    if let Some(port) = port {
        if service == "web" || service == "traefik" {
            let host_port = 8000 + index;
            let inner = port.trim_end_matches("/tcp");
            ports.push(format!("0.0.0.0:{host_port}->{inner}/tcp"));
            ports.push(format!("[::]:{host_port}->{inner}/tcp"));
            labels.insert(
                format!("traefik.http.routers.{project}-{service}.rule"),
                format!("Host(`{service}.{project}.acme.example`)"),
            );
        } else {
            ports.push(port.to_owned());
        }
    }
    let limit_mb = [256, 512, 1024, 2048, host_memory_mb][rng.below(5) as usize];
    ContainerPayload {
        container_id: rng.hex64(),
        name,
        image: image.to_owned(),
        image_tag: Some(tag.to_owned()),
        status: Some(if running {
            if health_checked {
                "Up 3 hours (healthy)".into()
            } else {
                "Up 3 hours".into()
            }
        } else {
            "Exited (0) 2 days ago".into()
        }),
        state: Some(if running { "running" } else { "exited" }.into()),
        health_status: Some(
            if health_checked && running {
                "healthy"
            } else {
                "none"
            }
            .into(),
        ),
        ports: Some(ports),
        labels: Some(labels.into()),
        metrics: Some(ContainerMetrics {
            cpu_percent: Some(0.0),
            memory_usage_mb: Some(if running { limit_mb / 4 } else { 0 }),
            memory_limit_mb: Some(limit_mb),
            network_rx_bytes: Some(rng.below(1 << 36) as i64),
            network_tx_bytes: Some(rng.below(1 << 36) as i64),
            block_read_bytes: Some(rng.below(1 << 34) as i64),
            block_write_bytes: Some(rng.below(1 << 34) as i64),
        }),
        started_at: Some(started_at.fixed_offset()),
        finished_at: (!running).then(|| (started_at + Duration::hours(1)).fixed_offset()),
        restart_count: Some(0),
        exit_code: (!running).then_some(0),
        oom_killed: Some(false),
    }
}

/// `time` truncated to whole microseconds (PostgreSQL's precision).
pub fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).expect("in range")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn bump(counter: &mut Option<i64>, by: u64) {
    *counter = Some(counter.unwrap_or(0).saturating_add(by as i64));
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use nexus_telemetry::api::body::json::parse;
    use nexus_telemetry::domain::snapshot::{SkewWindow, Snapshot};

    use super::*;

    /// What the server does with a body: schema check, typed parse, then the domain rules.
    fn accepted_by_the_server(feed: &HostFeed) {
        let body = serde_json::to_vec(&feed.payload).unwrap();
        let payload: TelemetryPayload = parse(&body).expect("the schema admits the payload");
        let skew = SkewWindow {
            past: Duration::hours(1),
            future: Duration::minutes(5),
        };
        Snapshot::new(payload, Utc::now(), skew).expect("the domain rules admit the payload");
    }

    #[test]
    fn payloads_are_valid_for_the_server_at_every_size_of_the_matrix() {
        for containers in [0, 20, 200] {
            let mut feed = HostFeed::new(7, containers);
            feed.advance();
            accepted_by_the_server(&feed);
            assert_eq!(feed.payload.container_list().len(), containers);
        }
    }

    #[test]
    fn every_body_is_the_payload_with_a_fresh_recorded_at() {
        let mut feed = HostFeed::new(5, 20);
        let mut last = DateTime::<Utc>::MIN_UTC;
        for _ in 0..2 * FRESH_METRICS_EVERY + 1 {
            let body = feed.next_body();
            let sent: TelemetryPayload = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent, feed.payload, "the body says what the payload says");
            assert!(feed.recorded_at() > last);
            last = feed.recorded_at();
            accepted_by_the_server(&feed);
        }
    }

    #[test]
    fn recorded_at_strictly_increases_and_containers_stay_the_same() {
        let mut feed = HostFeed::new(3, 20);
        feed.advance();
        let first = feed.recorded_at();
        let ids: Vec<String> = feed
            .payload
            .container_list()
            .iter()
            .map(|c| c.container_id.clone())
            .collect();
        for _ in 0..1000 {
            let before = feed.recorded_at();
            feed.advance();
            assert!(feed.recorded_at() > before);
        }
        assert!(feed.recorded_at() > first);
        let again: Vec<String> = feed
            .payload
            .container_list()
            .iter()
            .map(|c| c.container_id.clone())
            .collect();
        assert_eq!(ids, again);
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "container ids are unique per host");
    }
}
