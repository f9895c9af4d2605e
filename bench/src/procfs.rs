//! Reads of `/proc`: a process's memory high-water mark and CPU time, and the CPU time of all
//! PostgreSQL processes, so the report can say where the two shared cores went.

use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Resets a process's `VmHWM` to its current resident size (`5` → `clear_refs`, Linux ≥ 4.0),
/// so the next read is the peak of what follows.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User + system CPU seconds of a process (`self` for this one).
pub fn cpu_seconds(pid: impl std::fmt::Display) -> Option<f64> {
    let (_, fields) = stat(&format!("/proc/{pid}/stat"))?;
    cpu_of(&fields)
}

/// CPU seconds of every process whose command is `postgres` (the database's backends and
/// background workers), the exited ones included: a postmaster's children's times count as its
/// own once it has reaped them, so the sum never goes backwards when a backend ends.
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| stat(&format!("{}/stat", e.path().display())))
        .filter(|(comm, _)| comm == "postgres")
        .filter_map(|(_, fields)| Some(cpu_of(&fields)? + reaped_children_cpu_of(&fields)?))
        .sum()
}

/// CPU seconds of the whole machine (all cores) from `/proc/stat`: busy (every process and the
/// kernel), and stolen (the hypervisor ran another guest on a core this machine wanted).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub stolen: f64,
}

pub fn machine_cpu_seconds() -> Option<MachineCpu> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: u64 = cpu.iter().take(7).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
    Some(MachineCpu {
        busy: busy as f64 / TICKS_PER_SECOND,
        stolen: *cpu.get(7)? as f64 / TICKS_PER_SECOND,
    })
}

/// The command name and the fields after it of a `stat` file.
fn stat(path: &str) -> Option<(String, Vec<String>)> {
    let text = fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields = text[close + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((comm, fields))
}

/// utime + stime: fields 14 and 15 of `stat`, i.e. 11 and 12 after the command name.
fn cpu_of(fields: &[String]) -> Option<f64> {
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// cutime + cstime: fields 16 and 17 of `stat`, the CPU of the children it has waited for.
fn reaped_children_cpu_of(fields: &[String]) -> Option<f64> {
    let cutime: f64 = fields.get(13)?.parse().ok()?;
    let cstime: f64 = fields.get(14)?.parse().ok()?;
    Some((cutime + cstime) / TICKS_PER_SECOND)
}

/// A `kB` field of `/proc/meminfo`, in MiB.
pub fn meminfo_mib(field: &str) -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024)
    })
}
