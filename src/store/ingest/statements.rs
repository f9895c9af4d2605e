//! The ingest statements, templates whose column and parameter lists [`expand`](super::columns::expand)
//! fills in from the column declarations (`{columns}`, `{arrays}`). SQL lives inline, beside the
//! code that runs it; these are long enough to get a file of their own.

/// `ingest_hosts`.
pub(super) const INGEST_HOSTS_SQL: &str = r#"
-- First statement of an ingest batch: per snapshot, re-check and stamp its token, then write
-- its host's facts and status, the status-change event and the host metric row. A snapshot
-- whose host row already exists (a retried post) is stored already: the statements that
-- follow skip it (first write wins). The server first runs this statement without the
-- ON CONFLICT clause below (`MetricWrite` in src/store/ingest/transaction.rs): a retried post
-- then fails the batch with a unique violation, and the batch runs again with the clause.
-- Host rows are locked in id order, so concurrent batches cannot deadlock on them, and held
-- until the transaction ends: that serialises the writes of one host, so the containers
-- statement that follows sees every earlier snapshot of the host. The stamped token rows stay
-- locked too, so a revocation waits for this commit instead of slipping in between statements.
--  One array per column of HostColumns (src/store/ingest/columns.rs), one element per
--  snapshot, the server filling in the arrays ($1..$17) and their names from that
--  declaration: host id, token id, recorded_at, the host metrics, the host facts, the digest of
--  the snapshot's container ids. Host ids are distinct within a batch. $18 (a scalar) the
--  per-token rate limit.
WITH input AS (
    SELECT * FROM unnest({arrays}) AS i ({columns})
),
locked AS (
    SELECT id, status, xmin::text::int8 AS version, last_seen_at, containers_digest FROM hosts
    WHERE id = ANY($1) AND status <> 'archived' AND archived_at IS NULL
    ORDER BY id
    FOR UPDATE
),
-- The token's log of its latest stored posts (newest first, at most $18 = the rate limit),
-- returned so the answering process learns the fleet-wide count (src/api/ingest/rate_limit.rs). A
-- slice, not a filter on age: the reader ignores entries older than the window, and the
-- slice cost a third of what trimming by age in a subquery did (docs/SCALING.md#rate-limits).
stamped AS (
    UPDATE agent_tokens t SET last_used_at = now(),
        recent_posts = (now() || t.recent_posts)[1:$18]
    FROM input i JOIN locked l ON l.id = i.host_id
    WHERE t.id = i.token_id AND t.host_id = i.host_id AND t.revoked_at IS NULL
    RETURNING t.host_id, t.recent_posts
),
-- The snapshots still allowed in: host not archived, token not revoked.
admitted AS (
    SELECT i.*, l.status AS previous_status, l.version AS version_before, s.recent_posts,
           -- The newest snapshot of the host so far, whose container set differs from the
           -- previous one's: containers may have vanished (src/store/ingest/removals.rs).
           (l.last_seen_at IS NULL OR i.recorded_at > l.last_seen_at)
               AND i.containers_digest IS DISTINCT FROM l.containers_digest AS containers_moved
    FROM input i
    JOIN locked l ON l.id = i.host_id
    JOIN stamped s ON s.host_id = i.host_id
),
host AS (
    UPDATE hosts h SET
        cpu_count       = COALESCE(a.cpu_count, h.cpu_count),
        memory_total_mb = COALESCE(a.facts_memory_total_mb, h.memory_total_mb),
        disk_total_gb   = COALESCE(a.facts_disk_total_gb, h.disk_total_gb),
        os              = COALESCE(a.os, h.os),
        docker_version  = COALESCE(a.docker_version, h.docker_version),
        status          = CASE WHEN h.status IN ('pending', 'offline') THEN 'online'
                               ELSE h.status END,
        last_seen_at    = GREATEST(h.last_seen_at, a.recorded_at), -- never backwards; skips NULL
        containers_digest = CASE WHEN a.containers_moved THEN a.containers_digest
                                 ELSE h.containers_digest END,
        updated_at      = now()
    FROM admitted a
    WHERE h.id = a.host_id
    RETURNING h.id, h.xmin::text::int8 AS version_after
),
-- Recorded with the status change itself, so a status and its event never disagree. Only
-- once every host row is locked (the count runs `host` to its end first): a writer of events
-- holds their lock (sql/V13__events.sql) until it commits, and must not wait for a host then.
event AS (
    INSERT INTO events (host_id, kind)
    SELECT host_id, CASE previous_status WHEN 'pending' THEN 'online' ELSE 'recovered' END
    FROM admitted
    WHERE previous_status IN ('pending', 'offline') AND (SELECT count(*) FROM host) > 0
),
host_snapshot AS (
    INSERT INTO host_metric_snapshots
        (host_id, recorded_at, cpu_percent, memory_used_mb, memory_total_mb, disk_used_gb,
         disk_total_gb, network_rx_bytes, network_tx_bytes, load_average)
    SELECT host_id, recorded_at, cpu_percent, memory_used_mb, memory_total_mb, disk_used_gb,
           disk_total_gb, network_rx_bytes, network_tx_bytes, load_average
    FROM admitted
    ON CONFLICT (host_id, recorded_at) DO NOTHING -- a retried post: first write wins
    RETURNING host_id
)
-- One row per admitted snapshot; a snapshot without a row here is refused. The host row's
-- version (the id of the transaction that wrote it last) before and after this one tells
-- whether what this process remembers of the host's containers is still exact
-- (see src/store/container_cache.rs).
SELECT a.host_id, a.host_id IN (SELECT host_id FROM host_snapshot) AS host_row_written,
       a.version_before, h.version_after, a.recent_posts, a.containers_moved,
       now() AS stamped_at
FROM admitted a
JOIN host h ON h.id = a.host_id
"#;

/// `ingest_containers`.
pub(super) const INGEST_CONTAINERS_SQL: &str = r#"
-- Second statement of an ingest batch: the dimension rows of the containers this process does
-- not know to be unchanged (see src/store/container_cache.rs), for snapshots the first
-- statement admitted and whose host row it wrote (their hosts are locked by it). Each row is
-- written only when its description changed, and then never with state older than held.
--  One array per column of DescriptionColumns (src/store/ingest/columns.rs), one element per
--  container, the server filling in the arrays and their names from that declaration: the
--  host id and recorded_at of the container's snapshot, then the container's description.
-- Returns every container with its id and whether its stored description is now the one sent.
WITH incoming AS (
    SELECT * FROM unnest({arrays}) WITH ORDINALITY AS i ({columns}, ordinality)
),
-- Each container's row as held, if any, and whether its description is unchanged. A lookup
-- by the unique key per container (OFFSET 0 keeps the planner from turning it into a join,
-- which a plan cached while `containers` was small would run as a hash of the whole table).
known AS (
    SELECT i.*, c.id AS known_id, COALESCE(c.unchanged, false) AS unchanged,
           c.state AS was_state, c.health_status AS was_health_status,
           c.restart_count AS was_restart_count, c.oom_killed AS was_oom_killed
    FROM incoming i
    LEFT JOIN LATERAL (
        SELECT c.id, c.state, c.health_status, c.restart_count, c.oom_killed,
               (c.name, c.image, c.image_tag, c.status, c.state, c.health_status, c.ports,
                c.labels, c.started_at, c.finished_at, c.restart_count, c.exit_code,
                c.oom_killed)
               IS NOT DISTINCT FROM
               (i.name, i.image, i.image_tag, i.status, i.state, i.health_status, i.ports,
                i.labels, i.started_at, i.finished_at, i.restart_count, i.exit_code,
                i.oom_killed) AS unchanged
        FROM containers c
        WHERE c.host_id = i.host_id AND c.container_id = i.container_id
        OFFSET 0
    ) c ON true
),
-- Only new and changed containers are written (and locked); never with state older than what
-- we hold: neither older than the row itself nor than any snapshot already seen for it.
upserted AS (
    INSERT INTO containers AS c
        (host_id, container_id, name, image, image_tag, status, state, health_status, ports,
         labels, started_at, finished_at, restart_count, exit_code, oom_killed, first_seen_at,
         recorded_at)
    SELECT host_id, container_id, name, image, image_tag, status, state, health_status, ports,
           labels, started_at, finished_at, restart_count, exit_code, oom_killed, recorded_at,
           recorded_at
    FROM known
    WHERE NOT unchanged
    ON CONFLICT (host_id, container_id) DO UPDATE SET
        name = EXCLUDED.name, image = EXCLUDED.image, image_tag = EXCLUDED.image_tag,
        status = EXCLUDED.status, state = EXCLUDED.state, health_status = EXCLUDED.health_status,
        ports = EXCLUDED.ports, labels = EXCLUDED.labels, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, restart_count = EXCLUDED.restart_count,
        exit_code = EXCLUDED.exit_code, oom_killed = EXCLUDED.oom_killed,
        recorded_at = EXCLUDED.recorded_at, updated_at = now()
    WHERE c.recorded_at < EXCLUDED.recorded_at
      AND NOT EXISTS (SELECT 1 FROM container_metric_snapshots s
                      WHERE s.container_id = c.id AND s.recorded_at > EXCLUDED.recorded_at)
    RETURNING c.id, c.host_id, c.container_id
),
-- What each write changed, as events (docs/analytics.md#events): only for rows written, so a
-- description older than the one held changes nothing. Host rows are locked by the first
-- statement, so of two processes ingesting for one host the second compares with what the
-- first wrote, and no change is reported twice.
event AS (
    INSERT INTO events (at, kind, host_id, container_id, from_value, to_value, exit_code)
    SELECT k.recorded_at, e.kind, k.host_id, k.container_id, e.from_value, e.to_value,
           k.exit_code
    FROM known k
    JOIN upserted u ON u.host_id = k.host_id AND u.container_id = k.container_id
    CROSS JOIN LATERAL (VALUES
        (1, 'created', NULL, k.state, k.known_id IS NULL),
        (2, 'state_changed', k.was_state, k.state,
            k.known_id IS NOT NULL AND k.was_state IS DISTINCT FROM k.state),
        (3, 'health_changed', k.was_health_status, k.health_status,
            k.known_id IS NOT NULL AND k.was_health_status IS DISTINCT FROM k.health_status),
        (4, 'restarted', k.was_restart_count::text, k.restart_count::text,
            k.restart_count > k.was_restart_count),
        (5, 'oom_killed', NULL, NULL,
            k.known_id IS NOT NULL AND k.oom_killed AND k.was_oom_killed IS NOT TRUE)
    ) AS e (rank, kind, from_value, to_value, happened)
    WHERE e.happened
    ORDER BY k.ordinality, e.rank
)
-- New rows are only visible through `upserted`, held ones through `known`.
SELECT k.host_id, k.container_id, COALESCE(u.id, k.known_id) AS id,
       k.unchanged OR u.id IS NOT NULL AS current
FROM known k
LEFT JOIN upserted u ON u.host_id = k.host_id AND u.container_id = k.container_id
"#;

/// `ingest_container_metrics`.
pub(super) const INGEST_CONTAINER_METRICS_SQL: &str = r#"
-- Last statement of an ingest batch: one metric row per container of each snapshot the first
-- statement stored, with the container ids known or found by the second.
--  One array per column of MetricColumns (src/store/ingest/columns.rs), one element per
--  container; the server fills in the columns and the arrays from that declaration, the one
--  the COPY of the same rows takes too.
WITH written AS (
    INSERT INTO container_metric_snapshots ({columns})
    SELECT * FROM unnest({arrays})
    ON CONFLICT (container_id, recorded_at) DO NOTHING -- first write wins
    RETURNING host_id
)
SELECT host_id, count(*) AS container_rows
FROM written
GROUP BY host_id
"#;

/// `copy_container_metrics`.
pub(super) const COPY_CONTAINER_METRICS_SQL: &str = r#"
-- Last step of an ingest batch whose container metric rows cannot exist yet (their snapshots'
-- host rows are new; see MetricWrite in src/store/ingest/transaction.rs): the rows in binary COPY
-- format, no conflict check. The server fills in the column list from MetricColumns
-- (src/store/ingest/columns.rs), whose order the rows are encoded in.
COPY container_metric_snapshots ({columns})
FROM STDIN (FORMAT binary)
"#;

/// `ingest_removals`.
pub(super) const INGEST_REMOVALS_SQL: &str = r#"
-- Third statement of an ingest batch, only when some snapshot's container set differs from its
-- host's previous snapshot (the first statement compares their digests; only for the host's
-- newest snapshot so far): the containers that vanished get `removed_at` and a `removed`
-- event, those that came back lose it and get a `created` event. Their hosts are locked.
--  $1, $2, $3: host id, recorded_at and the container ids of each such snapshot, the ids as the
--  keys of a jsonb object: `?` finds a key by binary search, so each of the host's containers
--  is checked against its own snapshot's set alone, both ways. (A flat list of every snapshot's containers, anti-
--  joined, was planned as a nested loop from unnest's estimate of 10 rows: every held container
--  compared with every container of the batch, 29 ms for 24 snapshots of 20.)
WITH moved AS (
    SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::jsonb[]) AS m (host_id, recorded_at, present)
),
vanished AS (
    UPDATE containers c SET removed_at = m.recorded_at
    FROM moved m
    WHERE c.host_id = m.host_id AND c.removed_at IS NULL AND NOT (m.present ? c.container_id)
    RETURNING c.host_id, c.container_id, c.state, c.exit_code, m.recorded_at
),
-- Found per host through a lateral lookup (OFFSET 0 keeps it one): joined directly, a table
-- whose statistics lag (a young install) was estimated to hold removed rows everywhere and
-- scanned whole.
returned AS (
    UPDATE containers c SET removed_at = NULL
    FROM moved m
    CROSS JOIN LATERAL (
        SELECT b.id FROM containers b
        WHERE b.host_id = m.host_id AND b.removed_at IS NOT NULL AND m.present ? b.container_id
        OFFSET 0
    ) back
    WHERE c.id = back.id
    RETURNING c.host_id, c.container_id, c.state, c.exit_code, m.recorded_at
)
INSERT INTO events (at, kind, host_id, container_id, from_value, to_value, exit_code)
SELECT recorded_at, 'removed', host_id, container_id, state, NULL, exit_code FROM vanished
UNION ALL
SELECT recorded_at, 'created', host_id, container_id, NULL, state, exit_code FROM returned
ORDER BY 3, 4
"#;
