-- The removals statement before and after 5c52faa, on a kept bench database (rolled back):
--   target/release/nexus-bench --hosts 3000 --containers 20 --duration 3 --no-baseline --keep-database
--   psql <that database> -v n=256 -f bench/sql/removals-ab.sql | grep "Execution Time"   # old, new
\set QUIET on
\timing off
-- Old statement (before 5c52faa and its parent): flat lists anti-joined.
PREPARE old_removals(int8[], timestamptz[], int8[], text[]) AS
WITH moved AS (
    SELECT * FROM unnest($1::int8[], $2::timestamptz[]) AS m (host_id, recorded_at)
),
present AS (
    SELECT * FROM unnest($3::int8[], $4::text[]) AS p (host_id, container_id)
),
vanished AS (
    UPDATE containers c SET removed_at = m.recorded_at
    FROM moved m
    WHERE c.host_id = m.host_id AND c.removed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM present p
                      WHERE p.host_id = c.host_id AND p.container_id = c.container_id)
    RETURNING c.host_id, c.container_id, c.state, c.exit_code, m.recorded_at
),
returned AS (
    UPDATE containers c SET removed_at = NULL
    FROM present p
    JOIN moved m ON m.host_id = p.host_id
    WHERE c.host_id = p.host_id AND c.container_id = p.container_id
      AND c.removed_at IS NOT NULL
    RETURNING c.host_id, c.container_id, c.state, c.exit_code, m.recorded_at
)
INSERT INTO events (at, kind, host_id, container_id, from_value, to_value, exit_code)
SELECT recorded_at, 'removed', host_id, container_id, state, NULL, exit_code FROM vanished
UNION ALL
SELECT recorded_at, 'created', host_id, container_id, NULL, state, exit_code FROM returned
ORDER BY 3, 4;
PREPARE new_removals(int8[], timestamptz[], jsonb[]) AS
WITH moved AS (
    SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::jsonb[]) AS m (host_id, recorded_at, present)
),
vanished AS (
    UPDATE containers c SET removed_at = m.recorded_at
    FROM moved m
    WHERE c.host_id = m.host_id AND c.removed_at IS NULL AND NOT (m.present ? c.container_id)
    RETURNING c.host_id, c.container_id, c.state, c.exit_code, m.recorded_at
),
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
ORDER BY 3, 4;
-- N hosts' snapshots, each with its host's containers (nothing vanished: the steady case of a
-- first post after a restart, or a warm-up), as the server would pass them.
SELECT array_agg(id ORDER BY id) AS hosts, array_agg(now() ORDER BY id) AS ats
FROM (SELECT id FROM hosts ORDER BY id LIMIT :n) h \gset
SELECT array_agg(c.host_id ORDER BY c.host_id, c.container_id) AS phosts,
       array_agg(c.container_id ORDER BY c.host_id, c.container_id) AS pids
FROM containers c WHERE c.host_id = ANY(:'hosts'::int8[]) \gset
SELECT array_agg(p ORDER BY host_id) AS present FROM (
  SELECT c.host_id, jsonb_object_agg(c.container_id, null) AS p FROM containers c
  WHERE c.host_id = ANY(:'hosts'::int8[]) GROUP BY c.host_id) x \gset
BEGIN; SET LOCAL jit = off;
EXPLAIN (ANALYZE, BUFFERS, WAL, SUMMARY, COSTS OFF, TIMING OFF) EXECUTE old_removals(:'hosts', :'ats', :'phosts', :'pids');
ROLLBACK;
BEGIN; SET LOCAL jit = off;
EXPLAIN (ANALYZE, BUFFERS, WAL, SUMMARY, COSTS OFF, TIMING OFF) EXECUTE new_removals(:'hosts', :'ats', :'present');
ROLLBACK;
