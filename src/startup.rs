//! Builds the application from configuration; used by the binary and by the tests alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{EndpointExt, middleware::Tracing};

use crate::api::{self, AppState, State, ingest_slots::IngestSlots, rate_limit::RateLimit};
use crate::config::ServeArgs;
use crate::store::Store;

/// A server bound to its address, ready to run.
pub struct Application {
    acceptor: TcpAcceptor,
    state: AppState,
    pub local_addr: SocketAddr,
}

impl Application {
    /// Migrates (unless told not to) and binds the listener. Port 0 picks a free port.
    pub async fn build(config: &ServeArgs) -> anyhow::Result<Self> {
        let store = Store::new(&config.db.settings())?;
        if !config.no_migrate {
            store.migrate().await?;
        }
        let acceptor = TcpListener::bind(config.listen.clone())
            .into_acceptor()
            .await
            .with_context(|| format!("Failed to listen on {}", config.listen))?;
        let local_addr = *acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr())
            .context("Listener has no socket address")?;
        let state = Arc::new(State {
            store,
            rate_limit: RateLimit::per_minute(config.rate_limit_per_minute),
            skew: config.skew(),
            body_limit: config.body_limit_bytes,
            ingest_slots: IngestSlots::new(
                config.db.db_pool_size,
                config.db.settings().acquire_timeout,
            ),
        });
        Ok(Self {
            acceptor,
            state,
            local_addr,
        })
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let state = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                state.rate_limit.forget_idle(std::time::Instant::now());
            }
        });
        tracing::info!(addr = %self.local_addr, "serving");
        let result = poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                api::app(self.state).with(Tracing),
                shutdown,
                Some(Duration::from_secs(30)),
            )
            .await;
        housekeeping.abort();
        result
    }
}
