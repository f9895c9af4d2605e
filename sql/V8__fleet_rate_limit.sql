-- The per-token rate limit across server processes: each stored post prepends its time to its
-- token's log (the newest `limit` entries) in the statement that already stamps
-- `last_used_at`, and the answering process learns the fleet's log from it.
-- No trigger fires on it (the cache triggers watch revoked_at, hashed_token, host_id, the
-- fingerprint), and it is no analyst's business (agent_tokens is not in nexus_analyst's grants).
ALTER TABLE agent_tokens ADD COLUMN recent_posts timestamptz[] NOT NULL DEFAULT '{}';
