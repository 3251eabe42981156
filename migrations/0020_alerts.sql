-- Per-patient threshold overrides. Program defaults are code (alerts/defaults.py, each value with
-- its source, versioned and reviewed with the rules that read them); what a specialist changes for
-- one patient is data here. Every change is a new row, never an update: the latest row per
-- (patient, rule, field) is in force, and `reset` returns the field to the program default.
-- `value` is JSON: a number, true/false for `enabled`, or null to remove an optional limit.
CREATE TABLE threshold_overrides (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    rule_key        text NOT NULL CHECK (rule_key ~ '^[a-z]+:[a-z0-9_]+$'),
    field           text NOT NULL CHECK (field ~ '^[a-z_]+$'),
    value           jsonb,
    reset           boolean NOT NULL DEFAULT false,
    set_by          uuid NOT NULL REFERENCES users (id),
    set_at          timestamptz NOT NULL DEFAULT now(),
    reason          text NOT NULL CHECK (length(btrim(reason)) BETWEEN 1 AND 1000),
    CHECK (reset = (value IS NULL))
);
CREATE INDEX threshold_overrides_current
    ON threshold_overrides (patient_id, rule_key, field, set_at DESC, id DESC);

CREATE FUNCTION threshold_overrides_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'threshold_overrides is append-only: add a row instead';
END $$;
CREATE TRIGGER threshold_overrides_no_change BEFORE UPDATE OR DELETE ON threshold_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION threshold_overrides_append_only();

-- One alert per patient and rule while it is not resolved (the partial unique index), so a flood
-- of bad readings makes one alert with a count. Times of readings are measured times; the alert
-- is routed to the organisation responsible at the measured time of its first reading.
CREATE TABLE alerts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id           uuid NOT NULL REFERENCES patients (id),
    rule_key             text NOT NULL,
    metric               text NOT NULL,
    program              text NOT NULL CHECK (program IN ('copd', 'ak')),
    severity             text NOT NULL CHECK (severity IN ('yellow', 'red')),
    state                text NOT NULL DEFAULT 'open'
                         CHECK (state IN ('open', 'acknowledged', 'resolved')),
    message              text NOT NULL,
    detail               jsonb NOT NULL DEFAULT '{}',
    first_measured_at    timestamptz NOT NULL,
    last_measured_at     timestamptz NOT NULL,
    last_value           double precision,
    count                integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    organisation_id      uuid REFERENCES organisations (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    severity_changed_at  timestamptz,
    acknowledged_at      timestamptz,
    acknowledged_by      uuid REFERENCES users (id),
    acknowledgement_note text CHECK (length(acknowledgement_note) <= 2000),
    resolved_at          timestamptz,
    resolved_by          uuid REFERENCES users (id),
    resolution_note      text CHECK (length(resolution_note) <= 2000),
    escalated_at         timestamptz,
    escalation_level     integer NOT NULL DEFAULT 0 CHECK (escalation_level >= 0),
    CHECK (first_measured_at <= last_measured_at),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK (state <> 'resolved' OR length(btrim(resolution_note)) >= 1),
    CHECK (state <> 'acknowledged' OR acknowledged_at IS NOT NULL)
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (patient_id, rule_key) WHERE state <> 'resolved';
CREATE INDEX alerts_routed_open ON alerts (organisation_id) WHERE state <> 'resolved';
CREATE INDEX alerts_routed ON alerts (organisation_id, last_measured_at DESC);
CREATE INDEX alerts_patient ON alerts (patient_id, last_measured_at DESC);

ALTER TABLE instructions
    ADD CONSTRAINT instructions_alert_fk FOREIGN KEY (alert_id) REFERENCES alerts (id);
