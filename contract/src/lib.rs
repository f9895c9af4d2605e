//! The telemetry payload an agent sends to `POST /agent/telemetry`: one definition shared by the
//! server (which derives the OpenAPI schema and its bounds from it) and the reference agent.
//!
//! The shape is the one agents of the original system already speak, so field names and types
//! must not change. Every optional field may be absent or `null`; unknown fields are ignored so
//! newer agents keep working against older servers.
//!
//! Bounds live in `oai(validator(...))` attributes only, so they appear in the OpenAPI document and
//! the server validates against exactly what the document says.

mod labels;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use labels::Labels;

/// Path the agent posts to.
pub const TELEMETRY_PATH: &str = "/agent/telemetry";

/// One snapshot of a host and its containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TelemetryPayload {
    /// When the agent took the snapshot (RFC 3339 with offset). Must fall inside the server's
    /// skew window: by default at most 1 hour in the past and 5 minutes in the future.
    pub recorded_at: DateTime<FixedOffset>,
    pub host: HostPayload,
    /// The host's containers, running or not, as many as Docker reports (the body size limit
    /// is the guard). Containers absent from a snapshot are left as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<ContainerPayload>>,
}

impl TelemetryPayload {
    /// The containers, empty when the field was absent or null.
    pub fn container_list(&self) -> &[ContainerPayload] {
        self.containers.as_deref().unwrap_or_default()
    }
}

/// The host part of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HostPayload {
    pub metrics: HostMetrics,
    /// Slowly changing facts; a null or absent fact never blanks a stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<HostFacts>,
}

/// Host metrics at `recorded_at`. Counters are cumulative as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HostMetrics {
    /// Busy share of all CPUs since the previous snapshot, in percent.
    #[cfg_attr(
        feature = "openapi",
        oai(validator(minimum(value = "0"), maximum(value = "100")))
    )]
    pub cpu_percent: Option<f64>,
    /// Memory in use (total − available), MiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub memory_used_mb: Option<i64>,
    /// Physical memory, MiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub memory_total_mb: Option<i64>,
    /// Used space on the monitored mount, GiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub disk_used_gb: Option<i64>,
    /// Size of the monitored mount, GiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub disk_total_gb: Option<i64>,
    /// Bytes received on the host's physical interfaces since boot (not loopback, bridges or
    /// containers' veths, whose traffic the physical ones already carry).
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub network_rx_bytes: Option<i64>,
    /// Bytes sent on the host's physical interfaces since boot (as `network_rx_bytes`).
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub network_tx_bytes: Option<i64>,
    /// 1-minute load average.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub load_average: Option<f64>,
}

/// Facts about the host; each is stored only when given (non-null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct HostFacts {
    /// Number of CPUs.
    #[cfg_attr(
        feature = "openapi",
        oai(validator(minimum(value = "1"), maximum(value = "1024")))
    )]
    pub cpu_count: Option<i32>,
    /// MiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub memory_total_mb: Option<i64>,
    /// GiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub disk_total_gb: Option<i64>,
    /// Operating system, e.g. `Debian GNU/Linux 12 (bookworm)`.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 80)))]
    pub os: Option<String>,
    /// Docker Engine version, e.g. `27.1.1`.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 32)))]
    pub docker_version: Option<String>,
}

/// One container as the Docker Engine reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ContainerPayload {
    /// Docker's container id; unique within one host and within one payload.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 80)))]
    pub container_id: String,
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 255)))]
    pub name: String,
    /// Image name without the tag, e.g. `nginx`.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 255)))]
    pub image: String,
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 128)))]
    pub image_tag: Option<String>,
    /// Docker's human status, e.g. `Up About a minute (health: starting)`.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 255)))]
    pub status: Option<String>,
    /// Docker's state: `running`, `exited`, `restarting`, …
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 32)))]
    pub state: Option<String>,
    /// `healthy`, `unhealthy`, `starting` or `none`.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 16)))]
    pub health_status: Option<String>,
    /// Published ports in `docker ps` notation, e.g. `0.0.0.0:8080->80/tcp`. As many and as
    /// long as Docker reports them (IPv6 port ranges, hundreds of UDP ports); the body size
    /// limit is the guard.
    pub ports: Option<Vec<String>>,
    /// Container labels, as many and as long as Docker reports them (OCI description labels
    /// run past 1,024 characters); the body size limit is the guard.
    pub labels: Option<Labels>,
    pub metrics: Option<ContainerMetrics>,
    pub started_at: Option<DateTime<FixedOffset>>,
    pub finished_at: Option<DateTime<FixedOffset>>,
    /// How often the Docker Engine restarted the container (`RestartCount` of `docker
    /// inspect`). Optional: agents that do not send it get no `restarted` events.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub restart_count: Option<i64>,
    /// The exit code of the container's last run (`State.ExitCode`); null while it runs.
    pub exit_code: Option<i64>,
    /// Whether the kernel's OOM killer ended the container's last run (`State.OOMKilled`).
    pub oom_killed: Option<bool>,
}

/// Container metrics at `recorded_at`. Counters are cumulative as Docker reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ContainerMetrics {
    /// CPU use as `docker stats` computes it; may exceed 100 on several cores.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub cpu_percent: Option<f64>,
    /// Memory in use excluding page cache, MiB.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub memory_usage_mb: Option<i64>,
    /// Memory limit, MiB (the host's memory when unlimited).
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub memory_limit_mb: Option<i64>,
    /// Bytes received since the container started.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub network_rx_bytes: Option<i64>,
    /// Bytes sent since the container started.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub network_tx_bytes: Option<i64>,
    /// Bytes read from block devices since the container started.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub block_read_bytes: Option<i64>,
    /// Bytes written to block devices since the container started.
    #[cfg_attr(feature = "openapi", oai(validator(minimum(value = "0"))))]
    pub block_write_bytes: Option<i64>,
}
