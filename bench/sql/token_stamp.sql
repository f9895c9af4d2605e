-- pgbench script: the token stamp ingest did before the fleet-wide rate limit.
\set id random(1, :tokens)
UPDATE bench_tokens SET last_used_at = now() WHERE id = :id AND revoked_at IS NULL;
