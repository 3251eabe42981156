-- The ingest workers' slots: one row per MQTT client id a worker ever ran under, so that the
-- supervisor can tell a slot that is no longer run (whose persistent session on the broker still
-- receives its share of the readings) from one that never existed. A worker holds a session
-- advisory lock per client id while it runs; this table records who took it and when.
CREATE TABLE ingest_slots (
    client_id       text PRIMARY KEY,
    client_prefix   text NOT NULL,
    share_group     text NOT NULL,
    slot            integer NOT NULL CHECK (slot >= 0),
    host            text NOT NULL,
    pid             integer NOT NULL,
    started_at      timestamptz NOT NULL,
    -- Set when the broker confirmed this run's subscription (NULL until then).
    subscribed_at   timestamptz,
    stopped_at      timestamptz,
    -- Set by `telemed ingest retire-slot` once the session was drained and ended; a worker that
    -- starts in the slot again clears it.
    retired_at      timestamptz,
    retired_messages bigint CHECK (retired_messages >= 0),
    UNIQUE (client_prefix, slot)
);
