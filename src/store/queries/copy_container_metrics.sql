-- Last step of an ingest batch whose container metric rows cannot exist yet (their snapshots'
-- host rows are new; see MetricRows in src/store/ingest/transaction.rs): the rows in binary COPY
-- format, no conflict check. The server fills in the column list from MetricColumns
-- (src/store/ingest/columns.rs), whose order the rows are encoded in.
COPY container_metric_snapshots ({columns})
FROM STDIN (FORMAT binary)
