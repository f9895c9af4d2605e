-- Compressed container rows segmented by container and host (community edition; sizes in
-- BENCHMARKS.md, notes in docs/analytics.md).
--
-- A container belongs to one host, so the segments, one per container, are the same as before.
-- host_id is then kept once per compressed batch instead of as a compressed column of it, which
-- saves ~0.1 byte a sample, and a query filtering container rows on host_id reads only that
-- host's batches instead of decompressing every container's. Applies to chunks compressed from
-- now on; chunks compressed before keep their settings until recompressed. TimescaleDB versions
-- that cannot change the setting while compressed chunks exist keep the old one.
DO $$
BEGIN
    IF current_setting('timescaledb.license') <> 'timescale' THEN
        RETURN;
    END IF;
    ALTER TABLE container_metric_snapshots SET (timescaledb.compress_segmentby = 'container_id, host_id');
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'container_metric_snapshots keeps segmenting by container_id: %', SQLERRM;
END
$$;
