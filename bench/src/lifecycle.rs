//! `nexus-bench --lifecycle`: storage per sample and read speed on realistic data.
//!
//! Seeds `--lifecycle-hosts` hosts × 20 containers of 30 s samples, one day at a time, with
//! values that move like real ones (random walks with two decimals; counters that grow at a
//! per-container pace and reset on restarts). Reports bytes per container sample before and
//! after compression (indexes included), rollup bytes per row, a projection for 1,000 hosts ×
//! 20 containers × 30 days, and the read API and fleet-wide queries against the same answer
//! computed from raw rows in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio_postgres::Client;

use crate::http::Connection;

const CONTAINERS_PER_HOST: i64 = 20;
const SAMPLES_PER_DAY: i64 = 2880;

/// One day of samples, `day` days before today's midnight, for every container and host.
/// Per container: a CPU random walk (two decimals), memory wandering by a few MiB, counters
/// growing at the container's own pace (idle, moderate or busy; block reads mostly idle), and
/// a restart (every counter back to zero) about once a day.
const SEED_DAY: &str = "
WITH steps AS (
    SELECT c.id AS container_id, c.host_id, i,
           date_trunc('day', now()) - make_interval(days => $1::int) + i * interval '30 seconds' AS recorded_at,
           round(((random() - 0.5) * 3)::numeric, 2) AS cpu_step,
           ((random() - 0.5) * 6)::int AS mem_step,
           (c.id % 3) AS pace,
           random() < 1.0 / 2880 AS restart
    FROM containers c, generate_series(0, 2879) AS i
), walks AS (
    SELECT *, sum(restart::int) OVER w AS run,
           sum(cpu_step) OVER w AS cpu_walk, sum(mem_step) OVER w AS mem_walk,
           (CASE pace WHEN 0 THEN random() * 400 WHEN 1 THEN random() * 40000 ELSE random() * 900000 END)::bigint AS rx,
           (CASE pace WHEN 0 THEN random() * 200 WHEN 1 THEN random() * 15000 ELSE random() * 300000 END)::bigint AS tx,
           (CASE WHEN random() < 0.05 THEN (random() * 64)::int * 4096 ELSE 0 END)::bigint AS rd,
           ((random() * (pace * 8))::int * 4096)::bigint AS wr
    FROM steps WINDOW w AS (PARTITION BY container_id ORDER BY i)
)
INSERT INTO container_metric_snapshots
    (container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, memory_limit_mb,
     network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes)
SELECT container_id, host_id, recorded_at,
       greatest(0, 5 + (container_id % 7) * 8 + cpu_walk % 40)::real,
       greatest(16, 128 + (container_id % 13) * 48 + mem_walk % 200),
       1024 * (1 + container_id % 4),
       sum(rx) OVER r, sum(tx) OVER r, sum(rd) OVER r, sum(wr) OVER r
FROM walks WINDOW r AS (PARTITION BY container_id, run ORDER BY i)";

/// The hosts' rows of the same day: CPU and memory walks, counters summing their containers'.
const SEED_HOST_DAY: &str = "
INSERT INTO host_metric_snapshots
    (host_id, recorded_at, cpu_percent, memory_used_mb, memory_total_mb, disk_used_gb,
     disk_total_gb, network_rx_bytes, network_tx_bytes, load_average)
SELECT host_id, recorded_at, least(100, sum(cpu_percent) / 4)::real,
       sum(memory_usage_mb) + 900, 16384, 40 + host_id % 50, 200,
       sum(network_rx_bytes), sum(network_tx_bytes),
       round((sum(cpu_percent) / 100)::numeric, 2)::real
FROM container_metric_snapshots
WHERE recorded_at >= date_trunc('day', now()) - make_interval(days => $1::int)
  AND recorded_at < date_trunc('day', now()) - make_interval(days => $1::int - 1)
GROUP BY host_id, recorded_at";

pub struct Options {
    pub hosts: i64,
    pub days: i64,
    pub runs: usize,
}

pub async fn run(db: &Client, server_url: &str, options: &Options) -> Result<()> {
    let community = db
        .query_one("SHOW timescaledb.license", &[])
        .await?
        .get::<_, String>(0)
        == "timescale";
    let containers = options.hosts * CONTAINERS_PER_HOST;
    eprintln!(
        "lifecycle: seeding {} hosts × {CONTAINERS_PER_HOST} containers",
        options.hosts
    );
    db.execute(
        "INSERT INTO hosts (name, slug) SELECT 'h' || i, 'h-' || i FROM generate_series(1, $1::int8) i",
        &[&options.hosts],
    )
    .await?;
    db.execute(
        "INSERT INTO containers (host_id, container_id, name, image, first_seen_at, recorded_at)
         SELECT h.id, 'c' || h.id || '-' || j, 'app-' || j, 'img', now(), now()
         FROM hosts h, generate_series(1, $1::int8) j",
        &[&CONTAINERS_PER_HOST],
    )
    .await?;

    println!("## Storage and reads ({})\n", edition_name(community));
    // Day 1 alone for the storage figures.
    seed_day(db, options.days).await?;
    let rows = SAMPLES_PER_DAY * containers;
    let raw_bytes = table_bytes(db, "container_metric_snapshots").await?;
    println!(
        "- one day of 30 s samples for {containers} containers ({rows} rows): **{:.1} bytes per container sample** uncompressed, indexes included ({raw_bytes} bytes)",
        raw_bytes as f64 / rows as f64
    );
    let host_raw = table_bytes(db, "host_metric_snapshots").await?;
    let mut per_sample = raw_bytes as f64 / rows as f64;
    let mut per_host_sample = host_raw as f64 / (SAMPLES_PER_DAY * options.hosts) as f64;
    let (mut per_5m_row, mut per_1h_row) = (0.0, 0.0);
    if community {
        compress_all(db, &["host_metric_snapshots", "container_metric_snapshots"]).await?;
        let compressed = table_bytes(db, "container_metric_snapshots").await?;
        per_sample = compressed as f64 / rows as f64;
        per_host_sample = table_bytes(db, "host_metric_snapshots").await? as f64
            / (SAMPLES_PER_DAY * options.hosts) as f64;
        println!(
            "- after compression: **{per_sample:.2} bytes per container sample** ({compressed} bytes; {:.1}× smaller); host rows {per_host_sample:.2} bytes each",
            raw_bytes as f64 / compressed as f64
        );
    }
    for day in (1..options.days).rev() {
        eprintln!("lifecycle: seeding day -{day}");
        seed_day(db, day).await?;
    }
    // Uncompressed bytes per row of each level, for what waits uncompressed (below).
    let mut plain_5m_row = 0.0;
    let mut plain_1h_row = 0.0;
    if community {
        refresh(db).await?;
        plain_5m_row = rollup_bytes_per_row(db, "container_metrics_5m").await?;
        plain_1h_row = rollup_bytes_per_row(db, "container_metrics_1h").await?;
        compress_all(
            db,
            &[
                "host_metric_snapshots",
                "container_metric_snapshots",
                "host_metrics_5m",
                "container_metrics_5m",
                "host_metrics_1h",
                "container_metrics_1h",
            ],
        )
        .await?;
        // Rollup rows compress in batches of up to 1,000 per series, so they are measured over
        // every seeded day, not one.
        per_5m_row = rollup_bytes_per_row(db, "container_metrics_5m").await?;
        per_1h_row = rollup_bytes_per_row(db, "container_metrics_1h").await?;
        println!(
            "- rollups over {} days, compressed: {per_5m_row:.1} bytes per container 5-minute row, {per_1h_row:.1} per 1-hour row ({plain_5m_row:.1} and {plain_1h_row:.1} before compression)",
            options.days
        );
    }
    // 1,000 hosts × 20 containers × 30 days, host rows and rollups (host rollups ≈ 1/20 of the
    // container ones) included.
    let containers_fleet = 1000.0 * 20.0;
    // Every series, a host counted as one more container (its rows are about as big).
    let series = 21.0 / 20.0 * containers_fleet;
    let samples = containers_fleet * SAMPLES_PER_DAY as f64 * 30.0;
    let host_samples = 1000.0 * SAMPLES_PER_DAY as f64 * 30.0;
    let rollups = series * 30.0 * (288.0 * per_5m_row + 24.0 * per_1h_row);
    let total = samples * per_sample + host_samples * per_host_sample + rollups;
    println!(
        "- projected for 1,000 hosts × 20 containers × 30 days: **{:.1} GB** ({:.1} GB raw container samples + {:.1} GB host rows + {:.1} GB rollups)",
        total / 1e9,
        samples * per_sample / 1e9,
        host_samples * per_host_sample / 1e9,
        rollups / 1e9
    );
    if community {
        // A chunk is compressed once its whole range is older than its policy's compress_after,
        // so up to a chunk interval plus that age of each level is on disk uncompressed.
        let raw_hours = uncompressed_hours(db, "container_metric_snapshots").await?;
        let hours_5m = uncompressed_hours(db, "container_metrics_5m").await?;
        let hours_1h = uncompressed_hours(db, "container_metrics_1h").await?;
        let raw = series * 120.0 * raw_hours * raw_bytes as f64 / rows as f64;
        let five = series * 12.0 * hours_5m * plain_5m_row;
        let hourly = series * hours_1h * plain_1h_row;
        println!(
            "- plus what waits uncompressed, at most: **{:.1} GB** (raw rows of the newest {raw_hours:.0} h: {:.1} GB; 5-minute rows of {hours_5m:.0} h: {:.1} GB; 1-hour rows of {hours_1h:.0} h: {:.1} GB)",
            (raw + five + hourly) / 1e9,
            raw / 1e9,
            five / 1e9,
            hourly / 1e9
        );
    }
    println!();

    db.batch_execute("ANALYZE").await?;
    reads(db, server_url, options).await
}

fn edition_name(community: bool) -> &'static str {
    if community {
        "community edition, license timescale"
    } else {
        "Apache edition: no compression, rollups are views over raw rows"
    }
}

async fn seed_day(db: &Client, day: i64) -> Result<()> {
    let day = day as i32;
    db.execute(SEED_DAY, &[&day])
        .await
        .context("seeding container samples")?;
    db.execute(SEED_HOST_DAY, &[&day])
        .await
        .context("seeding host samples")?;
    Ok(())
}

async fn table_bytes(db: &Client, table: &str) -> Result<i64> {
    Ok(db
        .query_one("SELECT hypertable_size($1::text::regclass)", &[&table])
        .await?
        .get(0))
}

/// Bytes per materialized row of a rollup, indexes included.
async fn rollup_bytes_per_row(db: &Client, view: &str) -> Result<f64> {
    let table: String = db
        .query_one(
            "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
             FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
            &[&view],
        )
        .await?
        .get(0);
    let row = db
        .query_one(
            &format!(
                "SELECT hypertable_size('{table}'::regclass)::float8, count(*)::float8 FROM {table}"
            ),
            &[],
        )
        .await?;
    Ok(row.get::<_, f64>(0) / row.get::<_, f64>(1))
}

/// Hours of `relation` that can be uncompressed at once: its chunk interval (its materialized
/// hypertable's, for a rollup) plus the compression policy's `compress_after`.
async fn uncompressed_hours(db: &Client, relation: &str) -> Result<f64> {
    Ok(db
        .query_one(
            "SELECT (extract(epoch FROM d.time_interval)
                     + extract(epoch FROM (j.config->>'compress_after')::interval))::float8 / 3600
             FROM timescaledb_information.jobs j
             LEFT JOIN timescaledb_information.continuous_aggregates ca ON ca.view_name = j.hypertable_name
             JOIN timescaledb_information.dimensions d
               ON d.hypertable_name = coalesce(ca.materialization_hypertable_name, j.hypertable_name)
             WHERE j.proc_name = 'policy_compression' AND j.hypertable_name = $1",
            &[&relation],
        )
        .await
        .with_context(|| format!("chunk interval and compression age of {relation}"))?
        .get(0))
}

async fn compress_all(db: &Client, relations: &[&str]) -> Result<()> {
    for relation in relations {
        db.execute(
            "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks($1::text::regclass) c",
            &[relation],
        )
        .await
        .with_context(|| format!("compressing {relation}"))?;
    }
    Ok(())
}

async fn refresh(db: &Client) -> Result<()> {
    for view in [
        "host_metrics_5m",
        "container_metrics_5m",
        "host_metrics_1h",
        "container_metrics_1h",
    ] {
        db.batch_execute(&format!(
            "CALL refresh_continuous_aggregate('{view}', NULL, date_trunc('hour', now()))"
        ))
        .await
        .with_context(|| format!("refreshing {view}"))?;
    }
    Ok(())
}

/// A pair to time: the rollup way and the same answer from raw rows.
struct Pair {
    label: &'static str,
    rollup: String,
    raw: String,
}

fn fleet_queries(days: i64) -> Vec<Pair> {
    let range = format!("now() - interval '{days} days'");
    vec![
        Pair {
            label: "CPU per host, 5-minute buckets, 7 days (fleet)",
            rollup: format!(
                "SELECT bucket, host_id, cpu_percent_avg FROM host_metrics_5m WHERE bucket >= time_bucket('5 minutes', {range})"
            ),
            raw: format!(
                "SELECT time_bucket('5 minutes', recorded_at) AS bucket, host_id, avg(cpu_percent)::float8 FROM host_metric_snapshots WHERE recorded_at >= time_bucket('5 minutes', {range}) GROUP BY 1, 2"
            ),
        },
        Pair {
            label: "top 10 containers by average memory over the range (materialized hourly rows)",
            rollup: format!(
                "SELECT container_id, sum(memory_usage_mb_avg * samples) / sum(samples) AS mem FROM container_metrics_1h_materialized WHERE bucket >= time_bucket('1 hour', {range}) GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            ),
            raw: format!(
                "SELECT container_id, avg(memory_usage_mb) AS mem FROM container_metric_snapshots WHERE recorded_at >= time_bucket('1 hour', {range}) GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            ),
        },
        Pair {
            label: "network throughput per host, hourly bytes/s, 7 days (fleet)",
            rollup: format!(
                "SELECT bucket, host_id, network_rx_bytes_increase / nullif(counter_seconds, 0) FROM host_metrics_1h WHERE bucket >= time_bucket('1 hour', {range})"
            ),
            raw: format!(
                "SELECT time_bucket('1 hour', w) AS bucket, host_id, sum(growth) / nullif(sum(seconds), 0)
                 FROM (SELECT time_bucket('5 minutes', recorded_at) AS w, host_id,
                              counter_increase(network_rx_bytes ORDER BY recorded_at) AS growth,
                              extract(epoch FROM max(recorded_at) - min(recorded_at)) AS seconds
                       FROM host_metric_snapshots WHERE recorded_at >= time_bucket('1 hour', {range})
                       GROUP BY 1, 2) windows
                 GROUP BY 1, 2"
            ),
        },
    ]
}

/// The read API's host query as it runs on raw rows (the Apache edition's view definition,
/// inlined): 15-minute buckets over the range, counters as rates within 5-minute windows.
fn raw_host_series(host: i64, days: i64) -> String {
    format!(
        "SELECT time_bucket('15 minutes', w), sum(n), sum(cpu * n) / sum(n), min(cpu_min), max(cpu_max),
                sum(growth) / nullif(sum(seconds), 0)
         FROM (SELECT time_bucket('5 minutes', recorded_at) AS w, count(*) AS n,
                      avg(cpu_percent) AS cpu, min(cpu_percent) AS cpu_min, max(cpu_percent) AS cpu_max,
                      counter_increase(network_rx_bytes ORDER BY recorded_at) AS growth,
                      extract(epoch FROM max(recorded_at) - min(recorded_at)) AS seconds
               FROM host_metric_snapshots
               WHERE host_id = {host} AND recorded_at >= time_bucket('15 minutes', now() - interval '{days} days')
               GROUP BY 1) windows
         GROUP BY 1 ORDER BY 1"
    )
}

async fn reads(db: &Client, server_url: &str, options: &Options) -> Result<()> {
    let token = format!("nxk_{}", sha256_hex("lifecycle bench admin"));
    let hash = sha256_hex(&token);
    db.execute(
        "INSERT INTO admin_tokens (name, hashed_token) VALUES ('bench', $1)",
        &[&hash],
    )
    .await?;
    let days = options.days;
    println!(
        "### Reads over {days} days ({} hosts × {CONTAINERS_PER_HOST} containers; p50 of {} runs each)\n",
        options.hosts, options.runs
    );
    println!("| read | rollups p50 | same answer from raw rows p50 | raw ÷ rollups |");
    println!("|---|---|---|---|");
    let mut connection = Connection::new(server_url)?;
    let path = format!(
        "/api/v1/hosts/1/metrics?from={}&to={}&bucket=15m",
        urlencode(&db_time(db, &format!("now() - interval '{days} days'")).await?),
        urlencode(&db_time(db, "now()").await?)
    );
    let mut api = Vec::new();
    for _ in 0..options.runs {
        let started = Instant::now();
        let (status, body) = connection.get(&path, &token).await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        }
        api.push(started.elapsed());
    }
    let raw = time_query(db, &raw_host_series(1, days), options.runs).await?;
    row("read API: one host, 15-minute buckets", &api, &raw);
    for pair in fleet_queries(days) {
        let rollup = time_query(db, &pair.rollup, options.runs).await?;
        let raw = time_query(db, &pair.raw, options.runs).await?;
        row(pair.label, &rollup, &raw);
    }
    println!();
    Ok(())
}

fn row(label: &str, fast: &[Duration], slow: &[Duration]) {
    let (fast, slow) = (p50(fast), p50(slow));
    println!(
        "| {label} | {:.1} ms | {:.1} ms | {:.0}× |",
        fast.as_secs_f64() * 1e3,
        slow.as_secs_f64() * 1e3,
        slow.as_secs_f64() / fast.as_secs_f64()
    );
}

fn p50(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

async fn time_query(db: &Client, sql: &str, runs: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let rows = db.query(sql, &[]).await.with_context(|| sql.to_owned())?;
        times.push(started.elapsed());
        if rows.is_empty() {
            bail!("no rows from {sql}");
        }
    }
    Ok(times)
}

async fn db_time(db: &Client, expression: &str) -> Result<String> {
    Ok(db
        .query_one(
            &format!(
                "SELECT to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            ),
            &[],
        )
        .await?
        .get(0))
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A")
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}
