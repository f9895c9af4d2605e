//! One scenario end to end: start a server (unless one was given), provision its hosts and
//! tokens, warm up, measure, check the rows in the database, read the server's peak memory and
//! stop it.
//!
//! With the COPY baseline (closed loop), the measured time is cut into rounds: a slice of load,
//! then a bulk COPY of as many posts over the same hosts and containers while the server idles.
//! The machine's speed drifts by ±15–25% within a minute (it is shared) and COPY slows as the
//! tables grow, so a baseline measured after the whole load compared the load with a different
//! machine and a bigger database; rounds a few seconds apart compare like with like, and their
//! spread is reported.

use std::time::Duration;

use anyhow::{Result, ensure};
use chrono::Utc;
use tokio_postgres::Client;

use crate::copy_baseline::{self, BULK_ROWS, CopyOutcome, CopyPlan};
use crate::database::{self, DbCounters, provision_hosts, snapshot_rows};
use crate::load::{Fleet, LoadOutcome, LoadSpec, Probe};
use crate::procfs;
use crate::replica::{LagMonitor, Phase};
use crate::server::{self as server_process, Server, ServerSettings};
use crate::streams::IdleStreams;

/// Rounds of load + bulk COPY in a scenario with the baseline.
const ROUNDS: u32 = 5;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub label: String,
    pub hosts: usize,
    pub containers: usize,
    pub duration: Duration,
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub baseline: bool,
    /// Tokens (of as many new hosts) created while the load is measured, evenly over it.
    pub churn_tokens: usize,
    /// Idle live event streams open on the server while the load is measured.
    pub event_streams: usize,
    /// Whether the spawned server evaluates the alert rules (as it does by default).
    pub alert_evaluation: bool,
}

/// The container cache's hits, and all its lookups, in the server's metrics.
const CACHE_LOOKUPS: [&str; 2] = [
    "nexus_container_cache_lookups_total{result=\"hit\"}",
    "nexus_container_cache_lookups_total",
];

/// Tokens created by one statement of the churn.
const CHURN_BATCH: usize = 100;

/// Where the scenario runs.
pub struct Target<'a> {
    /// A running server to use instead of spawning one.
    pub server_url: Option<&'a str>,
    pub server: ServerSettings<'a>,
    pub db: &'a mut Client,
    /// The URL of `db`, for the churn's own connection.
    pub db_url: &'a str,
    /// The standby's lag sampler (--replica), told the server's URL and each phase.
    pub monitor: Option<&'a LagMonitor>,
}

/// CPU seconds used during the measured phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub server: f64,
    /// Every `postgres` process on the machine (other databases' work included).
    pub postgres: f64,
    /// The backends of the connections doing the measured work: the server's to the bench
    /// database during the load, the bench's own during its COPY. Unlike `postgres`, nothing
    /// else that runs on the shared cluster is in it.
    pub backends: f64,
    pub bench: f64,
    pub machine: f64,
    /// Taken by the hypervisor for other guests: capacity this machine lost meanwhile.
    pub stolen: f64,
}

impl CpuSplit {
    /// Adds what was used between two samples; a backend counts only if both saw it (one
    /// that started or ended between them is in `postgres` instead, never negative here).
    fn add(&mut self, start: &CpuSample, end: &CpuSample) {
        self.server += end.server - start.server;
        self.postgres += end.postgres - start.postgres;
        self.backends += end
            .backends
            .iter()
            .filter_map(|(pid, at_end)| {
                let (_, at_start) = start.backends.iter().find(|(p, _)| p == pid)?;
                Some(at_end - at_start)
            })
            .sum::<f64>();
        self.bench += end.bench - start.bench;
        self.machine += end.machine.busy - start.machine.busy;
        self.stolen += end.machine.stolen - start.machine.stolen;
    }
}

#[derive(Debug, Clone, Default)]
struct CpuSample {
    server: f64,
    postgres: f64,
    /// CPU seconds of each live backend measured, by process id.
    backends: Vec<(u32, f64)>,
    bench: f64,
    machine: procfs::MachineCpu,
}

impl CpuSample {
    fn take(server_pid: Option<u32>, backends: &[u32]) -> Self {
        Self {
            server: server_pid.and_then(procfs::cpu_seconds).unwrap_or_default(),
            postgres: procfs::postgres_cpu_seconds(),
            backends: backends
                .iter()
                .filter_map(|&pid| Some((pid, procfs::cpu_seconds(pid)?)))
                .collect(),
            bench: procfs::cpu_seconds("self").unwrap_or_default(),
            machine: procfs::machine_cpu_seconds().unwrap_or_default(),
        }
    }
}

/// CPU counters summed over the measured slices, and the server's peak memory before the first
/// (the warm-up's), which is then reset so the end shows the measured slices' own peak.
struct PhaseProbe {
    pid: Option<u32>,
    /// The server's backends, looked up before each slice.
    backends: Vec<u32>,
    start: CpuSample,
    split: CpuSplit,
    started: bool,
    warmup_peak_rss_kib: Option<u64>,
    peak_was_reset: bool,
}

impl PhaseProbe {
    fn new(pid: Option<u32>) -> Self {
        Self {
            pid,
            backends: Vec::new(),
            start: CpuSample::default(),
            split: CpuSplit::default(),
            started: false,
            warmup_peak_rss_kib: None,
            peak_was_reset: false,
        }
    }
}

impl Probe for PhaseProbe {
    fn start(&mut self) {
        if let Some(pid) = self.pid
            && !self.started
        {
            self.warmup_peak_rss_kib = procfs::status_kib(pid, "VmHWM");
            self.peak_was_reset = procfs::reset_peak_rss(pid);
        }
        self.started = true;
        self.start = CpuSample::take(self.pid, &self.backends);
    }

    fn stop(&mut self) {
        self.split
            .add(&self.start, &CpuSample::take(self.pid, &self.backends));
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
    /// One bulk COPY slice after each measured slice (empty without the baseline).
    pub copy_bulk: Vec<CopyOutcome>,
    /// CPU seconds used during the bulk COPY slices.
    pub copy_cpu: CpuSplit,
    /// How long the spawned server's token index took to hold every token, measured before
    /// the warm-up (the load is measured on a settled index).
    pub token_index_settled: Option<Duration>,
    /// WAL and buffer reads over the measured slice (scenarios without the baseline, whose
    /// rounds would count COPY's too).
    pub db: Option<DbCounters>,
    /// Share of the stored containers the server's container cache knew unchanged.
    pub container_cache_hits: Option<f64>,
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

    /// Bulk COPY's rows/s over all its slices.
    pub fn copy_bulk_rows_per_second(&self) -> Option<f64> {
        let rows: u64 = self.copy_bulk.iter().map(|c| c.rows).sum();
        let secs: f64 = self.copy_bulk.iter().map(|c| c.elapsed.as_secs_f64()).sum();
        (secs > 0.0).then(|| rows as f64 / secs)
    }

    /// End-to-end ÷ bulk COPY rows/s over all slices (the target's ratio).
    pub fn ratio_to_bulk(&self) -> Option<f64> {
        Some(self.rows_per_second() / self.copy_bulk_rows_per_second()?)
    }

    /// The same ratio for each round: a slice and the COPY slice right after it.
    pub fn ratios_by_round(&self) -> Vec<f64> {
        self.load
            .slices
            .iter()
            .zip(&self.copy_bulk)
            .map(|(e2e, copy)| {
                e2e.rows_per_second(self.scenario.containers) / copy.rows_per_second()
            })
            .collect()
    }
}

/// Runs `scenario` on a server spawned with `settings` against the database at `url`, with
/// no replica to watch: the sweep's and the binary comparison's runs.
pub async fn run_spawned(
    index: usize,
    scenario: &Scenario,
    settings: ServerSettings<'_>,
    url: &str,
) -> Result<ScenarioResult> {
    let mut db = database::connect(url).await?;
    let target = Target {
        server_url: None,
        server: settings,
        db: &mut db,
        db_url: url,
        monitor: None,
    };
    run(index, scenario, target).await
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
    let phase = |phase: Phase| {
        if let Some(monitor) = target.monitor {
            monitor.phase(phase);
        }
    };
    if let Some(monitor) = target.monitor {
        monitor.server(&url);
    }
    let agents =
        provision_hosts(target.db, &format!("bench-s{index}-host"), scenario.hosts).await?;
    let token_index_settled = match server {
        Some(_) => {
            let tokens = database::token_count(target.db).await?;
            let took = server_process::token_index_settled(&url, tokens).await?;
            eprintln!(
                "bench: [{}] the token index took {:.2} s to hold all {tokens} tokens",
                scenario.label,
                took.as_secs_f64()
            );
            Some(took)
        }
        None => None,
    };
    let before = snapshot_rows(target.db).await?;
    let spec = LoadSpec {
        server_url: url.clone(),
        containers: scenario.containers,
        rate: scenario.rate,
        concurrency: scenario.concurrency,
    };
    let mut probe = PhaseProbe::new(server.as_ref().map(|s| s.pid));
    let mut fleet = Fleet::warm_up(&spec, &agents).await?;
    // Opened after the warm-up, whose new containers each write a `created` event.
    let mut streams = match scenario.event_streams {
        0 => None,
        count => Some(IdleStreams::open(target.db, &url, count).await?),
    };
    let settled = database::settle(target.db).await;
    eprintln!(
        "bench: [{}] vacuum, checkpoint and the kernel's writeback took {:.1} s",
        scenario.label,
        settled.as_secs_f64()
    );
    let rounds = if scenario.baseline { ROUNDS } else { 1 };
    let slice = scenario.duration / rounds;
    eprintln!(
        "bench: [{}] measuring {rounds} × {:.1} s{}",
        scenario.label,
        slice.as_secs_f64(),
        if scenario.baseline {
            ", each slice followed by a bulk COPY of its rows"
        } else {
            ""
        }
    );
    // Containers exist once every host has posted (the warm-up).
    let ids = if scenario.baseline {
        let hosts: Vec<i64> = agents.iter().map(|a| a.host_id).collect();
        database::container_ids(target.db, &hosts).await?
    } else {
        Default::default()
    };
    let bulk_posts = (BULK_ROWS / (scenario.containers + 1)).max(1);
    let copy_base = Utc::now() - chrono::Duration::minutes(50);
    let mut copy_bulk = Vec::new();
    let mut copy_cpu = CpuSplit::default();
    let own_backend = [database::own_backend(target.db).await?];
    let churn = (scenario.churn_tokens > 0).then(|| {
        let (url, prefix) = (target.db_url.to_owned(), format!("bench-s{index}-churn"));
        tokio::spawn(create_tokens(
            url,
            prefix,
            scenario.churn_tokens,
            scenario.duration,
        ))
    });
    let cache_before = server_process::metrics(&url, &CACHE_LOOKUPS).await.ok();
    let counters_before = DbCounters::take(target.db).await?;
    for round in 0..rounds {
        probe.backends = database::server_backends(target.db).await?;
        phase(Phase::Load);
        let load = fleet.slice(slice, &mut probe).await;
        phase(Phase::Other);
        if scenario.baseline && load.stored > 0 {
            // As many posts as the slice stored; each round's rows a minute apart, so no
            // recorded_at collides with another round's.
            let plan = CopyPlan {
                containers: scenario.containers,
                posts: load.stored,
                posts_per_batch: bulk_posts,
                base: copy_base - chrono::Duration::minutes(round.into()),
                budget: slice,
            };
            let before = CpuSample::take(None, &own_backend);
            phase(Phase::BulkCopy);
            let copy = copy_baseline::run(target.db, &agents, &ids, plan).await?;
            phase(Phase::Other);
            copy_cpu.add(&before, &CpuSample::take(None, &own_backend));
            eprintln!(
                "bench: [{}] round {}: end-to-end {:.0} rows/s, bulk COPY {:.0} rows/s",
                scenario.label,
                round + 1,
                load.rows_per_second(scenario.containers),
                copy.rows_per_second()
            );
            copy_bulk.push(copy);
        }
    }
    phase(Phase::Done);
    if let Some(streams) = streams.as_mut() {
        eprintln!(
            "bench: [{}] {} of {} event streams still open",
            scenario.label,
            streams.open_count(),
            scenario.event_streams
        );
    }
    drop(streams);
    let db_counters =
        (!scenario.baseline).then_some(counters_before.until(&DbCounters::take(target.db).await?));
    let cache_after = server_process::metrics(&url, &CACHE_LOOKUPS).await.ok();
    let container_cache_hits = match (cache_before, cache_after) {
        (Some(before), Some(after)) if after[1] > before[1] => {
            Some((after[0] - before[0]) / (after[1] - before[1]))
        }
        _ => None,
    };
    if let Some(churn) = churn {
        churn.await??;
    }
    let load = fleet.finish().await?;
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
    let copied: u64 = copy_bulk.iter().map(|c| c.posts).sum();
    let stored = (load.warmup.stored() + load.measured.stored() + copied) as i64;
    ensure!(
        rows_written == (stored, stored * scenario.containers as i64),
        "the database gained {rows_written:?} rows for {stored} stored snapshots \
         (COPY's included) of {} containers",
        scenario.containers
    );
    let copy_per_post = if copy_bulk.is_empty() {
        None
    } else {
        eprintln!(
            "bench: [{}] COPY baseline, one post per transaction",
            scenario.label
        );
        let plan = CopyPlan {
            containers: scenario.containers,
            posts: load.measured.stored(),
            posts_per_batch: 1,
            base: copy_base + chrono::Duration::minutes(10),
            budget: Duration::from_secs(10),
        };
        Some(copy_baseline::run(target.db, &agents, &ids, plan).await?)
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
        copy_cpu,
        token_index_settled,
        db: db_counters,
        container_cache_hits,
    })
}

/// Creates `count` hosts with a token each, in statements of [`CHURN_BATCH`] spread evenly
/// over `over`, as an administrator provisioning a fleet while it posts.
async fn create_tokens(url: String, prefix: String, count: usize, over: Duration) -> Result<()> {
    let db = database::connect(&url).await?;
    let batches = count.div_ceil(CHURN_BATCH);
    let every = over / batches.max(1) as u32;
    let started = tokio::time::Instant::now();
    for batch in 0..batches {
        tokio::time::sleep_until(started + every * batch as u32).await;
        let size = CHURN_BATCH.min(count - batch * CHURN_BATCH);
        provision_hosts(&db, &format!("{prefix}{batch}"), size).await?;
    }
    Ok(())
}
