-- Every read or change of a patient's data, who did it, when and from where (sundhedsloven §42a:
-- patients can see who looked at their record). Append-only: updates and deletes are refused.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_kind      text NOT NULL CHECK (actor_kind IN ('user', 'device', 'system')),
    actor_id        text,
    actor_name      text,
    actor_role      text,
    actor_org_id    uuid,
    action          text NOT NULL,
    patient_id      uuid REFERENCES patients (id),
    object_type     text,
    object_id       text,
    client_addr     inet,
    request_id      text,
    detail          jsonb
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
