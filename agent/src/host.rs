//! Host metrics and facts: `/proc` (through [`ProcRoot`]), `statvfs` of the monitored mount and
//! `os-release`.
//!
//! CPU use is a delta of `/proc/stat` between two calls of [`HostCollector::collect`]; the first
//! call only records a baseline and reports no `cpu_percent`.

use std::path::{Path, PathBuf};

use nexus_contract::{HostFacts, HostMetrics};

use crate::proc::{self, CpuTimes, MemInfo, NetTotals, ProcRoot};

const GIB: u64 = 1024 * 1024 * 1024;

/// Where the host's files are: `/` normally, the mount of the host's root when the agent runs in
/// a container, or a fixture directory in tests.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub proc: ProcRoot,
    /// `os-release` candidates, first readable wins.
    pub os_release: Vec<PathBuf>,
    /// The mount whose space is reported as `disk_*_gb`.
    pub disk_mount: PathBuf,
}

impl HostPaths {
    /// The paths below `host_root` (`/` for the machine the agent runs on); `disk_mount` is taken
    /// relative to that root too.
    pub fn under(host_root: &Path, disk_mount: &Path) -> Self {
        let below = |path: &Path| host_root.join(path.strip_prefix("/").unwrap_or(path));
        Self {
            proc: ProcRoot::new(host_root.join("proc")),
            os_release: vec![
                below(Path::new("/etc/os-release")),
                below(Path::new("/usr/lib/os-release")),
            ],
            disk_mount: below(disk_mount),
        }
    }
}

/// Disk size and use of one mount, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

impl DiskSpace {
    /// `statvfs` of `mount`, counted as `df` does: used = blocks − free blocks.
    pub fn of(mount: &Path) -> Option<Self> {
        let stat = nix::sys::statvfs::statvfs(mount).ok()?;
        let fragment = stat.fragment_size() as u64;
        let blocks = stat.blocks() as u64;
        let free = stat.blocks_free() as u64;
        Some(Self {
            total_bytes: blocks.saturating_mul(fragment),
            used_bytes: blocks.saturating_sub(free).saturating_mul(fragment),
        })
    }

    pub fn total_gib(&self) -> i64 {
        bytes_to_gib(self.total_bytes)
    }

    pub fn used_gib(&self) -> i64 {
        bytes_to_gib(self.used_bytes)
    }
}

/// Whole GiB, rounded to the nearest.
fn bytes_to_gib(bytes: u64) -> i64 {
    i64::try_from((bytes + GIB / 2) / GIB).unwrap_or(i64::MAX)
}

/// Reads the host's metrics and facts, remembering the previous CPU sample for deltas.
#[derive(Debug)]
pub struct HostCollector {
    paths: HostPaths,
    previous_cpu: Option<CpuTimes>,
}

/// One reading of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostReading {
    pub metrics: HostMetrics,
    /// Facts the host itself tells (`docker_version` is added by the Docker collector).
    pub facts: HostFacts,
}

impl HostCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            previous_cpu: None,
        }
    }

    /// Reads every metric it can; one that cannot be read is left `None` rather than failing
    /// the snapshot.
    pub fn collect(&mut self) -> HostReading {
        let proc = &self.paths.proc;
        let stat = proc.read("stat").ok();
        let cpu = stat.as_deref().and_then(CpuTimes::parse);
        let cpu_percent = match (cpu, self.previous_cpu) {
            (Some(now), Some(before)) => now.busy_percent_since(&before),
            _ => None,
        };
        if cpu.is_some() {
            self.previous_cpu = cpu;
        }
        let memory = proc
            .read("meminfo")
            .ok()
            .as_deref()
            .and_then(MemInfo::parse);
        let network = proc
            .read("net/dev")
            .ok()
            .as_deref()
            .and_then(NetTotals::parse);
        let load_average = proc
            .read("loadavg")
            .ok()
            .as_deref()
            .and_then(proc::load_average_1m);
        let disk = DiskSpace::of(&self.paths.disk_mount);
        let metrics = HostMetrics {
            cpu_percent,
            memory_used_mb: memory.map(|m| m.used_mib()),
            memory_total_mb: memory.map(|m| m.total_mib()),
            disk_used_gb: disk.map(|d| d.used_gib()),
            disk_total_gb: disk.map(|d| d.total_gib()),
            network_rx_bytes: network.map(|n| saturating_i64(n.rx_bytes)),
            network_tx_bytes: network.map(|n| saturating_i64(n.tx_bytes)),
            load_average,
        };
        let facts = HostFacts {
            cpu_count: stat.as_deref().and_then(proc::cpu_count),
            memory_total_mb: metrics.memory_total_mb,
            disk_total_gb: metrics.disk_total_gb,
            os: self.os_name(),
            docker_version: None,
        };
        HostReading { metrics, facts }
    }

    fn os_name(&self) -> Option<String> {
        self.paths
            .os_release
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok())
            .as_deref()
            .and_then(proc::os_pretty_name)
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
