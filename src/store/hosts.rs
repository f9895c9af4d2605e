//! Hosts: creation and lookup.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::Store;
use crate::error::Error;

/// A host as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Host {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub status: String,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Row> for Host {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            slug: row.get("slug"),
            status: row.get("status"),
            last_seen_at: row.get("last_seen_at"),
            created_at: row.get("created_at"),
        }
    }
}

/// A URL-safe slug of a name: lower-case ASCII letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() { "host".into() } else { slug }
}

impl Store {
    /// Creates a host in status `pending`. A slug already taken is a conflict.
    pub async fn create_host(&self, name: &str, slug: &str) -> Result<Host, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO hosts (name, slug) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING \
                 RETURNING id, name, slug, status, last_seen_at, created_at",
            )
            .await?;
        client
            .query_opt(&statement, &[&name, &slug])
            .await?
            .map(Host::from)
            .ok_or_else(|| Error::Conflict(format!("a host with slug `{slug}` already exists")))
    }

    pub async fn host(&self, id: i64) -> Result<Host, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, name, slug, status, last_seen_at, created_at FROM hosts WHERE id = $1",
            )
            .await?;
        client
            .query_opt(&statement, &[&id])
            .await?
            .map(Host::from)
            .ok_or(Error::NotFound("host"))
    }
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_keep_ascii_words_joined_by_dashes() {
        assert_eq!(slugify("Web 01 (Frankfurt)"), "web-01-frankfurt");
        assert_eq!(slugify("--db--primary--"), "db-primary");
        assert_eq!(slugify("ÄÖÜ"), "host");
    }
}
