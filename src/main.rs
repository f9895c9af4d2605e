use clap::Parser;
use nexus_telemetry::{cli, config::Cli};

// glibc's malloc took ~20% of the server's CPU parsing snapshots (many small strings per
// container), most of it consolidating and unlinking free chunks; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run(Cli::parse()).await
}
