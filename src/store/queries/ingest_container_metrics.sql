-- Last statement of an ingest batch: one metric row per container of each snapshot the first
-- statement stored, with the container ids known or found by the second.
--  One array per column, one element per container.
WITH written AS (
    INSERT INTO container_metric_snapshots
        (container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, memory_limit_mb,
         network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes)
    SELECT *
    FROM unnest($1::int8[], $2::int8[], $3::timestamptz[], $4::float4[], $5::int8[], $6::int8[],
                $7::int8[], $8::int8[], $9::int8[], $10::int8[])
    ON CONFLICT (container_id, recorded_at) DO NOTHING -- first write wins
    RETURNING host_id
)
SELECT host_id, count(*) AS container_rows
FROM written
GROUP BY host_id
