//! The `leases` rows (sql/V14__alerts.sql) that make one server process at a time run a
//! singleton job: the alert evaluator, the Alertmanager sender. A lease is taken when free or
//! expired, renewed by its holder, and given up on shutdown.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::Store;
use crate::error::Error;

/// Takes the lease if it is free, expired or already ours, and (re)sets its expiry; a row back
/// when we hold it. Inside a transaction it also locks the row until commit: a process that
/// lost the lease waits for the new holder's transaction, then finds the row not its own.
const CLAIM: &str = "
INSERT INTO leases (name, holder, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < clock_timestamp()
RETURNING holder";

const RELEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

const HOLDS: &str =
    "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND expires_at > clock_timestamp()";

/// A process's claim on one lease: its name, who we are, and how long a claim lasts.
#[derive(Debug, Clone)]
pub struct Lease {
    pub name: &'static str,
    pub holder: String,
    pub ttl: Duration,
}

impl Lease {
    /// Whether we hold the lease now (taking or renewing it). On a transaction, the row stays
    /// locked until it ends: the fence of that transaction's writes.
    pub async fn claim(&self, client: &impl GenericClient) -> Result<bool, Error> {
        let statement = client.prepare_cached(CLAIM).await?;
        let rows = client
            .query(
                &statement,
                &[&self.name, &self.holder, &self.ttl.as_secs_f64()],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}

impl Store {
    /// [`Lease::claim`] on a pooled connection of its own.
    pub async fn take_lease(&self, lease: &Lease) -> Result<bool, Error> {
        let client = self.client().await?;
        lease.claim(&client).await
    }

    /// Whether we hold the lease now, without taking or renewing it.
    pub async fn holds_lease(&self, lease: &Lease) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(HOLDS).await?;
        Ok(client
            .query_opt(&statement, &[&lease.name, &lease.holder])
            .await?
            .is_some())
    }

    /// Gives the lease up if we hold it; whether we did.
    pub async fn release_lease(&self, lease: &Lease) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RELEASE).await?;
        Ok(client
            .execute(&statement, &[&lease.name, &lease.holder])
            .await?
            > 0)
    }
}

/// A name for this process that no other process shares: the host's name, the pid and a
/// random part (a restarted process, or a second server in one OS process, is a new holder).
pub fn process_holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}
