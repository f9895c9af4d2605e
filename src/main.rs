//! The binary: parses the command line and runs it (`cli`); everything else is the library.

use clap::Parser;
use nexus_telemetry::cli::{self, Cli};

// jemalloc: glibc's malloc spent much of the server's CPU on the many small strings of a
// snapshot (BENCHMARKS.md, "What was changed").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (read at start-up through this symbol): one arena, and freed pages handed
/// back within a second, so a burst of agents leaves no resident peak behind (BENCHMARKS.md).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 47] = b"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run(Cli::parse()).await
}
