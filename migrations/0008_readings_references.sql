-- The readings' references to patients, devices and users are checked per batch rather than
-- per row. A foreign key on the hypertable runs one locking lookup per inserted row per key
-- (about half of the insert's cost at ingest rates); telemed.readings.store instead checks the
-- whole batch with one join before it inserts (query unknown_references), and refuses the batch
-- the way a foreign key would (SQLSTATE 23503). What makes that check as strong as the keys: a
-- row it found cannot go away afterwards, because patients, devices and users are never deleted
-- (they are deactivated, revoked, ended) and their ids never change; these triggers hold that.
ALTER TABLE readings
    DROP CONSTRAINT readings_patient_id_fkey,
    DROP CONSTRAINT readings_device_id_fkey,
    DROP CONSTRAINT readings_entered_by_fkey;

CREATE FUNCTION refuse_row_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted, nor their ids changed (readings refer to them)',
        TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'deactivate the user, revoke the device, end the enrollment';
END;
$$;

CREATE TRIGGER patients_kept BEFORE DELETE OR UPDATE OF id ON patients
    FOR EACH ROW EXECUTE FUNCTION refuse_row_removal();
CREATE TRIGGER patients_kept_whole BEFORE TRUNCATE ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_row_removal();
-- A device's patient is part of what the check compares, so it cannot change either.
CREATE TRIGGER devices_kept BEFORE DELETE OR UPDATE OF id, patient_id ON devices
    FOR EACH ROW EXECUTE FUNCTION refuse_row_removal();
CREATE TRIGGER devices_kept_whole BEFORE TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_row_removal();
CREATE TRIGGER users_kept BEFORE DELETE OR UPDATE OF id ON users
    FOR EACH ROW EXECUTE FUNCTION refuse_row_removal();
CREATE TRIGGER users_kept_whole BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_row_removal();
