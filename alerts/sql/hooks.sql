-- name: planner_settings
-- For the rest of the ingest transaction only. The per-reading lookups below are many small
-- index scans: compiling them (JIT) costs seconds where running them costs milliseconds, and
-- TimescaleDB's chunk exclusion at run time costs more per lookup than the scans it saves.
-- With the version of the rule contexts (migration 0023), in the same round trip.
-- The isolation level is checked: serialising patients (lock_patients) only works if each
-- statement sees what committed before it, as READ COMMITTED gives.
SELECT set_config('jit', 'off', true),
       set_config('timescaledb.enable_runtime_exclusion', 'off', true),
       current_setting('transaction_isolation') AS isolation,
       (SELECT version FROM rule_context_version) AS rule_context_version;

-- name: context
-- Per patient of a batch: enrollments and the overrides in force (migration 0090), as JSON text
-- decoded straight into Structs.
SELECT p.id AS patient_id,
       coalesce((
           SELECT json_agg(json_build_object(
                      'program', e.program, 'stratum', e.stratum,
                      'start_date', e.start_date, 'end_date', e.end_date))
           FROM enrollments e WHERE e.patient_id = p.id
       ), '[]')::text AS enrollments,
       coalesce((
           SELECT json_agg(json_build_object(
                      'rule_key', o.rule_key, 'field', o.field, 'value', o.value,
                      'set_by', o.set_by, 'set_at', o.set_at, 'reason', o.reason))
           FROM overrides_in_force(p.id) o
       ), '[]')::text AS overrides
FROM patients p
-- The ids come as one array literal: psycopg builds array parameters element by element.
WHERE p.id = ANY(%(patient_ids)s::text::uuid[]);

-- name: lock_patients
-- The patients' keys (alerts.hooks.patient_lock), in ascending order so that two transactions
-- never wait for each other in a circle; held until commit. The keys come as one array literal.
SELECT count(pg_advisory_xact_lock(%(space)s, k)) AS locked
FROM (SELECT k FROM unnest(%(keys)s::text::int[]) AS k ORDER BY k) x;
