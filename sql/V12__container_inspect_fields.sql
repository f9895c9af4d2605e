-- Docker's inspect data per container (issue 25), optional in the payload: agents that do not
-- send them leave them NULL. Written with the rest of the description, only when it changes.
ALTER TABLE containers
    ADD COLUMN restart_count bigint CHECK (restart_count >= 0), -- Docker's RestartCount
    ADD COLUMN exit_code     bigint,  -- State.ExitCode of the last run; NULL while running
    ADD COLUMN oom_killed    boolean; -- State.OOMKilled of the last run

-- Same view, the three columns appended (a view may only grow at its end).
CREATE OR REPLACE VIEW containers_latest AS
SELECT c.id, c.host_id, c.container_id, c.name, c.image, c.image_tag, c.status, c.state,
       c.health_status, c.ports, c.labels, c.started_at, c.finished_at, c.first_seen_at,
       s.recorded_at AS last_seen_at,
       s.cpu_percent, s.memory_usage_mb, s.memory_limit_mb,
       memory_percent(s.memory_usage_mb, s.memory_limit_mb) AS memory_percent,
       s.network_rx_bytes, s.network_tx_bytes, s.block_read_bytes, s.block_write_bytes,
       c.restart_count, c.exit_code, c.oom_killed
FROM containers c
LEFT JOIN LATERAL (
    SELECT *
    FROM container_metric_snapshots s
    WHERE s.container_id = c.id
    ORDER BY s.recorded_at DESC
    LIMIT 1
) s ON true;
