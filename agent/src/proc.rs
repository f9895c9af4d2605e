//! Parsers for the `/proc` files the agent reads, and a [`ProcRoot`] to read them from.
//!
//! Every parser takes the file's text, so tests feed fixtures; [`ProcRoot`] only decides where
//! the files live (`/proc` normally, `<host-root>/proc` when the agent runs in a container with
//! the host's `/proc` mounted, or a fixture directory in tests).

use std::io;
use std::path::{Path, PathBuf};

/// The directory holding the kernel's `/proc` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRoot(PathBuf);

impl ProcRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Reads `/proc/<name>` below this root.
    pub fn read(&self, name: &str) -> io::Result<String> {
        std::fs::read_to_string(self.0.join(name))
    }
}

impl Default for ProcRoot {
    fn default() -> Self {
        Self::new("/proc")
    }
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Ticks spent idle or waiting for I/O.
    pub idle: u64,
    /// All ticks (busy and idle). `guest` time is already part of `user`, so it is not added.
    pub total: u64,
}

impl CpuTimes {
    /// Parses the first (`cpu `) line of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal guest guest_nice; kernels before 2.6.11
        // stop after iowait or irq, so absent columns count as zero.
        let column = |index: usize| fields.get(index).copied().unwrap_or(0);
        if fields.len() < 4 {
            return None;
        }
        let idle = column(3) + column(4);
        let total = (0..8).map(column).sum();
        Some(Self { idle, total })
    }

    /// Busy share of all CPUs between `earlier` and `self`, in percent (0–100).
    ///
    /// `None` when no time passed or a counter went backwards (a reset, e.g. after a
    /// suspend/resume on some kernels or a different host root), instead of a bogus number.
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let idle = self.idle.checked_sub(earlier.idle)?;
        if total == 0 || idle > total {
            return None;
        }
        let busy = (total - idle) as f64 / total as f64 * 100.0;
        Some(round2(busy.clamp(0.0, 100.0)))
    }
}

/// Number of CPUs listed in `/proc/stat` (`cpu0`, `cpu1`, …).
pub fn cpu_count(stat: &str) -> Option<i32> {
    let count = stat
        .lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .and_then(|rest| rest.split(char::is_whitespace).next())
                .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    i32::try_from(count).ok().filter(|&count| count > 0)
}

/// Memory figures from `/proc/meminfo`, in KiB as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_kib: u64,
    pub available_kib: u64,
}

impl MemInfo {
    /// Parses `/proc/meminfo`. Kernels before 3.14 lack `MemAvailable`; there it is estimated
    /// as `MemFree + Buffers + Cached`, as `free` does.
    pub fn parse(meminfo: &str) -> Option<Self> {
        let value = |key: &str| -> Option<u64> {
            meminfo.lines().find_map(|line| {
                let rest = line.strip_prefix(key)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        };
        let total_kib = value("MemTotal")?;
        let available_kib = value("MemAvailable").or_else(|| {
            Some(value("MemFree")? + value("Buffers").unwrap_or(0) + value("Cached").unwrap_or(0))
        })?;
        Some(Self {
            total_kib,
            available_kib: available_kib.min(total_kib),
        })
    }

    pub fn total_mib(&self) -> i64 {
        kib_to_mib(self.total_kib)
    }

    /// Memory in use: total − available.
    pub fn used_mib(&self) -> i64 {
        kib_to_mib(self.total_kib - self.available_kib)
    }
}

fn kib_to_mib(kib: u64) -> i64 {
    i64::try_from(kib / 1024).unwrap_or(i64::MAX)
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average_1m(loadavg: &str) -> Option<f64> {
    loadavg
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|load| load.is_finite() && *load >= 0.0)
}

/// Bytes received and sent, summed over the host's physical interfaces: loopback and the
/// virtual interfaces of containers and bridges are left out, since a container's traffic is
/// counted once on its veth, again on the bridge and a third time on the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetTotals {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl NetTotals {
    /// Parses `/proc/net/dev`: two header lines, then `iface: rx_bytes … (8 rx columns) tx_bytes …`.
    pub fn parse(net_dev: &str) -> Option<Self> {
        let mut totals = Self::default();
        let mut seen_interface = false;
        for line in net_dev.lines() {
            let Some((name, counters)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.is_empty() || name.contains('|') {
                continue; // header
            }
            let columns: Vec<u64> = counters
                .split_whitespace()
                .map(|column| column.parse().ok())
                .collect::<Option<_>>()?;
            let (Some(&rx), Some(&tx)) = (columns.first(), columns.get(8)) else {
                return None;
            };
            seen_interface = true;
            if is_virtual_interface(name) {
                continue;
            }
            totals.rx_bytes = totals.rx_bytes.saturating_add(rx);
            totals.tx_bytes = totals.tx_bytes.saturating_add(tx);
        }
        seen_interface.then_some(totals)
    }
}

/// Name prefixes of virtual interfaces: loopback, Docker's bridges and veth pairs, libvirt and
/// LXC bridges, the overlay and CNI interfaces of Swarm and Kubernetes networks, tunnels, and
/// bonds and teams (their members are counted). Anything else (`eth*`, `en*`, `wl*`, …) is
/// counted as physical.
const VIRTUAL_INTERFACE_PREFIXES: [&str; 17] = [
    "lo", "docker", "veth", "br-", "virbr", "lxc", "cni", "flannel", "cali", "vxlan", "weave",
    "kube-", "tun", "tap", "wg", "bond", "team",
];

/// Whether an interface is virtual by its name (see [`VIRTUAL_INTERFACE_PREFIXES`]); a VLAN
/// interface (`eth0.100`) is too, its traffic being its parent's.
pub fn is_virtual_interface(name: &str) -> bool {
    name.contains('.')
        || VIRTUAL_INTERFACE_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// `PRETTY_NAME` from an `os-release` file, falling back to `NAME VERSION`.
pub fn os_pretty_name(os_release: &str) -> Option<String> {
    let value = |key: &str| -> Option<String> {
        os_release.lines().find_map(|line| {
            let raw = line.trim().strip_prefix(key)?.strip_prefix('=')?.trim();
            let unquoted = raw
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| raw.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(raw);
            let unescaped = unquoted.replace("\\\"", "\"").replace("\\\\", "\\");
            Some(unescaped).filter(|v| !v.is_empty())
        })
    };
    value("PRETTY_NAME").or_else(|| {
        let name = value("NAME")?;
        Some(match value("VERSION") {
            Some(version) => format!("{name} {version}"),
            None => name,
        })
    })
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line_without_steal_and_guest_columns_still_parses() {
        let times = CpuTimes::parse("cpu  10 0 10 70 10\ncpu0 10 0 10 70 10\n").unwrap();
        assert_eq!(
            times,
            CpuTimes {
                idle: 80,
                total: 100
            }
        );
    }

    #[test]
    fn os_release_without_pretty_name_falls_back_to_name_and_version() {
        let os = os_pretty_name("NAME=Alpine\nVERSION='3.20'\n").unwrap();
        assert_eq!(os, "Alpine 3.20");
    }
}
