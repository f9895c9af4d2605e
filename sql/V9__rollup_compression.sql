-- Smaller rollups on disk (community edition; sizes in BENCHMARKS.md, notes in docs/analytics.md).
--
-- The container rollups compress one container per batch (segment by container_id), so each
-- batch holds one host_id. A min/max of host_id finds a host's batches as well as the bloom
-- filters TimescaleDB adds by default for the (host_id, bucket) index, at a fraction of their
-- bytes (1.56 of 39.5 per 5-minute row). Continuous aggregates take this option only on their
-- materialization hypertable, and only from TimescaleDB 2.22. Chunks compressed before keep
-- their filters until recompressed.
--
-- 5-minute rollup chunks of 3 days: 864 rows per series, one compressed batch (batches hold up
-- to 1,000 rows), and the newest chunk, which waits uncompressed until the refresh window has
-- passed it, holds 3 days of rows instead of the 10 TimescaleDB picked (10 × the raw chunk
-- interval when V6 ran). New chunks only. The 1-hour rollups keep 10 days (240 rows per batch):
-- longer chunks compress them ~14% better but keep more rows uncompressed than that saves over
-- two years.
DO $$
DECLARE
    rollup record;
    version int[] := string_to_array(split_part(
        (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), '-', 1), '.')::int[];
BEGIN
    IF current_setting('timescaledb.license') <> 'timescale' THEN
        RETURN;
    END IF;
    FOR rollup IN
        SELECT view_name, format('%I.%I', materialization_hypertable_schema,
                                 materialization_hypertable_name)::regclass AS materialized
        FROM timescaledb_information.continuous_aggregates
        WHERE view_name IN ('host_metrics_5m', 'container_metrics_5m', 'container_metrics_1h')
    LOOP
        IF rollup.view_name LIKE '%\_5m' THEN
            PERFORM set_chunk_time_interval(rollup.materialized, INTERVAL '3 days');
        END IF;
        IF rollup.view_name LIKE 'container\_%' AND version >= ARRAY[2, 22] THEN
            EXECUTE format('ALTER TABLE %s SET (timescaledb.compress_index = %L)',
                           rollup.materialized, 'minmax(host_id)');
        END IF;
    END LOOP;
END
$$;
