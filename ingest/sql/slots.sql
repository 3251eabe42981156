-- The ingest slots' registry (migration 0075). A slot's lock is the named lock
-- (telemed/sql/named_locks.sql) of its client id, held by the worker (or retire-slot) for as
-- long as it runs.

-- name: register_start
INSERT INTO ingest_slots (client_id, client_prefix, share_group, slot, host, pid, started_at)
VALUES (%(client_id)s, %(client_prefix)s, %(share_group)s, %(slot)s, %(host)s, %(pid)s, now())
ON CONFLICT (client_id) DO UPDATE
SET client_prefix = EXCLUDED.client_prefix, share_group = EXCLUDED.share_group,
    slot = EXCLUDED.slot, host = EXCLUDED.host, pid = EXCLUDED.pid, started_at = now(),
    subscribed_at = NULL, stopped_at = NULL, retired_at = NULL, retired_messages = NULL;

-- name: mark_subscribed
UPDATE ingest_slots SET subscribed_at = now() WHERE client_id = %(client_id)s AND pid = %(pid)s;

-- name: mark_stopped
UPDATE ingest_slots SET stopped_at = now() WHERE client_id = %(client_id)s AND pid = %(pid)s;

-- name: mark_retired
INSERT INTO ingest_slots (client_id, client_prefix, share_group, slot, host, pid, started_at,
                          stopped_at, retired_at, retired_messages)
VALUES (%(client_id)s, %(client_prefix)s, %(share_group)s, %(slot)s, %(host)s, %(pid)s, now(),
        now(), now(), %(messages)s)
ON CONFLICT (client_id) DO UPDATE
SET retired_at = now(), retired_messages = EXCLUDED.retired_messages,
    stopped_at = coalesce(ingest_slots.stopped_at, now());

-- name: list_slots
-- Every registered slot, and whether its lock is held right now (running).
SELECT s.client_id, s.client_prefix, s.share_group, s.slot, s.host, s.pid, s.started_at,
       s.subscribed_at, s.stopped_at, s.retired_at, s.retired_messages,
       EXISTS (
           SELECT FROM pg_locks l
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid::bigint
                 = (hashtextextended(%(lock_prefix)s || s.client_id, 0) >> 32) & 4294967295
             AND l.objid::bigint = hashtextextended(%(lock_prefix)s || s.client_id, 0) & 4294967295
       ) AS running
FROM ingest_slots s
WHERE (%(share_group)s::text IS NULL OR s.share_group = %(share_group)s)
ORDER BY s.share_group, s.client_prefix, s.slot;
