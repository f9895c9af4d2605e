//! Containers from the Docker Engine API (through `bollard`): every container, running or not,
//! with one-shot stats for the running ones, gathered concurrently with a bound.
//!
//! Numbers follow `docker stats`: CPU percent from the usage delta over the system delta times
//! the online CPUs, memory without the page cache. Stats are requested with `one-shot=true`
//! (no two-sample wait in the daemon); the CPU delta is then taken against the previous tick's
//! sample of the same container, or against `precpu_stats` when the daemon filled it in.
//!
//! An unreachable daemon is not an error for the agent: [`DockerCollector::collect`] returns
//! `None`, warns once, and says so again only when the daemon comes back.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerBlkioStats, ContainerCpuStats, ContainerInspectResponse, ContainerMemoryStats,
    ContainerStateStatusEnum, ContainerStatsResponse, ContainerSummary, PortSummary,
};
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use chrono::{DateTime, Datelike, FixedOffset};
use futures_util::{StreamExt, TryStreamExt, stream};
use nexus_contract::{ContainerMetrics, ContainerPayload, Labels};

const MIB: u64 = 1024 * 1024;

/// What the Docker Engine said in one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerReading {
    pub version: Option<String>,
    pub containers: Vec<ContainerPayload>,
}

/// A container's cumulative CPU counters at one moment, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    pub container_total: u64,
    pub system_total: u64,
}

impl CpuSample {
    fn of(stats: &ContainerCpuStats) -> Option<Self> {
        Some(Self {
            container_total: stats.cpu_usage.as_ref()?.total_usage?,
            system_total: stats.system_cpu_usage.filter(|&total| total > 0)?,
        })
    }
}

/// Reads containers from one Docker Engine, reconnecting when it was away.
pub struct DockerCollector {
    host: String,
    timeout: Duration,
    concurrency: usize,
    client: Option<Docker>,
    warned_unreachable: bool,
    previous_cpu: HashMap<String, CpuSample>,
}

impl DockerCollector {
    /// `host` as in `DOCKER_HOST` (`unix:///var/run/docker.sock`, `tcp://…`); `concurrency`
    /// bounds how many containers are inspected and measured at once.
    pub fn new(host: impl Into<String>, timeout: Duration, concurrency: usize) -> Self {
        Self {
            host: host.into(),
            timeout,
            concurrency: concurrency.max(1),
            client: None,
            warned_unreachable: false,
            previous_cpu: HashMap::new(),
        }
    }

    /// The engine's version and containers, or `None` when the engine cannot be reached.
    pub async fn collect(&mut self) -> Option<DockerReading> {
        match self.try_collect().await {
            Ok(reading) => {
                if self.warned_unreachable {
                    tracing::info!(docker_host = %self.host, "Docker Engine reachable again; containers are reported");
                    self.warned_unreachable = false;
                }
                Some(reading)
            }
            Err(error) => {
                self.client = None;
                if !self.warned_unreachable {
                    tracing::warn!(
                        docker_host = %self.host,
                        "Docker Engine not reachable ({error}); sending host telemetry without containers until it is"
                    );
                    self.warned_unreachable = true;
                }
                None
            }
        }
    }

    async fn try_collect(&mut self) -> Result<DockerReading, bollard::errors::Error> {
        let docker = match &self.client {
            Some(docker) => docker.clone(),
            None => {
                // bollard sends unversioned paths, so the engine answers in its own API version
                // and no negotiation is needed.
                let docker = connect(&self.host)?.with_timeout(self.timeout);
                self.client = Some(docker.clone());
                docker
            }
        };
        let version = docker.version().await?.version;
        let summaries = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await?;
        let previous = &self.previous_cpu;
        let details: Vec<ContainerDetails> = stream::iter(summaries)
            .map(|summary| {
                let docker = docker.clone();
                async move { ContainerDetails::fetch(&docker, summary).await }
            })
            .buffered(self.concurrency)
            .collect()
            .await;
        let containers = details
            .iter()
            .filter_map(|details| details.to_payload(previous))
            .collect();
        self.previous_cpu = details
            .iter()
            .filter_map(|details| Some((details.summary.id.clone()?, details.cpu_sample()?)))
            .collect();
        Ok(DockerReading {
            version,
            containers,
        })
    }
}

fn connect(host: &str) -> Result<Docker, bollard::errors::Error> {
    if host.starts_with('/') {
        Docker::connect_with_host(&format!("unix://{host}"))
    } else {
        Docker::connect_with_host(host)
    }
}

/// What the engine said about one container: its list entry, and inspect and stats when those
/// answered (a container removed mid-tick keeps its list entry only).
struct ContainerDetails {
    summary: ContainerSummary,
    inspect: Option<ContainerInspectResponse>,
    stats: Option<ContainerStatsResponse>,
}

impl ContainerDetails {
    async fn fetch(docker: &Docker, summary: ContainerSummary) -> Self {
        let Some(id) = summary.id.clone() else {
            return Self {
                summary,
                inspect: None,
                stats: None,
            };
        };
        let running = summary
            .state
            .is_some_and(|state| state.to_string() == "running");
        let inspect = async {
            docker
                .inspect_container(&id, None)
                .await
                .inspect_err(|error| tracing::debug!(container = %id, "inspect failed: {error}"))
                .ok()
        };
        let stats = async {
            if !running {
                return None;
            }
            let options = StatsOptions {
                stream: false,
                one_shot: true,
            };
            docker
                .stats(&id, Some(options))
                .try_next()
                .await
                .inspect_err(|error| tracing::debug!(container = %id, "stats failed: {error}"))
                .ok()
                .flatten()
        };
        let (inspect, stats) = futures_util::join!(inspect, stats);
        Self {
            summary,
            inspect,
            stats,
        }
    }

    fn cpu_sample(&self) -> Option<CpuSample> {
        CpuSample::of(self.stats.as_ref()?.cpu_stats.as_ref()?)
    }

    fn to_payload(&self, previous_cpu: &HashMap<String, CpuSample>) -> Option<ContainerPayload> {
        let summary = &self.summary;
        let id = summary.id.clone()?;
        let state = self
            .inspect
            .as_ref()
            .and_then(|inspect| inspect.state.as_ref());
        let name = summary
            .names
            .as_ref()
            .and_then(|names| names.first())
            .or(self
                .inspect
                .as_ref()
                .and_then(|inspect| inspect.name.as_ref()))
            .map(|name| name.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| id.chars().take(12).collect());
        let (image, image_tag) = split_image(summary.image.as_deref().unwrap_or_default());
        let health_status = state
            .map(|state| {
                state
                    .health
                    .as_ref()
                    .and_then(|health| health.status)
                    .map(|status| status.to_string())
                    .filter(|status| !status.is_empty())
                    .unwrap_or_else(|| "none".to_owned())
            })
            .or_else(|| {
                let status = summary.health.as_ref()?.status?.to_string();
                Some(status).filter(|status| !status.is_empty())
            });
        let ports = summary.ports.as_ref().map(|ports| {
            let mut formatted: Vec<String> = ports.iter().map(format_port).collect();
            formatted.sort();
            formatted.dedup();
            formatted
        });
        let labels = summary.labels.as_ref().map(|labels| {
            labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect::<Labels>()
        });
        let metrics = self
            .stats
            .as_ref()
            .map(|stats| container_metrics(stats, previous_cpu.get(&id)));
        let lifecycle = Lifecycle::of(self.inspect.as_ref());
        Some(ContainerPayload {
            container_id: id,
            name,
            image,
            image_tag,
            status: summary.status.clone(),
            state: summary
                .state
                .map(|state| state.to_string())
                .filter(|state| !state.is_empty()),
            health_status,
            ports,
            labels,
            metrics,
            started_at: docker_time(state.and_then(|state| state.started_at.as_deref())),
            finished_at: docker_time(state.and_then(|state| state.finished_at.as_deref())),
            restart_count: lifecycle.restart_count,
            exit_code: lifecycle.exit_code,
            oom_killed: lifecycle.oom_killed,
        })
    }
}

/// How a container's last run ended and how often it was restarted, from its inspect answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// Docker's `RestartCount`: restarts by the restart policy since the container was created
    /// (or since the daemon started).
    pub restart_count: Option<i64>,
    /// `State.ExitCode` of the last run; `None` while the process runs (or never ran), where
    /// Docker's `0` would read as a clean exit.
    pub exit_code: Option<i64>,
    /// `State.OOMKilled`: the last run was killed for lack of memory.
    pub oom_killed: Option<bool>,
}

impl Lifecycle {
    /// The fields as the engine reported them; all `None` without an inspect answer.
    pub fn of(inspect: Option<&ContainerInspectResponse>) -> Self {
        let Some(inspect) = inspect else {
            return Self::default();
        };
        let state = inspect.state.as_ref();
        let has_exited = state.and_then(|state| state.status).is_some_and(|status| {
            !matches!(
                status,
                ContainerStateStatusEnum::RUNNING
                    | ContainerStateStatusEnum::PAUSED
                    | ContainerStateStatusEnum::STOPPING
                    | ContainerStateStatusEnum::CREATED
                    | ContainerStateStatusEnum::EMPTY
            )
        });
        Self {
            restart_count: inspect.restart_count.filter(|&count| count >= 0),
            exit_code: state
                .and_then(|state| state.exit_code)
                .filter(|_| has_exited),
            oom_killed: state.and_then(|state| state.oom_killed),
        }
    }
}

/// Metrics from one stats answer; `previous` is this container's sample from the last tick.
pub fn container_metrics(
    stats: &ContainerStatsResponse,
    previous: Option<&CpuSample>,
) -> ContainerMetrics {
    let cpu_percent = stats.cpu_stats.as_ref().and_then(|now| {
        let before = stats
            .precpu_stats
            .as_ref()
            .and_then(CpuSample::of)
            .or(previous.copied())?;
        cpu_percent(now, &before)
    });
    let memory = stats.memory_stats.as_ref();
    let (network_rx, network_tx) = stats
        .networks
        .as_ref()
        .map(|networks| {
            networks.values().fold((0u64, 0u64), |(rx, tx), network| {
                (
                    rx.saturating_add(network.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(network.tx_bytes.unwrap_or(0)),
                )
            })
        })
        .unzip();
    let (block_read, block_write) = stats.blkio_stats.as_ref().map(block_io).unzip();
    ContainerMetrics {
        cpu_percent,
        memory_usage_mb: memory.and_then(memory_usage_bytes).map(bytes_to_mib),
        memory_limit_mb: memory
            .and_then(|m| m.limit)
            .filter(|&l| l > 0)
            .map(bytes_to_mib),
        network_rx_bytes: network_rx.map(saturating_i64),
        network_tx_bytes: network_tx.map(saturating_i64),
        block_read_bytes: block_read.map(saturating_i64),
        block_write_bytes: block_write.map(saturating_i64),
    }
}

/// CPU percent as `docker stats` computes it: container delta / system delta × online CPUs ×
/// 100. `None` when a counter went backwards (the container restarted) or no time passed.
pub fn cpu_percent(now: &ContainerCpuStats, before: &CpuSample) -> Option<f64> {
    let sample = CpuSample::of(now)?;
    let container_delta = sample.container_total.checked_sub(before.container_total)?;
    let system_delta = sample.system_total.checked_sub(before.system_total)?;
    if system_delta == 0 {
        return None;
    }
    let online_cpus = now
        .online_cpus
        .filter(|&cpus| cpus > 0)
        .map(f64::from)
        .or_else(|| {
            let per_cpu = now.cpu_usage.as_ref()?.percpu_usage.as_ref()?;
            Some(per_cpu.len() as f64).filter(|&cpus| cpus > 0.0)
        })?;
    let percent = container_delta as f64 / system_delta as f64 * online_cpus * 100.0;
    Some((percent * 100.0).round() / 100.0)
}

/// Memory in use without the page cache, as `docker stats` shows it: usage − inactive file
/// pages (`total_inactive_file` on cgroup v1, `inactive_file` on v2; `cache` on old engines).
pub fn memory_usage_bytes(memory: &ContainerMemoryStats) -> Option<u64> {
    let usage = memory.usage?;
    let stats = memory.stats.as_ref();
    let stat = |key: &str| stats.and_then(|stats| stats.get(key)).copied();
    let cache = stat("total_inactive_file")
        .or_else(|| stat("inactive_file"))
        .or_else(|| stat("cache"))
        .filter(|&cache| cache < usage)
        .unwrap_or(0);
    Some(usage - cache)
}

/// Bytes read and written, summed over devices (`Read`/`Write` on cgroup v1, `read`/`write` on
/// v2).
pub fn block_io(blkio: &ContainerBlkioStats) -> (u64, u64) {
    let entries = blkio
        .io_service_bytes_recursive
        .as_deref()
        .unwrap_or_default();
    entries.iter().fold((0, 0), |(read, write), entry| {
        let value = entry.value.unwrap_or(0);
        match entry.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => (read.saturating_add(value), write),
            Some("write") => (read, write.saturating_add(value)),
            _ => (read, write),
        }
    })
}

/// Splits an image reference into name and tag: `nginx:1.25` → (`nginx`, `1.25`),
/// `localhost:5000/app:1.2` → (`localhost:5000/app`, `1.2`), `redis` → (`redis`, `latest`),
/// `app@sha256:…` → (`app`, `sha256:…`), `app:1.2@sha256:…` → (`app`, `1.2`). An image id
/// (`sha256:…`, shown when the tag was removed) is kept whole, without a tag.
pub fn split_image(reference: &str) -> (String, Option<String>) {
    let reference = reference.trim();
    if reference.is_empty() {
        return (String::new(), None);
    }
    if reference.starts_with("sha256:") {
        return (reference.to_owned(), None);
    }
    let (named, digest) = match reference.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (reference, None),
    };
    let last_segment_start = named.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match named[last_segment_start..].rfind(':') {
        Some(colon) => {
            let colon = last_segment_start + colon;
            (&named[..colon], Some(&named[colon + 1..]))
        }
        None => (named, None),
    };
    let tag = match (tag, digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(digest)) => Some(digest.to_owned()),
        (None, None) => Some("latest".to_owned()),
    };
    (name.to_owned(), tag)
}

/// One port in `docker ps` notation: `0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`, `80/tcp`.
pub fn format_port(port: &PortSummary) -> String {
    let protocol = port
        .typ
        .map(|typ| typ.to_string())
        .filter(|typ| !typ.is_empty())
        .unwrap_or_else(|| "tcp".to_owned());
    match (
        port.public_port,
        port.ip.as_deref().filter(|ip| !ip.is_empty()),
    ) {
        (Some(public), Some(ip)) if ip.contains(':') => {
            format!("[{ip}]:{public}->{}/{protocol}", port.private_port)
        }
        (Some(public), Some(ip)) => format!("{ip}:{public}->{}/{protocol}", port.private_port),
        (Some(public), None) => format!("{public}->{}/{protocol}", port.private_port),
        (None, _) => format!("{}/{protocol}", port.private_port),
    }
}

/// A Docker timestamp; Docker's zero time (`0001-01-01T00:00:00Z`, "never") becomes `None`.
pub fn docker_time(value: Option<&str>) -> Option<DateTime<FixedOffset>> {
    let time = DateTime::parse_from_rfc3339(value?).ok()?;
    (time.year() > 1).then_some(time)
}

fn bytes_to_mib(bytes: u64) -> i64 {
    saturating_i64((bytes + MIB / 2) / MIB)
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        let cases = [
            ("nginx:1.25", ("nginx", Some("1.25"))),
            ("redis", ("redis", Some("latest"))),
            (
                "localhost:5000/app:1.2",
                ("localhost:5000/app", Some("1.2")),
            ),
            ("localhost:5000/app", ("localhost:5000/app", Some("latest"))),
            (
                "ghcr.io/org/app@sha256:abc",
                ("ghcr.io/org/app", Some("sha256:abc")),
            ),
            ("app:1.2@sha256:abc", ("app", Some("1.2"))),
            ("sha256:0123abcd", ("sha256:0123abcd", None)),
        ];
        for (reference, (name, tag)) in cases {
            let expected = (name.to_owned(), tag.map(str::to_owned));
            assert_eq!(split_image(reference), expected, "{reference}");
        }
    }

    /// An inspect answer in Docker's shape (Engine API `ContainerInspectResponse`), read by
    /// the same bollard types as the engine's answers.
    fn inspect_with(status: &str, exit_code: i64, oom_killed: bool) -> ContainerInspectResponse {
        serde_json::from_value(serde_json::json!({
            "Id": "4c1d0b7e8f2a",
            "RestartCount": 5,
            "State": {
                "Status": status, "Running": status == "running" || status == "restarting",
                "Paused": false, "Restarting": status == "restarting", "OOMKilled": oom_killed,
                "Dead": false, "Pid": 0, "ExitCode": exit_code, "Error": "",
                "StartedAt": "2024-05-01T10:00:00.123456789Z",
                "FinishedAt": "2024-05-01T10:05:00.5Z"
            }
        }))
        .unwrap()
    }

    #[test]
    fn lifecycle_fields_come_from_inspect_and_the_exit_code_only_once_the_process_ended() {
        let cases = [
            ("exited", 137, true, Some(137), "killed for memory"),
            ("exited", 0, false, Some(0), "a clean exit"),
            (
                "restarting",
                1,
                false,
                Some(1),
                "waiting to restart: the last exit",
            ),
            ("dead", 2, false, Some(2), "dead after exiting"),
            ("running", 0, false, None, "running: Docker's 0 is no exit"),
            (
                "paused",
                0,
                false,
                None,
                "paused: the process is still there",
            ),
            ("created", 0, false, None, "created: it never ran"),
        ];
        for (status, exit_code, oom_killed, expected_exit, why) in cases {
            let lifecycle = Lifecycle::of(Some(&inspect_with(status, exit_code, oom_killed)));
            assert_eq!(
                lifecycle,
                Lifecycle {
                    restart_count: Some(5),
                    exit_code: expected_exit,
                    oom_killed: Some(oom_killed),
                },
                "{why}"
            );
        }
    }

    #[test]
    fn without_an_inspect_answer_the_lifecycle_is_unknown() {
        assert_eq!(Lifecycle::of(None), Lifecycle::default());
    }

    #[test]
    fn docker_zero_time_means_never() {
        assert_eq!(docker_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(docker_time(Some("2024-05-01T10:00:00.123456789Z")).is_some());
    }
}
