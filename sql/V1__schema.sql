-- The analysts' contract: table and column names follow the original system and must not change.
-- Units are in the column names (_mb = MiB, _gb = GiB, _bytes = bytes, _percent = 0-100 per core).

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE hosts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    slug            text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'online', 'offline', 'degraded', 'archived')),
    last_seen_at    timestamptz,
    cpu_count       integer,
    memory_total_mb bigint,
    disk_total_gb   bigint,
    os              text,
    docker_version  text,
    labels          jsonb       NOT NULL DEFAULT '{}',
    metadata        jsonb       NOT NULL DEFAULT '{}',
    archived_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id      bigint      NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    -- lower-case hex SHA-256 of the bearer; the plaintext is never stored
    hashed_token text        NOT NULL UNIQUE CHECK (hashed_token ~ '^[0-9a-f]{64}$'),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_tokens_host_id_idx ON agent_tokens (host_id);

-- One row per container of a host: what describes it, written only when that changes.
CREATE TABLE containers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id       bigint      NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    container_id  text        NOT NULL, -- Docker's id
    name          text        NOT NULL,
    image         text        NOT NULL,
    image_tag     text,
    status        text,
    state         text,
    health_status text,
    ports         jsonb       NOT NULL DEFAULT '[]',
    labels        jsonb       NOT NULL DEFAULT '{}',
    started_at    timestamptz,
    finished_at   timestamptz,
    first_seen_at timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL, -- the snapshot this row's state was taken from
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, container_id)
);

-- The hypertables carry no foreign keys: TimescaleDB adds them to every new chunk, which takes
-- a SHARE ROW EXCLUSIVE lock on the referenced table and deadlocks with concurrent ingests that
-- hold a row of it. The ids come from the server (the authenticated host, the upserted
-- containers), and rows of hosts and containers are never deleted by the service.
CREATE TABLE host_metric_snapshots (
    host_id          bigint           NOT NULL,
    recorded_at      timestamptz      NOT NULL,
    cpu_percent      double precision,
    memory_used_mb   bigint,
    memory_total_mb  bigint,
    disk_used_gb     bigint,
    disk_total_gb    bigint,
    network_rx_bytes bigint,
    network_tx_bytes bigint,
    load_average     double precision,
    -- one row per host and instant: agent retries are idempotent; serves "one host, newest first"
    PRIMARY KEY (host_id, recorded_at)
);
SELECT create_hypertable('host_metric_snapshots', by_range('recorded_at', INTERVAL '1 day'));

CREATE TABLE container_metric_snapshots (
    container_id      bigint           NOT NULL, -- containers.id
    host_id           bigint           NOT NULL, -- hosts.id
    recorded_at       timestamptz      NOT NULL,
    cpu_percent       double precision,
    memory_usage_mb   bigint,
    memory_limit_mb   bigint,
    memory_percent    double precision, -- usage / limit * 100, computed by the server
    network_rx_bytes  bigint,
    network_tx_bytes  bigint,
    block_read_bytes  bigint,
    block_write_bytes bigint,
    PRIMARY KEY (container_id, recorded_at)
);
SELECT create_hypertable('container_metric_snapshots', by_range('recorded_at', INTERVAL '1 day'));
CREATE INDEX container_metric_snapshots_host_idx
    ON container_metric_snapshots (host_id, recorded_at DESC);

-- Each container with its latest metrics and the time it was last seen.
CREATE VIEW containers_latest AS
SELECT c.id, c.host_id, c.container_id, c.name, c.image, c.image_tag, c.status, c.state,
       c.health_status, c.ports, c.labels, c.started_at, c.finished_at, c.first_seen_at,
       s.recorded_at AS last_seen_at,
       s.cpu_percent, s.memory_usage_mb, s.memory_limit_mb, s.memory_percent,
       s.network_rx_bytes, s.network_tx_bytes, s.block_read_bytes, s.block_write_bytes
FROM containers c
LEFT JOIN LATERAL (
    SELECT *
    FROM container_metric_snapshots s
    WHERE s.container_id = c.id
    ORDER BY s.recorded_at DESC
    LIMIT 1
) s ON true;
