-- Failed sign-ins per account and per client address, shared by every API process. A row is
-- keyed by a keyed hash (HMAC) of the username as typed or of the client's address: no username
-- (people type CPR numbers into that field) is ever stored here.
CREATE TABLE signin_failures (
    key             bytea PRIMARY KEY,
    scope           text NOT NULL CHECK (scope IN ('account', 'address')),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz
);
CREATE INDEX signin_failures_last_attempt ON signin_failures (last_attempt_at);

-- One sign-in attempt for the keys of one request (its account and its address), decided under
-- the rows' locks so that parallel attempts are counted one after the other:
--  * if any key is locked, the attempt is refused and nothing is counted (allowed = false);
--  * else every key counts one failure in advance (a success takes it back), and a key that
--    reaches its free attempts is locked for base * 2^(failures - free) seconds, at most max.
-- Failures are forgotten once a key has seen no attempt for `window` seconds after its lock.
CREATE FUNCTION signin_attempt(
    p_keys bytea[], p_scopes text[], p_free integer[],
    p_base_s double precision, p_max_s double precision, p_window_s double precision
) RETURNS TABLE (scope text, failures integer, wait_s double precision, tripped boolean,
                 allowed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    -- A lock ends only with time (or a success, which no attempt gets past a lock to make), so
    -- a lock seen without taking the rows' locks is certain: a flood of attempts on a locked
    -- key is refused by reading alone, without queueing on the row lock.
    IF EXISTS (SELECT 1 FROM signin_failures f
               WHERE f.key = ANY (p_keys) AND f.locked_until > v_now) THEN
        RETURN QUERY
        SELECT f.scope, f.failures,
               greatest(coalesce(extract(epoch FROM f.locked_until - v_now), 0), 0)::float8,
               false, false
        FROM signin_failures f WHERE f.key = ANY (p_keys);
        RETURN;
    END IF;

    INSERT INTO signin_failures AS f (key, scope)
    SELECT k.key, k.scope FROM unnest(p_keys, p_scopes) AS k (key, scope) ORDER BY k.key
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM signin_failures f WHERE f.key = ANY (p_keys) ORDER BY f.key FOR UPDATE;

    IF EXISTS (SELECT 1 FROM signin_failures f
               WHERE f.key = ANY (p_keys) AND f.locked_until > v_now) THEN
        RETURN QUERY
        SELECT f.scope, f.failures,
               greatest(coalesce(extract(epoch FROM f.locked_until - v_now), 0), 0)::float8,
               false, false
        FROM signin_failures f WHERE f.key = ANY (p_keys);
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE signin_failures f
    SET failures = n.failures,
        last_attempt_at = v_now,
        locked_until = CASE WHEN n.failures >= n.free THEN v_now + make_interval(
            secs => least(p_base_s * 2 ^ least(n.failures - n.free, 40), p_max_s)) END
    FROM (
        SELECT g.key, k.free,
               CASE WHEN greatest(g.last_attempt_at, coalesce(g.locked_until, g.last_attempt_at))
                         < v_now - make_interval(secs => p_window_s)
                    THEN 1 ELSE g.failures + 1 END AS failures
        FROM signin_failures g
        JOIN unnest(p_keys, p_free) AS k (key, free) ON k.key = g.key
    ) n
    WHERE f.key = n.key
    RETURNING f.scope, f.failures,
              coalesce(extract(epoch FROM f.locked_until - v_now), 0)::float8,
              f.locked_until IS NOT NULL, true;

    -- Now and then, forget keys nobody has tried for long (a sweep of at most 500 rows).
    IF random() < 0.01 THEN
        DELETE FROM signin_failures
        WHERE key IN (
            SELECT g.key FROM signin_failures g
            WHERE g.last_attempt_at < v_now - make_interval(secs => p_window_s + p_max_s)
            LIMIT 500 FOR UPDATE SKIP LOCKED
        );
    END IF;
END $$;
