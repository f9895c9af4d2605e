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
//! by a lookup in the database (see `src/api/ingest/admission.rs` for how those are bounded).
//! Memory: about 75 bytes per token (docs/agent-auth.md).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, pin_mut};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Statement};

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

/// Notifications applied by one re-read at most: a burst of token creations costs a query per
/// batch, not one per token.
const MAX_NOTIFICATIONS_PER_READ: usize = 4096;

/// Changes remembered by token, so a database lookup can tell whether its very token changed
/// while it ran; a lookup older than all of them is not remembered (it is merely repeated).
const CHANGES_REMEMBERED: usize = 16_384;

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
    /// Which tokens changed lately, so a database lookup that raced a change of its own token
    /// is not remembered (one counter for the whole table made every concurrent creation a
    /// miss for everybody).
    changes: ChangeLog,
    table: Table,
}

/// The latest changes by token, as a clock value each; older ones are forgotten in order, and
/// `horizon` is the newest forgotten one.
#[derive(Default)]
struct ChangeLog {
    clock: u64,
    horizon: u64,
    latest: HashMap<[u8; 32], u64>,
    order: VecDeque<([u8; 32], u64)>,
}

impl ChangeLog {
    fn now(&self) -> u64 {
        self.clock
    }

    fn record(&mut self, key: [u8; 32]) {
        self.clock += 1;
        self.latest.insert(key, self.clock);
        self.order.push_back((key, self.clock));
        while self.order.len() > CHANGES_REMEMBERED {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.latest.get(&old) == Some(&at) {
                self.latest.remove(&old);
            }
            self.horizon = at;
        }
    }

    /// Everything may have changed (a reload): no earlier lookup is remembered.
    fn record_all(&mut self) {
        self.clock += 1;
        self.horizon = self.clock;
        self.latest.clear();
        self.order.clear();
    }

    /// Whether the token of `key` is known not to have changed since `since`.
    fn unchanged_since(&self, key: &[u8; 32], since: u64) -> bool {
        since >= self.horizon && self.latest.get(key).is_none_or(|&at| at <= since)
    }
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

/// What a burst of notifications asks the listener to re-read, in one go.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rereads {
    tokens: Vec<TokenHash>,
    hosts: Vec<i64>,
    all: bool,
}

impl Rereads {
    fn add(&mut self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Token(hash) => self.tokens.push(hash),
            Invalidation::Host(host) => self.hosts.push(host),
            Invalidation::All => self.all = true,
        }
    }
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
        let since = self.state.read().expect("token index").changes.now();
        let client = store.client().await?;
        let Some(key) = hash.key() else {
            return Ok(None);
        };
        metrics::counter!("nexus_token_index_database_lookups_total").increment(1);
        let statement = client.prepare_cached(&select_where(Filter::Hash)).await?;
        let loaded = tokens_where(&client, &statement, &[&hash.as_str()]).await?;
        let found = loaded.entries.get(&key).map(|entry| loaded.known(entry));
        if let Some(token) = &found {
            self.remember(key, token, since);
        }
        Ok(found)
    }

    /// Keeps what a database lookup begun at `since` found, unless that very token changed
    /// meanwhile (the change's own re-read then says what holds).
    fn remember(&self, key: [u8; 32], token: &KnownToken, since: u64) {
        let mut state = self.state.write().expect("token index");
        if state.live && state.changes.unchanged_since(&key, since) {
            state.table.put(key, token);
        }
    }

    /// Marks the token of `hash` refused: the database found it revoked (or its host archived)
    /// before the notification came; the notification then sets what exactly.
    pub fn mark_refused(&self, hash: &TokenHash) {
        let Some(key) = hash.key() else { return };
        let mut state = self.state.write().expect("token index");
        state.changes.record(key);
        if let Some(entry) = state.table.entries.get_mut(&key) {
            entry.standing = Standing::Revoked;
        }
    }

    /// Binds the token of `hash` (id `token_id`), issued with `bind_fingerprint`, to
    /// `fingerprint` unless it is bound already, in the database and here: the fingerprint it
    /// is bound to now (`None` if the token is gone). Of two racing, the first to commit wins.
    pub async fn bind_fingerprint(
        &self,
        store: &Store,
        hash: &TokenHash,
        token_id: i64,
        fingerprint: Fingerprint,
    ) -> Result<Option<Fingerprint>, Error> {
        let bound = store.bind_fingerprint(token_id, fingerprint).await?;
        if let Some(bound) = bound {
            self.mark_bound(hash, bound);
        }
        Ok(bound)
    }

    /// Stamps the token of `hash` (id `token_id`) as just used if it is still valid
    /// ([`Store::stamp_token`]); one the database found revoked (or its host archived) is
    /// marked refused here until its notification comes.
    pub async fn stamp(
        &self,
        store: &Store,
        hash: &TokenHash,
        token_id: i64,
    ) -> Result<bool, Error> {
        let still_valid = store.stamp_token(token_id).await?;
        if !still_valid {
            self.mark_refused(hash);
        }
        Ok(still_valid)
    }

    /// Records the fingerprint a token was just bound to (as stored by the database).
    fn mark_bound(&self, hash: &TokenHash, fingerprint: Fingerprint) {
        let Some(key) = hash.key() else { return };
        let mut state = self.state.write().expect("token index");
        if let Some(entry) = state.table.entries.get(&key).copied() {
            state.changes.record(key);
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

    /// Applies what the database says about the tokens a burst of notifications named: the
    /// named tokens as loaded (absent when deleted), and every token of the named hosts.
    fn apply(&self, rereads: &Rereads, loaded: Table) {
        let mut state = self.state.write().expect("token index");
        if rereads.all {
            state.changes.record_all();
            state.table = loaded;
            return;
        }
        for key in rereads.tokens.iter().filter_map(TokenHash::key) {
            state.table.remove(&key);
            state.changes.record(key);
        }
        for (key, entry) in &loaded.entries {
            let token = loaded.known(entry);
            state.table.put(*key, &token);
            state.changes.record(*key);
        }
    }

    /// Starts or stops using the index, with what was loaded at connect (empty when it stops:
    /// notifications may be missed while no listener is connected).
    fn set_live(&self, live: bool, loaded: Table) {
        let mut state = self.state.write().expect("token index");
        state.changes.record_all();
        state.table = loaded;
        state.live = live;
    }
}

/// Which tokens to read.
#[derive(Clone, Copy)]
enum Filter {
    /// The token whose hash is `$1`.
    Hash,
    /// The tokens whose hashes are in `$1`.
    Hashes,
    /// The tokens of the hosts in `$1`.
    Hosts,
    All,
}

/// The statement reading the tokens of `filter`, with what authentication needs of them.
fn select_where(filter: Filter) -> String {
    const SELECT: &str = "SELECT t.hashed_token, t.id, t.host_id, t.revoked_at IS NOT NULL, \
         h.status = 'archived' OR h.archived_at IS NOT NULL, t.bind_fingerprint, t.fingerprint \
         FROM agent_tokens t JOIN hosts h ON h.id = t.host_id";
    match filter {
        Filter::Hash => format!("{SELECT} WHERE t.hashed_token = $1"),
        Filter::Hashes => format!("{SELECT} WHERE t.hashed_token = ANY($1)"),
        Filter::Hosts => format!("{SELECT} WHERE t.host_id = ANY($1)"),
        Filter::All => SELECT.to_owned(),
    }
}

/// Tokens read by a [`select_where`] statement, streamed straight into their table so that
/// loading 100,000 of them never holds their rows at once.
async fn tokens_where(
    client: &tokio_postgres::Client,
    statement: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Table, tokio_postgres::Error> {
    let rows = client.query_raw(statement, params.iter().copied()).await?;
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
    let (client, mut connection) =
        super::listener_connection(url, LISTENER_APPLICATION_NAME).await?;
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
        let statements = Rereader::prepare(&client)
            .await
            .context("Failed to prepare the token reads")?;
        // Loaded after LISTEN: a change committed meanwhile is both in the load and notified.
        let tokens = tokens_where(&client, &statements.all, &[])
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
                        // Whatever else has arrived meanwhile is re-read with it.
                        let mut rereads = Rereads::default();
                        rereads.add(Invalidation::parse(&payload));
                        while rereads.tokens.len() + rereads.hosts.len() < MAX_NOTIFICATIONS_PER_READ
                            && let Ok(payload) = notifications.try_recv()
                        {
                            rereads.add(Invalidation::parse(&payload));
                        }
                        metrics::counter!("nexus_token_index_rereads_total").increment(1);
                        let rows = statements
                            .read(&client, &rereads)
                            .await
                            .context("Failed to re-read notified tokens")?;
                        cache.apply(&rereads, rows);
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

/// The listener's statements, prepared once per session.
struct Rereader {
    all: Statement,
    hashes: Statement,
    hosts: Statement,
}

impl Rereader {
    async fn prepare(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            all: client.prepare(&select_where(Filter::All)).await?,
            hashes: client.prepare(&select_where(Filter::Hashes)).await?,
            hosts: client.prepare(&select_where(Filter::Hosts)).await?,
        })
    }

    /// What the database holds now of what `rereads` names.
    async fn read(
        &self,
        client: &tokio_postgres::Client,
        rereads: &Rereads,
    ) -> Result<Table, tokio_postgres::Error> {
        if rereads.all {
            return tokens_where(client, &self.all, &[]).await;
        }
        let mut table = Table::default();
        if !rereads.tokens.is_empty() {
            let hashes: Vec<&str> = rereads.tokens.iter().map(TokenHash::as_str).collect();
            table = tokens_where(client, &self.hashes, &[&hashes]).await?;
        }
        if !rereads.hosts.is_empty() {
            let of_hosts = tokens_where(client, &self.hosts, &[&rereads.hosts]).await?;
            for (key, entry) in &of_hosts.entries {
                table.put(*key, &of_hosts.known(entry));
            }
        }
        Ok(table)
    }
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
        let named = |invalidation| {
            let mut rereads = Rereads::default();
            rereads.add(invalidation);
            rereads
        };
        index.apply(
            &named(Invalidation::Token(TokenHash::of("a"))),
            Table::default(),
        );
        assert_eq!(
            index.lookup(&TokenHash::of("a")),
            Lookup::Unknown,
            "deleted"
        );
        index.apply(
            &named(Invalidation::Host(20)),
            table(vec![row("b", token(2, 20, Standing::HostArchived))]),
        );
        assert_eq!(
            index.lookup(&TokenHash::of("b")),
            Lookup::Known(token(2, 20, Standing::HostArchived))
        );
        index.apply(&named(Invalidation::All), Table::default());
        assert!(index.is_empty());
    }

    #[test]
    fn a_lookup_is_remembered_unless_its_own_token_changed_while_it_ran() {
        let index = AgentTokenCache::new();
        index.set_live(true, Table::default());
        let since = index.state.read().unwrap().changes.now();
        let (a, b) = (
            row("a", token(1, 10, Standing::Active)),
            row("b", token(2, 20, Standing::Active)),
        );
        // Another token's creation was applied meanwhile: the lookup of "a" still counts.
        let mut rereads = Rereads::default();
        rereads.add(Invalidation::Token(TokenHash::of("b")));
        index.apply(&rereads, table(vec![b]));
        index.remember(a.0, &a.1, since);
        assert_eq!(index.lookup(&TokenHash::of("a")), Lookup::Known(a.1));
        // "a" itself was revoked meanwhile: what the lookup saw is not kept over it.
        let since = index.state.read().unwrap().changes.now();
        index.mark_refused(&TokenHash::of("a"));
        index.remember(a.0, &a.1, since);
        assert_eq!(
            index.lookup(&TokenHash::of("a")),
            Lookup::Known(token(1, 10, Standing::Revoked))
        );
    }

    #[test]
    fn a_lookup_older_than_every_remembered_change_is_not_kept() {
        let index = AgentTokenCache::new();
        index.set_live(true, Table::default());
        let since = index.state.read().unwrap().changes.now();
        for i in 0..=CHANGES_REMEMBERED {
            let mut rereads = Rereads::default();
            rereads.add(Invalidation::Token(TokenHash::of(&format!("other{i}"))));
            index.apply(&rereads, Table::default());
        }
        let (key, known) = row("a", token(1, 10, Standing::Active));
        index.remember(key, &known, since);
        assert_eq!(index.lookup(&TokenHash::of("a")), Lookup::Unknown);
    }

    #[test]
    fn a_burst_of_notifications_is_one_reread_of_its_tokens_and_hosts() {
        let mut rereads = Rereads::default();
        for payload in [
            format!("token:{}", TokenHash::of("a").as_str()),
            "host:7".to_owned(),
            format!("token:{}", TokenHash::of("b").as_str()),
        ] {
            rereads.add(Invalidation::parse(&payload));
        }
        assert_eq!(
            rereads,
            Rereads {
                tokens: vec![TokenHash::of("a"), TokenHash::of("b")],
                hosts: vec![7],
                all: false
            }
        );
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
