-- name: recent_rejections
SELECT r.id, r.received_at, r.topic, r.device_id, d.patient_id, r.message_id, r.reading_index,
       r.reason, r.payload_size, r.content_type, substring(r.raw FROM 1 FOR 256) AS raw_head
FROM rejected_messages r
LEFT JOIN devices d ON d.id = r.device_id
WHERE (%(device_id)s::text IS NULL OR r.device_id = %(device_id)s)
ORDER BY r.received_at DESC, r.id DESC
LIMIT %(limit)s;
