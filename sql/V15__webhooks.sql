-- Webhooks (docs/alerts.md, "Webhooks"): endpoints that receive events of the kinds they
-- subscribe to, signed per the Standard Webhooks specification, through a transactional outbox:
-- a fan-out step turns each new event into one delivery row per matching endpoint, and delivery
-- workers in any server process claim due rows, post them and record the outcome.

CREATE TABLE webhook_endpoints (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url            text        NOT NULL,
    -- Event kinds (events.kind) delivered; empty: every kind, including kinds added later.
    event_kinds    text[]      NOT NULL DEFAULT '{}',
    format         text        NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    enabled        boolean     NOT NULL DEFAULT true,
    -- The signing secret, `whsec_<base64>`. HMAC needs the key itself, so it is stored (not a
    -- hash); only the server's role reads this table, analysts are not granted it.
    secret         text        NOT NULL,
    -- Events up to this id were written before the endpoint existed and are not delivered to it.
    after_event_id bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The fan-out's position in the events feed: one row, locked by the process that fans out
-- (FOR UPDATE SKIP LOCKED: one at a time, the others skip), advanced in the transaction that
-- inserts the deliveries. Starts at the newest event: nothing before webhooks existed is sent.
CREATE TABLE webhook_fanout (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_event_id bigint  NOT NULL
);
INSERT INTO webhook_fanout (last_event_id) SELECT COALESCE(max(id), 0) FROM events;

-- One message to one endpoint: the outbox row. Its id is the stable `webhook-id` (`msg_<id>`)
-- of every attempt; `body` is the exact JSON signed and sent, rendered at fan-out.
CREATE TABLE webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      bigint      NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL,
    event_kind       text        NOT NULL,
    body             text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'delivered', 'failed')),
    -- Attempts started (counted when claimed, so one cut short by a crash counts too).
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A claim: the worker holding the row until `locked_until`; a worker that dies leaves the
    -- row to be claimed again once it has passed.
    locked_until     timestamptz,
    locked_by        text,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
-- What the workers look for: due pending rows.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- An endpoint's deliveries, newest first (the API's listing).
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);

-- Analysts may see how deliveries went; not the endpoints (their URLs and secrets), nor bodies.
GRANT SELECT (id, endpoint_id, event_id, event_kind, state, attempts, next_attempt_at,
              last_attempt_at, last_status_code, last_error, delivered_at, created_at)
    ON webhook_deliveries TO nexus_analyst;
