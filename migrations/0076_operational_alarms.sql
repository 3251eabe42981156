-- Operational alarms: faults of the running system that an operator must see (a process that
-- keeps crashing, a slot left with readings waiting), as opposed to a patient's clinical alerts.
-- At most one open alarm per key; a repeat counts up and refreshes the message.
CREATE TABLE operational_alarms (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key             text NOT NULL CHECK (key <> ''),
    severity        text NOT NULL CHECK (severity IN ('warning', 'critical')),
    source          text NOT NULL,
    message         text NOT NULL,
    raised_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    occurrences     integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    cleared_at      timestamptz,
    cleared_reason  text
);
CREATE UNIQUE INDEX operational_alarms_open ON operational_alarms (key) WHERE cleared_at IS NULL;
CREATE INDEX operational_alarms_raised ON operational_alarms (raised_at);
