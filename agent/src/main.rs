//! `nexus-agent`: see the crate's README for configuration, exit codes and buffering.

use std::process::ExitCode;

use clap::Parser;
use nexus_agent::config::Cli;
use tracing_subscriber::filter::Targets;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nexus-agent: cannot start the runtime: {error}");
            return ExitCode::from(nexus_agent::agent::EXIT_FAILURE);
        }
    };
    ExitCode::from(runtime.block_on(nexus_agent::startup::run(cli)))
}

/// Logs to stderr; `NEXUS_LOG` filters like `info` or `warn,nexus_agent=debug`.
fn init_logging() {
    let filter = std::env::var("NEXUS_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_default(tracing::Level::WARN)
                .with_target("nexus_agent", tracing::Level::INFO)
        });
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}
