-- Home devices: each has its own MQTT username (its id) and password; only a hash is stored.
CREATE TABLE devices (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{2,63}$'),
    serial          text NOT NULL UNIQUE,
    kind            text NOT NULL,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    mqtt_username   text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES users (id),
    revoked_at      timestamptz
);
CREATE INDEX devices_patient ON devices (patient_id);

-- Every reading, from a device or entered by a nurse, in its canonical unit.
-- `origin` is the device id or 'user:<uuid>'; with message_id, metric and measured_at it makes a
-- redelivered message store nothing twice (a unique key on a hypertable must include its time column).
CREATE TABLE readings (
    measured_at     timestamptz NOT NULL,
    patient_id      uuid NOT NULL REFERENCES patients (id),
    metric          text NOT NULL,
    value           double precision NOT NULL,
    unit            text NOT NULL,
    comparator      text CHECK (comparator IN ('<', '>')),
    source          text NOT NULL CHECK (source IN ('device', 'nurse')),
    origin          text NOT NULL,
    device_id       text REFERENCES devices (id),
    entered_by      uuid REFERENCES users (id),
    message_id      text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    detail          jsonb,
    CHECK ((source = 'device') = (device_id IS NOT NULL)),
    CHECK ((source = 'nurse') = (entered_by IS NOT NULL))
);
SELECT create_hypertable('readings', 'measured_at', chunk_time_interval => interval '7 days');
CREATE UNIQUE INDEX readings_once ON readings (origin, message_id, metric, measured_at);
CREATE INDEX readings_patient_recent ON readings (patient_id, metric, measured_at DESC);
