-- name: devices_by_id
SELECT id, patient_id, active, revoked_at FROM devices WHERE id = ANY(%(ids)s);

-- name: copy_rejections
COPY rejected_messages (received_at, topic, device_id, message_id, reading_index, reason, raw,
                        payload_size, content_type) FROM STDIN (FORMAT BINARY);

-- name: upsert_status
-- A status that arrives after a newer one (a redelivery) does not overwrite it.
INSERT INTO device_status (device_id, state, battery, firmware, at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (device_id) DO UPDATE
SET state = EXCLUDED.state, battery = EXCLUDED.battery, firmware = EXCLUDED.firmware,
    at = EXCLUDED.at
WHERE device_status.at <= EXCLUDED.at;

-- name: session_settings
-- For the session of a writer (ingest.writer.Writer._connection says why).
SELECT set_config('client_connection_check_interval', '1s', false),
       set_config('idle_in_transaction_session_timeout', '60s', false);
