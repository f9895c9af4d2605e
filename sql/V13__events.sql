-- One feed of what changed (issue 25): the container lifecycle events the server derives in the
-- ingest transaction, and the host liveness transitions `host_events` held until now. Read by
-- the API (`/api/v1/events`, its live stream) and by analysts (docs/analytics.md).

CREATE SEQUENCE events_id_seq AS bigint;

CREATE TABLE events (
    -- Fleet-wide, increasing in commit order (see events_assign_id below): a reader that has
    -- seen id N has seen every committed event with a smaller id.
    id           bigint      NOT NULL,
    -- The snapshot's recorded_at for container events; the time of the transition for host ones.
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text        NOT NULL CHECK (kind IN (
                     'online', 'offline', 'recovered',          -- the host's liveness
                     'created', 'removed',                      -- a container appeared, vanished
                     'state_changed', 'health_changed',         -- Docker's state, health status
                     'restarted', 'oom_killed')),               -- restart_count rose, OOMKilled
    host_id      bigint      NOT NULL, -- hosts.id
    container_id text,                 -- Docker's id (containers.container_id); NULL: about the host
    from_value   text,                 -- before: the state, health status or restart count
    to_value     text,                 -- after
    exit_code    bigint,               -- the container's exit code as of the event, when known
    CHECK ((container_id IS NULL) = (kind IN ('online', 'offline', 'recovered')))
);
ALTER SEQUENCE events_id_seq OWNED BY events.id;
-- Weeks per chunk: a busy fleet writes few events, and a year is ~52 chunks to look through.
SELECT create_hypertable('events', by_range('at', INTERVAL '7 days'));
CREATE INDEX events_id_idx ON events (id);
CREATE INDEX events_host_idx ON events (host_id, id);
CREATE INDEX events_container_idx ON events (container_id, id) WHERE container_id IS NOT NULL;

-- The liveness transitions move over with their ids; new ids continue after them.
INSERT INTO events (id, at, kind, host_id)
SELECT id, at, kind, host_id FROM host_events;
SELECT setval('events_id_seq', max(id)) FROM host_events HAVING count(*) > 0;
DROP TABLE host_events;

-- Ids are taken in commit order: every writer of events takes this lock (transaction-scoped)
-- before it takes an id, and holds it until it commits, so no event can become visible after
-- one with a larger id. Readers that continue "after id N" (pages, the live stream) then never
-- skip a row that commits late. Events are rare (a change, not a sample), so writers seldom
-- wait on each other; snapshots without events never take it.
CREATE FUNCTION events_assign_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7954896762661987702); -- 'nexus_ev' as a key (src/store/events.rs)
    NEW.id := nextval('events_id_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER events_assign_id
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_id();

-- A wake-up for live streams on every server process (src/api/events_stream.rs): no payload,
-- the listener reads the table from the last id it sent. Notifications of one transaction are
-- folded into one.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexus_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_notify();


-- `host_events` stays readable (and writable, as before) under its name and columns.
CREATE VIEW host_events AS
SELECT id, host_id, kind, at FROM events WHERE container_id IS NULL;

GRANT SELECT ON events, host_events TO nexus_analyst;

-- Which containers were in each host's newest snapshot, to tell which vanish: a container is
-- present from its first snapshot until a newer snapshot of its host lacks it (`removed_at`,
-- that snapshot's recorded_at; cleared if it comes back). The host keeps a digest of its newest
-- snapshot's container ids (computed by the server), so only a snapshot whose set differs
-- looks at the container rows (src/store/ingest/removals.rs).
ALTER TABLE hosts ADD COLUMN containers_digest bigint;
ALTER TABLE containers ADD COLUMN removed_at timestamptz;
CREATE INDEX containers_present_idx ON containers (host_id) WHERE removed_at IS NULL;

-- Containers not in their host's newest snapshot before this migration are removed already.
-- When exactly is unknown; the host's newest snapshot is when they were last known gone. One
-- primary-key probe per container (a single chunk: one instant).
UPDATE containers c SET removed_at = h.last_seen_at
FROM hosts h
WHERE h.id = c.host_id AND h.last_seen_at IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM container_metric_snapshots s
      WHERE s.container_id = c.id AND s.recorded_at = h.last_seen_at);

CREATE OR REPLACE VIEW containers_latest AS
SELECT c.id, c.host_id, c.container_id, c.name, c.image, c.image_tag, c.status, c.state,
       c.health_status, c.ports, c.labels, c.started_at, c.finished_at, c.first_seen_at,
       s.recorded_at AS last_seen_at,
       s.cpu_percent, s.memory_usage_mb, s.memory_limit_mb,
       memory_percent(s.memory_usage_mb, s.memory_limit_mb) AS memory_percent,
       s.network_rx_bytes, s.network_tx_bytes, s.block_read_bytes, s.block_write_bytes,
       c.restart_count, c.exit_code, c.oom_killed, c.removed_at
FROM containers c
LEFT JOIN LATERAL (
    SELECT *
    FROM container_metric_snapshots s
    WHERE s.container_id = c.id
    ORDER BY s.recorded_at DESC
    LIMIT 1
) s ON true;

-- Columnstore compression (community edition): one segment per host, ordered by id, so reads
-- "after id N" skip whole batches by their min/max. The policy is set by the server.
DO $$
BEGIN
    IF current_setting('timescaledb.license') = 'timescale' THEN
        ALTER TABLE events SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'host_id',
            timescaledb.compress_orderby = 'id');
    END IF;
END
$$;
