//! The report: a Markdown table of the scenarios (stdout), the COPY comparison, the CPU split,
//! and the ingest targets checked against the numbers.

use crate::copy_baseline::CopyOutcome;
use crate::scenario::{CpuSplit, ScenarioResult};

pub fn print(results: &[ScenarioResult], machine: &str) {
    println!("{machine}\n");
    println!(
        "| scenario | C | hosts | agents | load | req/s | container rows/s | p50 ms | p95 ms | p99 ms | errors (non-204) | server peak RSS (with warm-up) |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|");
    for r in results {
        let s = &r.scenario;
        let m = &r.load.measured;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} ({}) |",
            s.label,
            s.containers,
            s.hosts,
            s.concurrency,
            s.rate
                .map_or("closed loop".to_owned(), |r| format!("{r:.0} req/s")),
            r.requests_per_second(),
            r.container_rows_per_second(),
            m.percentile_ms(0.50),
            m.percentile_ms(0.95),
            m.percentile_ms(0.99),
            m.errors_text(),
            mib(r.peak_rss_kib),
            mib(r.peak_rss_with_warmup_kib),
        );
    }
    println!();
    println!(
        "| scenario | end-to-end rows/s (host+container) | COPY rows/s, 1 post/txn | ratio | COPY rows/s, bulk | ratio | ratio by round |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in results {
        let (Some(per_post), Some(bulk), Some(ratio)) = (
            r.copy_per_post,
            r.copy_bulk_rows_per_second(),
            r.ratio_to_bulk(),
        ) else {
            continue;
        };
        let e2e = r.rows_per_second();
        let rounds: Vec<String> = r
            .ratios_by_round()
            .iter()
            .map(|q| format!("{q:.2}"))
            .collect();
        println!(
            "| {} | {:.0} | {:.0} ({} posts in {:.1} s) | {:.2} | {:.0} ({} posts/txn) | {:.2} | {} |",
            r.scenario.label,
            e2e,
            per_post.rows_per_second(),
            per_post.posts,
            per_post.elapsed.as_secs_f64(),
            e2e / per_post.rows_per_second(),
            bulk,
            r.copy_bulk[0].posts_per_batch,
            ratio,
            rounds.join(" / "),
        );
    }
    println!();
    println!(
        "| scenario | measured s | stored posts | body bytes/post | CPU s: server | postgres | of which the working connections' backends | bench | whole machine | stolen by the hypervisor | connections reopened | rate limit/min | pool |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let m = &r.load.measured;
        println!(
            "| {} | {:.1} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
            r.scenario.label,
            r.load.elapsed.as_secs_f64(),
            m.stored(),
            m.body_bytes.checked_div(m.requests()).unwrap_or(0),
            r.cpu.server,
            r.cpu.postgres,
            r.cpu.backends,
            r.cpu.bench,
            r.cpu.machine,
            stolen(&r.cpu, r.load.elapsed.as_secs_f64()),
            m.connections_opened,
            r.rate_limit_per_minute
                .map_or("server's".to_owned(), |l| l.to_string()),
            r.pool_size
                .map_or("default (16)".to_owned(), |p| p.to_string()),
        );
        if !r.copy_bulk.is_empty() {
            let c = &r.copy_cpu;
            let copy_seconds: f64 = r.copy_bulk.iter().map(|c| c.elapsed.as_secs_f64()).sum();
            println!(
                "| {}: its bulk COPY | {:.1} | {} | | | {:.1} | {:.1} | {:.1} | {:.1} | {} | | | |",
                r.scenario.label,
                copy_seconds,
                r.copy_bulk.iter().map(|c| c.posts).sum::<u64>(),
                c.postgres,
                c.backends,
                c.bench,
                c.machine,
                stolen(c, copy_seconds),
            );
        }
    }
    per_post(results);
    let mut warmup = crate::stats::Observed::default();
    for r in results {
        warmup.merge(&r.load.warmup);
    }
    println!();
    println!(
        "Warm-up (one post per host, not measured): {} posts, errors: {}. Database rows checked \
         against 204 answers: all scenarios match.",
        warmup.requests(),
        warmup.errors_text()
    );
    for r in results {
        if r.scenario.rate.is_some()
            && let Some(slow) = r.load.measured.slow_text()
        {
            println!("{}: {slow}.", r.scenario.label);
        }
    }
    targets(results);
}

/// What one stored post cost, on both sides, and what it wrote.
pub fn per_post(results: &[ScenarioResult]) {
    println!();
    println!(
        "| scenario | posts/s | server CPU ms/post | PostgreSQL CPU ms/post (working backends) | (all postgres processes) | WAL bytes/post | full-page images/post | FPI share of WAL records | buffer hit ratio | container cache hits | token index settled in |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let posts = r.load.measured.stored().max(1) as f64;
        let ms = |seconds: f64| format!("{:.3}", 1000.0 * seconds / posts);
        let db = r.db.as_ref();
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario.label,
            r.posts_per_second(),
            ms(r.cpu.server),
            ms(r.cpu.backends),
            ms(r.cpu.postgres),
            db.map_or("–".into(), |d| format!("{:.0}", d.wal_bytes / posts)),
            db.map_or("–".into(), |d| format!("{:.2}", d.wal_fpi / posts)),
            db.map_or("–".into(), |d| format!(
                "{:.1}%",
                100.0 * d.wal_fpi / d.wal_records.max(1.0)
            )),
            db.map_or("–".into(), |d| format!("{:.4}", d.hit_ratio())),
            r.container_cache_hits
                .map_or("–".into(), |h| format!("{:.1}%", 100.0 * h)),
            r.token_index_settled
                .map_or("–".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
    }
    println!(
        "\nWAL counts are the whole cluster's (pg_stat_wal), so read them on a quiet cluster; \
         buffer hits are this database's."
    );
}

fn targets(results: &[ScenarioResult]) {
    println!("\nTargets:");
    let find = |label: &str| results.iter().find(|r| r.scenario.label == label);
    if let Some(r) = find("C=20 max")
        && let Some(ratio) = r.ratio_to_bulk()
    {
        let per_post: Option<CopyOutcome> = r.copy_per_post;
        println!(
            "- end-to-end ÷ COPY at C=20 ≥ 0.50: {:.2} against bulk COPY ({}; rounds {}), {:.2} \
             against one-post-per-transaction COPY",
            ratio,
            verdict(ratio >= 0.5),
            spread(&r.ratios_by_round()),
            per_post.map_or(f64::NAN, |p| r.rows_per_second() / p.rows_per_second())
        );
    }
    if let Some(r) = find("C=20 half") {
        let p99 = r.load.measured.percentile_ms(0.99);
        println!(
            "- p99 < 50 ms at half the maximum throughput: {p99:.1} ms ({}; {} of the machine \
             stolen by the hypervisor meanwhile)",
            verdict(p99 < 50.0),
            stolen(&r.cpu, r.load.elapsed.as_secs_f64()),
        );
    }
    if let Some(r) = find("500 agents")
        && let Some(kib) = r.peak_rss_kib
    {
        let measured = kib as f64 / 1024.0;
        println!(
            "- server peak RSS < 64 MiB with 500 keep-alive agents: {measured:.1} MiB in the \
             measured phase ({}); {} including the warm-up burst (all 500 agents posting at once)",
            verdict(measured < 64.0),
            mib(r.peak_rss_with_warmup_kib)
        );
    }
    let unexpected: u64 = results
        .iter()
        .map(|r| r.load.measured.unexpected_errors() + r.load.warmup.unexpected_errors())
        .sum();
    let limited: u64 = results
        .iter()
        .map(|r| r.load.measured.statuses.get(&429).copied().unwrap_or(0))
        .sum();
    println!(
        "- zero errors other than deliberate 429s: {unexpected} unexpected, {limited} × 429 ({})",
        verdict(unexpected == 0)
    );
}

/// "min–max" of the rounds' ratios.
fn spread(ratios: &[f64]) -> String {
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}–{max:.2}")
}

/// Stolen CPU seconds, and their share of what the machine's cores had over `seconds`.
fn stolen(cpu: &CpuSplit, seconds: f64) -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    format!(
        "{:.1} s ({:.0}%)",
        cpu.stolen,
        100.0 * cpu.stolen / (seconds * cores)
    )
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}
