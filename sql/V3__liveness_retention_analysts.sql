-- Host liveness transitions, and the read-only role for analysts.

CREATE TABLE host_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id bigint      NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    -- online: first contact; offline: silent past the heartbeat timeout; recovered: back from offline
    kind    text        NOT NULL CHECK (kind IN ('online', 'offline', 'recovered')),
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX host_events_host_id_idx ON host_events (host_id, id DESC); -- newest first, by page

-- The liveness detector looks for online hosts not seen lately.
CREATE INDEX hosts_online_last_seen_idx ON hosts (last_seen_at) WHERE status = 'online';

-- Analysts read everything but credentials. Roles are cluster-wide, and databases of one
-- cluster may migrate at the same time: whoever comes second finds the role there.
DO $$
BEGIN
    CREATE ROLE nexus_analyst NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO nexus_analyst;
GRANT SELECT ON hosts, containers, containers_latest, host_metric_snapshots,
    container_metric_snapshots, host_events TO nexus_analyst;
