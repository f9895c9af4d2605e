//! How much the server's body parse costs over a plain typed parse: `json_body::parse` (the
//! payload reader, which checks the schema as it reads) against
//! `serde_json::from_slice::<TelemetryPayload>` (no checks), and
//! against the `Value` path (`from_slice::<Value>` + `Schema::check` + `from_value`, what
//! `parse` did for every body before it had a fast path), at 0, 20 and 200 containers.
//!
//! Run with `cargo bench --bench parse` (`PARSE_BENCH_ROUNDS` sets the rounds, default 101).
//! The variants take turns in every round so that noise from other processes on a shared
//! machine hits them alike; each round times, per variant, as many parses as the slowest does in
//! about 5 ms. Reported: the median time per parse, the median of the per-round ratios to the
//! typed parse, and the heap allocations of one parse (counted by this binary's allocator).
//!
//! The payload is `fixtures/telemetry-20.json`, written by the load generator of `nexus-bench`
//! (`HostFeed::new(7, 20)` after one `advance`, serialised as the agent does): 24.5 KB, 20
//! Docker-Compose containers with 12–13 labels each. The 0- and 200-container payloads are it
//! without containers, and with its containers repeated ten times under fresh ids.
//!
//! On the 2-core development machine (shared, so only the ratios travel), µs per parse:
//!
//! | containers | typed parse | `parse` before the fast path | `parse` with it |
//! |---:|---:|---:|---:|
//! | 0   | 1.0 | 3.3 (3.19x, 44 allocations)     | 1.6 (1.54x, 2 allocations)    |
//! | 20  | 78  | 159 (2.00x, 1969 allocations)   | 96 (1.23x, 707 allocations)   |
//! | 200 | 773 | 1863 (2.40x, 19252 allocations) | 968 (1.25x, 7019 allocations) |
//!
//! With the payload reader (2026-11-30, another run): C=0 0.59 µs (0.57x), C=20 32.3 µs (0.60x,
//! 224 allocations), C=200 348 µs (0.58x, 2162 allocations); the typed parse 1.05 / 53.9 / 601.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexus_contract::TelemetryPayload;
use nexus_telemetry::api::json_body;
use nexus_telemetry::domain::payload::check::Schema;
use serde_json::Value;

/// The system allocator, counting allocations so each variant's can be reported.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FIXTURE: &str = include_str!("fixtures/telemetry-20.json");
const BATCH_TARGET: Duration = Duration::from_millis(5);

type Variant = (&'static str, fn(&[u8]));

const VARIANTS: [Variant; 3] = [
    ("typed parse (no checks)", |bytes| {
        black_box(serde_json::from_slice::<TelemetryPayload>(bytes).unwrap());
    }),
    ("json_body::parse", |bytes| {
        black_box(json_body::parse::<TelemetryPayload>(bytes).unwrap());
    }),
    ("Value path", |bytes| {
        let value: Value = serde_json::from_slice(bytes).unwrap();
        assert!(Schema::of::<TelemetryPayload>().check(&value).is_empty());
        black_box(serde_json::from_value::<TelemetryPayload>(value).unwrap());
    }),
];

fn main() {
    let rounds = std::env::var("PARSE_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(101);
    for containers in [0, 20, 200] {
        let bytes = payload(containers);
        println!(
            "C={containers} ({:.1} KB), median of {rounds} rounds:",
            bytes.len() as f64 / 1000.0
        );
        report(&bytes, rounds);
    }
}

/// The fixture with `containers` containers: none, its own, or its own repeated.
fn payload(containers: usize) -> Vec<u8> {
    let mut value: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let own = value["containers"].as_array().expect("containers").clone();
    let list = (0..containers)
        .map(|i| {
            let mut container = own[i % own.len()].clone();
            let id = container["container_id"].as_str().expect("an id");
            container["container_id"] = format!("{}{:04x}", &id[..60], i).into();
            container
        })
        .collect();
    value["containers"] = Value::Array(list);
    let bytes = serde_json::to_vec(&value).expect("serialisable");
    json_body::parse::<TelemetryPayload>(&bytes).expect("the server accepts the payload");
    bytes
}

fn report(bytes: &[u8], rounds: usize) {
    let batch = batch_size(bytes);
    // times[variant][round], in µs per parse
    let mut times = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    for _ in 0..rounds {
        for (variant, (_, run)) in VARIANTS.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..batch {
                run(bytes);
            }
            times[variant].push(start.elapsed().as_secs_f64() * 1e6 / batch as f64);
        }
    }
    for (variant, (name, run)) in VARIANTS.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds)
            .map(|round| times[variant][round] / times[0][round])
            .collect();
        println!(
            "  {name:<24} {:>9.2} µs  {:>5.2}x typed  {:>6} allocations",
            median(times[variant].clone()),
            median(ratios),
            allocations(|| run(bytes)),
        );
    }
}

/// How many parses of the slowest variant fill about `BATCH_TARGET`.
fn batch_size(bytes: &[u8]) -> u32 {
    let (_, slowest) = VARIANTS[2];
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < BATCH_TARGET {
        slowest(bytes);
        runs += 1;
    }
    runs
}

fn allocations(run: impl Fn()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    run();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
