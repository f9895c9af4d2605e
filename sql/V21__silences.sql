-- Silences that hold notifications back (docs/alerts.md, "Silence" and "Silences"): webhooks
-- skip the events of an alert silenced at the event's time, and a silence set through our API
-- or CLI is copied to every Alertmanager as a silence of its own, recorded here before it is
-- trusted, and expired there when ours is cleared.

-- When the current silence began and where it was set: through our API or CLI (`api`), or
-- mirrored from an Alertmanager's own silence (`alertmanager`). The three are set and cleared
-- together. Silences older than this migration held nothing back, so they begin now.
ALTER TABLE alerts
    ADD COLUMN silenced_since timestamptz,
    ADD COLUMN silenced_via   text CHECK (silenced_via IN ('api', 'alertmanager'));
UPDATE alerts SET silenced_since = now(), silenced_via = 'api' WHERE silenced_until IS NOT NULL;
ALTER TABLE alerts ADD CONSTRAINT alerts_silence_check CHECK (
    (silenced_until IS NULL) = (silenced_since IS NULL)
    AND (silenced_until IS NULL) = (silenced_via IS NULL));
-- What the Alertmanager sender reads every few seconds: the open alerts silenced through our
-- API, without reading every open alert of a fleet-wide outage.
CREATE INDEX alerts_api_silenced_idx ON alerts (id) WHERE silenced_via = 'api' AND state <> 'resolved';

-- The silences the Alertmanager sender created for our API's silences: one per alert and
-- Alertmanager (its base URL without credentials), with the end last sent. Written after
-- Alertmanager answered with the silence's id, so a re-send updates that silence rather than
-- create another; a row whose alert is no longer silenced through our API (cleared, ended,
-- resolved, deleted) is the silence to expire. No foreign key: a deleted alert's row must
-- stay until its silence is expired.
CREATE TABLE alertmanager_silences (
    alert_id     bigint      NOT NULL,
    alertmanager text        NOT NULL,
    silence_id   text        NOT NULL,
    ends_at      timestamptz NOT NULL,
    PRIMARY KEY (alert_id, alertmanager)
);
