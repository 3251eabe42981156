-- The plain-text CPR column goes, once `telemed migrate` has encrypted what it held (0062).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM patients WHERE cpr IS NOT NULL) THEN
        RAISE EXCEPTION 'patients.cpr still holds plain-text CPR numbers'
            USING HINT = 'apply the migrations with telemed migrate, which encrypts them';
    END IF;
END $$;
ALTER TABLE patients DROP COLUMN cpr;
