//! One scenario end to end: start a server (unless one was given), provision its hosts and
//! tokens, run the load, check the rows in the database, read the server's peak memory, stop
//! it, then (closed loop) run the COPY baseline over the same hosts and containers.

use std::time::Duration;

use anyhow::{Result, ensure};
use chrono::Utc;
use tokio_postgres::Client;

use crate::copy_baseline::{self, BULK_ROWS, CopyOutcome, CopyPlan};
use crate::database::{self, provision_hosts, snapshot_rows};
use crate::load::{self, LoadOutcome, LoadSpec, Probe};
use crate::procfs;
use crate::server::{Server, ServerSettings};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub label: String,
    pub hosts: usize,
    pub containers: usize,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub baseline: bool,
}

/// Where the scenario runs.
pub struct Target<'a> {
    /// A running server to use instead of spawning one.
    pub server_url: Option<&'a str>,
    pub server: ServerSettings<'a>,
    pub db: &'a mut Client,
}

/// CPU seconds used during the measured phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub server: f64,
    pub postgres: f64,
    pub bench: f64,
    pub machine: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    server: f64,
    postgres: f64,
    bench: f64,
    machine: f64,
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.and_then(procfs::cpu_seconds).unwrap_or_default(),
            postgres: procfs::postgres_cpu_seconds(),
            bench: procfs::cpu_seconds("self").unwrap_or_default(),
            machine: procfs::machine_busy_seconds().unwrap_or_default(),
        }
    }
}

/// At the start of the measured phase: CPU counters, and the server's peak memory so far
/// (warm-up included), which is then reset so the end shows the measured phase's own peak.
struct PhaseProbe {
    pid: Option<u32>,
    start: CpuSample,
    split: CpuSplit,
    warmup_peak_rss_kib: Option<u64>,
    peak_was_reset: bool,
}

impl Probe for PhaseProbe {
    fn start(&mut self) {
        if let Some(pid) = self.pid {
            self.warmup_peak_rss_kib = procfs::status_kib(pid, "VmHWM");
            self.peak_was_reset = procfs::reset_peak_rss(pid);
        }
        self.start = CpuSample::take(self.pid);
    }

    fn stop(&mut self) {
        let end = CpuSample::take(self.pid);
        self.split = CpuSplit {
            server: end.server - self.start.server,
            postgres: end.postgres - self.start.postgres,
            bench: end.bench - self.start.bench,
            machine: end.machine - self.start.machine,
        };
    }
}

#[derive(Debug)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub load: LoadOutcome,
    /// Server's peak resident memory during the measured phase (None if it could not be reset).
    pub peak_rss_kib: Option<u64>,
    /// Server's peak resident memory over warm-up and measurement.
    pub peak_rss_with_warmup_kib: Option<u64>,
    pub rate_limit_per_minute: Option<u32>,
    pub pool_size: Option<usize>,
    pub cpu: CpuSplit,
    pub copy_per_post: Option<CopyOutcome>,
    pub copy_bulk: Option<CopyOutcome>,
}

impl ScenarioResult {
    pub fn requests_per_second(&self) -> f64 {
        self.load.measured.requests() as f64 / self.load.elapsed.as_secs_f64()
    }

    /// Stored snapshots per second.
    pub fn posts_per_second(&self) -> f64 {
        self.load.measured.stored() as f64 / self.load.elapsed.as_secs_f64()
    }

    pub fn container_rows_per_second(&self) -> f64 {
        self.posts_per_second() * self.scenario.containers as f64
    }

    /// Host + container rows per second, the unit of the COPY comparison.
    pub fn rows_per_second(&self) -> f64 {
        self.posts_per_second() * (self.scenario.containers + 1) as f64
    }
}

pub async fn run(index: usize, scenario: &Scenario, target: Target<'_>) -> Result<ScenarioResult> {
    eprintln!(
        "bench: [{}] {} hosts, C={}, {} agents, {}",
        scenario.label,
        scenario.hosts,
        scenario.containers,
        scenario.concurrency,
        scenario
            .rate
            .map_or("closed loop".to_owned(), |r| format!("{r:.0} req/s"))
    );
    let server = match target.server_url {
        Some(_) => None,
        None => Some(Server::spawn(&target.server).await?),
    };
    let url = match (&server, target.server_url) {
        (Some(server), _) => server.url.clone(),
        (None, Some(url)) => url.to_owned(),
        (None, None) => unreachable!(),
    };
    let agents =
        provision_hosts(target.db, &format!("bench-s{index}-host"), scenario.hosts).await?;
    let before = snapshot_rows(target.db).await?;
    let spec = LoadSpec {
        server_url: url,
        containers: scenario.containers,
        duration: scenario.duration,
        rate: scenario.rate,
        concurrency: scenario.concurrency,
    };
    let mut probe = PhaseProbe {
        pid: server.as_ref().map(|s| s.pid),
        start: CpuSample::default(),
        split: CpuSplit::default(),
        warmup_peak_rss_kib: None,
        peak_was_reset: false,
    };
    let load = load::run(&spec, &agents, &mut probe).await?;
    let peak_rss_kib = server.as_ref().and_then(Server::peak_rss_kib);
    let peak_rss_with_warmup_kib = match (peak_rss_kib, probe.warmup_peak_rss_kib) {
        (Some(a), Some(b)) if probe.peak_was_reset => Some(a.max(b)),
        (peak, _) => peak,
    };
    let peak_rss_kib = peak_rss_kib.filter(|_| probe.peak_was_reset);
    if let Some(server) = server {
        server.stop().await?;
    }
    let after = snapshot_rows(target.db).await?;
    let rows_written = (after.0 - before.0, after.1 - before.1);
    let stored = (load.warmup.stored() + load.measured.stored()) as i64;
    ensure!(
        rows_written == (stored, stored * scenario.containers as i64),
        "the database gained {rows_written:?} rows for {stored} stored snapshots of {} containers",
        scenario.containers
    );
    let (copy_per_post, copy_bulk) = if scenario.baseline && load.measured.stored() > 0 {
        let ids = database::container_ids(
            target.db,
            &agents.iter().map(|a| a.host_id).collect::<Vec<_>>(),
        )
        .await?;
        eprintln!(
            "bench: [{}] COPY baseline, one post per transaction",
            scenario.label
        );
        let plan = CopyPlan {
            containers: scenario.containers,
            posts: load.measured.stored(),
            posts_per_batch: 1,
            base: Utc::now() - chrono::Duration::minutes(40),
            budget: Duration::from_secs(10),
        };
        let per_post = copy_baseline::run(target.db, &agents, &ids, plan).await?;
        let bulk_posts = (BULK_ROWS / (scenario.containers + 1)).max(1);
        eprintln!(
            "bench: [{}] COPY baseline, {bulk_posts} posts per transaction",
            scenario.label
        );
        let plan = CopyPlan {
            posts_per_batch: bulk_posts,
            base: plan.base - chrono::Duration::minutes(10),
            ..plan
        };
        let bulk = copy_baseline::run(target.db, &agents, &ids, plan).await?;
        (Some(per_post), Some(bulk))
    } else {
        (None, None)
    };
    let spawned = target.server_url.is_none();
    Ok(ScenarioResult {
        scenario: scenario.clone(),
        load,
        peak_rss_kib,
        peak_rss_with_warmup_kib,
        rate_limit_per_minute: spawned.then_some(target.server.rate_limit_per_minute),
        pool_size: target.server.pool_size,
        cpu: probe.split,
        copy_per_post,
        copy_bulk,
    })
}
