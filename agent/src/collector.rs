//! Builds one [`TelemetryPayload`] from the host and the Docker Engine.

use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use nexus_contract::{HostPayload, TelemetryPayload};

use crate::docker::DockerCollector;
use crate::host::HostCollector;
use crate::limits::fit_to_contract;

/// Everything the agent reads, with the state needed for deltas between snapshots.
pub struct Collector {
    host: HostCollector,
    docker: DockerCollector,
}

impl Collector {
    pub fn new(host: HostCollector, docker: DockerCollector) -> Self {
        Self { host, docker }
    }

    /// Takes the baseline samples that rates are computed against; the result is discarded.
    /// Called once before the first snapshot so that it carries CPU figures too.
    pub async fn prime(&mut self) {
        self.host.collect();
        self.docker.collect().await;
    }

    /// One snapshot, recorded now (millisecond precision, UTC), fitted to the contract.
    pub async fn snapshot(&mut self) -> TelemetryPayload {
        let recorded_at: DateTime<FixedOffset> = Utc::now().trunc_subsecs(3).fixed_offset();
        let mut host = self.host.collect();
        let docker = self.docker.collect().await;
        let containers = docker.map(|docker| {
            host.facts.docker_version = docker.version;
            docker.containers
        });
        let mut payload = TelemetryPayload {
            recorded_at,
            host: HostPayload {
                metrics: host.metrics,
                facts: Some(host.facts),
            },
            containers,
        };
        fit_to_contract(&mut payload);
        payload
    }
}
