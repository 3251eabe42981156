-- Escalation, webhooks, scheduled jobs and daily rollups.

-- How long an alert may stay unacknowledged, per program and severity, and how escalation
-- repeats: first at `ack_within` after the alert reached its severity, then every
-- `repeat_every`, until `max_level` escalations in all.
CREATE TABLE alert_deadlines (
    program         text NOT NULL CHECK (program IN ('copd', 'ak')),
    severity        text NOT NULL CHECK (severity IN ('yellow', 'red')),
    ack_within      interval NOT NULL CHECK (ack_within > interval '0'),
    repeat_every    interval NOT NULL CHECK (repeat_every > interval '0'),
    max_level       integer NOT NULL DEFAULT 3 CHECK (max_level BETWEEN 0 AND 20),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users (id),
    PRIMARY KEY (program, severity)
);
-- Red within 30 minutes (the team on duty is paged), yellow within a working day.
INSERT INTO alert_deadlines (program, severity, ack_within, repeat_every, max_level) VALUES
    ('copd', 'red', interval '30 minutes', interval '30 minutes', 3),
    ('copd', 'yellow', interval '8 hours', interval '8 hours', 1),
    ('ak', 'red', interval '30 minutes', interval '30 minutes', 3),
    ('ak', 'yellow', interval '8 hours', interval '8 hours', 1);

-- Where an organisation's unacknowledged alerts escalate to (e.g. a home-nursing unit's
-- evening team, a department's on-call). Escalation follows the chain one step per level.
CREATE TABLE organisation_settings (
    organisation_id             uuid PRIMARY KEY REFERENCES organisations (id),
    escalation_organisation_id  uuid REFERENCES organisations (id),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    updated_by                  uuid REFERENCES users (id),
    CHECK (escalation_organisation_id IS DISTINCT FROM organisation_id)
);

-- The escalation sweep looks only at open (unacknowledged) alerts, by when they got their severity.
CREATE INDEX alerts_unacknowledged ON alerts (coalesce(severity_changed_at, created_at))
    WHERE state = 'open';

-- Per-organisation webhooks. The secret signs each body (HMAC-SHA256); it is stored as given
-- because signing needs it. `events` empty means every event; 'alert.*' matches a prefix.
-- `start_after` is the newest outbox id when the hook was made: no replay of older history.
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret          text NOT NULL CHECK (length(secret) >= 32),
    events          text[] NOT NULL DEFAULT '{}',
    description     text CHECK (length(description) <= 500),
    active          boolean NOT NULL DEFAULT true,
    start_after     bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES users (id),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_organisation ON webhooks (organisation_id);

-- One row per outbox event and webhook: the primary key is what makes delivery happen once.
-- `next_attempt_at` doubles as a lease: a deliverer claims a row by moving it forward.
CREATE TABLE webhook_deliveries (
    outbox_id       bigint NOT NULL REFERENCES outbox (id),
    webhook_id      uuid NOT NULL REFERENCES webhooks (id),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox_id, webhook_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, outbox_id DESC);

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id       bigint NOT NULL,
    webhook_id      uuid NOT NULL,
    attempt         integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    status          integer,
    error           text,
    duration_ms     integer,
    FOREIGN KEY (outbox_id, webhook_id)
        REFERENCES webhook_deliveries (outbox_id, webhook_id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (webhook_id, outbox_id, attempt);

-- Missed measurement slots already raised, so a sweep that runs again raises nothing twice.
CREATE TABLE missed_slots (
    patient_id      uuid NOT NULL REFERENCES patients (id),
    rule_key        text NOT NULL,
    slot_id         text NOT NULL,
    alert_id        bigint REFERENCES alerts (id),
    raised_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, rule_key, slot_id)
);

-- One row per run of a scheduled job, by whichever replica held the leader lock.
CREATE TABLE job_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job             text NOT NULL,
    instance        text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    ok              boolean,
    result          jsonb,
    error           text
);
CREATE INDEX job_runs_job ON job_runs (job, started_at DESC);

-- Per patient, metric and local calendar day (Europe/Copenhagen): min, mean, max and count,
-- recomputed by the scheduler for the days that got readings.
CREATE TABLE daily_rollups (
    day             date NOT NULL,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    metric          text NOT NULL,
    min             double precision NOT NULL,
    avg             double precision NOT NULL,
    max             double precision NOT NULL,
    count           integer NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, metric, day)
);
