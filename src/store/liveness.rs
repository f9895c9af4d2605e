//! Liveness: online hosts that fell silent become offline, each with one `offline` event.

use std::time::Duration;

use super::Store;
use crate::error::Error;

/// One conditional statement: with several servers on one database, the row lock and the
/// re-checked `status = 'online'` let exactly one of them flip a host and record its event.
const MARK_SILENT_HOSTS_OFFLINE: &str = "
WITH flipped AS (
    UPDATE hosts SET status = 'offline', updated_at = now()
    WHERE status = 'online' AND last_seen_at < now() - make_interval(secs => $1)
    RETURNING id
)
-- Once every host is flipped (the count runs `flipped` to its end first): a writer of events
-- holds their lock until it commits and must not wait for a host then (sql/V13__events.sql).
INSERT INTO events (host_id, kind)
SELECT id, 'offline' FROM flipped WHERE (SELECT count(*) FROM flipped) > 0
ORDER BY id
RETURNING host_id";

impl Store {
    /// Marks offline every online host not seen for `timeout`; returns their ids.
    pub async fn mark_silent_hosts_offline(&self, timeout: Duration) -> Result<Vec<i64>, Error> {
        let client = self.client().await?;
        let statement = client.prepare_cached(MARK_SILENT_HOSTS_OFFLINE).await?;
        let rows = client.query(&statement, &[&timeout.as_secs_f64()]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}
