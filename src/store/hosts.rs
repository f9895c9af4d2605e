//! Hosts: creation, lookup, listing, updates and archiving.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::Store;
use crate::domain::host::{Cursor, HostLabels, HostStatus, label_filter, search_text};
use crate::error::Error;

/// Columns of [`Host`], in every query that returns one.
const HOST_COLUMNS: &str = "id, name, slug, status, labels, last_seen_at, cpu_count, \
     memory_total_mb, disk_total_gb, os, docker_version, archived_at, created_at, updated_at";

/// A monitored host, as stored (also the admin API's and the CLI's JSON shape).
#[derive(Debug, Clone, serde::Serialize, poem_openapi::Object)]
#[oai(example)]
pub struct Host {
    /// Identifier used in URLs and by `token issue --host`.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Unique URL-safe identifier.
    pub slug: String,
    /// Liveness: `pending` until the first snapshot, then `online`/`offline`, or `archived`.
    pub status: HostStatus,
    /// Free-form labels.
    pub labels: HostLabels,
    /// `recorded_at` of the newest snapshot received.
    #[oai(nullable)]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// CPUs, as the agent reports them (null until reported).
    #[oai(nullable)]
    pub cpu_count: Option<i32>,
    /// Memory, MiB, as the agent reports it (null until reported).
    #[oai(nullable)]
    pub memory_total_mb: Option<i64>,
    /// Size of the monitored mount, GiB, as the agent reports it (null until reported).
    #[oai(nullable)]
    pub disk_total_gb: Option<i64>,
    /// Operating system, as the agent reports it (null until reported).
    #[oai(nullable)]
    pub os: Option<String>,
    /// Docker Engine version, as the agent reports it (null until reported).
    #[oai(nullable)]
    pub docker_version: Option<String>,
    /// When the host was first archived.
    #[oai(nullable)]
    pub archived_at: Option<DateTime<Utc>>,
    /// When the host was created.
    pub created_at: DateTime<Utc>,
    /// When the host row last changed (a snapshot, an update, archiving).
    pub updated_at: DateTime<Utc>,
}

impl poem_openapi::types::Example for Host {
    fn example() -> Self {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("a valid example time")
                .with_timezone(&Utc)
        };
        Self {
            id: 42,
            name: "web-01".into(),
            slug: "web-01".into(),
            status: HostStatus::Online,
            labels: HostLabels::from([("env".into(), "prod".into())]),
            last_seen_at: Some(at("2026-12-06T09:30:00Z")),
            cpu_count: Some(4),
            memory_total_mb: Some(8192),
            disk_total_gb: Some(100),
            os: Some("Debian GNU/Linux 12 (bookworm)".into()),
            docker_version: Some("27.1.1".into()),
            archived_at: None,
            created_at: at("2026-12-01T08:00:00Z"),
            updated_at: at("2026-12-06T09:30:00Z"),
        }
    }
}

impl From<Row> for Host {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            slug: row.get("slug"),
            status: HostStatus::from_db(row.get("status")),
            labels: row.get::<_, Json<HostLabels>>("labels").0,
            last_seen_at: row.get("last_seen_at"),
            cpu_count: row.get("cpu_count"),
            memory_total_mb: row.get("memory_total_mb"),
            disk_total_gb: row.get("disk_total_gb"),
            os: row.get("os"),
            docker_version: row.get("docker_version"),
            archived_at: row.get("archived_at"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// Which hosts to list, and which page.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    pub status: Option<HostStatus>,
    /// Labels every listed host must carry (with these values).
    pub labels: HostLabels,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Start after this position (`None`: from the first host).
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// One page of a list ordered by id; `next` is set when more items follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// One page of hosts, ordered by id.
#[derive(Debug, Clone, poem_openapi::Object, serde::Serialize)]
pub struct HostPage {
    /// At most `limit` hosts, by ascending id.
    pub items: Vec<Host>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// The filter of a host listing, from its query parameters (the API's) or flags (the CLI's),
/// which share their names: a malformed label, name or cursor is a validation error naming it.
pub fn host_filter(
    status: Option<HostStatus>,
    labels: &[String],
    name: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<HostFilter, Error> {
    let one = |error| Error::Validation(vec![error]);
    Ok(HostFilter {
        status,
        labels: label_filter("label", labels).map_err(Error::Validation)?,
        name_contains: name
            .map(|text| search_text("name", text))
            .transpose()
            .map_err(one)?,
        after: cursor
            .map(|text| Cursor::parse("cursor", text))
            .transpose()
            .map_err(one)?,
        limit,
    })
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

/// `text` as a LIKE pattern matching itself literally.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store {
    /// Creates a host in status `pending` without labels. A slug already taken is a conflict.
    pub async fn create_host(&self, name: &str, slug: &str) -> Result<Host, Error> {
        self.create_host_with_labels(name, slug, &HostLabels::new())
            .await
    }

    /// Creates a host in status `pending`. A slug already taken is a conflict.
    pub async fn create_host_with_labels(
        &self,
        name: &str,
        slug: &str,
        labels: &HostLabels,
    ) -> Result<Host, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO hosts (name, slug, labels) VALUES ($1, $2, $3) \
                 ON CONFLICT (slug) DO NOTHING RETURNING {HOST_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&statement, &[&name, &slug, &Json(labels)])
            .await?
            .map(Host::from)
            .ok_or_else(|| {
                Error::Conflict(
                    "slug-taken",
                    format!("a host with slug `{slug}` already exists"),
                )
            })
    }

    pub async fn host(&self, id: i64) -> Result<Host, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1"))
            .await?;
        client
            .query_opt(&statement, &[&id])
            .await?
            .map(Host::from)
            .ok_or(Error::NotFound("host"))
    }

    /// One page of hosts matching `filter`, ordered by id: a host created while a client pages
    /// lands after every host already listed, so pages never repeat or skip one.
    pub async fn list_hosts(&self, filter: &HostFilter) -> Result<Page<Host>, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {HOST_COLUMNS} FROM hosts \
                 WHERE id > $1 \
                   AND ($2::text IS NULL OR status = $2) \
                   AND labels @> $3 \
                   AND ($4::text IS NULL OR name ILIKE '%' || $4 || '%') \
                 ORDER BY id LIMIT $5"
            ))
            .await?;
        let after = filter.after.map_or(0, |cursor| cursor.0);
        let status = filter.status.map(HostStatus::as_str);
        let name = filter.name_contains.as_deref().map(like_escaped);
        let limit = i64::from(filter.limit);
        let mut items: Vec<Host> = client
            .query(
                &statement,
                &[&after, &status, &Json(&filter.labels), &name, &(limit + 1)],
            )
            .await?
            .into_iter()
            .map(Host::from)
            .collect();
        let next = if items.len() as i64 > limit {
            items.truncate(filter.limit as usize);
            items.last().map(|host| Cursor(host.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Renames a host and/or replaces its labels; `None` leaves a field as it is.
    pub async fn update_host(
        &self,
        id: i64,
        name: Option<&str>,
        labels: Option<&HostLabels>,
    ) -> Result<Host, Error> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE hosts SET name = COALESCE($2, name), labels = COALESCE($3, labels), \
                 updated_at = now() WHERE id = $1 RETURNING {HOST_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&statement, &[&id, &name, &labels.map(Json)])
            .await?
            .map(Host::from)
            .ok_or(Error::NotFound("host"))
    }

    /// Archives a host and revokes every active token of it, in one transaction. Archiving an
    /// archived host changes nothing (its first `archived_at` stays).
    pub async fn archive_host(&self, id: i64) -> Result<Host, Error> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let archive = transaction
            .prepare_cached(&format!(
                "UPDATE hosts SET status = 'archived', archived_at = COALESCE(archived_at, now()), \
                 updated_at = CASE WHEN status = 'archived' THEN updated_at ELSE now() END \
                 WHERE id = $1 RETURNING {HOST_COLUMNS}"
            ))
            .await?;
        let revoke = transaction
            .prepare_cached(
                "UPDATE agent_tokens SET revoked_at = now() \
                 WHERE host_id = $1 AND revoked_at IS NULL",
            )
            .await?;
        let host = transaction
            .query_opt(&archive, &[&id])
            .await?
            .map(Host::from)
            .ok_or(Error::NotFound("host"))?;
        transaction.execute(&revoke, &[&id]).await?;
        transaction.commit().await?;
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use super::{like_escaped, slugify};

    #[test]
    fn slugs_keep_ascii_words_joined_by_dashes() {
        assert_eq!(slugify("Web 01 (Frankfurt)"), "web-01-frankfurt");
        assert_eq!(slugify("--db--primary--"), "db-primary");
        assert_eq!(slugify("ÄÖÜ"), "host");
    }

    #[test]
    fn like_patterns_match_their_text_literally() {
        assert_eq!(like_escaped(r"50%_a\b"), r"50\%\_a\\b");
    }
}
