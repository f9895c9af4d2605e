//! Builds the application from configuration; used by the binary and by the tests alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};

use crate::api::body::read::BodyLimits;
use crate::api::ingest::auth_failures::AuthFailureLog;
use crate::api::ingest::rate_limit::RateLimit;
use crate::api::ingest::slots::IngestSlots;
use crate::api::openapi::document::Document;
use crate::api::{self, AppState, State};
use crate::background::{self, Schedule};
use crate::config::ServeArgs;
use crate::http::header_deadline::DeadlineIo;
use crate::http::read_cap::CappedIo;
use crate::http::wrap_io::WrapIo;
use crate::http::write_deadline::WriteDeadlineIo;
use crate::store::agent_cache::AgentTokenCache;
use crate::store::event_feed::EventFeed;
use crate::store::ingest::queue::IngestQueue;
use crate::store::replica::Reads;
use crate::store::{DbSettings, Store};

const MIGRATION_RETRY: Duration = Duration::from_secs(2);

/// A server bound to its address, ready to run.
pub struct Application {
    acceptor: TcpAcceptor,
    state: AppState,
    idle_timeout: Duration,
    header_timeout: Duration,
    write_timeout: Duration,
    schedule: Schedule,
    pub local_addr: SocketAddr,
}

impl Application {
    /// Migrates (unless told not to) and binds the listener. Port 0 picks a free port.
    ///
    /// A database that is down at start does not stop the server: it serves (ingest answers
    /// 503, `/readyz` says not ready) and keeps retrying the migrations in the background.
    pub async fn build(config: &ServeArgs) -> anyhow::Result<Self> {
        let store = Store::new(&config.db.settings())?
            .with_rate_limit(config.rate_limit_per_minute.get())
            .with_container_cache_mib(config.container_cache_mib);
        if !config.no_migrate
            && let Err(error) = store.migrate().await
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "migrations failed; retrying in the background"
            );
            tokio::spawn(migrate_until_done(store.clone()));
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
        crate::http::metrics::install();
        let ingest_queue = IngestQueue::spawn(store.clone(), config.batch_limits());
        let reads = match &config.read_database_url {
            Some(url) => Reads::with_replica(
                store.clone(),
                Store::new(&DbSettings {
                    url: url.clone(),
                    direct_url: None,
                    ..config.db.settings()
                })
                .context("Failed to set up the read replica's pool")?,
                Duration::from_secs(config.read_max_lag_seconds),
            ),
            None => Reads::primary_only(store.clone()),
        };
        let event_feed = Arc::new(EventFeed::new(
            store.session_url().to_owned(),
            config.event_stream_buffer,
        ));
        let state = Arc::new(State {
            store,
            event_feed,
            event_heartbeat: Duration::from_secs(config.event_stream_heartbeat_seconds.max(1)),
            webhooks: config.webhooks(),
            reads,
            rate_limit: RateLimit::per_minute(config.rate_limit_per_minute),
            auth_failures: RateLimit::per_minute(config.auth_failures_per_minute),
            auth_failure_lookups: RateLimit::per_minute(config.auth_failure_lookups_per_minute),
            admin_auth_failures: RateLimit::per_minute(config.auth_failures_per_minute),
            auth_failure_log: AuthFailureLog::new(),
            trusted_proxies: config.trusted_proxies.clone(),
            skew: config.skew(),
            container_stale_after: Duration::from_secs(config.container_stale_seconds),
            body_limits: BodyLimits {
                max_bytes: config.body_limit_bytes,
                read_timeout: Duration::from_secs(config.body_timeout_seconds),
            },
            agent_cache: Arc::new(AgentTokenCache::new()),
            ingest_queue,
            ingest_slots: IngestSlots::new(
                config.ingest_in_flight,
                config.db.settings().acquire_timeout,
            ),
        });
        Ok(Self {
            acceptor,
            state,
            idle_timeout: Duration::from_secs(config.idle_timeout_seconds),
            header_timeout: Duration::from_secs(config.header_timeout_seconds),
            write_timeout: Duration::from_secs(config.write_timeout_seconds.max(1)),
            schedule: Schedule {
                heartbeat_timeout: Duration::from_secs(config.heartbeat_timeout_seconds),
                lifecycle: config.lifecycle(),
                alertmanager: config.alertmanager(local_addr),
                alert_evaluation: config.alert_evaluation(),
            },
            local_addr,
        })
    }

    /// Where this server's read API goes; tests look at the replica's state through it.
    pub fn reads(&self) -> Reads {
        self.state.reads.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let alertmanager = self.schedule.alertmanager.clone();
        // Stopped (dropped) when the server returns.
        let resources = background::Resources {
            store: store.clone(),
            reads: self.state.reads.clone(),
            event_feed: self.state.event_feed.clone(),
            webhooks: self.state.webhooks,
        };
        let state = self.state.clone();
        let tasks = background::spawn(resources, self.schedule, move |now| state.forget_idle(now));
        let listener = self
            .state
            .store
            .spawn_agent_cache_listener(self.state.agent_cache.clone());
        tracing::info!(addr = %self.local_addr, "serving");
        let (header_timeout, write_timeout) = (self.header_timeout, self.write_timeout);
        let acceptor = WrapIo::new(self.acceptor, move |io| {
            WriteDeadlineIo::new(DeadlineIo::new(CappedIo(io), header_timeout), write_timeout)
        });
        let result = poem::Server::new_with_acceptor(acceptor)
            .idle_timeout(self.idle_timeout)
            .run_with_graceful_shutdown(
                api::app(self.state),
                shutdown,
                Some(Duration::from_secs(30)),
            )
            .await;
        listener.abort();
        drop(tasks);
        // Another process sends from now on, not once the lease has expired.
        crate::alertmanager::release(&store, &alertmanager).await;
        result
    }
}

/// The published OpenAPI document, as the server serves it (`nexus-telemetry openapi` prints it).
pub fn openapi_document() -> &'static Document {
    crate::api::openapi::document::document()
}

async fn migrate_until_done(store: Store) {
    let mut retry = tokio::time::interval(MIGRATION_RETRY);
    retry.tick().await;
    loop {
        retry.tick().await;
        match store.migrate().await {
            Ok(()) => return tracing::info!("migrations applied"),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "migrations still failing"),
        }
    }
}
