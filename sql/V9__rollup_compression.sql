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

-- 5-minute rollup chunks of 3 days: 864 rows per series, one compressed batch (TimescaleDB's
-- batches hold up to 1,000 rows), and the newest chunk, which waits uncompressed until the
-- refresh window has passed it, holds 3 days of rows instead of the 10 TimescaleDB picked
-- (10 × the raw chunk interval when V6 ran). New chunks only; existing ones keep their range.
-- The 1-hour rollups keep 10 days (240 rows per batch): longer chunks compress them ~14% better
-- but keep more rows uncompressed than that saves over two years (BENCHMARKS.md).
DO $$
BEGIN
    IF current_setting('timescaledb.license') = 'timescale' THEN
        ALTER MATERIALIZED VIEW host_metrics_5m SET (timescaledb.chunk_interval = '3 days');
        ALTER MATERIALIZED VIEW container_metrics_5m SET (timescaledb.chunk_interval = '3 days');
    END IF;
END
$$;
