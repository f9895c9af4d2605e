//! Every agent token in memory (hash → token id, host, standing), kept exact across server
//! processes by PostgreSQL's LISTEN/NOTIFY rather than by a timer, so that authenticating a
//! bearer, valid or not, costs no query.
//!
//! A dedicated connection per server process listens on [`CHANNEL`], then loads every token
//! (valid, revoked, or of an archived host); triggers (`sql/V2__admin_api.sql`,
//! `sql/V7__archived_hosts_and_token_index.sql`) notify it when a token is created, revoked,
//! changed, bound or deleted and when a host is archived, and the listener re-reads what the
//! notification names. While the listener is not connected (at start, or after the connection
//! was lost) the index is empty and not used: a notification it might have missed cannot let a
//! revoked token through. Between a commit and its notification's arrival the index may lag by
//! milliseconds: a revoked token is caught by the re-check as its token is stamped (by the
//! transaction that stores its snapshot, or by [`Store::stamp_token`]), and a brand-new token
//! by a lookup in the database (see `src/api/agent_auth.rs` for how those are bounded).
//! Memory: about 75 bytes per token (docs/agent-auth.md).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, pin_mut};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Store;
use super::tokens::AuthenticatedAgent;
use crate::domain::token::{Fingerprint, TokenHash};
use crate::error::Error;

/// The channel the invalidation triggers notify.
pub const CHANNEL: &str = "nexus_agent_tokens";

/// `application_name` of the listener connection (to spot it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "nexus-telemetry-listener";

/// How often the listener checks that its connection is still alive.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whether a known token may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Revoked,
    /// The token's host is archived (by `status` or by `archived_at`).
    HostArchived,
}

/// What the index knows of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownToken {
    pub agent: AuthenticatedAgent,
    pub standing: Standing,
    /// The fingerprint binding of the token, if it was issued with one.
    pub binding: Binding,
}

/// Opt-in fingerprint binding (`token issue --bind-fingerprint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Issued without binding: any client may use it.
    None,
    /// Binds to the fingerprint of its first admitted request.
    Unclaimed,
    /// Bound: only requests with this fingerprint are admitted.
    Bound(Fingerprint),
}

/// The answer of the index for one bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Known(KnownToken),
    /// No token has this hash, as of the last notification received.
    Unknown,
    /// The listener is not connected: only the database can tell.
    NotLive,
}

/// One entry; fingerprints of bound tokens are kept apart, so the common entry stays small.
#[derive(Debug, Clone, Copy)]
struct Entry {
    token_id: i64,
    host_id: i64,
    standing: Standing,
    bind_fingerprint: bool,
}

#[derive(Default)]
pub struct AgentTokenCache {
    state: RwLock<IndexState>,
}

#[derive(Default)]
struct IndexState {
    /// Whether the listener is connected and the index loaded; entries are used only then.
    live: bool,
    /// Bumped by every change, so a database lookup that raced one is not remembered.
    generation: u64,
    table: Table,
}

/// Tokens by hash.
#[derive(Default)]
struct Table {
    entries: HashMap<[u8; 32], Entry>,
    fingerprints: HashMap<i64, Fingerprint>,
}

impl Table {
    fn put(&mut self, key: [u8; 32], token: &KnownToken) {
        let bind_fingerprint = token.binding != Binding::None;
        self.entries.insert(
            key,
            Entry {
                token_id: token.agent.token_id,
                host_id: token.agent.host_id,
                standing: token.standing,
                bind_fingerprint,
            },
        );
        match token.binding {
            Binding::Bound(fingerprint) => {
                self.fingerprints.insert(token.agent.token_id, fingerprint);
            }
            _ => {
                self.fingerprints.remove(&token.agent.token_id);
            }
        }
    }

    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(entry) = self.entries.remove(key) {
            self.fingerprints.remove(&entry.token_id);
        }
    }

    fn known(&self, entry: &Entry) -> KnownToken {
        let binding = match (
            entry.bind_fingerprint,
            self.fingerprints.get(&entry.token_id),
        ) {
            (false, _) => Binding::None,
            (true, None) => Binding::Unclaimed,
            (true, Some(fingerprint)) => Binding::Bound(*fingerprint),
        };
        KnownToken {
            agent: AuthenticatedAgent {
                token_id: entry.token_id,
                host_id: entry.host_id,
            },
            standing: entry.standing,
            binding,
        }
    }
}

/// What a notification asks the listener to re-read.
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
    /// An empty index, not used until a listener connects and loads it.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the index knows of `hash`, without touching the database.
    pub fn lookup(&self, hash: &TokenHash) -> Lookup {
        let state = self.state.read().expect("token index");
        if !state.live {
            return Lookup::NotLive;
        }
        match hash.key().and_then(|key| state.table.entries.get(&key)) {
            Some(entry) => Lookup::Known(state.table.known(entry)),
            None => Lookup::Unknown,
        }
    }

    /// The token of `hash` from the database (a miss or a lookup while not live), remembered
    /// when the index is live and nothing changed meanwhile.
    pub async fn look_up_in_database(
        &self,
        store: &Store,
        hash: &TokenHash,
    ) -> Result<Option<KnownToken>, Error> {
        let generation = self.state.read().expect("token index").generation;
        let client = store.client().await?;
        let Some(key) = hash.key() else {
            return Ok(None);
        };
        let loaded = tokens_where(&client, Filter::Hash(hash.as_str())).await?;
        let found = loaded.entries.get(&key).map(|entry| loaded.known(entry));
        if let Some(token) = &found {
            let mut state = self.state.write().expect("token index");
            if state.live && state.generation == generation {
                state.table.put(key, token);
            }
        }
        Ok(found)
    }

    /// Marks the token of `hash` refused: the database found it revoked (or its host archived)
    /// before the notification came; the notification then sets what exactly.
    pub fn mark_refused(&self, hash: &TokenHash) {
        let Some(key) = hash.key() else { return };
        let mut state = self.state.write().expect("token index");
        state.generation += 1;
        if let Some(entry) = state.table.entries.get_mut(&key) {
            entry.standing = Standing::Revoked;
        }
    }

    /// Records the fingerprint a token was just bound to (as stored by the database).
    pub fn mark_bound(&self, hash: &TokenHash, fingerprint: Fingerprint) {
        let Some(key) = hash.key() else { return };
        let mut state = self.state.write().expect("token index");
        if let Some(entry) = state.table.entries.get(&key).copied() {
            state.generation += 1;
            state.table.fingerprints.insert(entry.token_id, fingerprint);
        }
    }

    /// Whether the listener is connected and the index loaded.
    pub fn is_live(&self) -> bool {
        self.state.read().expect("token index").live
    }

    /// Number of tokens in the index.
    pub fn len(&self) -> usize {
        self.state.read().expect("token index").table.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index holds for its entries (the tables' allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        let state = self.state.read().expect("token index");
        // Per slot: the key and value, and one control byte of the SwissTable.
        state.table.entries.capacity() * (size_of::<([u8; 32], Entry)>() + 1)
            + state.table.fingerprints.capacity() * (size_of::<(i64, Fingerprint)>() + 1)
    }

    /// Applies what the database says about the tokens a notification named.
    fn apply(&self, invalidation: &Invalidation, loaded: Table) {
        let mut state = self.state.write().expect("token index");
        state.generation += 1;
        match invalidation {
            Invalidation::Token(hash) => {
                if let Some(key) = hash.key() {
                    state.table.remove(&key);
                }
            }
            Invalidation::Host(_) => {}
            Invalidation::All => {
                state.table = loaded;
                return;
            }
        }
        for (key, entry) in &loaded.entries {
            let token = loaded.known(entry);
            state.table.put(*key, &token);
        }
    }

    /// Starts or stops using the index, with what was loaded at connect (empty when it stops:
    /// notifications may be missed while no listener is connected).
    fn set_live(&self, live: bool, loaded: Table) {
        let mut state = self.state.write().expect("token index");
        state.generation += 1;
        state.table = loaded;
        state.live = live;
    }
}

/// Which tokens to read.
enum Filter<'a> {
    Hash(&'a str),
    Host(i64),
    All,
}

/// Tokens with what authentication needs of them, streamed straight into their table so that
/// loading 100,000 of them never holds their rows at once.
async fn tokens_where(
    client: &tokio_postgres::Client,
    filter: Filter<'_>,
) -> Result<Table, tokio_postgres::Error> {
    const SELECT: &str = "SELECT t.hashed_token, t.id, t.host_id, t.revoked_at IS NOT NULL, \
         h.status = 'archived' OR h.archived_at IS NOT NULL, t.bind_fingerprint, t.fingerprint \
         FROM agent_tokens t JOIN hosts h ON h.id = t.host_id";
    let (sql, params): (String, Vec<&(dyn ToSql + Sync)>) = match &filter {
        Filter::Hash(hash) => (format!("{SELECT} WHERE t.hashed_token = $1"), vec![hash]),
        Filter::Host(host) => (format!("{SELECT} WHERE t.host_id = $1"), vec![host]),
        Filter::All => (SELECT.to_owned(), Vec::new()),
    };
    let rows = client.query_raw(&sql, params).await?;
    pin_mut!(rows);
    let mut table = Table::default();
    while let Some(row) = rows.next().await {
        let row = row?;
        let Some(key) = TokenHash::from_stored(row.get(0)).key() else {
            continue;
        };
        let standing = match (row.get::<_, bool>(3), row.get::<_, Option<bool>>(4)) {
            (true, _) => Standing::Revoked,
            (false, Some(true)) => Standing::HostArchived,
            (false, _) => Standing::Active,
        };
        let binding = match (row.get::<_, bool>(5), row.get::<_, Option<&str>>(6)) {
            (false, _) => Binding::None,
            (true, None) => Binding::Unclaimed,
            (true, Some(stored)) => match Fingerprint::from_stored(stored) {
                Some(fingerprint) => Binding::Bound(fingerprint),
                None => Binding::Unclaimed,
            },
        };
        let token = KnownToken {
            agent: AuthenticatedAgent {
                token_id: row.get(1),
                host_id: row.get(2),
            },
            standing,
            binding,
        };
        table.put(key, &token);
    }
    Ok(table)
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
                cache.set_live(false, Table::default());
                match result {
                    Err(error) if was_live => tracing::warn!(
                        error = format!("{error:#}"),
                        "token index listener lost its connection; index unused until it reconnects"
                    ),
                    Err(error) => tracing::debug!(
                        error = format!("{error:#}"),
                        "token index listener could not connect"
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
        .context("Failed to connect the token index listener")?;
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
        // Loaded after LISTEN: a change committed meanwhile is both in the load and notified.
        let tokens = tokens_where(&client, Filter::All)
            .await
            .context("Failed to load the agent tokens")?;
        tracing::debug!(tokens = tokens.entries.len(), "token index loaded");
        cache.set_live(true, tokens);
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            tokio::select! {
                payload = notifications.recv() => match payload {
                    Some(payload) => {
                        let invalidation = Invalidation::parse(&payload);
                        let filter = match &invalidation {
                            Invalidation::Token(hash) => Filter::Hash(hash.as_str()),
                            Invalidation::Host(host) => Filter::Host(*host),
                            Invalidation::All => Filter::All,
                        };
                        let rows = tokens_where(&client, filter)
                            .await
                            .context("Failed to re-read notified tokens")?;
                        cache.apply(&invalidation, rows);
                    }
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

    fn token(token_id: i64, host_id: i64, standing: Standing) -> KnownToken {
        KnownToken {
            agent: AuthenticatedAgent { token_id, host_id },
            standing,
            binding: Binding::None,
        }
    }

    fn row(bearer: &str, known: KnownToken) -> ([u8; 32], KnownToken) {
        (TokenHash::of(bearer).key().unwrap(), known)
    }

    fn table(rows: Vec<([u8; 32], KnownToken)>) -> Table {
        let mut table = Table::default();
        for (key, token) in &rows {
            table.put(*key, token);
        }
        table
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
    fn every_known_token_is_answered_and_anything_else_is_unknown() {
        let index = AgentTokenCache::new();
        assert_eq!(index.lookup(&TokenHash::of("a")), Lookup::NotLive);
        index.set_live(
            true,
            table(vec![
                row("a", token(1, 10, Standing::Active)),
                row("b", token(2, 10, Standing::Revoked)),
            ]),
        );
        assert_eq!(
            index.lookup(&TokenHash::of("a")),
            Lookup::Known(token(1, 10, Standing::Active))
        );
        assert_eq!(
            index.lookup(&TokenHash::of("b")),
            Lookup::Known(token(2, 10, Standing::Revoked))
        );
        assert_eq!(index.lookup(&TokenHash::of("c")), Lookup::Unknown);
    }

    #[test]
    fn a_notification_replaces_what_it_names_with_what_the_database_says() {
        let index = AgentTokenCache::new();
        index.set_live(
            true,
            table(vec![
                row("a", token(1, 10, Standing::Active)),
                row("b", token(2, 20, Standing::Active)),
            ]),
        );
        index.apply(&Invalidation::Token(TokenHash::of("a")), Table::default());
        assert_eq!(
            index.lookup(&TokenHash::of("a")),
            Lookup::Unknown,
            "deleted"
        );
        index.apply(
            &Invalidation::Host(20),
            table(vec![row("b", token(2, 20, Standing::HostArchived))]),
        );
        assert_eq!(
            index.lookup(&TokenHash::of("b")),
            Lookup::Known(token(2, 20, Standing::HostArchived))
        );
        index.apply(&Invalidation::All, Table::default());
        assert!(index.is_empty());
    }

    #[test]
    fn losing_the_listener_empties_the_index_and_stops_its_use() {
        let index = AgentTokenCache::new();
        index.set_live(true, table(vec![row("a", token(1, 10, Standing::Active))]));
        index.set_live(false, Table::default());
        assert!(index.is_empty());
        assert_eq!(index.lookup(&TokenHash::of("a")), Lookup::NotLive);
    }

    #[test]
    fn a_hundred_thousand_tokens_take_under_eight_mib() {
        let index = AgentTokenCache::new();
        let rows = (0..100_000)
            .map(|i| row(&format!("nxa_{i}"), token(i, i, Standing::Active)))
            .collect();
        index.set_live(true, table(rows));
        let bytes = index.heap_bytes();
        assert!(bytes < 8 << 20, "{bytes} bytes");
    }
}
