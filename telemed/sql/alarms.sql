-- name: raise_alarm
INSERT INTO operational_alarms (key, severity, source, message)
VALUES (%(key)s, %(severity)s, %(source)s, %(message)s)
ON CONFLICT (key) WHERE cleared_at IS NULL DO UPDATE
SET severity = EXCLUDED.severity, source = EXCLUDED.source, message = EXCLUDED.message,
    last_seen_at = now(), occurrences = operational_alarms.occurrences + 1
RETURNING id, occurrences;

-- name: clear_alarm
UPDATE operational_alarms SET cleared_at = now(), cleared_reason = %(reason)s
WHERE key = %(key)s AND cleared_at IS NULL
RETURNING id;

-- name: list_alarms
SELECT id, key, severity, source, message, raised_at, last_seen_at, occurrences, cleared_at,
       cleared_reason
FROM operational_alarms
WHERE %(include_cleared)s OR cleared_at IS NULL
ORDER BY cleared_at IS NULL DESC, last_seen_at DESC, id DESC
LIMIT %(limit)s;

-- name: count_open
SELECT count(*) AS n FROM operational_alarms WHERE cleared_at IS NULL;
