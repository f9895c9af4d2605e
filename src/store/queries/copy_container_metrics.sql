-- Last step of an ingest batch whose container metric rows cannot exist yet (their snapshots'
-- host rows are new; see MetricRows in src/store/ingest.rs): the rows in binary COPY format,
-- columns in this order, no conflict check.
COPY container_metric_snapshots
    (container_id, host_id, recorded_at, cpu_percent, memory_usage_mb, memory_limit_mb,
     network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes)
FROM STDIN (FORMAT binary)
