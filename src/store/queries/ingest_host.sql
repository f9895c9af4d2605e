-- First statement of an ingest: the host's facts and status, and its metric row.
-- Its row lock on the host serialises ingests of one host until the transaction ends, so the
-- containers statement that follows sees every earlier snapshot of the host.
--  $1 host id, $2 recorded_at, $3..$10 host metrics, $11..$15 host facts.
WITH previous AS (
    SELECT id, status FROM hosts WHERE id = $1 AND status <> 'archived' FOR UPDATE
),
host AS (
    UPDATE hosts SET
        cpu_count       = COALESCE($11, hosts.cpu_count),
        memory_total_mb = COALESCE($12, hosts.memory_total_mb),
        disk_total_gb   = COALESCE($13, hosts.disk_total_gb),
        os              = COALESCE($14, hosts.os),
        docker_version  = COALESCE($15, hosts.docker_version),
        status          = CASE WHEN hosts.status IN ('pending', 'offline') THEN 'online'
                               ELSE hosts.status END,
        last_seen_at    = GREATEST(hosts.last_seen_at, $2), -- never backwards; skips NULL
        updated_at      = now()
    FROM previous
    WHERE hosts.id = previous.id
    RETURNING hosts.id, previous.status AS previous_status
),
-- Recorded with the status change itself, so a status and its event never disagree.
event AS (
    INSERT INTO host_events (host_id, kind)
    SELECT id, CASE previous_status WHEN 'pending' THEN 'online' ELSE 'recovered' END
    FROM host
    WHERE previous_status IN ('pending', 'offline')
),
host_snapshot AS (
    INSERT INTO host_metric_snapshots
        (host_id, recorded_at, cpu_percent, memory_used_mb, memory_total_mb, disk_used_gb,
         disk_total_gb, network_rx_bytes, network_tx_bytes, load_average)
    SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM host
    ON CONFLICT (host_id, recorded_at) DO NOTHING -- a retried post: first write wins
    RETURNING 1
)
SELECT (SELECT count(*) FROM host)          AS hosts_updated,
       (SELECT count(*) FROM host_snapshot) AS host_rows
