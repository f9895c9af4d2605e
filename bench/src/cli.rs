//! Command line of `nexus-bench`: one scenario from flags, or the default matrix (`--matrix`).

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "nexus-bench",
    about = "Load-tests POST /agent/telemetry and compares it with a binary COPY baseline"
)]
pub struct Cli {
    /// PostgreSQL URL of the TimescaleDB server. Without --server-url a fresh database
    /// `bench_<timestamp>` is created on that server for the run and dropped afterwards;
    /// with --server-url this must be the running server's own database. Not used with
    /// --replica (the run then has a primary of its own).
    #[arg(long, env = "DATABASE_URL", required_unless_present = "replica")]
    pub database_url: Option<String>,

    /// Run the default matrix (C=20 closed loop, C=20 at half its max rate, C=0, C=200, and
    /// 500 keep-alive agents at a low rate) instead of one scenario.
    #[arg(long)]
    pub matrix: bool,

    /// Sweep the fleet size instead (--sweep-hosts × --containers): each fleet in a fresh
    /// database, open loop at the rate it posts at 30 s (hosts ÷ 30 per second) after a warm-up
    /// that creates every host and container; reports latency, CPU, WAL and buffer hits per post
    /// and whether the box kept up.
    #[arg(long, conflicts_with_all = ["matrix", "lifecycle", "replica", "server_url"])]
    pub sweep: bool,

    /// Measure one alert evaluation cycle instead: for each of --alert-hosts (× --containers),
    /// a fresh database seeded with SQL and the default rules, then the server's evaluator's
    /// cycles; reports the first cycle and the p50 of --alert-cycles after it.
    #[arg(long, conflicts_with_all = ["matrix", "lifecycle", "replica", "server_url", "sweep"])]
    pub alert_evaluation: bool,

    /// Fleet sizes of --alert-evaluation.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
    pub alert_hosts: Vec<usize>,

    /// Timed cycles of --alert-evaluation after the first (the median is reported).
    #[arg(long, default_value_t = 9)]
    pub alert_cycles: usize,

    /// Fleet sizes of --sweep.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 50_000, 100_000])]
    pub sweep_hosts: Vec<usize>,

    /// Seconds between two posts of one host in --sweep.
    #[arg(long, default_value_t = 30.0)]
    pub sweep_interval: f64,

    /// Tokens (of new hosts) created during the measurement (one scenario).
    #[arg(long, default_value_t = 0)]
    pub churn_tokens: usize,

    /// Run the scenario first with the server's alert evaluation off, then on (its default, the
    /// default rules) with delivery running: a webhook endpoint for the kinds operators are paged
    /// for (alerts, liveness, container trouble) at a receiver in this process, and
    /// --alertmanager-url when given; both in this run (one scenario).
    #[arg(long)]
    pub compare_alert_evaluation: bool,

    /// An Alertmanager the server sends to in --compare-alert-evaluation's second scenario
    /// (`eval "$(scripts/alertmanager)"` installs one; start it on a loopback port).
    #[arg(long, requires = "compare_alert_evaluation")]
    pub alertmanager_url: Option<String>,

    /// A second server binary (B) to compare with --server-bin (A): the scenario runs four
    /// times, A B B A, each in a fresh database with the same hosts and payloads and its own
    /// COPY baseline; the report ends with each run's ratio to bulk COPY, posts/s and
    /// PostgreSQL CPU per post, and B's mean over A's (one scenario).
    #[arg(long, conflicts_with_all = ["matrix", "lifecycle", "replica", "server_url", "sweep", "alert_evaluation", "compare_alert_evaluation", "event_streams"])]
    pub compare_server_bin: Option<PathBuf>,

    /// Idle live event streams (`/api/v1/events/stream`) held open on the server: the scenario
    /// runs first without them, then again with them (one scenario).
    #[arg(long, default_value_t = 0)]
    pub event_streams: usize,

    /// The container cache's bound given to a spawned server, in MiB (absent: its default).
    #[arg(long)]
    pub container_cache_mib: Option<u64>,

    /// Hosts, each with its own token (one scenario).
    #[arg(long, default_value_t = 64)]
    pub hosts: usize,

    /// Containers per post.
    #[arg(long, default_value_t = 20)]
    pub containers: usize,

    /// Measured seconds of each scenario (after one warm-up post per host).
    #[arg(long, default_value_t = 15)]
    pub duration: u64,

    /// Fixed target rate in requests/s over all agents (open loop, latency measured from each
    /// request's scheduled start). Absent: closed loop at maximum rate.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Agents in flight, each with its own keep-alive connection (default: --hosts). Hosts are
    /// dealt out to agents round-robin.
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Use an already running server (e.g. http://127.0.0.1:8080) instead of spawning one.
    /// Its memory is then not reported.
    #[arg(long)]
    pub server_url: Option<String>,

    /// The server binary to spawn (built with `cargo build --release`).
    #[arg(long, default_value = "target/release/nexus-telemetry")]
    pub server_bin: PathBuf,

    /// Per-token rate limit given to a spawned server (its production default is 60).
    #[arg(long, default_value_t = 60)]
    pub rate_limit_per_minute: u32,

    /// Connection pool size given to a spawned server (absent: the server's default).
    #[arg(long)]
    pub pool_size: Option<usize>,

    /// Skip the binary COPY baseline after closed-loop scenarios.
    #[arg(long)]
    pub no_baseline: bool,

    /// Measure storage and reads instead of ingest: seed realistic samples, report bytes per
    /// sample before and after compression, rollup sizes, a 30-day projection, and the read
    /// API and fleet-wide queries against the same answers from raw rows.
    #[arg(long)]
    pub lifecycle: bool,

    /// Hosts (of 20 containers each) seeded by --lifecycle.
    #[arg(long, default_value_t = 100)]
    pub lifecycle_hosts: i64,

    /// Days of 30 s samples seeded by --lifecycle (the first one alone measures storage).
    #[arg(long, default_value_t = 7)]
    pub lifecycle_days: i64,

    /// Timed runs of each read in --lifecycle (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub lifecycle_runs: usize,

    /// Keep the bench database instead of dropping it at the end.
    #[arg(long)]
    pub keep_database: bool,

    /// Run the scenario on a throwaway primary with a streaming standby (pg_basebackup) in
    /// --pg-root, both on loopback ports, instead of on DATABASE_URL's server; the spawned
    /// server reads from the standby (--read-database-url), and the standby's lag is sampled
    /// once a second and reported. Both clusters are deleted at the end.
    #[arg(long, conflicts_with_all = ["matrix", "lifecycle", "server_url", "keep_database"])]
    pub replica: bool,

    /// The Debian root with PostgreSQL 17 and TimescaleDB that --replica runs its clusters in
    /// (`eval "$(scripts/scaleout-tools)"` exports it).
    #[arg(long, env = "NEXUS_PG_ROOT")]
    pub pg_root: Option<PathBuf>,

    /// Name of the scenario in the report (one scenario).
    #[arg(long, default_value = "custom")]
    pub label: String,
}
