-- Named locks: a session advisory lock on a 64-bit hash of a name, held for as long as the
-- connection that took it stays (or until unlocked); PostgreSQL releases it when that connection
-- ends, also when its process is killed. `telemed up`'s supervisor (app.supervise) and each
-- ingest slot (ingest.slots) hold one.

-- name: try_lock
SELECT pg_try_advisory_lock(hashtextextended(%(name)s, 0)) AS taken;

-- name: unlock
SELECT pg_advisory_unlock(hashtextextended(%(name)s, 0)) AS released;

-- name: holder
-- Who holds the lock `name`: its database session, whose application name says which
-- process (for a slot: `<client id> lock pid <pid> on <host>`).
SELECT a.pid AS backend_pid, a.application_name, host(a.client_addr) AS client_addr,
       a.backend_start
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = (hashtextextended(%(name)s, 0) >> 32) & 4294967295
  AND l.objid::bigint = hashtextextended(%(name)s, 0) & 4294967295
LIMIT 1;
