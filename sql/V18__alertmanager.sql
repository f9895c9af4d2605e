-- Prometheus Alertmanager delivery (docs/alerts.md#alertmanager): every send round reads the
-- firing alerts (alerts_state_idx) and those resolved in the last minutes, which Alertmanager
-- is told about until the resolve retention passes; this index finds the latter without
-- reading the whole history.
CREATE INDEX alerts_resolved_at_idx ON alerts (resolved_at) WHERE state = 'resolved';
