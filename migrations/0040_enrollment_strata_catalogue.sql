-- The strata and INR ranges an enrollment may hold are those of the clinical catalogue
-- (telemed/catalogue/programs.py, decided in docs/alert-rules.md): COPD mild, moderate or
-- severe; AK a therapeutic range "L.L-H.H" with L >= 1.5, H <= 4.5 and 0.5 <= H - L <= 1.5,
-- each of which has urgent bounds outside it and so an INR rule. The old check let any range of
-- that shape in, a third of them without rules. tests/test_catalogue_db.py holds this function
-- and the constraint to the catalogue over every string of the shape D.D-D.D.
CREATE FUNCTION enrollment_stratum_in_catalogue(program text, stratum text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    low  integer;  -- tenths of an INR unit
    high integer;
BEGIN
    IF program = 'copd' THEN
        RETURN coalesce(stratum IN ('mild', 'moderate', 'severe'), false);
    END IF;
    IF program IS DISTINCT FROM 'ak' OR stratum IS NULL
       OR stratum !~ '^[0-9]\.[0-9]-[0-9]\.[0-9]$' THEN
        RETURN false;
    END IF;
    low := replace(split_part(stratum, '-', 1), '.', '')::integer;
    high := replace(split_part(stratum, '-', 2), '.', '')::integer;
    RETURN low >= 15 AND high <= 45 AND high - low BETWEEN 5 AND 15;
END;
$$;

-- Enrollments made before this migration with a range the catalogue does not cover are kept as
-- they are and marked, never changed or ended silently: the scheduler's rule coverage check
-- (alerts/rule_coverage.py) raises an alert to the patient's holder for every running one, and
-- the admin API lists them (GET /api/v1/admin/rule-coverage), until an admin ends the
-- enrollment and enrols the patient in a range that has rules. Ranges the catalogue now covers
-- (such as 1.5-2.5, which had no rules before) get the urgent bounds of its policy with no
-- change here.
ALTER TABLE enrollments ADD COLUMN stratum_outside_catalogue boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN enrollments.stratum_outside_catalogue IS
    'set by migration 0040 on enrollments whose stratum the catalogue does not cover; '
    'never set otherwise';
UPDATE enrollments SET stratum_outside_catalogue = true
WHERE NOT enrollment_stratum_in_catalogue(program, stratum);

DO $$
DECLARE
    old_check text;
BEGIN
    FOR old_check IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'enrollments'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%stratum%'
    LOOP
        EXECUTE format('ALTER TABLE enrollments DROP CONSTRAINT %I', old_check);
    END LOOP;
END;
$$;

ALTER TABLE enrollments ADD CONSTRAINT enrollments_stratum_in_catalogue
    CHECK (stratum_outside_catalogue OR enrollment_stratum_in_catalogue(program, stratum));

-- Only this migration marks an enrollment: a new row may not claim the mark, and a marked row
-- keeps its program and stratum (ending it is an update of end_date, which stays possible).
CREATE FUNCTION enrollments_guard_outside_catalogue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stratum_outside_catalogue AND (
        TG_OP = 'INSERT'
        OR NOT OLD.stratum_outside_catalogue
        OR NEW.program IS DISTINCT FROM OLD.program
        OR NEW.stratum IS DISTINCT FROM OLD.stratum
    ) THEN
        RAISE EXCEPTION 'stratum % of program % is not in the clinical catalogue', NEW.stratum,
            NEW.program
            USING ERRCODE = 'check_violation', CONSTRAINT = 'enrollments_stratum_in_catalogue';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER enrollments_guard_outside_catalogue
    BEFORE INSERT OR UPDATE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_guard_outside_catalogue();
