use clap::Parser;
use nexus_telemetry::cli::{self, Cli};

// glibc's malloc took ~20% of the server's CPU parsing snapshots (many small strings per
// container), most of it consolidating and unlinking free chunks; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read at start-up through this symbol). One arena instead of one per
/// thread, and freed pages handed back within a second: 500 agents posting at once then peak
/// at ~50 MiB resident instead of 57-61 MiB, at the same throughput (BENCHMARKS.md).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 47] = b"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run(Cli::parse()).await
}
