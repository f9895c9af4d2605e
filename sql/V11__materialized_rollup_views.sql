-- `<rollup>_materialized`: the rollups' materialized rows alone, for long fleet-wide reads that
-- can do without the newest, not yet materialized buckets (docs/analytics.md).
--
-- A real-time rollup is a UNION ALL of its materialized rows and an aggregate of the newest raw
-- rows. The union keeps TimescaleDB from aggregating the compressed materialized rows vectorised,
-- so an aggregate over weeks of a rollup reads ~5× slower through it (BENCHMARKS.md); reading the
-- materialized rows alone is TimescaleDB's own workaround (timescale/timescaledb#4762). Same
-- columns as the rollup. On the Apache edition the rollups are views over the raw rows, always
-- complete, and these are the same views under a second name.
DO $$
DECLARE
    rollup text;
    source text;
BEGIN
    FOREACH rollup IN ARRAY ARRAY['host_metrics_5m', 'host_metrics_1h',
                                  'container_metrics_5m', 'container_metrics_1h']
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
        EXECUTE format('GRANT SELECT ON %I TO nexus_analyst', rollup || '_materialized');
    END LOOP;
END
$$;
