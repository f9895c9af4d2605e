-- Alert evaluation (docs/alerts.md#evaluation, src/alerts/): the helpers a cycle's statements
-- share, and indexes that keep a cycle's condition queries from reading whole tables.

-- One definition of an alert's fingerprint: hex SHA-256 of "<rule id>/<host id>/<container id>"
-- (the container id empty for a host's alert). The same for every alert of one rule and subject.
CREATE FUNCTION alert_fingerprint(rule_id bigint, host_id bigint, container_id text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(
        rule_id::text || '/' || host_id::text || '/' || coalesce(container_id, ''), 'UTF8')), 'hex')
$$;

-- A counter's rate between two samples; NULL across a reset (the counter went down) or without
-- a previous sample.
CREATE FUNCTION alert_counter_rate(value bigint, previous bigint, seconds double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value >= previous AND seconds > 0 THEN (value - previous) / seconds END
$$;

-- The containers the container_* conditions look at: few of a fleet's, found without reading
-- every container row each cycle.
CREATE INDEX containers_stopped_idx ON containers (host_id)
    WHERE state IN ('exited', 'dead') AND removed_at IS NULL;
CREATE INDEX containers_unhealthy_idx ON containers (host_id)
    WHERE health_status = 'unhealthy' AND removed_at IS NULL;
CREATE INDEX containers_oom_killed_idx ON containers (host_id)
    WHERE oom_killed AND removed_at IS NULL;
-- Restart and OOM events within a rule's window, by time (the events hypertable's chunks are
-- weeks long and hold every kind).
CREATE INDEX events_restarts_idx ON events (at) WHERE kind IN ('restarted', 'oom_killed');

-- `host_events` keeps meaning what it did before the feed (sql/V13__events.sql): host liveness
-- transitions. An alert about a host has no container either, and would otherwise show in it.
CREATE OR REPLACE VIEW host_events AS
SELECT id, host_id, kind, at FROM events
WHERE container_id IS NULL AND kind IN ('online', 'offline', 'recovered');
