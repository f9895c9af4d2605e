//! Agent tokens: issuing, authenticating and stamping. Only hashes reach the database.

use chrono::{DateTime, Utc};

use super::Store;
use crate::domain::token::{AGENT_TOKEN_PREFIX, MintedToken, TokenHash};
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
    pub token: MintedToken,
}

impl Store {
    /// Mints a token for a host that exists and is not archived.
    pub async fn issue_agent_token(&self, host_id: i64, name: &str) -> Result<IssuedToken, Error> {
        let token = MintedToken::new(AGENT_TOKEN_PREFIX);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO agent_tokens (host_id, name, hashed_token) \
                 SELECT id, $2, $3 FROM hosts WHERE id = $1 AND status <> 'archived' \
                 RETURNING id, created_at",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&host_id, &name, &token.hash.as_str()])
            .await?
            .ok_or(Error::NotFound("host"))?;
        Ok(IssuedToken {
            id: row.get("id"),
            host_id,
            name: name.to_owned(),
            created_at: row.get("created_at"),
            token,
        })
    }

    /// The agent whose unrevoked token hashes to `hash`, if its host is not archived.
    pub async fn authenticate_agent(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AuthenticatedAgent>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT t.id, t.host_id FROM agent_tokens t JOIN hosts h ON h.id = t.host_id \
                 WHERE t.hashed_token = $1 AND t.revoked_at IS NULL AND h.status <> 'archived'",
            )
            .await?;
        let row = client.query_opt(&statement, &[&hash.as_str()]).await?;
        Ok(row.map(|row| AuthenticatedAgent {
            token_id: row.get(0),
            host_id: row.get(1),
        }))
    }

    /// Records that the token was just used (after it passed auth and the rate limit).
    pub async fn stamp_token(&self, token_id: i64) -> Result<(), Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("UPDATE agent_tokens SET last_used_at = now() WHERE id = $1")
            .await?;
        client.execute(&statement, &[&token_id]).await?;
        Ok(())
    }
}
