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
