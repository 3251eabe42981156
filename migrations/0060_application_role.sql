-- Two roles (docs/deployment.md, "Database roles"): the owner, who runs these migrations and owns
-- every object, and the application role `telemed_app`, which the API, the ingest workers and
-- the scheduler use. The application role owns nothing, so it can neither truncate a table, nor
-- alter, disable or drop a trigger, nor drop a table; it gets the rows it needs and no more.
DO $$
DECLARE
    app pg_roles;
BEGIN
    SELECT * INTO app FROM pg_roles WHERE rolname = 'telemed_app';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the application role telemed_app does not exist'
            USING HINT = 'create it first: CREATE ROLE telemed_app LOGIN PASSWORD ... '
                         '(docs/deployment.md, "Database roles")';
    END IF;
    IF app.rolsuper OR app.rolbypassrls THEN
        RAISE EXCEPTION 'the application role telemed_app must not be a superuser or bypass RLS';
    END IF;
    IF current_user = 'telemed_app' OR pg_has_role('telemed_app', current_user, 'MEMBER') THEN
        RAISE EXCEPTION 'run the migrations as the owner role; telemed_app must not be it or a member of it';
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO telemed_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO telemed_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO telemed_app;
-- Tables and sequences the later migrations make (as the owner) get the same.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO telemed_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO telemed_app;

-- TimescaleDB gives a new chunk the privileges of its hypertable; the chunks made before this
-- migration get them here.
DO $$
DECLARE
    chunk regclass;
BEGIN
    FOR chunk IN SELECT show_chunks('readings') LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO telemed_app', chunk);
    END LOOP;
END $$;

-- What the migrations did is theirs to record.
REVOKE ALL ON schema_migrations FROM telemed_app;
GRANT SELECT ON schema_migrations TO telemed_app;

-- Retention drops whole chunks of readings, which only the owner of the hypertable may do.
-- This function does it for the scheduler, and never for a chunk younger than ten years
-- (journalføringsbekendtgørelsen §15; alerts/jobs.py keeps the same floor), with a day's
-- slack for a clock that runs ahead of the database's.
CREATE FUNCTION drop_reading_chunks(older_than timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF older_than IS NULL OR older_than > now() - interval '10 years' + interval '1 day' THEN
        RAISE EXCEPTION 'readings are kept at least ten years; refusing to drop chunks newer than %',
            now() - interval '10 years';
    END IF;
    RETURN QUERY SELECT c::text FROM public.drop_chunks('public.readings', older_than => older_than) c;
END $$;
REVOKE ALL ON FUNCTION drop_reading_chunks(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION drop_reading_chunks(timestamptz) TO telemed_app;
