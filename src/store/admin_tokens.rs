//! Admin API tokens: creating, listing, revoking and authenticating. Only hashes reach the
//! database.

use chrono::{DateTime, Utc};

use super::Store;
use crate::domain::token::{ADMIN_TOKEN_PREFIX, MintedToken, TokenHash};
use crate::error::Error;

/// What may be shown about an admin token: never its plaintext, never its hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<tokio_postgres::Row> for AdminTokenInfo {
    fn from(row: tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            created_at: row.get("created_at"),
            last_used_at: row.get("last_used_at"),
            revoked_at: row.get("revoked_at"),
        }
    }
}

/// An admin token just created: its metadata and the plaintext, to be shown once.
#[derive(Debug)]
pub struct IssuedAdminToken {
    pub info: AdminTokenInfo,
    pub token: MintedToken,
}

/// The holder of a valid admin token.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub token_id: i64,
    pub name: String,
}

const ADMIN_TOKEN_COLUMNS: &str = "id, name, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn create_admin_token(&self, name: &str) -> Result<IssuedAdminToken, Error> {
        let token = MintedToken::new(ADMIN_TOKEN_PREFIX);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO admin_tokens (name, hashed_token) VALUES ($1, $2) \
                 RETURNING {ADMIN_TOKEN_COLUMNS}"
            ))
            .await?;
        let row = client
            .query_one(&statement, &[&name, &token.hash.as_str()])
            .await?;
        Ok(IssuedAdminToken {
            info: row.into(),
            token,
        })
    }

    /// Every admin token (revoked ones too), oldest first.
    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenInfo>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ADMIN_TOKEN_COLUMNS} FROM admin_tokens ORDER BY id"
            ))
            .await?;
        Ok(client
            .query(&statement, &[])
            .await?
            .into_iter()
            .map(AdminTokenInfo::from)
            .collect())
    }

    /// Revokes an admin token; revoking it again keeps its first `revoked_at`.
    pub async fn revoke_admin_token(&self, id: i64) -> Result<AdminTokenInfo, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 \
                 RETURNING {ADMIN_TOKEN_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&statement, &[&id])
            .await?
            .map(AdminTokenInfo::from)
            .ok_or(Error::NotFound("admin token"))
    }

    /// The holder of the unrevoked admin token hashing to `hash`, stamping its `last_used_at`.
    pub async fn authenticate_admin(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AdminSession>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE admin_tokens SET last_used_at = now() \
                 WHERE hashed_token = $1 AND revoked_at IS NULL RETURNING id, name",
            )
            .await?;
        Ok(client
            .query_opt(&statement, &[&hash.as_str()])
            .await?
            .map(|row| AdminSession {
                token_id: row.get("id"),
                name: row.get("name"),
            }))
    }
}
