-- Months of data at a sane size: slimmer metric rows, a counter-increase aggregate, and the
-- 5-minute and 1-hour rollups analysts and the read API use. Compression, refresh and
-- retention policies are installed by the server at start (they take its configuration).
-- docs/analytics.md describes every column; BENCHMARKS.md has the sizes behind each choice.

-- Chunks compressed under the old settings must be plain again before their columns change.
DO $$
DECLARE
    chunk regclass;
BEGIN
    IF current_setting('timescaledb.license') = 'timescale' THEN
        FOR chunk IN
            SELECT format('%I.%I', chunk_schema, chunk_name)::regclass
            FROM timescaledb_information.chunks
            WHERE hypertable_name IN ('host_metric_snapshots', 'container_metric_snapshots')
              AND is_compressed
        LOOP
            PERFORM decompress_chunk(chunk, if_compressed => true);
        END LOOP;
        PERFORM remove_compression_policy('host_metric_snapshots', if_exists => true);
        PERFORM remove_compression_policy('container_metric_snapshots', if_exists => true);
        ALTER TABLE host_metric_snapshots SET (timescaledb.compress = false);
        ALTER TABLE container_metric_snapshots SET (timescaledb.compress = false);
    END IF;
END
$$;

-- memory_percent is usage ÷ limit, derived where it is read (containers_latest, the rollups);
-- stored it cost more than any other column once compressed. Percentages and load averages
-- arrive with two decimals: `real` keeps them exactly and halves their compressed size. The
-- (host_id, recorded_at) index served host-wide reads, which the rollups now answer.
DROP VIEW containers_latest;
DROP INDEX container_metric_snapshots_host_idx;
ALTER TABLE container_metric_snapshots
    DROP COLUMN memory_percent,
    ALTER COLUMN cpu_percent TYPE real;
ALTER TABLE host_metric_snapshots
    ALTER COLUMN cpu_percent TYPE real,
    ALTER COLUMN load_average TYPE real;

-- usage ÷ limit × 100 to two decimals, as the server computed it before.
CREATE FUNCTION memory_percent(usage_mb bigint, limit_mb bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN round(usage_mb::numeric * 100 / nullif(limit_mb, 0), 2)::double precision;

CREATE VIEW containers_latest AS
SELECT c.id, c.host_id, c.container_id, c.name, c.image, c.image_tag, c.status, c.state,
       c.health_status, c.ports, c.labels, c.started_at, c.finished_at, c.first_seen_at,
       s.recorded_at AS last_seen_at,
       s.cpu_percent, s.memory_usage_mb, s.memory_limit_mb,
       memory_percent(s.memory_usage_mb, s.memory_limit_mb) AS memory_percent,
       s.network_rx_bytes, s.network_tx_bytes, s.block_read_bytes, s.block_write_bytes
FROM containers c
LEFT JOIN LATERAL (
    SELECT *
    FROM container_metric_snapshots s
    WHERE s.container_id = c.id
    ORDER BY s.recorded_at DESC
    LIMIT 1
) s ON true;

-- counter_increase(value ORDER BY recorded_at): how much a cumulative counter grew over the
-- samples given, a drop counting as a reset to zero (a container restart, a host reboot), as
-- Prometheus' increase() does. Null readings are skipped; fewer than two readings give null.
-- State: {readings so far, previous reading, increase so far}.
CREATE FUNCTION counter_increase_step(state bigint[], reading bigint) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF reading IS NULL THEN
        RETURN state;
    END IF;
    IF state[1] > 0 THEN
        state[3] := state[3] + CASE WHEN reading >= state[2] THEN reading - state[2] ELSE reading END;
    END IF;
    state[1] := state[1] + 1;
    state[2] := reading;
    RETURN state;
END
$$;

CREATE FUNCTION counter_increase_final(state bigint[]) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN state[1] > 1 THEN state[3] END;

CREATE AGGREGATE counter_increase(bigint) (
    SFUNC = counter_increase_step,
    STYPE = bigint[],
    FINALFUNC = counter_increase_final,
    INITCOND = '{0,0,0}'
);

-- The rollups. Same names and columns on both editions: continuous aggregates (real-time, the
-- 1 h one built on the 5 min one) under the Timescale license, plain views over the raw rows
-- under the Apache license, which has no continuous aggregates.
--
-- Rates: `<counter>_increase` is the counter's growth between consecutive samples inside each
-- 5-minute window, `counter_seconds` the time those samples span; a rate over any bucket is
-- sum(increase) / sum(counter_seconds). The 1 h rows sum the 5 min ones, so both levels and the
-- raw rows give the same rate for the same hour. Gauge aggregates are `real` (7 significant
-- digits, more than the two decimals agents send): half the compressed size of doubles.
DO $$
DECLARE
    continuous boolean := current_setting('timescaledb.license') = 'timescale';
    kind text := CASE WHEN continuous THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END;
    options text := CASE WHEN continuous
        THEN 'WITH (timescaledb.continuous, timescaledb.materialized_only = false)' ELSE '' END;
    no_data text := CASE WHEN continuous THEN 'WITH NO DATA' ELSE '' END;
BEGIN
    EXECUTE format($sql$
        CREATE %s host_metrics_5m %s AS
        SELECT time_bucket(INTERVAL '5 minutes', recorded_at) AS bucket,
               host_id,
               count(*) AS samples,
               avg(cpu_percent)::real AS cpu_percent_avg,
               min(cpu_percent) AS cpu_percent_min,
               max(cpu_percent) AS cpu_percent_max,
               avg(memory_used_mb)::real AS memory_used_mb_avg,
               min(memory_used_mb) AS memory_used_mb_min,
               max(memory_used_mb) AS memory_used_mb_max,
               max(memory_total_mb) AS memory_total_mb_max,
               avg(disk_used_gb)::real AS disk_used_gb_avg,
               min(disk_used_gb) AS disk_used_gb_min,
               max(disk_used_gb) AS disk_used_gb_max,
               max(disk_total_gb) AS disk_total_gb_max,
               avg(load_average)::real AS load_average_avg,
               min(load_average) AS load_average_min,
               max(load_average) AS load_average_max,
               extract(epoch FROM max(recorded_at) - min(recorded_at))::double precision AS counter_seconds,
               counter_increase(network_rx_bytes ORDER BY recorded_at) AS network_rx_bytes_increase,
               counter_increase(network_tx_bytes ORDER BY recorded_at) AS network_tx_bytes_increase
        FROM host_metric_snapshots
        GROUP BY 1, 2 %s $sql$, kind, options, no_data);

    EXECUTE format($sql$
        CREATE %s container_metrics_5m %s AS
        SELECT time_bucket(INTERVAL '5 minutes', recorded_at) AS bucket,
               container_id,
               host_id,
               count(*) AS samples,
               avg(cpu_percent)::real AS cpu_percent_avg,
               min(cpu_percent) AS cpu_percent_min,
               max(cpu_percent) AS cpu_percent_max,
               avg(memory_usage_mb)::real AS memory_usage_mb_avg,
               min(memory_usage_mb) AS memory_usage_mb_min,
               max(memory_usage_mb) AS memory_usage_mb_max,
               max(memory_limit_mb) AS memory_limit_mb_max,
               avg(memory_percent(memory_usage_mb, memory_limit_mb))::real AS memory_percent_avg,
               min(memory_percent(memory_usage_mb, memory_limit_mb))::real AS memory_percent_min,
               max(memory_percent(memory_usage_mb, memory_limit_mb))::real AS memory_percent_max,
               extract(epoch FROM max(recorded_at) - min(recorded_at))::double precision AS counter_seconds,
               counter_increase(network_rx_bytes ORDER BY recorded_at) AS network_rx_bytes_increase,
               counter_increase(network_tx_bytes ORDER BY recorded_at) AS network_tx_bytes_increase,
               counter_increase(block_read_bytes ORDER BY recorded_at) AS block_read_bytes_increase,
               counter_increase(block_write_bytes ORDER BY recorded_at) AS block_write_bytes_increase
        FROM container_metric_snapshots
        GROUP BY 1, 2, 3 %s $sql$, kind, options, no_data);

    -- An hour's average weighs each 5-minute average by its samples.
    EXECUTE format($sql$
        CREATE %s host_metrics_1h %s AS
        SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
               host_id,
               sum(samples)::bigint AS samples,
               (sum(cpu_percent_avg * samples) / sum(samples))::real AS cpu_percent_avg,
               min(cpu_percent_min) AS cpu_percent_min,
               max(cpu_percent_max) AS cpu_percent_max,
               (sum(memory_used_mb_avg * samples) / sum(samples))::real AS memory_used_mb_avg,
               min(memory_used_mb_min) AS memory_used_mb_min,
               max(memory_used_mb_max) AS memory_used_mb_max,
               max(memory_total_mb_max) AS memory_total_mb_max,
               (sum(disk_used_gb_avg * samples) / sum(samples))::real AS disk_used_gb_avg,
               min(disk_used_gb_min) AS disk_used_gb_min,
               max(disk_used_gb_max) AS disk_used_gb_max,
               max(disk_total_gb_max) AS disk_total_gb_max,
               (sum(load_average_avg * samples) / sum(samples))::real AS load_average_avg,
               min(load_average_min) AS load_average_min,
               max(load_average_max) AS load_average_max,
               sum(counter_seconds)::double precision AS counter_seconds,
               sum(network_rx_bytes_increase)::bigint AS network_rx_bytes_increase,
               sum(network_tx_bytes_increase)::bigint AS network_tx_bytes_increase
        FROM host_metrics_5m
        GROUP BY 1, 2 %s $sql$, kind, options, no_data);

    EXECUTE format($sql$
        CREATE %s container_metrics_1h %s AS
        SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
               container_id,
               host_id,
               sum(samples)::bigint AS samples,
               (sum(cpu_percent_avg * samples) / sum(samples))::real AS cpu_percent_avg,
               min(cpu_percent_min) AS cpu_percent_min,
               max(cpu_percent_max) AS cpu_percent_max,
               (sum(memory_usage_mb_avg * samples) / sum(samples))::real AS memory_usage_mb_avg,
               min(memory_usage_mb_min) AS memory_usage_mb_min,
               max(memory_usage_mb_max) AS memory_usage_mb_max,
               max(memory_limit_mb_max) AS memory_limit_mb_max,
               (sum(memory_percent_avg * samples) / sum(samples))::real AS memory_percent_avg,
               min(memory_percent_min) AS memory_percent_min,
               max(memory_percent_max) AS memory_percent_max,
               sum(counter_seconds)::double precision AS counter_seconds,
               sum(network_rx_bytes_increase)::bigint AS network_rx_bytes_increase,
               sum(network_tx_bytes_increase)::bigint AS network_tx_bytes_increase,
               sum(block_read_bytes_increase)::bigint AS block_read_bytes_increase,
               sum(block_write_bytes_increase)::bigint AS block_write_bytes_increase
        FROM container_metrics_5m
        GROUP BY 1, 2, 3 %s $sql$, kind, options, no_data);
END
$$;

-- Columnstore compression (community edition): one segment per series, newest first, so a
-- series' values sit together and delta-encode well; rollups too (TimescaleDB's default for
-- them mixes every series in one segment, 2.5x larger). Sizes in BENCHMARKS.md. When chunks
-- are compressed is a policy the server sets from its configuration.
DO $$
BEGIN
    IF current_setting('timescaledb.license') = 'timescale' THEN
        ALTER TABLE host_metric_snapshots SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'host_id',
            timescaledb.compress_orderby = 'recorded_at DESC');
        ALTER TABLE container_metric_snapshots SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'container_id',
            timescaledb.compress_orderby = 'recorded_at DESC');
        ALTER MATERIALIZED VIEW host_metrics_5m SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'host_id', timescaledb.compress_orderby = 'bucket DESC');
        ALTER MATERIALIZED VIEW container_metrics_5m SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'container_id', timescaledb.compress_orderby = 'bucket DESC');
        ALTER MATERIALIZED VIEW host_metrics_1h SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'host_id', timescaledb.compress_orderby = 'bucket DESC');
        ALTER MATERIALIZED VIEW container_metrics_1h SET (timescaledb.compress = true,
            timescaledb.compress_segmentby = 'container_id', timescaledb.compress_orderby = 'bucket DESC');
    END IF;
END
$$;

GRANT SELECT ON containers_latest, host_metrics_5m, host_metrics_1h, container_metrics_5m,
    container_metrics_1h TO nexus_analyst;
