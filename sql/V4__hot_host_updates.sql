-- Every snapshot updates its host row (last_seen_at, status, facts). An index on last_seen_at
-- made each of those updates insert into all four indexes of hosts, the GIN one on labels
-- included; without it they are HOT updates (heap only, no index touched), and the free room
-- kept in each page lets the new row version stay on its page. The liveness detector, the
-- index's only user, scans hosts instead: one pass over a small table every few seconds.
DROP INDEX hosts_online_last_seen_idx;
ALTER TABLE hosts SET (fillfactor = 50);
