-- When a patient's alert rules could not judge a reading on the ingest path (a stored override
-- that cannot be read or applied, a rule whose history query fails, a bug in a check), the
-- reading is stored all the same and the failure is written here, one row per patient, rule
-- and batch, naming the reading it concerned; an open `alerting:failed` alert to the holder
-- says the same (alerts/failures.py). A log: rows are only added.
CREATE TABLE rule_failures (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    -- The rule's key, or 'rules' when the failure could not be narrowed to one rule.
    rule_key        text NOT NULL CHECK (length(rule_key) BETWEEN 1 AND 200),
    -- Where it failed: building the rules, reading their history, judging, writing the alerts.
    stage           text NOT NULL CHECK (stage IN ('rules', 'history', 'evaluate', 'alerts')),
    -- What happened to the rule for this reading: not judged at all, or judged by the programme
    -- default because the patient's override could not be applied.
    outcome         text NOT NULL CHECK (outcome IN ('not_evaluated', 'default_used')),
    error           text NOT NULL,
    -- The first reading of the patient in the batch that the rule should have judged, and how
    -- many of the batch's readings the failure concerned.
    metric          text NOT NULL,
    value           double precision NOT NULL,
    measured_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    origin          text NOT NULL,
    message_id      text NOT NULL,
    readings        integer NOT NULL CHECK (readings >= 1),
    alert_id        bigint REFERENCES alerts (id)
);
CREATE INDEX rule_failures_recent ON rule_failures (failed_at DESC, id DESC);
CREATE INDEX rule_failures_patient ON rule_failures (patient_id, failed_at DESC);
