//! One evaluation cycle: in one transaction fenced by the evaluator's lease, find what every
//! enabled rule's condition holds for, and move the alerts accordingly (new → pending or
//! firing, pending held for `for` → firing, gone → resolved), writing an event for each alert
//! that fires or that resolves after having fired. docs/alerts.md#evaluation.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::conditions::{Branch, findings_sql};
use super::lease::{ALERT_EVALUATOR, Lease};
use crate::error::Error;
use crate::store::Store;

/// The enabled rules' kinds and what picks their branch of the findings query.
const ENABLED_RULES: &str =
    "SELECT kind, metric, for_seconds FROM alert_rules WHERE enabled ORDER BY id";

/// Moves the open alerts to what the findings (`$1`..`$6`, one element per finding) say, and
/// opens alerts for new findings; one row per alert whose state or value changed:
/// `(id, host_id, container_id, state before (NULL: new), state now)`.
///
/// A finding's `since` (when the data says the condition began; NULL: unknown) stands in for
/// `pending_since`, so a metric whose samples already broke the rule for `for` fires at once.
/// When `since` is only a bound (`exact` false: every reading in the window broke the rule),
/// a pending alert keeps the earlier of it and its own `pending_since`: sparse samples then
/// never push the start forward as the window slides.
const TRANSITIONS: &str = "
WITH found AS (
    SELECT f.rule_id, f.host_id, f.container_id, f.value,
           -- (least() skips NULLs: an unknown `since` must stay unknown)
           CASE WHEN f.since IS NOT NULL THEN least(f.since, now()) END AS since,
           f.exact, r.for_seconds
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::double precision[],
                $5::timestamptz[], $6::boolean[])
        AS f (rule_id, host_id, container_id, value, since, exact)
    JOIN alert_rules r ON r.id = f.rule_id
),
open AS (
    SELECT a.id, a.rule_id, a.host_id, a.container_id, a.state, a.pending_since, a.value
    FROM alerts a WHERE a.state <> 'resolved'
),
matched AS (
    SELECT o.*, f.value AS found_value,
           CASE WHEN o.state <> 'pending' OR f.since IS NULL THEN o.pending_since
                WHEN f.exact THEN f.since
                ELSE least(f.since, o.pending_since) END AS held_since,
           f.for_seconds
    FROM open o
    JOIN found f ON f.rule_id = o.rule_id AND f.host_id = o.host_id
                AND coalesce(f.container_id, '') = coalesce(o.container_id, '')
),
resolved AS (
    UPDATE alerts a SET state = 'resolved', resolved_at = now()
    FROM open o
    WHERE a.id = o.id
      AND NOT EXISTS (SELECT 1 FROM matched m WHERE m.id = o.id)
    RETURNING a.id, a.host_id, a.container_id, o.state AS was, a.state AS now_state
),
kept AS (
    UPDATE alerts a SET
        value = m.found_value,
        pending_since = m.held_since,
        state = CASE WHEN m.state = 'pending' AND m.held_since
                          <= now() - make_interval(secs => m.for_seconds)
                     THEN 'firing' ELSE m.state END,
        started_at = CASE WHEN m.state = 'pending' AND m.held_since
                               <= now() - make_interval(secs => m.for_seconds)
                          THEN now() ELSE a.started_at END
    FROM matched m
    WHERE a.id = m.id
      AND (a.value IS DISTINCT FROM m.found_value
           OR a.pending_since IS DISTINCT FROM m.held_since
           OR (m.state = 'pending'
               AND m.held_since <= now() - make_interval(secs => m.for_seconds)))
    RETURNING a.id, a.host_id, a.container_id, m.state AS was, a.state AS now_state
),
created AS (
    INSERT INTO alerts (rule_id, host_id, container_id, fingerprint, state, value,
                        pending_since, started_at)
    SELECT f.rule_id, f.host_id, f.container_id,
           alert_fingerprint(f.rule_id, f.host_id, f.container_id),
           CASE WHEN fires THEN 'firing' ELSE 'pending' END, f.value,
           coalesce(f.since, now()), CASE WHEN fires THEN now() END
    FROM found f
    CROSS JOIN LATERAL (SELECT coalesce(f.since, now())
                               <= now() - make_interval(secs => f.for_seconds) AS fires) x
    WHERE NOT EXISTS (SELECT 1 FROM open o
                      WHERE o.rule_id = f.rule_id AND o.host_id = f.host_id
                        AND coalesce(o.container_id, '') = coalesce(f.container_id, ''))
    ORDER BY f.rule_id, f.host_id, f.container_id
    RETURNING id, host_id, container_id, NULL::text AS was, state AS now_state
)
SELECT * FROM resolved
UNION ALL SELECT * FROM kept
UNION ALL SELECT * FROM created
ORDER BY id";

/// One event per alert that fired or that resolved after having fired, in alert id order
/// (`$1`..`$6`: kinds, host ids, container ids, alert ids, states before, states after).
/// Last in the cycle: a writer of events holds their lock until it commits, so it must not
/// wait for a row afterwards (sql/V13__events.sql).
const ALERT_EVENTS: &str = "
INSERT INTO events (at, kind, host_id, container_id, alert_id, from_value, to_value)
SELECT now(), kind, host_id, container_id, alert_id, from_value, to_value
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[])
    AS e (kind, host_id, container_id, alert_id, from_value, to_value)
ORDER BY alert_id";

const FIRING: &str = "SELECT count(*) FROM alerts WHERE state = 'firing'";

/// What a cycle did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cycle {
    /// Another process holds the lease; nothing was read or written.
    NotHolder,
    Evaluated(CycleReport),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleReport {
    /// Subjects a condition holds for.
    pub findings: usize,
    /// Alerts opened, moved or resolved.
    pub transitions: usize,
    /// Events written (alerts that fired, fired alerts that resolved).
    pub events: usize,
    /// Alerts firing after the cycle.
    pub firing: i64,
    /// The transaction's time, start to commit: the cycle's database time plus round trips.
    pub duration: Duration,
}

/// Runs cycles as one holder of the evaluator's lease.
#[derive(Clone)]
pub struct Evaluator {
    store: Store,
    lease: Lease,
}

/// A finding as the transitions statement takes it.
struct Findings {
    rule_ids: Vec<i64>,
    host_ids: Vec<i64>,
    container_ids: Vec<Option<String>>,
    values: Vec<Option<f64>>,
    since: Vec<Option<DateTime<Utc>>>,
    exact: Vec<Option<bool>>,
}

impl Evaluator {
    /// An evaluator holding the lease as `holder`, each claim lasting `lease_ttl`.
    pub fn new(store: Store, holder: String, lease_ttl: Duration) -> Self {
        Self {
            store,
            lease: Lease {
                name: ALERT_EVALUATOR,
                holder,
                ttl: lease_ttl,
            },
        }
    }

    /// Takes or renews the lease without evaluating; whether we hold it.
    pub async fn renew(&self) -> Result<bool, Error> {
        let client = self.store.client().await?;
        self.lease.claim(&client).await
    }

    /// One cycle, if we hold (or can take) the lease.
    pub async fn cycle(&self) -> Result<Cycle, Error> {
        let started = Instant::now();
        let mut client = self.store.client().await?;
        let transaction = client.transaction().await?;
        if !self.lease.claim(&transaction).await? {
            transaction.rollback().await?;
            return Ok(Cycle::NotHolder);
        }
        // A large fleet's metric window is hundreds of thousands of samples: aggregated in
        // memory rather than spilled to temporary files (BENCHMARKS.md, alert evaluation).
        transaction
            .batch_execute("SET LOCAL work_mem = '64MB'")
            .await?;
        let findings = find(&transaction).await?;
        let found = findings.rule_ids.len();
        let statement = transaction.prepare_cached(TRANSITIONS).await?;
        let transitions = transaction
            .query(
                &statement,
                &[
                    &findings.rule_ids,
                    &findings.host_ids,
                    &findings.container_ids,
                    &findings.values,
                    &findings.since,
                    &findings.exact,
                ],
            )
            .await?;
        let events = write_events(&transaction, &transitions).await?;
        let firing: i64 = transaction.query_one(FIRING, &[]).await?.get(0);
        transaction.commit().await?;
        let report = CycleReport {
            findings: found,
            transitions: transitions.len(),
            events,
            firing,
            duration: started.elapsed(),
        };
        crate::http::metrics::record_alert_evaluation(report.duration, report.firing);
        Ok(Cycle::Evaluated(report))
    }
}

/// Every finding of the enabled rules, by the branches they need.
async fn find(client: &impl GenericClient) -> Result<Findings, Error> {
    let rules = client.query(ENABLED_RULES, &[]).await?;
    let branches: BTreeSet<Branch> = rules
        .iter()
        .filter_map(|row| Branch::of_rule(row.get(0), row.get(1), row.get(2)))
        .collect();
    let mut findings = Findings {
        rule_ids: Vec::new(),
        host_ids: Vec::new(),
        container_ids: Vec::new(),
        values: Vec::new(),
        since: Vec::new(),
        exact: Vec::new(),
    };
    if branches.is_empty() {
        return Ok(findings);
    }
    let branches: Vec<Branch> = branches.into_iter().collect();
    let statement = client.prepare_cached(&findings_sql(&branches)).await?;
    for row in client.query(&statement, &[]).await? {
        findings.rule_ids.push(row.get(0));
        findings.host_ids.push(row.get(1));
        findings.container_ids.push(row.get(2));
        findings.values.push(row.get(3));
        findings.since.push(row.get(4));
        findings.exact.push(row.get(5));
    }
    Ok(findings)
}

/// The events of a cycle's transitions; how many were written.
async fn write_events(
    client: &impl GenericClient,
    transitions: &[tokio_postgres::Row],
) -> Result<usize, Error> {
    let mut kinds = Vec::new();
    let mut host_ids: Vec<i64> = Vec::new();
    let mut container_ids: Vec<Option<String>> = Vec::new();
    let mut alert_ids: Vec<i64> = Vec::new();
    let mut from: Vec<Option<String>> = Vec::new();
    let mut to: Vec<String> = Vec::new();
    for row in transitions {
        let was: Option<String> = row.get("was");
        let now: String = row.get("now_state");
        let kind = match (was.as_deref(), now.as_str()) {
            (Some("pending") | None, "firing") => "alert_firing",
            (Some("firing"), "resolved") => "alert_resolved",
            // A pending alert that clears, a value that moved: no event.
            _ => continue,
        };
        kinds.push(kind);
        host_ids.push(row.get("host_id"));
        container_ids.push(row.get("container_id"));
        alert_ids.push(row.get("id"));
        from.push(was);
        to.push(now);
    }
    if kinds.is_empty() {
        return Ok(0);
    }
    let statement = client.prepare_cached(ALERT_EVENTS).await?;
    client
        .execute(
            &statement,
            &[&kinds, &host_ids, &container_ids, &alert_ids, &from, &to],
        )
        .await?;
    Ok(kinds.len())
}
