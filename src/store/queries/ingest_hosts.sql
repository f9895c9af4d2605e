-- First statement of an ingest batch: per snapshot, re-check and stamp its token, then write
-- its host's facts and status, the status-change event and the host metric row. A snapshot
-- whose host row already exists (a retried post) is stored already: the statements that
-- follow skip it (first write wins). The server first runs this statement without the
-- ON CONFLICT clause below (`MetricRows` in src/store/ingest/transaction.rs): a retried post
-- then fails the batch with a unique violation, and the batch runs again with the clause.
-- Host rows are locked in id order, so concurrent batches cannot deadlock on them, and held
-- until the transaction ends: that serialises the writes of one host, so the containers
-- statement that follows sees every earlier snapshot of the host. The stamped token rows stay
-- locked too, so a revocation waits for this commit instead of slipping in between statements.
--  One array per column of HostColumns (src/store/ingest/columns.rs), one element per
--  snapshot, the server filling in the arrays ($1..$16) and their names from that
--  declaration: host id, token id, recorded_at, the host metrics, the host facts. Host ids are
--  distinct within a batch. $17 (a scalar) the per-token rate limit.
WITH input AS (
    SELECT * FROM unnest({arrays}) AS i ({columns})
),
locked AS (
    SELECT id, status, xmin::text::int8 AS version FROM hosts
    WHERE id = ANY($1) AND status <> 'archived' AND archived_at IS NULL
    ORDER BY id
    FOR UPDATE
),
-- The token's log of its latest stored posts (newest first, at most $17 = the rate limit),
-- returned so the answering process learns the fleet-wide count (src/api/rate_limit.rs). A
-- slice, not a filter on age: the reader ignores entries older than the window, and the
-- slice cost a third of what trimming by age in a subquery did (docs/SCALING.md#rate-limits).
stamped AS (
    UPDATE agent_tokens t SET last_used_at = now(),
        recent_posts = (now() || t.recent_posts)[1:$17]
    FROM input i JOIN locked l ON l.id = i.host_id
    WHERE t.id = i.token_id AND t.host_id = i.host_id AND t.revoked_at IS NULL
    RETURNING t.host_id, t.recent_posts
),
-- The snapshots still allowed in: host not archived, token not revoked.
admitted AS (
    SELECT i.*, l.status AS previous_status, l.version AS version_before, s.recent_posts
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
        updated_at      = now()
    FROM admitted a
    WHERE h.id = a.host_id
    RETURNING h.id, h.xmin::text::int8 AS version_after
),
-- Recorded with the status change itself, so a status and its event never disagree.
event AS (
    INSERT INTO host_events (host_id, kind)
    SELECT host_id, CASE previous_status WHEN 'pending' THEN 'online' ELSE 'recovered' END
    FROM admitted
    WHERE previous_status IN ('pending', 'offline')
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
       a.version_before, h.version_after, a.recent_posts,
       now() AS stamped_at
FROM admitted a
JOIN host h ON h.id = a.host_id
