-- The container rollups compress one container per batch (segment by container_id), so each
-- batch holds one host_id. A min/max of host_id finds a host's batches as well as the bloom
-- filters TimescaleDB adds by default for the (host_id, bucket) index, at a fraction of their
-- bytes (1.56 of 39.5 per 5-minute row; BENCHMARKS.md). Chunks compressed before keep their
-- filters until recompressed. Continuous aggregates take this option only on their
-- materialization hypertable.
DO $$
DECLARE
    materialized regclass;
BEGIN
    IF current_setting('timescaledb.license') = 'timescale' THEN
        FOR materialized IN
            SELECT format('%I.%I', materialization_hypertable_schema,
                          materialization_hypertable_name)::regclass
            FROM timescaledb_information.continuous_aggregates
            WHERE view_name IN ('container_metrics_5m', 'container_metrics_1h')
        LOOP
            EXECUTE format('ALTER TABLE %s SET (timescaledb.compress_index = %L)',
                           materialized, 'minmax(host_id)');
        END LOOP;
    END IF;
END
$$;
