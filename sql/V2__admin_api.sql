-- The admin API: its own credentials, label filtering, and the signal that tells every server
-- process to drop cached agent-token lookups the moment a token stops being valid.

-- Admin API tokens (`nxk_…`): a credential separate from agent tokens.
CREATE TABLE admin_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    -- lower-case hex SHA-256 of the bearer; the plaintext is never stored
    hashed_token text        NOT NULL UNIQUE CHECK (hashed_token ~ '^[0-9a-f]{64}$'),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- `GET /api/v1/hosts?label=key:value` filters with `labels @> '{"key": "value"}'`.
CREATE INDEX hosts_labels_idx ON hosts USING gin (labels jsonb_path_ops);

-- Cache invalidation: servers LISTEN on `nexus_agent_tokens`. Payloads:
--   `token:<hashed_token>` a token was revoked, re-hashed, moved or deleted;
--   `host:<id>`            a host was archived (all its tokens stop authenticating);
--   `*`                    anything may have changed (TRUNCATE).
-- Notifications are sent at commit, so a rolled-back revocation invalidates nothing.
CREATE FUNCTION notify_agent_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('nexus_agent_tokens', '*');
    ELSIF TG_TABLE_NAME = 'hosts' THEN
        PERFORM pg_notify('nexus_agent_tokens', 'host:' || OLD.id);
    ELSE
        PERFORM pg_notify('nexus_agent_tokens', 'token:' || OLD.hashed_token);
    END IF;
    RETURN NULL;
END
$$;

-- Not on `last_used_at`: stamping a token on every request must not flush the caches.
CREATE TRIGGER agent_tokens_invalidate_update
    AFTER UPDATE OF revoked_at, hashed_token, host_id ON agent_tokens
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.hashed_token IS DISTINCT FROM NEW.hashed_token
          OR OLD.host_id IS DISTINCT FROM NEW.host_id)
    EXECUTE FUNCTION notify_agent_token_change();

CREATE TRIGGER agent_tokens_invalidate_delete
    AFTER DELETE ON agent_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_agent_token_change();

CREATE TRIGGER agent_tokens_invalidate_truncate
    AFTER TRUNCATE ON agent_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_agent_token_change();

-- Only archiving makes tokens invalid; ingestion's pending → online changes need no signal.
CREATE TRIGGER hosts_invalidate_archive
    AFTER UPDATE OF status ON hosts
    FOR EACH ROW
    WHEN (NEW.status = 'archived' AND OLD.status IS DISTINCT FROM 'archived')
    EXECUTE FUNCTION notify_agent_token_change();
