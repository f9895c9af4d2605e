//! An in-memory cache of agent-token lookups (hash → agent), kept exact across server
//! processes by PostgreSQL's LISTEN/NOTIFY rather than by a timer.
//!
//! Triggers (`sql/V2__admin_api.sql`) notify the channel [`CHANNEL`] when a token is revoked,
//! changed or deleted and when a host is archived; a dedicated connection per server process
//! listens and evicts the affected entries. Only valid lookups are cached, so a new token needs
//! no signal. While the listener is not connected (at start, or after the connection was lost)
//! the cache is empty and bypassed: a notification it might have missed cannot let a revoked
//! token through. Beyond the cache, every admitted request re-checks validity as its token is
//! stamped (by the transaction that stores its snapshot, or by [`Store::stamp_token`] for any
//! other answer), which closes the milliseconds between a commit and the notification's arrival.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Store;
use super::tokens::AuthenticatedAgent;
use crate::domain::token::TokenHash;
use crate::error::Error;

/// The channel the invalidation triggers notify.
pub const CHANNEL: &str = "nexus_agent_tokens";

/// `application_name` of the listener connection (to spot it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "nexus-telemetry-listener";

/// Entries kept at most; past this the cache starts over (it only ever saves a lookup).
const MAX_ENTRIES: usize = 100_000;

/// How often the listener checks that its connection is still alive.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct AgentTokenCache {
    state: RwLock<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Whether the listener is connected and listening; entries are used only then.
    live: bool,
    /// Bumped by every invalidation, so a lookup that raced one is not cached.
    generation: u64,
    entries: HashMap<TokenHash, AuthenticatedAgent>,
}

/// What a notification invalidates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invalidation {
    Token(TokenHash),
    Host(i64),
    All,
}

impl Invalidation {
    fn parse(payload: &str) -> Self {
        if let Some(hash) = payload.strip_prefix("token:") {
            Self::Token(TokenHash::from_stored(hash))
        } else if let Some(id) = payload.strip_prefix("host:").and_then(|id| id.parse().ok()) {
            Self::Host(id)
        } else {
            Self::All
        }
    }
}

impl AgentTokenCache {
    /// An empty cache, bypassed until a listener connects.
    pub fn new() -> Self {
        Self::default()
    }

    /// The agent of `hash`: from the cache when it is live, else from the database (and then
    /// remembered, unless an invalidation arrived meanwhile).
    pub async fn authenticate(
        &self,
        store: &Store,
        hash: &TokenHash,
    ) -> Result<Option<AuthenticatedAgent>, Error> {
        let generation = {
            let state = self.state.read().expect("agent cache");
            if state.live
                && let Some(agent) = state.entries.get(hash)
            {
                return Ok(Some(*agent));
            }
            state.generation
        };
        let agent = store.authenticate_agent(hash).await?;
        if let Some(agent) = agent {
            let mut state = self.state.write().expect("agent cache");
            if state.live && state.generation == generation {
                if state.entries.len() >= MAX_ENTRIES {
                    state.entries.clear();
                }
                state.entries.insert(hash.clone(), agent);
            }
        }
        Ok(agent)
    }

    /// Drops the entry of a token found invalid by other means.
    pub fn forget(&self, hash: &TokenHash) {
        self.invalidate(&Invalidation::Token(hash.clone()));
    }

    /// Whether the listener is connected (entries are served only then).
    pub fn is_live(&self) -> bool {
        self.state.read().expect("agent cache").live
    }

    /// Number of cached lookups.
    pub fn len(&self) -> usize {
        self.state.read().expect("agent cache").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn invalidate(&self, what: &Invalidation) {
        let mut state = self.state.write().expect("agent cache");
        state.generation += 1;
        match what {
            Invalidation::Token(hash) => {
                state.entries.remove(hash);
            }
            Invalidation::Host(host) => state.entries.retain(|_, agent| agent.host_id != *host),
            Invalidation::All => state.entries.clear(),
        }
    }

    /// Starts or stops serving entries; either way the cache starts empty, since
    /// notifications may have been missed while no listener was connected.
    fn set_live(&self, live: bool) {
        let mut state = self.state.write().expect("agent cache");
        state.generation += 1;
        state.entries.clear();
        state.live = live;
    }
}

impl Store {
    /// Keeps `cache` in step with the database until the task is aborted: listens on
    /// [`CHANNEL`], reconnecting with backoff whenever the connection is lost.
    pub fn spawn_agent_cache_listener(
        &self,
        cache: Arc<AgentTokenCache>,
    ) -> tokio::task::JoinHandle<()> {
        let url = self.url.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let result = listen(&url, &cache).await;
                let was_live = cache.is_live();
                cache.set_live(false);
                match result {
                    Err(error) if was_live => tracing::warn!(
                        error = format!("{error:#}"),
                        "token cache listener lost its connection; cache bypassed until it reconnects"
                    ),
                    Err(error) => tracing::debug!(
                        error = format!("{error:#}"),
                        "token cache listener could not connect"
                    ),
                    Ok(()) => {}
                }
                if was_live {
                    backoff = Duration::from_millis(100);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }
}

/// One listening session: returns when the connection ends.
async fn listen(url: &str, cache: &AgentTokenCache) -> anyhow::Result<()> {
    let mut config = tokio_postgres::Config::from_str(url).context("Failed to parse the URL")?;
    config
        .application_name(LISTENER_APPLICATION_NAME)
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .context("Failed to connect the token cache listener")?;
    // The connection yields notifications only when polled for messages; a task does so and
    // forwards them, and its end (the channel closing) is the end of the session.
    let (sender, mut notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if sender.send(notification.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    });
    let session = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .context("Failed to LISTEN")?;
        cache.set_live(true);
        tracing::debug!("token cache listener connected");
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            tokio::select! {
                payload = notifications.recv() => match payload {
                    Some(payload) => cache.invalidate(&Invalidation::parse(&payload)),
                    None => anyhow::bail!("the listener connection closed"),
                },
                _ = ping.tick() => {
                    client.simple_query("").await.context("The listener connection is dead")?;
                }
            }
        }
    };
    let result: anyhow::Result<()> = session.await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(token_id: i64, host_id: i64) -> AuthenticatedAgent {
        AuthenticatedAgent { token_id, host_id }
    }

    fn seeded(entries: &[(&str, AuthenticatedAgent)]) -> AgentTokenCache {
        let cache = AgentTokenCache::new();
        cache.set_live(true);
        let mut state = cache.state.write().unwrap();
        for (bearer, agent) in entries {
            state.entries.insert(TokenHash::of(bearer), *agent);
        }
        drop(state);
        cache
    }

    #[test]
    fn payloads_name_a_token_a_host_or_everything() {
        assert_eq!(
            Invalidation::parse(&format!("token:{}", TokenHash::of("a").as_str())),
            Invalidation::Token(TokenHash::of("a"))
        );
        assert_eq!(Invalidation::parse("host:7"), Invalidation::Host(7));
        assert_eq!(Invalidation::parse("*"), Invalidation::All);
        assert_eq!(Invalidation::parse("host:x"), Invalidation::All);
    }

    #[test]
    fn invalidations_evict_only_what_they_name() {
        let cache = seeded(&[
            ("a", agent(1, 10)),
            ("b", agent(2, 10)),
            ("c", agent(3, 20)),
        ]);
        cache.invalidate(&Invalidation::Token(TokenHash::of("a")));
        assert_eq!(cache.len(), 2);
        cache.invalidate(&Invalidation::Host(10));
        assert_eq!(cache.len(), 1);
        cache.invalidate(&Invalidation::All);
        assert!(cache.is_empty());
    }

    #[test]
    fn losing_the_listener_empties_the_cache() {
        let cache = seeded(&[("a", agent(1, 10))]);
        cache.set_live(false);
        assert!(cache.is_empty());
        assert!(!cache.is_live());
    }
}
