-- Device messages, or single readings of them, that the ingest workers could not accept.
-- A whole-message rejection has reading_index NULL and keeps the payload as it arrived; a rejected
-- reading of an otherwise good message has its index and, in `raw`, that one reading as JSON.
-- No foreign key on device_id: messages of unknown devices are kept too.
CREATE TABLE rejected_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    device_id       text,
    message_id      text,
    reading_index   integer CHECK (reading_index >= 0),
    reason          text NOT NULL,
    -- Capped at the broker's message_size_limit (1 MiB); payload_size is the size that arrived.
    raw             bytea CHECK (octet_length(raw) <= 1048576),
    payload_size    integer NOT NULL CHECK (payload_size >= 0),
    content_type    text
);
CREATE INDEX rejected_messages_received ON rejected_messages (received_at);
CREATE INDEX rejected_messages_device ON rejected_messages (device_id, received_at);

-- The last status a device published on telemed/v1/devices/{id}/status (its last will says
-- "offline"); `at` is when the ingest worker received it.
CREATE TABLE device_status (
    device_id       text PRIMARY KEY REFERENCES devices (id),
    state           text NOT NULL CHECK (state IN ('online', 'offline')),
    battery         double precision CHECK (battery BETWEEN 0 AND 100),
    firmware        text,
    at              timestamptz NOT NULL
);
