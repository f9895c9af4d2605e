-- Archived hosts: `status = 'archived'` and `archived_at IS NOT NULL` say the same thing, always.
-- The original system's middleware reads `archived_at`; this service read `status`; rows written
-- by hand or imported could set one without the other and keep ingesting.

-- Repair first. A host with either mark is archived (the stricter reading wins): it gets both,
-- and its active tokens are revoked, as archiving through the API does.
UPDATE agent_tokens t SET revoked_at = now()
FROM hosts h
WHERE h.id = t.host_id AND t.revoked_at IS NULL
  AND (h.status = 'archived' OR h.archived_at IS NOT NULL);
UPDATE hosts SET status = 'archived', archived_at = COALESCE(archived_at, updated_at, now())
WHERE (status = 'archived') <> (archived_at IS NOT NULL);

ALTER TABLE hosts ADD CONSTRAINT hosts_archived_status_matches_archived_at
    CHECK ((status = 'archived') = (archived_at IS NOT NULL));

-- Setting either mark sets the other, so `UPDATE hosts SET archived_at = now()` (what the
-- original system does) archives a host instead of failing the constraint. Archiving is for
-- good: clearing either mark of an archived host keeps it archived.
CREATE FUNCTION hosts_archive_marks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'archived' OR NEW.archived_at IS NOT NULL
       OR OLD.status = 'archived' OR OLD.archived_at IS NOT NULL THEN
        NEW.status := 'archived';
        NEW.archived_at := COALESCE(NEW.archived_at, OLD.archived_at, now());
    END IF;
    RETURN NEW;
END
$$;

-- Ingestion sets `status` on every snapshot; the WHEN clause keeps the function out of that
-- path unless a mark changes.
CREATE TRIGGER hosts_archive_marks
    BEFORE UPDATE OF status, archived_at ON hosts
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status OR NEW.archived_at IS DISTINCT FROM OLD.archived_at)
    EXECUTE FUNCTION hosts_archive_marks();

CREATE TRIGGER hosts_archive_marks_insert
    BEFORE INSERT ON hosts
    FOR EACH ROW
    WHEN (NEW.status = 'archived' OR NEW.archived_at IS NOT NULL)
    EXECUTE FUNCTION hosts_archive_marks();

-- The invalidation signal fired only when `status` was in the SET list; archiving by
-- `archived_at` alone must signal too.
DROP TRIGGER hosts_invalidate_archive ON hosts;
CREATE TRIGGER hosts_invalidate_archive
    AFTER UPDATE OF status, archived_at ON hosts
    FOR EACH ROW
    WHEN (NEW.status = 'archived' AND OLD.status IS DISTINCT FROM 'archived')
    EXECUTE FUNCTION notify_agent_token_change();

-- Every server keeps every token hash in memory (valid, revoked or of an archived host), so an
-- unknown bearer is answered without a query (src/store/agent_cache.rs). That needs a signal
-- for new tokens as well, and for both hashes when a hash changes.
CREATE OR REPLACE FUNCTION notify_agent_token_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('nexus_agent_tokens', '*');
    ELSIF TG_TABLE_NAME = 'hosts' THEN
        PERFORM pg_notify('nexus_agent_tokens', 'host:' || OLD.id);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('nexus_agent_tokens', 'token:' || NEW.hashed_token);
    ELSE
        PERFORM pg_notify('nexus_agent_tokens', 'token:' || OLD.hashed_token);
        IF TG_OP = 'UPDATE' AND NEW.hashed_token IS DISTINCT FROM OLD.hashed_token THEN
            PERFORM pg_notify('nexus_agent_tokens', 'token:' || NEW.hashed_token);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER agent_tokens_invalidate_insert
    AFTER INSERT ON agent_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_agent_token_change();

-- Fingerprint binding (opt-in per token): on its first admitted request a bound token records
-- the SHA-256 of the client address and User-Agent; later requests must match.
ALTER TABLE agent_tokens
    ADD COLUMN bind_fingerprint boolean NOT NULL DEFAULT false,
    ADD COLUMN fingerprint text
        CHECK (length(fingerprint) = 64); -- lower-case hex SHA-256, written by the server only

CREATE TRIGGER agent_tokens_invalidate_fingerprint
    AFTER UPDATE OF fingerprint ON agent_tokens
    FOR EACH ROW
    WHEN (OLD.fingerprint IS DISTINCT FROM NEW.fingerprint)
    EXECUTE FUNCTION notify_agent_token_change();
