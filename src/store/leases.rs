//! Leases (`leases`, sql/V14__alerts.sql): a row per singleton job naming the server process
//! that does it until `expires_at`. The holder renews it well before then; when it stops (a
//! crash, a lost database connection) another process takes the lease once it has expired.

use std::time::Duration;

use super::Store;
use crate::error::Error;

/// Takes the lease when it is free or expired, renews it when `holder` has it; one statement, so
/// of two processes racing for an expired lease exactly one wins (the row lock of the upsert).
const TAKE_LEASE: &str = "
INSERT INTO leases (name, holder, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now()
RETURNING holder";

impl Store {
    /// Takes or renews lease `name` for `holder` for `ttl`; true when `holder` now holds it.
    pub async fn take_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(TAKE_LEASE).await?;
        let row = client
            .query_opt(&statement, &[&name, &holder, &ttl.as_secs_f64()])
            .await?;
        Ok(row.is_some())
    }
}

const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

impl Store {
    /// Gives lease `name` up if `holder` has it; true if it had.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RELEASE_LEASE).await?;
        Ok(client.execute(&statement, &[&name, &holder]).await? > 0)
    }
}
