-- The containers of a host that are marked removed, for the ingest's removals statement: a
-- container back in its host's snapshot loses its mark (src/store/ingest/statements.rs). Few
-- rows, so the index stays small.
CREATE INDEX containers_removed_idx ON containers (host_id) WHERE removed_at IS NOT NULL;
