-- name: attempt
SELECT scope, failures, wait_s, tripped, allowed
FROM signin_attempt(%(keys)s, %(scopes)s, %(free)s, %(base_s)s, %(max_s)s, %(window_s)s);

-- name: succeeded
-- A success clears its account and takes back the failure counted in advance for its address.
WITH cleared AS (DELETE FROM signin_failures WHERE key = %(account)s)
UPDATE signin_failures SET failures = greatest(failures - 1, 0) WHERE key = %(address)s;
