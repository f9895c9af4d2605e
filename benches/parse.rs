//! What each way of parsing a telemetry body costs, against a plain typed parse
//! (`serde_json::from_slice::<TelemetryPayload>`, which checks nothing):
//!
//! - serde + validator: the typed parse into a mirror of the payload deriving
//!   `validator::Validate`, then `validate()`. The usual Rust answer, measured so the choice can
//!   be re-checked; the server does not take it because the bounds would be written a second
//!   time beside the published `oai(validator(...))` ones.
//! - sonic-rs typed / sonic-rs + validator: the same two with a SIMD JSON parser (sonic-rs)
//!   instead of serde_json (the parser decision, BENCHMARKS.md).
//! - fast path: `telemetry::parse_payload`, which takes the payload's hand-written reader, and
//!   `reader::read` itself.
//! - Value path: `from_slice::<Value>` + `Schema::check` + `from_value`, what `json::parse` does for
//!   every body the reader declines.
//!
//! The payloads: 0, 20 and 200 containers, and the 20 written as PHP's `json_encode` writes them
//! (`/` as `\/`, non-ASCII as `\uXXXX`), escapes the reader decodes itself.
//!
//! Run with `cargo bench --bench parse` (`PARSE_BENCH_ROUNDS` sets the rounds, default 101).
//! The variants take turns in every round so that noise from other processes on a shared
//! machine hits them alike; each round times, per variant, as many parses as the slowest does in
//! about 5 ms. Reported: the median time per parse, the median of the per-round ratios to the
//! typed parse, and the heap allocations of one parse (counted by this binary's allocator).
//!
//! The fixture is `fixtures/telemetry-20.json`, written by the load generator of `nexus-bench`
//! (`HostFeed::new(7, 20)` after one `advance`, serialised as the agent does): 24.5 KB, 20
//! Docker-Compose containers with 12–13 labels each. The 0- and 200-container payloads are it
//! without containers, and with its containers repeated ten times under fresh ids.
//!
//! Results: BENCHMARKS.md, "Body parse paths".

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexus_contract::TelemetryPayload;
use nexus_telemetry::api::body::reader;
use nexus_telemetry::api::body::telemetry;
use nexus_telemetry::domain::schema_check::Schema;
use serde_json::Value;
use validator::Validate;

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

/// The variants; the first is the baseline of the ratios, the last the slowest.
fn variants() -> Vec<Variant> {
    let mut variants: Vec<Variant> = vec![
        ("typed parse (no checks)", |bytes| {
            black_box(serde_json::from_slice::<TelemetryPayload>(bytes).unwrap());
        }),
        ("serde + validator", |bytes| {
            let payload: mirror::Payload = serde_json::from_slice(bytes).unwrap();
            payload.validate().unwrap();
            black_box(payload);
        }),
        ("sonic-rs typed (no checks)", |bytes| {
            black_box(sonic_rs::from_slice::<TelemetryPayload>(bytes).unwrap());
        }),
        ("sonic-rs + validator", |bytes| {
            let payload: mirror::Payload = sonic_rs::from_slice(bytes).unwrap();
            payload.validate().unwrap();
            black_box(payload);
        }),
        ("fast path (parse_payload)", |bytes| {
            black_box(telemetry::parse_payload(bytes).unwrap());
        }),
        ("reader (reader::read)", |bytes| {
            black_box(reader::read(std::str::from_utf8(bytes).unwrap()).unwrap());
        }),
    ];
    variants.push(("Value path", |bytes| {
        let value: Value = serde_json::from_slice(bytes).unwrap();
        assert!(Schema::of::<TelemetryPayload>().check(&value).is_empty());
        black_box(serde_json::from_value::<TelemetryPayload>(value).unwrap());
    }));
    variants
}

fn main() {
    let rounds = std::env::var("PARSE_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(101);
    for containers in [0, 20, 200] {
        run(&format!("C={containers}"), &payload(containers), rounds);
    }
    run("C=20, PHP-escaped", &php_escaped(&payload(20)), rounds);
}

fn run(name: &str, bytes: &[u8], rounds: usize) {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    assert!(reader::read(text).is_ok(), "the reader reads {name}");
    println!(
        "{name} ({:.1} KB), median of {rounds} rounds:",
        bytes.len() as f64 / 1000.0
    );
    report(bytes, rounds);
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
    telemetry::parse_payload(&bytes).expect("the server accepts the payload");
    bytes
}

/// The JSON text as PHP's `json_encode` writes it: inside strings, `/` as `\/` and every
/// non-ASCII character as `\uXXXX` (a surrogate pair beyond the BMP).
fn php_escaped(json: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(json).expect("UTF-8");
    let mut out = String::with_capacity(text.len() * 2);
    let (mut in_string, mut escaping) = (false, false);
    for ch in text.chars() {
        match ch {
            _ if escaping => {
                escaping = false;
                out.push(ch);
            }
            '\\' if in_string => {
                escaping = true;
                out.push(ch);
            }
            '"' => {
                in_string = !in_string;
                out.push(ch);
            }
            '/' if in_string => out.push_str("\\/"),
            _ if in_string && !ch.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            _ => out.push(ch),
        }
    }
    let escaped = out.into_bytes();
    let parsed: Value = serde_json::from_slice(&escaped).expect("still JSON");
    assert_eq!(
        parsed,
        serde_json::from_slice::<Value>(json).unwrap(),
        "the same document"
    );
    escaped
}

fn report(bytes: &[u8], rounds: usize) {
    let variants = variants();
    let batch = batch_size(&variants, bytes);
    // times[variant][round], in µs per parse
    let mut times = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (variant, (_, run)) in variants.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..batch {
                run(bytes);
            }
            times[variant].push(start.elapsed().as_secs_f64() * 1e6 / batch as f64);
        }
    }
    for (variant, (name, run)) in variants.iter().enumerate() {
        let ratios: Vec<f64> = (0..rounds)
            .map(|round| times[variant][round] / times[0][round])
            .collect();
        println!(
            "  {name:<28} {:>9.2} µs  {:>5.2}x typed  {:>6} allocations",
            median(times[variant].clone()),
            median(ratios),
            allocations(|| run(bytes)),
        );
    }
}

/// How many parses of the slowest variant fill about `BATCH_TARGET`.
fn batch_size(variants: &[Variant], bytes: &[u8]) -> u32 {
    let (_, slowest) = variants[variants.len() - 1];
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

/// The payload as a plain serde + `validator` type: the same fields, and the same bounds written
/// a second time (the schema's, with its NUL rule).
#[expect(dead_code, reason = "parsed and validated to be timed, never read")]
mod mirror {
    use chrono::{DateTime, FixedOffset};
    use nexus_contract::Labels;
    use serde::Deserialize;
    use validator::{Validate, ValidationError};

    #[derive(Deserialize, Validate)]
    pub struct Payload {
        pub recorded_at: DateTime<FixedOffset>,
        #[validate(nested)]
        pub host: Host,
        #[validate(nested)]
        pub containers: Option<Vec<Container>>,
    }

    #[derive(Deserialize, Validate)]
    pub struct Host {
        #[validate(nested)]
        pub metrics: HostMetrics,
        #[validate(nested)]
        pub facts: Option<HostFacts>,
    }

    #[derive(Deserialize, Validate)]
    pub struct HostMetrics {
        #[validate(range(min = 0.0, max = 100.0))]
        pub cpu_percent: Option<f64>,
        #[validate(range(min = 0))]
        pub memory_used_mb: Option<i64>,
        #[validate(range(min = 0))]
        pub memory_total_mb: Option<i64>,
        #[validate(range(min = 0))]
        pub disk_used_gb: Option<i64>,
        #[validate(range(min = 0))]
        pub disk_total_gb: Option<i64>,
        #[validate(range(min = 0))]
        pub network_rx_bytes: Option<i64>,
        #[validate(range(min = 0))]
        pub network_tx_bytes: Option<i64>,
        #[validate(range(min = 0.0))]
        pub load_average: Option<f64>,
    }

    #[derive(Deserialize, Validate)]
    pub struct HostFacts {
        #[validate(range(min = 1, max = 1024))]
        pub cpu_count: Option<i32>,
        #[validate(range(min = 0))]
        pub memory_total_mb: Option<i64>,
        #[validate(range(min = 0))]
        pub disk_total_gb: Option<i64>,
        #[validate(length(max = 80), custom(function = "no_nul"))]
        pub os: Option<String>,
        #[validate(length(max = 32), custom(function = "no_nul"))]
        pub docker_version: Option<String>,
    }

    #[derive(Deserialize, Validate)]
    pub struct Container {
        #[validate(length(min = 1, max = 80), custom(function = "no_nul"))]
        pub container_id: String,
        #[validate(length(max = 255), custom(function = "no_nul"))]
        pub name: String,
        #[validate(length(max = 255), custom(function = "no_nul"))]
        pub image: String,
        #[validate(length(max = 128), custom(function = "no_nul"))]
        pub image_tag: Option<String>,
        #[validate(length(max = 255), custom(function = "no_nul"))]
        pub status: Option<String>,
        #[validate(length(max = 32), custom(function = "no_nul"))]
        pub state: Option<String>,
        #[validate(length(max = 16), custom(function = "no_nul"))]
        pub health_status: Option<String>,
        #[validate(custom(function = "no_nul_in_list"))]
        pub ports: Option<Vec<String>>,
        #[validate(custom(function = "no_nul_in_labels"))]
        pub labels: Option<Labels>,
        #[validate(nested)]
        pub metrics: Option<ContainerMetrics>,
        pub started_at: Option<DateTime<FixedOffset>>,
        pub finished_at: Option<DateTime<FixedOffset>>,
        #[validate(range(min = 0))]
        pub restart_count: Option<i64>,
        pub exit_code: Option<i64>,
        pub oom_killed: Option<bool>,
    }

    #[derive(Deserialize, Validate)]
    pub struct ContainerMetrics {
        #[validate(range(min = 0.0))]
        pub cpu_percent: Option<f64>,
        #[validate(range(min = 0))]
        pub memory_usage_mb: Option<i64>,
        #[validate(range(min = 0))]
        pub memory_limit_mb: Option<i64>,
        #[validate(range(min = 0))]
        pub network_rx_bytes: Option<i64>,
        #[validate(range(min = 0))]
        pub network_tx_bytes: Option<i64>,
        #[validate(range(min = 0))]
        pub block_read_bytes: Option<i64>,
        #[validate(range(min = 0))]
        pub block_write_bytes: Option<i64>,
    }

    fn no_nul(text: &str) -> Result<(), ValidationError> {
        if text.contains('\0') {
            Err(ValidationError::new("nul"))
        } else {
            Ok(())
        }
    }

    fn no_nul_in_list(list: &[String]) -> Result<(), ValidationError> {
        list.iter().try_for_each(|text| no_nul(text))
    }

    fn no_nul_in_labels(labels: &Labels) -> Result<(), ValidationError> {
        labels
            .iter()
            .try_for_each(|(name, value)| no_nul(name).and_then(|()| no_nul(value)))
    }
}
