-- One definition of two rules that the queries used to spell out, each in its own way: who holds
-- the baton ("stafetten") for a patient at a time, and the threshold overrides in force. Both are
-- set-returning SQL functions, STABLE and not STRICT, so that the planner inlines them into the
-- query that calls them and uses the indexes as the copies did (tests/test_domain_sql.py checks
-- the answers against the old copies and that no plan calls them as a function).

-- The holder at time `t`: the hand-over with the latest `since` not after `t`; none before the
-- patient's first hand-over. Index: responsibility (patient_id, since), unique.
CREATE FUNCTION holder_at(patient uuid, t timestamptz)
    RETURNS TABLE (organisation_id uuid, since timestamptz)
    LANGUAGE sql STABLE ROWS 1 AS $$
    SELECT r.organisation_id, r.since
    FROM responsibility r
    WHERE r.patient_id = patient AND r.since <= t
    ORDER BY r.since DESC
    LIMIT 1
$$;

-- The patients an organisation holds the baton for at time `t`: those it was handed at some
-- point, whose holder at `t` it is. Index: responsibility_org, then the one above.
CREATE FUNCTION held_by(organisation uuid, t timestamptz)
    RETURNS TABLE (patient_id uuid)
    LANGUAGE sql STABLE AS $$
    SELECT DISTINCT r.patient_id
    FROM responsibility r
    JOIN LATERAL holder_at(r.patient_id, t) h ON h.organisation_id = organisation
    WHERE r.organisation_id = organisation AND r.since <= t
$$;

-- The holder now, per patient (as before: no row for a patient nobody holds yet).
CREATE OR REPLACE VIEW current_responsibility AS
SELECT p.id AS patient_id, h.organisation_id, h.since
FROM patients p
CROSS JOIN LATERAL holder_at(p.id, now()) h;

-- A patient's threshold overrides in force: per rule and field the latest row (by set_at, then
-- id), left out when that row is a reset to the programme's default. Index:
-- threshold_overrides_current (patient_id, rule_key, field, set_at DESC, id DESC).
CREATE FUNCTION overrides_in_force(patient uuid)
    RETURNS SETOF threshold_overrides
    LANGUAGE sql STABLE AS $$
    SELECT o.*
    FROM (
        SELECT DISTINCT ON (rule_key, field) *
        FROM threshold_overrides
        WHERE patient_id = patient
        ORDER BY rule_key, field, set_at DESC, id DESC
    ) o
    WHERE NOT o.reset
$$;
