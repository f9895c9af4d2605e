-- First statement of an ingest: the host's facts and status, and its metric row.
-- Its row lock on the host serialises ingests of one host until the transaction ends, so the
-- containers statement that follows sees every earlier snapshot of the host.
--  $1 host id, $2 recorded_at, $3..$10 host metrics, $11..$15 host facts.
WITH host AS (
    UPDATE hosts SET
        cpu_count       = COALESCE($11, cpu_count),
        memory_total_mb = COALESCE($12, memory_total_mb),
        disk_total_gb   = COALESCE($13, disk_total_gb),
        os              = COALESCE($14, os),
        docker_version  = COALESCE($15, docker_version),
        status          = CASE WHEN status IN ('pending', 'offline') THEN 'online' ELSE status END,
        last_seen_at    = GREATEST(last_seen_at, $2), -- never backwards; GREATEST skips NULL
        updated_at      = now()
    WHERE id = $1 AND status <> 'archived'
    RETURNING id
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
