-- Second statement of an ingest: container dimension rows (written only when they change)
-- and one metric row per container. Runs after the host statement locked the host's row.
--  $1 host id, $2 recorded_at, $3..$21 one array per container column, all of one length.
WITH host AS (
    SELECT id FROM hosts WHERE id = $1 AND status <> 'archived'
),
incoming AS (
    SELECT *
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::jsonb[], $11::jsonb[], $12::timestamptz[], $13::timestamptz[],
                $14::float8[], $15::int8[], $16::int8[], $17::float8[], $18::int8[], $19::int8[],
                $20::int8[], $21::int8[])
        AS i (container_id, name, image, image_tag, status, state, health_status, ports, labels,
              started_at, finished_at, cpu_percent, memory_usage_mb, memory_limit_mb,
              memory_percent, network_rx_bytes, network_tx_bytes, block_read_bytes,
              block_write_bytes)
),
upserted AS (
    INSERT INTO containers AS c
        (host_id, container_id, name, image, image_tag, status, state, health_status, ports,
         labels, started_at, finished_at, first_seen_at, recorded_at)
    SELECT host.id, i.container_id, i.name, i.image, i.image_tag, i.status, i.state,
           i.health_status, i.ports, i.labels, i.started_at, i.finished_at, $2, $2
    FROM incoming i CROSS JOIN host
    ON CONFLICT (host_id, container_id) DO UPDATE SET
        name = EXCLUDED.name, image = EXCLUDED.image, image_tag = EXCLUDED.image_tag,
        status = EXCLUDED.status, state = EXCLUDED.state, health_status = EXCLUDED.health_status,
        ports = EXCLUDED.ports, labels = EXCLUDED.labels, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, recorded_at = EXCLUDED.recorded_at, updated_at = now()
    -- Write only when the description changed, and never with state older than what we hold:
    -- neither older than the row itself nor than any snapshot already seen for the container.
    WHERE (c.name, c.image, c.image_tag, c.status, c.state, c.health_status, c.ports, c.labels,
           c.started_at, c.finished_at)
          IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.image, EXCLUDED.image_tag, EXCLUDED.status, EXCLUDED.state,
           EXCLUDED.health_status, EXCLUDED.ports, EXCLUDED.labels, EXCLUDED.started_at,
           EXCLUDED.finished_at)
      AND c.recorded_at < EXCLUDED.recorded_at
      AND NOT EXISTS (SELECT 1 FROM container_metric_snapshots s
                      WHERE s.container_id = c.id AND s.recorded_at > EXCLUDED.recorded_at)
    RETURNING c.id, c.container_id
),
container_snapshots AS (
    INSERT INTO container_metric_snapshots
        (container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, memory_limit_mb,
         memory_percent, network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes)
    -- New rows are only visible through `upserted`, unchanged ones only through `containers`.
    -- The latter is a per-row lookup by the unique key (a scalar subquery, not a join): a join
    -- let a plan cached while `containers` was small hash the whole table on every post.
    SELECT COALESCE(u.id, (SELECT e.id FROM containers e
                           WHERE e.host_id = host.id AND e.container_id = i.container_id)),
           host.id, $2, i.cpu_percent, i.memory_usage_mb,
           i.memory_limit_mb, i.memory_percent, i.network_rx_bytes, i.network_tx_bytes,
           i.block_read_bytes, i.block_write_bytes
    FROM incoming i
    CROSS JOIN host
    LEFT JOIN upserted u ON u.container_id = i.container_id
    ON CONFLICT (container_id, recorded_at) DO NOTHING
    RETURNING 1
)
SELECT count(*) AS container_rows FROM container_snapshots
