-- A counter that moves with every change to what decides a patient's per-reading rules (their
-- enrollments and threshold overrides), in the changing transaction. The ingest hook keeps the
-- rule contexts it loaded and reads this counter once per batch: the same value means nothing
-- changed since, another value that it must load them afresh (alerts.hooks.ContextCache).
CREATE TABLE rule_context_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint NOT NULL DEFAULT 1
);
INSERT INTO rule_context_version DEFAULT VALUES;

CREATE FUNCTION bump_rule_context_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rule_context_version SET version = version + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER enrollments_rule_context
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rule_context_version();
CREATE TRIGGER threshold_overrides_rule_context
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON threshold_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION bump_rule_context_version();
