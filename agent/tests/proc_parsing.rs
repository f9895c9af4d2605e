//! Host collection on fixture `/proc` trees (`tests/fixtures/`), including counter resets and
//! kernels that predate `MemAvailable`.

use std::path::{Path, PathBuf};

use nexus_agent::host::{HostCollector, HostPaths};
use nexus_agent::proc::{CpuTimes, MemInfo, NetTotals, ProcRoot};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn read_fixture(path: &str) -> String {
    std::fs::read_to_string(fixture(path)).unwrap()
}

/// A writable copy of the `host` fixture, so a test can change files between two readings.
fn host_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("host"), dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn cpu_percent_is_the_busy_share_of_ticks_between_two_samples() {
    let before = CpuTimes::parse(&read_fixture("host/proc/stat")).unwrap();
    let after = CpuTimes::parse(&read_fixture("stat-later/stat")).unwrap();
    // 1000 ticks passed, 750 of them idle or iowait.
    assert_eq!(after.busy_percent_since(&before), Some(25.0));
}

#[test]
fn a_cpu_counter_reset_yields_no_cpu_percent_rather_than_a_bogus_one() {
    let before = CpuTimes::parse(&read_fixture("host/proc/stat")).unwrap();
    let after_reset = CpuTimes::parse(&read_fixture("stat-reset/stat")).unwrap();
    assert_eq!(after_reset.busy_percent_since(&before), None);
}

#[test]
fn the_same_cpu_sample_twice_yields_no_cpu_percent() {
    let sample = CpuTimes::parse(&read_fixture("host/proc/stat")).unwrap();
    assert_eq!(sample.busy_percent_since(&sample), None);
}

#[test]
fn memory_used_is_total_minus_available() {
    let memory = MemInfo::parse(&read_fixture("host/proc/meminfo")).unwrap();
    assert_eq!(memory.total_mib(), 7860);
    assert_eq!(memory.used_mib(), 2000); // (8048640 − 6000640) KiB
}

#[test]
fn kernels_without_mem_available_use_free_plus_buffers_plus_cached() {
    let memory = MemInfo::parse(&read_fixture("meminfo-old-kernel/meminfo")).unwrap();
    assert_eq!(memory.total_mib(), 2000);
    assert_eq!(memory.used_mib(), 1000); // 2048000 − (300000 + 100000 + 624000) KiB
}

#[test]
fn network_bytes_count_physical_interfaces_only_not_loopback_bridges_or_veths() {
    let totals = NetTotals::parse(&read_fixture("host/proc/net/dev")).unwrap();
    assert_eq!(
        totals.rx_bytes, 1_000_000,
        "eth0 only, not docker0 or veth1a2b3c"
    );
    assert_eq!(totals.tx_bytes, 500_000);
    let more = "Inter-|\n face |\n\
        enp3s0: 10 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n\
        br-4f2a: 20 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n\
        wlp2s0: 40 0 0 0 0 0 0 0 4 0 0 0 0 0 0 0\n\
        cni0: 80 0 0 0 0 0 0 0 8 0 0 0 0 0 0 0\n";
    assert_eq!(
        NetTotals::parse(more),
        Some(NetTotals {
            rx_bytes: 50,
            tx_bytes: 5
        })
    );
}

#[test]
fn a_host_with_only_loopback_reports_zero_network_bytes() {
    let net_dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n";
    assert_eq!(NetTotals::parse(net_dev), Some(NetTotals::default()));
}

#[test]
fn the_first_reading_has_no_cpu_percent_and_the_second_has_the_delta() {
    let root = host_copy();
    let mut collector = HostCollector::new(HostPaths::under(root.path(), Path::new("/")));

    let first = collector.collect();
    assert_eq!(first.metrics.cpu_percent, None);

    std::fs::copy(fixture("stat-later/stat"), root.path().join("proc/stat")).unwrap();
    let second = collector.collect();
    assert_eq!(second.metrics.cpu_percent, Some(25.0));
}

#[test]
fn after_a_counter_reset_the_next_reading_measures_from_the_new_baseline() {
    let root = host_copy();
    let mut collector = HostCollector::new(HostPaths::under(root.path(), Path::new("/")));
    collector.collect();

    std::fs::copy(fixture("stat-reset/stat"), root.path().join("proc/stat")).unwrap();
    assert_eq!(collector.collect().metrics.cpu_percent, None);

    std::fs::write(
        root.path().join("proc/stat"),
        "cpu  150 0 50 1850 10 0 0 0 0 0\ncpu0 75 0 25 925 5 0 0 0 0 0\n",
    )
    .unwrap();
    assert_eq!(collector.collect().metrics.cpu_percent, Some(5.0)); // 50 busy of 1000
}

#[test]
fn a_reading_of_the_fixture_host_carries_every_metric_and_fact() {
    let root = host_copy();
    let mut collector = HostCollector::new(HostPaths::under(root.path(), Path::new("/")));
    let reading = collector.collect();

    let metrics = &reading.metrics;
    assert_eq!(metrics.memory_total_mb, Some(7860));
    assert_eq!(metrics.memory_used_mb, Some(2000));
    assert_eq!(metrics.load_average, Some(0.42));
    assert_eq!(metrics.network_rx_bytes, Some(1_000_000));
    assert_eq!(metrics.network_tx_bytes, Some(500_000));
    assert!(
        metrics.disk_total_gb.is_some(),
        "statvfs of the fixture root"
    );
    assert!(metrics.disk_used_gb <= metrics.disk_total_gb);

    let facts = &reading.facts;
    assert_eq!(facts.cpu_count, Some(2));
    assert_eq!(facts.memory_total_mb, Some(7860));
    assert_eq!(facts.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!(
        facts.docker_version, None,
        "filled in by the Docker collector"
    );
}

#[test]
fn missing_proc_files_leave_their_metrics_empty_instead_of_failing() {
    let empty = tempfile::tempdir().unwrap();
    let mut collector = HostCollector::new(HostPaths::under(empty.path(), Path::new("/")));
    let reading = collector.collect();
    assert_eq!(reading.metrics.memory_used_mb, None);
    assert_eq!(reading.metrics.load_average, None);
    assert_eq!(reading.facts.os, None);
}

#[test]
fn proc_root_reads_files_below_its_path() {
    let root = ProcRoot::new(fixture("host/proc"));
    assert!(root.read("loadavg").unwrap().starts_with("0.42"));
}
