-- `telemed up`'s lock: a session advisory lock on a 64-bit hash of a name, released by
-- PostgreSQL when the holding connection ends.

-- name: try_lock
SELECT pg_try_advisory_lock(hashtextextended(%(name)s, 0)) AS taken;

-- name: holder
SELECT a.pid AS backend_pid, a.application_name, host(a.client_addr) AS client_addr,
       a.backend_start
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = (hashtextextended(%(name)s, 0) >> 32) & 4294967295
  AND l.objid::bigint = hashtextextended(%(name)s, 0) & 4294967295
LIMIT 1;
