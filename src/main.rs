use clap::Parser;
use nexus_telemetry::{cli, config::Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run(Cli::parse()).await
}
