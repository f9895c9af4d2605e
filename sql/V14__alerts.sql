-- Alerts (docs/alerts.md): rules say what to watch, alerts are what the rules found, one per
-- rule and subject, and their transitions join the events feed. Evaluation runs in one server
-- process at a time, the holder of the `alert_evaluator` lease.

-- A rule: a kind with its parameters, a scope, a `for` duration, a severity and a summary.
CREATE TABLE alert_rules (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL UNIQUE,
    kind               text        NOT NULL CHECK (kind IN (
                           'host_offline', 'container_not_running', 'container_unhealthy',
                           'container_restarting', 'container_oom_killed', 'metric_threshold')),
    -- Scope: every host when both are NULL; otherwise hosts in `host_ids` and/or whose labels
    -- contain `host_labels` (both must match when both are set).
    host_ids           bigint[],
    host_labels        jsonb       CHECK (host_labels IS NULL OR jsonb_typeof(host_labels) = 'object'),
    -- How long the condition must hold before the alert fires (pending until then).
    for_seconds        integer     NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    severity           text        NOT NULL DEFAULT 'warning'
                           CHECK (severity IN ('info', 'warning', 'critical')),
    summary            text        NOT NULL DEFAULT '',
    enabled            boolean     NOT NULL DEFAULT true,
    -- container_not_running: a container that exited with code 0 does not count.
    ignore_exit_code_zero boolean  NOT NULL DEFAULT false,
    -- container_restarting: at least `restarts` restarts within `window_seconds`.
    restarts           integer     CHECK (restarts > 0),
    window_seconds     integer     CHECK (window_seconds > 0),
    -- metric_threshold: `metric` `operator` `threshold`, e.g. host_disk_used_percent > 90.
    metric             text        CHECK (metric IN (
                           'host_cpu_percent', 'host_memory_percent', 'host_disk_used_percent',
                           'host_load_average',
                           'host_network_rx_bytes_per_second', 'host_network_tx_bytes_per_second',
                           'container_cpu_percent', 'container_memory_percent',
                           'container_network_rx_bytes_per_second',
                           'container_network_tx_bytes_per_second',
                           'container_block_read_bytes_per_second',
                           'container_block_write_bytes_per_second')),
    operator           text        CHECK (operator IN ('>', '>=', '<', '<=')),
    threshold          double precision,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'container_restarting') = (restarts IS NOT NULL AND window_seconds IS NOT NULL)),
    CHECK ((kind = 'metric_threshold')
           = (metric IS NOT NULL AND operator IS NOT NULL AND threshold IS NOT NULL))
);

-- What a fresh install watches; every one can be changed or deleted.
INSERT INTO alert_rules (name, kind, for_seconds, severity, summary, ignore_exit_code_zero,
                         restarts, window_seconds, metric, operator, threshold)
VALUES
    ('host offline', 'host_offline', 0, 'critical',
     'The host stopped reporting', false, NULL, NULL, NULL, NULL, NULL),
    ('container not running', 'container_not_running', 120, 'warning',
     'A container that was running has stopped', true, NULL, NULL, NULL, NULL, NULL),
    ('container restarting', 'container_restarting', 0, 'warning',
     'A container restarted 3 or more times in 10 minutes', false, 3, 600, NULL, NULL, NULL),
    ('disk almost full', 'metric_threshold', 600, 'critical',
     'A host''s disk is more than 90% full', false, NULL, NULL,
     'host_disk_used_percent', '>', 90);

-- An alert: one rule's finding about one subject (a host, or a host's container). At most one
-- is open (pending or firing) per rule and subject; resolved ones are the history.
CREATE TABLE alerts (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          bigint      NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    host_id          bigint      NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    container_id     text,       -- Docker's id; NULL: the alert is about the host
    -- Hex SHA-256 of rule id, host id and container id: the same for every alert of one rule
    -- and subject, so receivers can group an alert's occurrences.
    fingerprint      text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    -- The value that made it fire (or go pending), e.g. the disk percent or restart count.
    value            double precision,
    pending_since    timestamptz NOT NULL, -- when the condition was first seen to hold
    started_at       timestamptz,          -- when it fired
    resolved_at      timestamptz,          -- when the condition stopped holding
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    silenced_until   timestamptz,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_open_idx ON alerts (rule_id, host_id, coalesce(container_id, ''))
    WHERE state <> 'resolved';
CREATE INDEX alerts_state_idx ON alerts (state) WHERE state <> 'resolved';
CREATE INDEX alerts_history_idx ON alerts (id DESC);
CREATE INDEX alerts_host_idx ON alerts (host_id, id);

-- A lease held by one server process for a singleton job (the alert evaluator, delivery
-- fan-out): the holder renews it before `expires_at`; another process takes over once it has
-- passed. A row, not a session lock, so it works through PgBouncer's transaction pooling.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Alert transitions join the events feed: `alert_id` says which alert, `from_value`/`to_value`
-- are its states, `container_id` its subject's container when there is one.
ALTER TABLE events ADD COLUMN alert_id bigint;
ALTER TABLE events DROP CONSTRAINT events_kind_check;
ALTER TABLE events DROP CONSTRAINT events_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check CHECK (kind IN (
    'online', 'offline', 'recovered',
    'created', 'removed',
    'state_changed', 'health_changed',
    'restarted', 'oom_killed',
    'alert_firing', 'alert_resolved', 'alert_acknowledged'));
ALTER TABLE events ADD CONSTRAINT events_subject_check CHECK (
    CASE
        WHEN kind IN ('online', 'offline', 'recovered') THEN container_id IS NULL
        WHEN kind LIKE 'alert\_%' THEN alert_id IS NOT NULL
        ELSE container_id IS NOT NULL
    END);

GRANT SELECT ON alert_rules, alerts TO nexus_analyst;
