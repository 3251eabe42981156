-- The audit log, append-only for real (docs/deployment.md, "Database roles"; telemed/audit.py).
--
-- 1. The application role may only read it and add rows, and only the columns that say what
--    happened; it owns nothing, so it cannot truncate the table or alter, disable or drop its
--    triggers. Triggers refuse UPDATE, DELETE and TRUNCATE to everyone else as well.
-- 2. Every row carries a hash chained to the row before it, in commit order. When a
--    transaction commits, a deferred trigger takes the chain's head row FOR UPDATE (so chaining
--    transactions queue there, each for the moment of its own commit), gives each of its audit
--    rows the next position, chain_seq, and hash = sha256(previous hash || the row's canonical
--    text), and moves the head on. Rows of a transaction that rolls back never take a position,
--    so positions run 1, 2, 3 ... without gaps. `telemed audit verify` recomputes the chain.
--    Under READ COMMITTED (the application's level) a waiting transaction then sees the new
--    head; under REPEATABLE READ or SERIALIZABLE it fails with a serialization error rather
--    than fork the chain.

ALTER TABLE audit_log ADD COLUMN chain_seq bigint UNIQUE, ADD COLUMN hash bytea;

CREATE TABLE audit_chain (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq         bigint NOT NULL,
    hash        bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_chain (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');
REVOKE ALL ON audit_chain FROM telemed_app;
GRANT SELECT ON audit_chain TO telemed_app;

-- What a row's hash covers, as text that depends on no session setting (time as epoch seconds).
CREATE FUNCTION audit_log_canonical(a audit_log) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT jsonb_build_array(
        a.chain_seq, a.id, extract(epoch FROM a.at)::text, a.actor_kind, a.actor_id, a.actor_name,
        a.actor_role, a.actor_org_id::text, a.action, a.patient_id::text, a.object_type,
        a.object_id, a.client_addr::text, a.request_id, a.detail)::text
$$;

CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    head record;
    new_row public.audit_log;
BEGIN
    SELECT seq, hash INTO STRICT head FROM public.audit_chain FOR UPDATE;
    new_row := NEW;
    new_row.chain_seq := head.seq + 1;
    new_row.hash := sha256(head.hash || convert_to(public.audit_log_canonical(new_row), 'UTF8'));
    UPDATE public.audit_log SET chain_seq = new_row.chain_seq, hash = new_row.hash
    WHERE id = NEW.id;
    UPDATE public.audit_chain SET seq = new_row.chain_seq, hash = new_row.hash;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION audit_log_chain() FROM PUBLIC;

-- The one update there is: the chain filling in a new row's position and hash at commit.
CREATE FUNCTION audit_log_only_chained() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF OLD.chain_seq IS NULL AND OLD.hash IS NULL
       AND NEW.chain_seq IS NOT NULL AND NEW.hash IS NOT NULL
       AND to_jsonb(NEW) - 'chain_seq' - 'hash' = to_jsonb(OLD) - 'chain_seq' - 'hash' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

DROP TRIGGER audit_log_no_change ON audit_log;

-- The rows written before this migration, chained in the order of their ids.
DO $$
DECLARE
    r audit_log;
    prev bytea;
    n bigint := 0;
BEGIN
    SELECT hash INTO prev FROM audit_chain;
    FOR r IN SELECT * FROM audit_log ORDER BY id LOOP
        n := n + 1;
        r.chain_seq := n;
        r.hash := sha256(prev || convert_to(audit_log_canonical(r), 'UTF8'));
        UPDATE audit_log SET chain_seq = r.chain_seq, hash = r.hash WHERE id = r.id;
        prev := r.hash;
    END LOOP;
    UPDATE audit_chain SET seq = n, hash = prev;
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_only_chained();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE CONSTRAINT TRIGGER audit_log_chain AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
-- The head row moves only with the chain.
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE OR DELETE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

REVOKE ALL ON audit_log FROM telemed_app;
GRANT SELECT ON audit_log TO telemed_app;
GRANT INSERT (actor_kind, actor_id, actor_name, actor_role, actor_org_id, action, patient_id,
              object_type, object_id, client_addr, request_id, detail)
    ON audit_log TO telemed_app;
