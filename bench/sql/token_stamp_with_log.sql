-- pgbench script: the same stamp keeping the token's log of its latest posts (at most 60 = the
-- default limit, newest first) and returning it, as src/store/queries/ingest_hosts.sql does.
\set id random(1, :tokens)
UPDATE bench_tokens SET last_used_at = now(), recent_posts = (now() || recent_posts)[1:60]
WHERE id = :id AND revoked_at IS NULL
RETURNING recent_posts, now();
