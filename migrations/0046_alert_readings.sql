-- Which readings make up each alert: one row per reading that breaches a rule (patient, rule,
-- reading), written in the transaction that decided it. When a reading arrives measured before
-- readings already judged (late, or committed by another ingest worker first), the rules judge
-- those later readings again with it in their history; comparing with these rows says what
-- changed — a breach to add, a severity to raise or lower, a breach to withdraw — and the alert
-- is recomputed from its rows (alerts/ledger.py). Missed-measurement and failure alerts have no
-- rows here: they are not about a reading.
CREATE TABLE alert_readings (
    patient_id      uuid NOT NULL,
    rule_key        text NOT NULL,
    origin          text NOT NULL,
    message_id      text NOT NULL,
    measured_at     timestamptz NOT NULL,
    alert_id        bigint NOT NULL REFERENCES alerts (id),
    received_at     timestamptz NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('yellow', 'red')),
    value           double precision,
    message         text NOT NULL,
    detail          jsonb NOT NULL,
    PRIMARY KEY (patient_id, rule_key, origin, message_id, measured_at)
);
CREATE INDEX alert_readings_alert ON alert_readings (alert_id, measured_at);

-- Readings received before this table existed have no rows in it; judging them again would
-- count their breaches a second time, so only readings received since are judged again.
CREATE TABLE alert_readings_since (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    since           timestamptz NOT NULL DEFAULT now()
);
INSERT INTO alert_readings_since DEFAULT VALUES;
