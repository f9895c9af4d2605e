-- Second statement of an ingest batch: the dimension rows of the containers this process does
-- not know to be unchanged (see src/store/container_cache.rs), for snapshots the first
-- statement admitted and whose host row it wrote (their hosts are locked by it). Each row is
-- written only when its description changed, and then never with state older than held.
--  One array per column of DescriptionColumns (src/store/ingest/columns.rs), one element per
--  container, the server filling in the arrays and their names from that declaration: the
--  host id and recorded_at of the container's snapshot, then the container's description.
-- Returns every container with its id and whether its stored description is now the one sent.
WITH incoming AS (
    SELECT * FROM unnest({arrays}) AS i ({columns})
),
-- Each container's row as held, if any, and whether its description is unchanged. A lookup
-- by the unique key per container (OFFSET 0 keeps the planner from turning it into a join,
-- which a plan cached while `containers` was small would run as a hash of the whole table).
known AS (
    SELECT i.*, c.id AS known_id, COALESCE(c.unchanged, false) AS unchanged
    FROM incoming i
    LEFT JOIN LATERAL (
        SELECT c.id,
               (c.name, c.image, c.image_tag, c.status, c.state, c.health_status, c.ports,
                c.labels, c.started_at, c.finished_at)
               IS NOT DISTINCT FROM
               (i.name, i.image, i.image_tag, i.status, i.state, i.health_status, i.ports,
                i.labels, i.started_at, i.finished_at) AS unchanged
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
         labels, started_at, finished_at, first_seen_at, recorded_at)
    SELECT host_id, container_id, name, image, image_tag, status, state, health_status, ports,
           labels, started_at, finished_at, recorded_at, recorded_at
    FROM known
    WHERE NOT unchanged
    ON CONFLICT (host_id, container_id) DO UPDATE SET
        name = EXCLUDED.name, image = EXCLUDED.image, image_tag = EXCLUDED.image_tag,
        status = EXCLUDED.status, state = EXCLUDED.state, health_status = EXCLUDED.health_status,
        ports = EXCLUDED.ports, labels = EXCLUDED.labels, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, recorded_at = EXCLUDED.recorded_at, updated_at = now()
    WHERE c.recorded_at < EXCLUDED.recorded_at
      AND NOT EXISTS (SELECT 1 FROM container_metric_snapshots s
                      WHERE s.container_id = c.id AND s.recorded_at > EXCLUDED.recorded_at)
    RETURNING c.id, c.host_id, c.container_id
)
-- New rows are only visible through `upserted`, held ones through `known`.
SELECT k.host_id, k.container_id, COALESCE(u.id, k.known_id) AS id,
       k.unchanged OR u.id IS NOT NULL AS current
FROM known k
LEFT JOIN upserted u ON u.host_id = k.host_id AND u.container_id = k.container_id
