//! Agent tokens: issuing, listing, rotating, revoking, authenticating and stamping. Only hashes
//! reach the database.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::Store;
use crate::domain::token::{AGENT_TOKEN_PREFIX, Fingerprint, MintedToken};
use crate::error::Error;

/// The agent a valid token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticatedAgent {
    pub token_id: i64,
    pub host_id: i64,
}

/// A token just issued: its metadata and the plaintext, to be shown once.
#[derive(Debug)]
pub struct IssuedToken {
    pub id: i64,
    pub host_id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Whether the token binds to its first client's fingerprint.
    pub bind_fingerprint: bool,
    pub token: MintedToken,
}

/// What may be shown about an agent token: never its plaintext, never its hash.
#[derive(Debug, Clone, serde::Serialize, poem_openapi::Object)]
pub struct AgentTokenInfo {
    /// The token's id, used in its URLs.
    pub id: i64,
    /// The host the token authenticates.
    pub host_id: i64,
    /// Label to tell tokens apart.
    pub name: String,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
    /// Last time the token passed authentication and the rate limit.
    #[oai(nullable)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the token was revoked (null while it is active).
    #[oai(nullable)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether the token was issued with fingerprint binding: its first admitted request binds
    /// it to that client's address and User-Agent.
    pub bind_fingerprint: bool,
    /// Whether a bound token has been used and is now bound (a hash; never shown).
    pub fingerprint_bound: bool,
}

impl From<tokio_postgres::Row> for AgentTokenInfo {
    fn from(row: tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            host_id: row.get("host_id"),
            name: row.get("name"),
            created_at: row.get("created_at"),
            last_used_at: row.get("last_used_at"),
            revoked_at: row.get("revoked_at"),
            bind_fingerprint: row.get("bind_fingerprint"),
            fingerprint_bound: row.get("fingerprint_bound"),
        }
    }
}

const TOKEN_COLUMNS: &str = "id, host_id, name, created_at, last_used_at, revoked_at, \
     bind_fingerprint, fingerprint IS NOT NULL AS fingerprint_bound";

/// Mints a token for a host that exists and is not archived, inside `client`'s transaction
/// if it has one.
async fn insert_agent_token(
    client: &impl GenericClient,
    host_id: i64,
    name: &str,
    bind_fingerprint: bool,
) -> Result<IssuedToken, Error> {
    let token = MintedToken::new(AGENT_TOKEN_PREFIX);
    let statement = client
        .prepare_cached(
            "INSERT INTO agent_tokens (host_id, name, hashed_token, bind_fingerprint) \
             SELECT id, $2, $3, $4 FROM hosts WHERE id = $1 AND status <> 'archived' AND archived_at IS NULL \
             RETURNING id, created_at",
        )
        .await?;
    let Some(row) = client
        .query_opt(
            &statement,
            &[&host_id, &name, &token.hash.as_str(), &bind_fingerprint],
        )
        .await?
    else {
        let exists = client
            .prepare_cached("SELECT 1 FROM hosts WHERE id = $1")
            .await?;
        return Err(match client.query_opt(&exists, &[&host_id]).await? {
            Some(_) => Error::Conflict(
                "host-archived",
                format!("host {host_id} is archived; its tokens cannot be issued or rotated"),
            ),
            None => Error::NotFound("host"),
        });
    };
    Ok(IssuedToken {
        id: row.get("id"),
        host_id,
        name: name.to_owned(),
        created_at: row.get("created_at"),
        bind_fingerprint,
        token,
    })
}

/// A token just issued: the plaintext `token`, shown this once (only its SHA-256 is stored),
/// beside its metadata. Also the JSON of `nexus-telemetry token issue|rotate --json`.
#[derive(Debug, Clone, poem_openapi::Object, serde::Serialize)]
pub struct IssuedAgentToken {
    /// The token's id, used in its URLs.
    pub id: i64,
    /// The host the token authenticates.
    pub host_id: i64,
    /// Label to tell the host's tokens apart.
    pub name: String,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
    /// Whether the token binds to its first client's fingerprint.
    pub bind_fingerprint: bool,
    /// The bearer for `Authorization: Bearer …` (`nxa_` + 64 hex digits).
    pub token: String,
}

impl From<IssuedToken> for IssuedAgentToken {
    fn from(issued: IssuedToken) -> Self {
        Self {
            id: issued.id,
            host_id: issued.host_id,
            name: issued.name,
            created_at: issued.created_at,
            bind_fingerprint: issued.bind_fingerprint,
            token: issued.token.plaintext,
        }
    }
}

impl Store {
    /// Mints a token for a host that exists (else 404) and is not archived (else 409);
    /// `bind_fingerprint` binds it to the client of its first admitted request.
    pub async fn issue_agent_token(
        &self,
        host_id: i64,
        name: &str,
        bind_fingerprint: bool,
    ) -> Result<IssuedToken, Error> {
        let client = self.client().await?;
        insert_agent_token(&client, host_id, name, bind_fingerprint).await
    }

    /// Every token of a host (revoked ones too), oldest first.
    pub async fn list_agent_tokens(&self, host_id: i64) -> Result<Vec<AgentTokenInfo>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM agent_tokens WHERE host_id = $1 ORDER BY id"
            ))
            .await?;
        let exists = client
            .prepare_cached("SELECT 1 FROM hosts WHERE id = $1")
            .await?;
        if client.query_opt(&exists, &[&host_id]).await?.is_none() {
            return Err(Error::NotFound("host"));
        }
        Ok(client
            .query(&statement, &[&host_id])
            .await?
            .into_iter()
            .map(AgentTokenInfo::from)
            .collect())
    }

    /// Revokes an active token of a host and issues its replacement (same name, same binding
    /// option, not yet bound to any client), atomically. A token of another host is not
    /// found; a revoked one cannot be rotated (409).
    pub async fn rotate_agent_token(
        &self,
        host_id: i64,
        token_id: i64,
    ) -> Result<IssuedToken, Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let revoke = transaction
            .prepare_cached(
                "UPDATE agent_tokens SET revoked_at = now() \
                 WHERE id = $2 AND host_id = $1 AND revoked_at IS NULL \
                 RETURNING name, bind_fingerprint",
            )
            .await?;
        let (name, bind_fingerprint): (String, bool) = match transaction
            .query_opt(&revoke, &[&host_id, &token_id])
            .await?
        {
            Some(row) => (row.get("name"), row.get("bind_fingerprint")),
            None => {
                let find = transaction
                    .prepare_cached("SELECT 1 FROM agent_tokens WHERE id = $2 AND host_id = $1")
                    .await?;
                return Err(
                    match transaction.query_opt(&find, &[&host_id, &token_id]).await? {
                        Some(_) => Error::Conflict(
                            "token-revoked",
                            format!("token {token_id} is revoked; issue a new token instead"),
                        ),
                        None => Error::NotFound("token"),
                    },
                );
            }
        };
        let issued = insert_agent_token(&transaction, host_id, &name, bind_fingerprint).await?;
        transaction.commit().await?;
        Ok(issued)
    }

    /// Revokes a token of a host; revoking a revoked token keeps its first `revoked_at`.
    pub async fn revoke_agent_token(
        &self,
        host_id: i64,
        token_id: i64,
    ) -> Result<AgentTokenInfo, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE agent_tokens SET revoked_at = COALESCE(revoked_at, now()) \
                 WHERE id = $2 AND host_id = $1 RETURNING {TOKEN_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&statement, &[&host_id, &token_id])
            .await?
            .map(AgentTokenInfo::from)
            .ok_or(Error::NotFound("token"))
    }

    /// Binds a token issued with `bind_fingerprint` to `fingerprint` unless it is bound
    /// already: the fingerprint it is bound to now (`None` if the token is gone).
    pub async fn bind_fingerprint(
        &self,
        token_id: i64,
        fingerprint: Fingerprint,
    ) -> Result<Option<Fingerprint>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE agent_tokens SET fingerprint = COALESCE(fingerprint, $2) \
                 WHERE id = $1 RETURNING fingerprint",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&token_id, &fingerprint.to_hex()])
            .await?;
        Ok(row.and_then(|row| Fingerprint::from_stored(row.get(0))))
    }

    /// Records that the token was just used (after it passed auth and the rate limit), if it is
    /// still valid: `false` when it was revoked or its host archived since it was looked up,
    /// which closes the gap between a revocation and its cache-invalidating notification.
    pub async fn stamp_token(&self, token_id: i64) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE agent_tokens t SET last_used_at = now() FROM hosts h \
                 WHERE t.id = $1 AND h.id = t.host_id \
                   AND t.revoked_at IS NULL AND h.status <> 'archived' AND h.archived_at IS NULL",
            )
            .await?;
        Ok(client.execute(&statement, &[&token_id]).await? == 1)
    }
}
