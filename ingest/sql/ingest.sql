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

-- name: recent_rejections
SELECT r.id, r.received_at, r.topic, r.device_id, d.patient_id, r.message_id, r.reading_index,
       r.reason, r.payload_size, r.content_type, substring(r.raw FROM 1 FOR 256) AS raw_head
FROM rejected_messages r
LEFT JOIN devices d ON d.id = r.device_id
WHERE (%(device_id)s::text IS NULL OR r.device_id = %(device_id)s)
ORDER BY r.received_at DESC, r.id DESC
LIMIT %(limit)s;

-- name: session_settings
-- For the session of a writer (ingest.writer.Writer._connection says why).
SELECT set_config('client_connection_check_interval', '1s', false),
       set_config('idle_in_transaction_session_timeout', '60s', false);
