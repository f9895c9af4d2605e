-- Per-bucket lifecycle counts of each container, from the events feed: how often it restarted,
-- was OOM-killed, stopped and turned unhealthy in each 5 minutes and each hour. Beside the
-- metric rollups rather than in them: a continuous aggregate reads one hypertable, and adding
-- a column to the metric rollups would mean rebuilding them from raw rows that retention may
-- already have dropped. Same names and columns on both editions: continuous aggregates (the
-- 1 h one built on the 5 min one) under the Timescale license, plain views over `events`
-- under the Apache license. Policies are set by the server (src/store/lifecycle.rs).
--
-- `container_id` is Docker's id, as in `events`; join `containers` on (host_id, container_id)
-- for names, or `container_metrics_5m` through `containers.id`.
DO $$
DECLARE
    continuous boolean := current_setting('timescaledb.license') = 'timescale';
    kind text := CASE WHEN continuous THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END;
    options text := CASE WHEN continuous
        THEN 'WITH (timescaledb.continuous, timescaledb.materialized_only = false)' ELSE '' END;
    no_data text := CASE WHEN continuous THEN 'WITH NO DATA' ELSE '' END;
BEGIN
    -- A `restarted` event holds the restart count before and after: a jump of two is two.
    EXECUTE format($sql$
        CREATE %s container_lifecycle_5m %s AS
        SELECT time_bucket(INTERVAL '5 minutes', at) AS bucket,
               host_id,
               container_id,
               sum(CASE WHEN kind = 'restarted'
                        THEN to_value::bigint - coalesce(from_value::bigint, 0) ELSE 0 END)::bigint
                   AS restarts,
               count(*) FILTER (WHERE kind = 'oom_killed') AS oom_kills,
               count(*) FILTER (WHERE kind = 'state_changed' AND to_value IN ('exited', 'dead'))
                   AS stops,
               count(*) FILTER (WHERE kind = 'health_changed' AND to_value = 'unhealthy')
                   AS turned_unhealthy
        FROM events
        WHERE container_id IS NOT NULL
          AND kind IN ('restarted', 'oom_killed', 'state_changed', 'health_changed')
        GROUP BY 1, 2, 3 %s $sql$, kind, options, no_data);

    EXECUTE format($sql$
        CREATE %s container_lifecycle_1h %s AS
        SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
               host_id,
               container_id,
               sum(restarts)::bigint AS restarts,
               sum(oom_kills)::bigint AS oom_kills,
               sum(stops)::bigint AS stops,
               sum(turned_unhealthy)::bigint AS turned_unhealthy
        FROM container_lifecycle_5m
        GROUP BY 1, 2, 3 %s $sql$, kind, options, no_data);

    IF continuous THEN
        ALTER MATERIALIZED VIEW container_lifecycle_5m SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'host_id', timescaledb.compress_orderby = 'bucket DESC');
        ALTER MATERIALIZED VIEW container_lifecycle_1h SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'host_id', timescaledb.compress_orderby = 'bucket DESC');
    END IF;
END
$$;

-- Their materialized rows alone, as for the metric rollups (sql/V11__materialized_rollup_views.sql).
DO $$
DECLARE
    rollup text;
    source text;
BEGIN
    FOREACH rollup IN ARRAY ARRAY['container_lifecycle_5m', 'container_lifecycle_1h']
    LOOP
        source := rollup;
        IF current_setting('timescaledb.license') = 'timescale' THEN
            SELECT format('%I.%I', materialization_hypertable_schema,
                          materialization_hypertable_name)
            INTO STRICT source
            FROM timescaledb_information.continuous_aggregates
            WHERE view_schema = current_schema() AND view_name = rollup;
        END IF;
        EXECUTE format('CREATE VIEW %I AS SELECT * FROM %s', rollup || '_materialized', source);
    END LOOP;
END
$$;

GRANT SELECT ON container_lifecycle_5m, container_lifecycle_1h, container_lifecycle_5m_materialized,
    container_lifecycle_1h_materialized TO nexus_analyst;
