--
-- PostgreSQL database dump
--

--
-- Name: timescaledb; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public;

--
-- Name: EXTENSION timescaledb; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION timescaledb IS 'Enables scalable inserts and complex queries for time-series data (Apache 2 Edition)';

--
-- Name: anticoagulant_products_append_only(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.anticoagulant_products_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'anticoagulant_products is append-only: add a row instead';
END $$;

--
-- Name: audit_log_append_only(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    actor_kind text NOT NULL,
    actor_id text,
    actor_name text,
    actor_role text,
    actor_org_id uuid,
    action text NOT NULL,
    patient_id uuid,
    object_type text,
    object_id text,
    client_addr inet,
    request_id text,
    detail jsonb,
    chain_seq bigint,
    hash bytea,
    CONSTRAINT audit_log_actor_kind_check CHECK ((actor_kind = ANY (ARRAY['user'::text, 'device'::text, 'system'::text])))
);

--
-- Name: audit_log_canonical(public.audit_log); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_log_canonical(a public.audit_log) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog'
    AS $$
    SELECT jsonb_build_array(
        a.chain_seq, a.id, extract(epoch FROM a.at)::text, a.actor_kind, a.actor_id, a.actor_name,
        a.actor_role, a.actor_org_id::text, a.action, a.patient_id::text, a.object_type,
        a.object_id, a.client_addr::text, a.request_id, a.detail)::text
$$;

--
-- Name: audit_log_chain(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_log_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
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

--
-- Name: audit_log_only_chained(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.audit_log_only_chained() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog'
    AS $$
BEGIN
    IF OLD.chain_seq IS NULL AND OLD.hash IS NULL
       AND NEW.chain_seq IS NOT NULL AND NEW.hash IS NOT NULL
       AND to_jsonb(NEW) - 'chain_seq' - 'hash' = to_jsonb(OLD) - 'chain_seq' - 'hash' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$;

--
-- Name: bump_rule_context_version(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.bump_rule_context_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE rule_context_version SET version = version + 1;
    RETURN NULL;
END;
$$;

--
-- Name: drop_reading_chunks(timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.drop_reading_chunks(older_than timestamp with time zone) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public'
    AS $$
BEGIN
    IF older_than IS NULL OR older_than > now() - interval '10 years' + interval '1 day' THEN
        RAISE EXCEPTION 'readings are kept at least ten years; refusing to drop chunks newer than %',
            now() - interval '10 years';
    END IF;
    RETURN QUERY SELECT c::text FROM public.drop_chunks('public.readings', older_than => older_than) c;
END $$;

--
-- Name: enrollment_stratum_in_catalogue(text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.enrollment_stratum_in_catalogue(program text, stratum text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $_$
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
$_$;

--
-- Name: enrollments_guard_outside_catalogue(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.enrollments_guard_outside_catalogue() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: held_by(uuid, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.held_by(organisation uuid, t timestamp with time zone) RETURNS TABLE(patient_id uuid)
    LANGUAGE sql STABLE
    AS $$
    SELECT DISTINCT r.patient_id
    FROM responsibility r
    JOIN LATERAL holder_at(r.patient_id, t) h ON h.organisation_id = organisation
    WHERE r.organisation_id = organisation AND r.since <= t
$$;

--
-- Name: holder_at(uuid, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.holder_at(patient uuid, t timestamp with time zone) RETURNS TABLE(organisation_id uuid, since timestamp with time zone)
    LANGUAGE sql STABLE ROWS 1
    AS $$
    SELECT r.organisation_id, r.since
    FROM responsibility r
    WHERE r.patient_id = patient AND r.since <= t
    ORDER BY r.since DESC
    LIMIT 1
$$;

--
-- Name: outbox_notify(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.outbox_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('telemed_outbox', NEW.id::text);
    RETURN NULL;
END $$;

--
-- Name: threshold_overrides; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.threshold_overrides (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    rule_key text NOT NULL,
    field text NOT NULL,
    value jsonb,
    reset boolean DEFAULT false NOT NULL,
    set_by uuid NOT NULL,
    set_at timestamp with time zone DEFAULT now() NOT NULL,
    reason text NOT NULL,
    explicit_removal boolean DEFAULT false NOT NULL,
    CONSTRAINT threshold_overrides_check CHECK ((reset = (value IS NULL))),
    CONSTRAINT threshold_overrides_field_check CHECK ((field ~ '^[a-z_]+$'::text)),
    CONSTRAINT threshold_overrides_reason_check CHECK (((length(btrim(reason)) >= 1) AND (length(btrim(reason)) <= 1000))),
    CONSTRAINT threshold_overrides_removal_has_no_value CHECK (((NOT explicit_removal) OR (value = ANY (ARRAY['null'::jsonb, 'false'::jsonb])))),
    CONSTRAINT threshold_overrides_rule_key_check CHECK ((rule_key ~ '^[a-z]+:[a-z0-9_]+$'::text))
);

--
-- Name: overrides_in_force(uuid); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.overrides_in_force(patient uuid) RETURNS SETOF public.threshold_overrides
    LANGUAGE sql STABLE
    AS $$
    SELECT o.*
    FROM (
        SELECT DISTINCT ON (rule_key, field) *
        FROM threshold_overrides
        WHERE patient_id = patient
        ORDER BY rule_key, field, set_at DESC, id DESC
    ) o
    WHERE NOT o.reset
$$;

--
-- Name: refuse_row_removal(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refuse_row_removal() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted, nor their ids changed (readings refer to them)',
        TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'deactivate the user, revoke the device, end the enrollment';
END;
$$;

--
-- Name: signin_attempt(bytea[], text[], integer[], double precision, double precision, double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.signin_attempt(p_keys bytea[], p_scopes text[], p_free integer[], p_base_s double precision, p_max_s double precision, p_window_s double precision) RETURNS TABLE(scope text, failures integer, wait_s double precision, tripped boolean, allowed boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    -- A lock ends only with time (or a success, which no attempt gets past a lock to make), so
    -- a lock seen without taking the rows' locks is certain: a flood of attempts on a locked
    -- key is refused by reading alone, without queueing on the row lock.
    IF EXISTS (SELECT 1 FROM signin_failures f
               WHERE f.key = ANY (p_keys) AND f.locked_until > v_now) THEN
        RETURN QUERY
        SELECT f.scope, f.failures,
               greatest(coalesce(extract(epoch FROM f.locked_until - v_now), 0), 0)::float8,
               false, false
        FROM signin_failures f WHERE f.key = ANY (p_keys);
        RETURN;
    END IF;

    INSERT INTO signin_failures AS f (key, scope)
    SELECT k.key, k.scope FROM unnest(p_keys, p_scopes) AS k (key, scope) ORDER BY k.key
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM signin_failures f WHERE f.key = ANY (p_keys) ORDER BY f.key FOR UPDATE;

    IF EXISTS (SELECT 1 FROM signin_failures f
               WHERE f.key = ANY (p_keys) AND f.locked_until > v_now) THEN
        RETURN QUERY
        SELECT f.scope, f.failures,
               greatest(coalesce(extract(epoch FROM f.locked_until - v_now), 0), 0)::float8,
               false, false
        FROM signin_failures f WHERE f.key = ANY (p_keys);
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE signin_failures f
    SET failures = n.failures,
        last_attempt_at = v_now,
        locked_until = CASE WHEN n.failures >= n.free THEN v_now + make_interval(
            secs => least(p_base_s * 2 ^ least(n.failures - n.free, 40), p_max_s)) END
    FROM (
        SELECT g.key, k.free,
               CASE WHEN greatest(g.last_attempt_at, coalesce(g.locked_until, g.last_attempt_at))
                         < v_now - make_interval(secs => p_window_s)
                    THEN 1 ELSE g.failures + 1 END AS failures
        FROM signin_failures g
        JOIN unnest(p_keys, p_free) AS k (key, free) ON k.key = g.key
    ) n
    WHERE f.key = n.key
    RETURNING f.scope, f.failures,
              coalesce(extract(epoch FROM f.locked_until - v_now), 0)::float8,
              f.locked_until IS NOT NULL, true;

    -- Now and then, forget keys nobody has tried for long (a sweep of at most 500 rows).
    IF random() < 0.01 THEN
        DELETE FROM signin_failures
        WHERE key IN (
            SELECT g.key FROM signin_failures g
            WHERE g.last_attempt_at < v_now - make_interval(secs => p_window_s + p_max_s)
            LIMIT 500 FOR UPDATE SKIP LOCKED
        );
    END IF;
END $$;

--
-- Name: threshold_overrides_append_only(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.threshold_overrides_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'threshold_overrides is append-only: add a row instead';
END $$;

--
-- Name: alert_deadlines; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_deadlines (
    program text NOT NULL,
    severity text NOT NULL,
    ack_within interval NOT NULL,
    repeat_every interval NOT NULL,
    max_level integer DEFAULT 3 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by uuid,
    CONSTRAINT alert_deadlines_ack_within_check CHECK ((ack_within > '00:00:00'::interval)),
    CONSTRAINT alert_deadlines_max_level_check CHECK (((max_level >= 0) AND (max_level <= 20))),
    CONSTRAINT alert_deadlines_program_check CHECK ((program = ANY (ARRAY['copd'::text, 'ak'::text]))),
    CONSTRAINT alert_deadlines_repeat_every_check CHECK ((repeat_every > '00:00:00'::interval)),
    CONSTRAINT alert_deadlines_severity_check CHECK ((severity = ANY (ARRAY['yellow'::text, 'red'::text])))
);

--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alerts (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    rule_key text NOT NULL,
    metric text NOT NULL,
    program text NOT NULL,
    severity text NOT NULL,
    state text DEFAULT 'open'::text NOT NULL,
    message text NOT NULL,
    detail jsonb DEFAULT '{}'::jsonb NOT NULL,
    first_measured_at timestamp with time zone NOT NULL,
    last_measured_at timestamp with time zone NOT NULL,
    last_value double precision,
    count integer DEFAULT 1 NOT NULL,
    organisation_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    severity_changed_at timestamp with time zone,
    acknowledged_at timestamp with time zone,
    acknowledged_by uuid,
    acknowledgement_note text,
    resolved_at timestamp with time zone,
    resolved_by uuid,
    resolution_note text,
    escalated_at timestamp with time zone,
    escalation_level integer DEFAULT 0 NOT NULL,
    CONSTRAINT alerts_acknowledgement_note_check CHECK ((length(acknowledgement_note) <= 2000)),
    CONSTRAINT alerts_check CHECK ((first_measured_at <= last_measured_at)),
    CONSTRAINT alerts_check1 CHECK (((state = 'resolved'::text) = (resolved_at IS NOT NULL))),
    CONSTRAINT alerts_check2 CHECK (((state <> 'resolved'::text) OR (length(btrim(resolution_note)) >= 1))),
    CONSTRAINT alerts_check3 CHECK (((state <> 'acknowledged'::text) OR (acknowledged_at IS NOT NULL))),
    CONSTRAINT alerts_count_check CHECK ((count >= 1)),
    CONSTRAINT alerts_escalation_level_check CHECK ((escalation_level >= 0)),
    CONSTRAINT alerts_program_check CHECK ((program = ANY (ARRAY['copd'::text, 'ak'::text]))),
    CONSTRAINT alerts_resolution_note_check CHECK ((length(resolution_note) <= 2000)),
    CONSTRAINT alerts_severity_check CHECK ((severity = ANY (ARRAY['yellow'::text, 'red'::text]))),
    CONSTRAINT alerts_state_check CHECK ((state = ANY (ARRAY['open'::text, 'acknowledged'::text, 'resolved'::text])))
);

--
-- Name: organisations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organisations (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    region text,
    hospital text,
    specialty text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT organisations_kind_check CHECK ((kind = ANY (ARRAY['hospital_department'::text, 'home_nursing'::text, 'gp_practice'::text]))),
    CONSTRAINT organisations_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);

--
-- Name: patients; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.patients (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    pseudonym text NOT NULL,
    name text NOT NULL,
    date_of_birth date NOT NULL,
    region text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    cpr_hmac bytea,
    cpr_enc bytea,
    cpr_key text,
    CONSTRAINT patients_cpr_complete CHECK ((num_nulls(cpr_hmac, cpr_enc, cpr_key) = ANY (ARRAY[0, 3]))),
    CONSTRAINT patients_cpr_enc_check CHECK (((length(cpr_enc) >= 29) AND (length(cpr_enc) <= 100))),
    CONSTRAINT patients_cpr_hmac_check CHECK ((length(cpr_hmac) = 32)),
    CONSTRAINT patients_cpr_key_check CHECK ((cpr_key ~ '^[A-Za-z0-9_.-]{1,40}$'::text)),
    CONSTRAINT patients_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);

--
-- Name: responsibility; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.responsibility (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    organisation_id uuid NOT NULL,
    since timestamp with time zone DEFAULT now() NOT NULL,
    reason text,
    handed_over_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    username text NOT NULL,
    full_name text NOT NULL,
    role text NOT NULL,
    organisation_id uuid NOT NULL,
    password_hash text NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_full_name_check CHECK (((length(full_name) >= 1) AND (length(full_name) <= 200))),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['nurse'::text, 'specialist'::text, 'admin'::text]))),
    CONSTRAINT users_username_check CHECK ((username ~ '^[a-z0-9._-]{3,64}$'::text))
);

--
-- Name: alert_details; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.alert_details AS
 SELECT a.id,
    a.patient_id,
    a.rule_key,
    a.metric,
    a.program,
    a.severity,
    a.state,
    a.message,
    a.detail,
    a.first_measured_at,
    a.last_measured_at,
    a.last_value,
    a.count,
    a.organisation_id,
    a.created_at,
    a.updated_at,
    a.severity_changed_at,
    a.acknowledged_at,
    a.acknowledged_by,
    a.acknowledgement_note,
    a.resolved_at,
    a.resolved_by,
    a.resolution_note,
    a.escalated_at,
    a.escalation_level,
    p.pseudonym,
    p.name AS patient_name,
    o.name AS organisation,
    cur.organisation_id AS holder_id,
    ack.full_name AS acknowledged_by_name,
    res.full_name AS resolved_by_name
   FROM (((((public.alerts a
     JOIN public.patients p ON ((p.id = a.patient_id)))
     LEFT JOIN public.organisations o ON ((o.id = a.organisation_id)))
     LEFT JOIN public.users ack ON ((ack.id = a.acknowledged_by)))
     LEFT JOIN public.users res ON ((res.id = a.resolved_by)))
     LEFT JOIN LATERAL ( SELECT r.organisation_id
           FROM public.responsibility r
          WHERE ((r.patient_id = a.patient_id) AND (r.since <= now()))
          ORDER BY r.since DESC
         LIMIT 1) cur ON (true));

--
-- Name: alert_readings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_readings (
    patient_id uuid NOT NULL,
    rule_key text NOT NULL,
    origin text NOT NULL,
    message_id text NOT NULL,
    measured_at timestamp with time zone NOT NULL,
    alert_id bigint NOT NULL,
    received_at timestamp with time zone NOT NULL,
    severity text NOT NULL,
    value double precision,
    message text NOT NULL,
    detail jsonb NOT NULL,
    CONSTRAINT alert_readings_severity_check CHECK ((severity = ANY (ARRAY['yellow'::text, 'red'::text])))
);

--
-- Name: alert_readings_since; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_readings_since (
    only_row boolean DEFAULT true NOT NULL,
    since timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT alert_readings_since_only_row_check CHECK (only_row)
);

--
-- Name: alerts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.alerts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.alerts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: anticoagulant_products; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.anticoagulant_products (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    product text NOT NULL,
    set_by uuid NOT NULL,
    set_at timestamp with time zone DEFAULT now() NOT NULL,
    reason text NOT NULL,
    CONSTRAINT anticoagulant_products_product_check CHECK ((product = ANY (ARRAY['marevan'::text, 'waran'::text, 'warfarin_orion'::text, 'marcoumar'::text]))),
    CONSTRAINT anticoagulant_products_reason_check CHECK (((length(btrim(reason)) >= 1) AND (length(btrim(reason)) <= 1000)))
);

--
-- Name: anticoagulant_products_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.anticoagulant_products ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.anticoagulant_products_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: audit_chain; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_chain (
    only_row boolean DEFAULT true NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT audit_chain_hash_check CHECK ((length(hash) = 32)),
    CONSTRAINT audit_chain_only_row_check CHECK (only_row)
);

--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: auth_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_tokens (
    token_hash bytea NOT NULL,
    user_id uuid NOT NULL,
    kind text DEFAULT 'bearer'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    client_addr inet,
    CONSTRAINT auth_tokens_kind_check CHECK ((kind = ANY (ARRAY['bearer'::text, 'session'::text])))
);

--
-- Name: care_relations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.care_relations (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    organisation_id uuid NOT NULL,
    relation text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    ended_at timestamp with time zone,
    created_by uuid,
    CONSTRAINT care_relations_relation_check CHECK ((relation = ANY (ARRAY['serving'::text, 'consulted'::text])))
);

--
-- Name: care_relations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.care_relations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.care_relations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: cpr_lookup_key; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.cpr_lookup_key (
    only_row boolean DEFAULT true NOT NULL,
    fingerprint bytea NOT NULL,
    set_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cpr_lookup_key_fingerprint_check CHECK ((length(fingerprint) = 32)),
    CONSTRAINT cpr_lookup_key_only_row_check CHECK (only_row)
);

--
-- Name: current_responsibility; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.current_responsibility AS
 SELECT p.id AS patient_id,
    h.organisation_id,
    h.since
   FROM (public.patients p
     CROSS JOIN LATERAL public.holder_at(p.id, now()) h(organisation_id, since));

--
-- Name: daily_rollups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.daily_rollups (
    day date NOT NULL,
    patient_id uuid NOT NULL,
    metric text NOT NULL,
    min double precision NOT NULL,
    avg double precision NOT NULL,
    max double precision NOT NULL,
    count integer NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: device_status; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.device_status (
    device_id text NOT NULL,
    state text NOT NULL,
    battery double precision,
    firmware text,
    at timestamp with time zone NOT NULL,
    CONSTRAINT device_status_battery_check CHECK (((battery >= (0)::double precision) AND (battery <= (100)::double precision))),
    CONSTRAINT device_status_state_check CHECK ((state = ANY (ARRAY['online'::text, 'offline'::text])))
);

--
-- Name: devices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.devices (
    id text NOT NULL,
    serial text NOT NULL,
    kind text NOT NULL,
    patient_id uuid NOT NULL,
    mqtt_username text NOT NULL,
    password_hash text NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    revoked_at timestamp with time zone,
    CONSTRAINT devices_id_check CHECK ((id ~ '^[a-z0-9][a-z0-9-]{2,63}$'::text))
);

--
-- Name: enrollments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.enrollments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    patient_id uuid NOT NULL,
    program text NOT NULL,
    stratum text NOT NULL,
    start_date date NOT NULL,
    end_date date,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    stratum_outside_catalogue boolean DEFAULT false NOT NULL,
    CONSTRAINT enrollments_check CHECK (((end_date IS NULL) OR (end_date >= start_date))),
    CONSTRAINT enrollments_program_check CHECK ((program = ANY (ARRAY['copd'::text, 'ak'::text]))),
    CONSTRAINT enrollments_stratum_in_catalogue CHECK ((stratum_outside_catalogue OR public.enrollment_stratum_in_catalogue(program, stratum)))
);

--
-- Name: COLUMN enrollments.stratum_outside_catalogue; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON COLUMN public.enrollments.stratum_outside_catalogue IS 'set by migration 0040 on enrollments whose stratum the catalogue does not cover; never set otherwise';

--
-- Name: ingest_slots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ingest_slots (
    client_id text NOT NULL,
    client_prefix text NOT NULL,
    share_group text NOT NULL,
    slot integer NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    subscribed_at timestamp with time zone,
    stopped_at timestamp with time zone,
    retired_at timestamp with time zone,
    retired_messages bigint,
    CONSTRAINT ingest_slots_retired_messages_check CHECK ((retired_messages >= 0)),
    CONSTRAINT ingest_slots_slot_check CHECK ((slot >= 0))
);

--
-- Name: installation; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.installation (
    only_row boolean DEFAULT true NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT installation_only_row_check CHECK (only_row)
);

--
-- Name: instruction_confirmations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.instruction_confirmations (
    id bigint NOT NULL,
    instruction_id uuid NOT NULL,
    user_id uuid NOT NULL,
    kind text NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    note text,
    CONSTRAINT instruction_confirmations_kind_check CHECK ((kind = ANY (ARRAY['read'::text, 'carried_out'::text]))),
    CONSTRAINT instruction_confirmations_note_check CHECK ((length(note) <= 2000))
);

--
-- Name: instruction_confirmations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.instruction_confirmations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.instruction_confirmations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: instructions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.instructions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    patient_id uuid NOT NULL,
    alert_id bigint,
    wound_case_id uuid,
    author_id uuid NOT NULL,
    author_org_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    text text DEFAULT ''::text NOT NULL,
    fields jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT instructions_check CHECK ((num_nonnulls(alert_id, wound_case_id) = 1)),
    CONSTRAINT instructions_text_check CHECK ((length(text) <= 10000))
);

--
-- Name: job_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_runs (
    id bigint NOT NULL,
    job text NOT NULL,
    instance text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    ok boolean,
    result jsonb,
    error text
);

--
-- Name: job_runs_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.job_runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.job_runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: missed_slots; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.missed_slots (
    patient_id uuid NOT NULL,
    rule_key text NOT NULL,
    slot_id text NOT NULL,
    alert_id bigint,
    raised_at timestamp with time zone DEFAULT now() NOT NULL,
    covered_at timestamp with time zone,
    covered_by jsonb
);

--
-- Name: operational_alarms; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.operational_alarms (
    id bigint NOT NULL,
    key text NOT NULL,
    severity text NOT NULL,
    source text NOT NULL,
    message text NOT NULL,
    raised_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    occurrences integer DEFAULT 1 NOT NULL,
    cleared_at timestamp with time zone,
    cleared_reason text,
    CONSTRAINT operational_alarms_key_check CHECK ((key <> ''::text)),
    CONSTRAINT operational_alarms_occurrences_check CHECK ((occurrences >= 1)),
    CONSTRAINT operational_alarms_severity_check CHECK ((severity = ANY (ARRAY['warning'::text, 'critical'::text])))
);

--
-- Name: operational_alarms_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.operational_alarms ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.operational_alarms_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: organisation_settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organisation_settings (
    organisation_id uuid NOT NULL,
    escalation_organisation_id uuid,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by uuid,
    CONSTRAINT organisation_settings_check CHECK ((escalation_organisation_id IS DISTINCT FROM organisation_id))
);

--
-- Name: outbox; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.outbox (
    id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    event text NOT NULL,
    patient_id uuid,
    organisation_ids uuid[] NOT NULL,
    payload jsonb NOT NULL,
    xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    horizon xid8 DEFAULT pg_snapshot_xmin(pg_current_snapshot()) NOT NULL
);

--
-- Name: outbox_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: readings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.readings (
    measured_at timestamp with time zone NOT NULL,
    patient_id uuid NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    unit text NOT NULL,
    comparator text,
    source text NOT NULL,
    origin text NOT NULL,
    device_id text,
    entered_by uuid,
    message_id text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    detail jsonb,
    CONSTRAINT readings_check CHECK (((source = 'device'::text) = (device_id IS NOT NULL))),
    CONSTRAINT readings_check1 CHECK (((source = 'nurse'::text) = (entered_by IS NOT NULL))),
    CONSTRAINT readings_comparator_check CHECK ((comparator = ANY (ARRAY['<'::text, '>'::text]))),
    CONSTRAINT readings_source_check CHECK ((source = ANY (ARRAY['device'::text, 'nurse'::text])))
);

--
-- Name: rejected_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rejected_messages (
    id bigint NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    topic text NOT NULL,
    device_id text,
    message_id text,
    reading_index integer,
    reason text NOT NULL,
    raw bytea,
    payload_size integer NOT NULL,
    content_type text,
    CONSTRAINT rejected_messages_payload_size_check CHECK ((payload_size >= 0)),
    CONSTRAINT rejected_messages_raw_check CHECK ((octet_length(raw) <= 1048576)),
    CONSTRAINT rejected_messages_reading_index_check CHECK ((reading_index >= 0))
);

--
-- Name: rejected_messages_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.rejected_messages ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.rejected_messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: responsibility_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.responsibility ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.responsibility_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: rule_context_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rule_context_version (
    only_row boolean DEFAULT true NOT NULL,
    version bigint DEFAULT 1 NOT NULL,
    CONSTRAINT rule_context_version_only_row_check CHECK (only_row)
);

--
-- Name: rule_failures; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rule_failures (
    id bigint NOT NULL,
    failed_at timestamp with time zone DEFAULT now() NOT NULL,
    patient_id uuid NOT NULL,
    rule_key text NOT NULL,
    stage text NOT NULL,
    outcome text NOT NULL,
    error text NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    measured_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    origin text NOT NULL,
    message_id text NOT NULL,
    readings integer NOT NULL,
    alert_id bigint,
    CONSTRAINT rule_failures_outcome_check CHECK ((outcome = ANY (ARRAY['not_evaluated'::text, 'default_used'::text]))),
    CONSTRAINT rule_failures_readings_check CHECK ((readings >= 1)),
    CONSTRAINT rule_failures_rule_key_check CHECK (((length(rule_key) >= 1) AND (length(rule_key) <= 200))),
    CONSTRAINT rule_failures_stage_check CHECK ((stage = ANY (ARRAY['rules'::text, 'history'::text, 'evaluate'::text, 'alerts'::text])))
);

--
-- Name: rule_failures_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.rule_failures ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.rule_failures_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    filename text NOT NULL,
    sha256 text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: signin_failures; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.signin_failures (
    key bytea NOT NULL,
    scope text NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    last_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    CONSTRAINT signin_failures_failures_check CHECK ((failures >= 0)),
    CONSTRAINT signin_failures_scope_check CHECK ((scope = ANY (ARRAY['account'::text, 'address'::text])))
);

--
-- Name: threshold_overrides_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.threshold_overrides ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.threshold_overrides_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: webhook_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_attempts (
    id bigint NOT NULL,
    outbox_id bigint NOT NULL,
    webhook_id uuid NOT NULL,
    attempt integer NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    status integer,
    error text,
    duration_ms integer
);

--
-- Name: webhook_attempts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.webhook_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.webhook_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: webhook_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_deliveries (
    outbox_id bigint NOT NULL,
    webhook_id uuid NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    last_attempt_at timestamp with time zone,
    delivered_at timestamp with time zone,
    failed_at timestamp with time zone,
    last_status integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: webhooks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhooks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    organisation_id uuid NOT NULL,
    url text NOT NULL,
    secret text NOT NULL,
    events text[] DEFAULT '{}'::text[] NOT NULL,
    description text,
    active boolean DEFAULT true NOT NULL,
    start_after bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT webhooks_description_check CHECK ((length(description) <= 500)),
    CONSTRAINT webhooks_secret_check CHECK ((length(secret) >= 32)),
    CONSTRAINT webhooks_url_check CHECK (((url ~ '^https?://'::text) AND (length(url) <= 2000)))
);

--
-- Name: wound_case_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wound_case_events (
    id bigint NOT NULL,
    case_id uuid NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    kind text NOT NULL,
    actor_id uuid,
    actor_org_id uuid,
    from_state text,
    to_state text NOT NULL,
    text text,
    instruction_id uuid,
    detail jsonb,
    CONSTRAINT wound_case_events_kind_check CHECK ((kind = ANY (ARRAY['submitted'::text, 'question'::text, 'reply'::text, 'answered'::text, 'read'::text, 'escalated'::text]))),
    CONSTRAINT wound_case_events_text_check CHECK ((length(text) <= 4000))
);

--
-- Name: wound_case_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.wound_case_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.wound_case_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: wound_cases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wound_cases (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    wound_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    state text NOT NULL,
    urgent boolean NOT NULL,
    wound_type text NOT NULL,
    observation jsonb NOT NULL,
    length_cm double precision,
    width_cm double precision,
    depth_cm double precision,
    area_cm2 double precision,
    submitted_at timestamp with time zone DEFAULT now() NOT NULL,
    submitted_by uuid NOT NULL,
    submitted_by_org uuid NOT NULL,
    routed_org_id uuid NOT NULL,
    routing_rule_id bigint,
    due_at timestamp with time zone,
    escalated_at timestamp with time zone,
    answered_at timestamp with time zone,
    closed_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT wound_cases_check CHECK (((state = ANY (ARRAY['submitted'::text, 'awaiting_specialist'::text])) = (due_at IS NOT NULL))),
    CONSTRAINT wound_cases_state_check CHECK ((state = ANY (ARRAY['submitted'::text, 'awaiting_specialist'::text, 'awaiting_nurse'::text, 'answered'::text, 'closed'::text]))),
    CONSTRAINT wound_cases_wound_type_check CHECK ((wound_type ~ '^[a-z_]{1,40}$'::text))
);

--
-- Name: wound_photos; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wound_photos (
    id uuid NOT NULL,
    case_id uuid NOT NULL,
    event_id bigint,
    "position" integer NOT NULL,
    filename text NOT NULL,
    original_sha256 text NOT NULL,
    original_bytes integer NOT NULL,
    format text NOT NULL,
    mime text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    display_width integer NOT NULL,
    display_height integer NOT NULL,
    thumb_sizes integer[] NOT NULL,
    taken_at timestamp with time zone,
    taken_at_zone_assumed boolean DEFAULT false NOT NULL,
    uploaded_at timestamp with time zone DEFAULT now() NOT NULL,
    uploaded_by uuid NOT NULL,
    CONSTRAINT wound_photos_filename_check CHECK ((length(filename) <= 255)),
    CONSTRAINT wound_photos_format_check CHECK ((format = ANY (ARRAY['jpeg'::text, 'png'::text, 'webp'::text, 'heic'::text]))),
    CONSTRAINT wound_photos_original_bytes_check CHECK ((original_bytes > 0)),
    CONSTRAINT wound_photos_original_sha256_check CHECK ((original_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT wound_photos_position_check CHECK (("position" >= 0))
);

--
-- Name: wound_routing_rules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wound_routing_rules (
    id bigint NOT NULL,
    wound_type text,
    region text,
    hospital text,
    specialist_org_id uuid NOT NULL,
    priority integer DEFAULT 100 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    CONSTRAINT wound_routing_rules_hospital_check CHECK (((length(hospital) >= 1) AND (length(hospital) <= 200))),
    CONSTRAINT wound_routing_rules_priority_check CHECK (((priority >= 0) AND (priority <= 10000))),
    CONSTRAINT wound_routing_rules_region_check CHECK (((length(region) >= 1) AND (length(region) <= 100))),
    CONSTRAINT wound_routing_rules_wound_type_check CHECK ((wound_type ~ '^[a-z_]{1,40}$'::text))
);

--
-- Name: wound_routing_rules_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.wound_routing_rules ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.wound_routing_rules_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: wound_service_levels; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wound_service_levels (
    id bigint NOT NULL,
    organisation_id uuid,
    urgency text NOT NULL,
    working_hours integer,
    working_days integer,
    day_start time without time zone DEFAULT '08:00:00'::time without time zone NOT NULL,
    day_end time without time zone DEFAULT '15:30:00'::time without time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by uuid,
    CONSTRAINT wound_service_levels_check CHECK ((num_nonnulls(working_hours, working_days) = 1)),
    CONSTRAINT wound_service_levels_check1 CHECK ((day_end > day_start)),
    CONSTRAINT wound_service_levels_urgency_check CHECK ((urgency = ANY (ARRAY['urgent'::text, 'normal'::text]))),
    CONSTRAINT wound_service_levels_working_days_check CHECK (((working_days >= 1) AND (working_days <= 10))),
    CONSTRAINT wound_service_levels_working_hours_check CHECK (((working_hours >= 1) AND (working_hours <= 80)))
);

--
-- Name: wound_service_levels_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.wound_service_levels ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.wound_service_levels_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: wounds; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.wounds (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    patient_id uuid NOT NULL,
    wound_type text NOT NULL,
    body_location text NOT NULL,
    laterality text NOT NULL,
    location_detail text DEFAULT ''::text NOT NULL,
    onset date,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid NOT NULL,
    created_by_org uuid NOT NULL,
    CONSTRAINT wounds_body_location_check CHECK ((body_location ~ '^[a-z_]{1,40}$'::text)),
    CONSTRAINT wounds_laterality_check CHECK ((laterality ~ '^[a-z_]{1,40}$'::text)),
    CONSTRAINT wounds_location_detail_check CHECK ((length(location_detail) <= 200)),
    CONSTRAINT wounds_wound_type_check CHECK ((wound_type ~ '^[a-z_]{1,40}$'::text))
);

--
-- Name: alert_deadlines alert_deadlines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_deadlines
    ADD CONSTRAINT alert_deadlines_pkey PRIMARY KEY (program, severity);

--
-- Name: alert_readings alert_readings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_readings
    ADD CONSTRAINT alert_readings_pkey PRIMARY KEY (patient_id, rule_key, origin, message_id, measured_at);

--
-- Name: alert_readings_since alert_readings_since_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_readings_since
    ADD CONSTRAINT alert_readings_since_pkey PRIMARY KEY (only_row);

--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);

--
-- Name: anticoagulant_products anticoagulant_products_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.anticoagulant_products
    ADD CONSTRAINT anticoagulant_products_pkey PRIMARY KEY (id);

--
-- Name: audit_chain audit_chain_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_chain
    ADD CONSTRAINT audit_chain_pkey PRIMARY KEY (only_row);

--
-- Name: audit_log audit_log_chain_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_chain_seq_key UNIQUE (chain_seq);

--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

--
-- Name: auth_tokens auth_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_tokens
    ADD CONSTRAINT auth_tokens_pkey PRIMARY KEY (token_hash);

--
-- Name: care_relations care_relations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.care_relations
    ADD CONSTRAINT care_relations_pkey PRIMARY KEY (id);

--
-- Name: cpr_lookup_key cpr_lookup_key_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.cpr_lookup_key
    ADD CONSTRAINT cpr_lookup_key_pkey PRIMARY KEY (only_row);

--
-- Name: daily_rollups daily_rollups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.daily_rollups
    ADD CONSTRAINT daily_rollups_pkey PRIMARY KEY (patient_id, metric, day);

--
-- Name: device_status device_status_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_status
    ADD CONSTRAINT device_status_pkey PRIMARY KEY (device_id);

--
-- Name: devices devices_mqtt_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_mqtt_username_key UNIQUE (mqtt_username);

--
-- Name: devices devices_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (id);

--
-- Name: devices devices_serial_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_serial_key UNIQUE (serial);

--
-- Name: enrollments enrollments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_pkey PRIMARY KEY (id);

--
-- Name: ingest_slots ingest_slots_client_prefix_slot_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_slots
    ADD CONSTRAINT ingest_slots_client_prefix_slot_key UNIQUE (client_prefix, slot);

--
-- Name: ingest_slots ingest_slots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_slots
    ADD CONSTRAINT ingest_slots_pkey PRIMARY KEY (client_id);

--
-- Name: installation installation_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.installation
    ADD CONSTRAINT installation_pkey PRIMARY KEY (only_row);

--
-- Name: instruction_confirmations instruction_confirmations_instruction_id_user_id_kind_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instruction_confirmations
    ADD CONSTRAINT instruction_confirmations_instruction_id_user_id_kind_key UNIQUE (instruction_id, user_id, kind);

--
-- Name: instruction_confirmations instruction_confirmations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instruction_confirmations
    ADD CONSTRAINT instruction_confirmations_pkey PRIMARY KEY (id);

--
-- Name: instructions instructions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_pkey PRIMARY KEY (id);

--
-- Name: job_runs job_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_runs
    ADD CONSTRAINT job_runs_pkey PRIMARY KEY (id);

--
-- Name: missed_slots missed_slots_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.missed_slots
    ADD CONSTRAINT missed_slots_pkey PRIMARY KEY (patient_id, rule_key, slot_id);

--
-- Name: operational_alarms operational_alarms_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.operational_alarms
    ADD CONSTRAINT operational_alarms_pkey PRIMARY KEY (id);

--
-- Name: organisation_settings organisation_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisation_settings
    ADD CONSTRAINT organisation_settings_pkey PRIMARY KEY (organisation_id);

--
-- Name: organisations organisations_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisations
    ADD CONSTRAINT organisations_name_key UNIQUE (name);

--
-- Name: organisations organisations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisations
    ADD CONSTRAINT organisations_pkey PRIMARY KEY (id);

--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);

--
-- Name: patients patients_cpr_hmac_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_cpr_hmac_key UNIQUE (cpr_hmac);

--
-- Name: patients patients_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_pkey PRIMARY KEY (id);

--
-- Name: patients patients_pseudonym_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_pseudonym_key UNIQUE (pseudonym);

--
-- Name: rejected_messages rejected_messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rejected_messages
    ADD CONSTRAINT rejected_messages_pkey PRIMARY KEY (id);

--
-- Name: responsibility responsibility_patient_id_since_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responsibility
    ADD CONSTRAINT responsibility_patient_id_since_key UNIQUE (patient_id, since);

--
-- Name: responsibility responsibility_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responsibility
    ADD CONSTRAINT responsibility_pkey PRIMARY KEY (id);

--
-- Name: rule_context_version rule_context_version_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rule_context_version
    ADD CONSTRAINT rule_context_version_pkey PRIMARY KEY (only_row);

--
-- Name: rule_failures rule_failures_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rule_failures
    ADD CONSTRAINT rule_failures_pkey PRIMARY KEY (id);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (filename);

--
-- Name: signin_failures signin_failures_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.signin_failures
    ADD CONSTRAINT signin_failures_pkey PRIMARY KEY (key);

--
-- Name: threshold_overrides threshold_overrides_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.threshold_overrides
    ADD CONSTRAINT threshold_overrides_pkey PRIMARY KEY (id);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

--
-- Name: users users_username_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_username_key UNIQUE (username);

--
-- Name: webhook_attempts webhook_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (id);

--
-- Name: webhook_deliveries webhook_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (outbox_id, webhook_id);

--
-- Name: webhooks webhooks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);

--
-- Name: wound_case_events wound_case_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_case_events
    ADD CONSTRAINT wound_case_events_pkey PRIMARY KEY (id);

--
-- Name: wound_cases wound_cases_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_pkey PRIMARY KEY (id);

--
-- Name: wound_photos wound_photos_case_id_position_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_photos
    ADD CONSTRAINT wound_photos_case_id_position_key UNIQUE (case_id, "position");

--
-- Name: wound_photos wound_photos_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_photos
    ADD CONSTRAINT wound_photos_pkey PRIMARY KEY (id);

--
-- Name: wound_routing_rules wound_routing_rules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_routing_rules
    ADD CONSTRAINT wound_routing_rules_pkey PRIMARY KEY (id);

--
-- Name: wound_service_levels wound_service_levels_organisation_id_urgency_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_service_levels
    ADD CONSTRAINT wound_service_levels_organisation_id_urgency_key UNIQUE NULLS NOT DISTINCT (organisation_id, urgency);

--
-- Name: wound_service_levels wound_service_levels_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_service_levels
    ADD CONSTRAINT wound_service_levels_pkey PRIMARY KEY (id);

--
-- Name: wounds wounds_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wounds
    ADD CONSTRAINT wounds_pkey PRIMARY KEY (id);

--
-- Name: alert_readings_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alert_readings_alert ON public.alert_readings USING btree (alert_id, measured_at);

--
-- Name: alerts_one_open; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX alerts_one_open ON public.alerts USING btree (patient_id, rule_key) WHERE (state <> 'resolved'::text);

--
-- Name: alerts_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_patient ON public.alerts USING btree (patient_id, last_measured_at DESC);

--
-- Name: alerts_routed; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_routed ON public.alerts USING btree (organisation_id, last_measured_at DESC);

--
-- Name: alerts_routed_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_routed_open ON public.alerts USING btree (organisation_id) WHERE (state <> 'resolved'::text);

--
-- Name: alerts_unacknowledged; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_unacknowledged ON public.alerts USING btree (COALESCE(severity_changed_at, created_at)) WHERE (state = 'open'::text);

--
-- Name: anticoagulant_products_current; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX anticoagulant_products_current ON public.anticoagulant_products USING btree (patient_id, set_at DESC, id DESC);

--
-- Name: audit_log_actor; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_actor ON public.audit_log USING btree (actor_id, at DESC);

--
-- Name: audit_log_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_patient ON public.audit_log USING btree (patient_id, at DESC);

--
-- Name: auth_tokens_user; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX auth_tokens_user ON public.auth_tokens USING btree (user_id);

--
-- Name: care_relations_open; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX care_relations_open ON public.care_relations USING btree (patient_id, organisation_id, relation) WHERE (ended_at IS NULL);

--
-- Name: care_relations_org; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX care_relations_org ON public.care_relations USING btree (organisation_id) WHERE (ended_at IS NULL);

--
-- Name: devices_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX devices_patient ON public.devices USING btree (patient_id);

--
-- Name: enrollments_one_open; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX enrollments_one_open ON public.enrollments USING btree (patient_id, program) WHERE (end_date IS NULL);

--
-- Name: enrollments_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX enrollments_patient ON public.enrollments USING btree (patient_id);

--
-- Name: instructions_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX instructions_alert ON public.instructions USING btree (alert_id) WHERE (alert_id IS NOT NULL);

--
-- Name: instructions_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX instructions_patient ON public.instructions USING btree (patient_id, created_at DESC);

--
-- Name: instructions_wound_case; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX instructions_wound_case ON public.instructions USING btree (wound_case_id) WHERE (wound_case_id IS NOT NULL);

--
-- Name: job_runs_job; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX job_runs_job ON public.job_runs USING btree (job, started_at DESC);

--
-- Name: missed_slots_uncovered; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX missed_slots_uncovered ON public.missed_slots USING btree (alert_id) WHERE (covered_at IS NULL);

--
-- Name: operational_alarms_open; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX operational_alarms_open ON public.operational_alarms USING btree (key) WHERE (cleared_at IS NULL);

--
-- Name: operational_alarms_raised; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX operational_alarms_raised ON public.operational_alarms USING btree (raised_at);

--
-- Name: outbox_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX outbox_created ON public.outbox USING btree (created_at);

--
-- Name: outbox_xid; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX outbox_xid ON public.outbox USING btree (xid);

--
-- Name: readings_measured_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX readings_measured_at_idx ON public.readings USING btree (measured_at DESC);

--
-- Name: readings_once; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX readings_once ON public.readings USING btree (origin, message_id, metric, measured_at);

--
-- Name: readings_patient_recent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX readings_patient_recent ON public.readings USING btree (patient_id, metric, measured_at DESC);

--
-- Name: rejected_messages_device; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX rejected_messages_device ON public.rejected_messages USING btree (device_id, received_at);

--
-- Name: rejected_messages_received; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX rejected_messages_received ON public.rejected_messages USING btree (received_at);

--
-- Name: responsibility_org; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX responsibility_org ON public.responsibility USING btree (organisation_id);

--
-- Name: rule_failures_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX rule_failures_patient ON public.rule_failures USING btree (patient_id, failed_at DESC);

--
-- Name: rule_failures_recent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX rule_failures_recent ON public.rule_failures USING btree (failed_at DESC, id DESC);

--
-- Name: signin_failures_last_attempt; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX signin_failures_last_attempt ON public.signin_failures USING btree (last_attempt_at);

--
-- Name: threshold_overrides_current; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX threshold_overrides_current ON public.threshold_overrides USING btree (patient_id, rule_key, field, set_at DESC, id DESC);

--
-- Name: users_organisation; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX users_organisation ON public.users USING btree (organisation_id);

--
-- Name: webhook_attempts_delivery; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_attempts_delivery ON public.webhook_attempts USING btree (webhook_id, outbox_id, attempt);

--
-- Name: webhook_deliveries_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_due ON public.webhook_deliveries USING btree (next_attempt_at) WHERE ((delivered_at IS NULL) AND (failed_at IS NULL));

--
-- Name: webhook_deliveries_log; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_log ON public.webhook_deliveries USING btree (webhook_id, outbox_id DESC);

--
-- Name: webhooks_organisation; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhooks_organisation ON public.webhooks USING btree (organisation_id);

--
-- Name: wound_case_events_case; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_case_events_case ON public.wound_case_events USING btree (case_id, at, id);

--
-- Name: wound_cases_overdue; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_cases_overdue ON public.wound_cases USING btree (due_at) WHERE ((escalated_at IS NULL) AND (state = ANY (ARRAY['submitted'::text, 'awaiting_specialist'::text])));

--
-- Name: wound_cases_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_cases_patient ON public.wound_cases USING btree (patient_id, submitted_at DESC);

--
-- Name: wound_cases_routed; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_cases_routed ON public.wound_cases USING btree (routed_org_id, state, due_at);

--
-- Name: wound_cases_wound; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_cases_wound ON public.wound_cases USING btree (wound_id, submitted_at);

--
-- Name: wound_photos_original; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wound_photos_original ON public.wound_photos USING btree (original_sha256);

--
-- Name: wound_routing_rules_once; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX wound_routing_rules_once ON public.wound_routing_rules USING btree (wound_type, region, hospital, specialist_org_id) NULLS NOT DISTINCT;

--
-- Name: wounds_patient; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX wounds_patient ON public.wounds USING btree (patient_id, created_at);

--
-- Name: anticoagulant_products anticoagulant_products_no_change; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER anticoagulant_products_no_change BEFORE DELETE OR UPDATE ON public.anticoagulant_products FOR EACH STATEMENT EXECUTE FUNCTION public.anticoagulant_products_append_only();

--
-- Name: audit_chain audit_chain_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_chain_no_truncate BEFORE DELETE OR TRUNCATE ON public.audit_chain FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

--
-- Name: audit_log audit_log_chain; Type: TRIGGER; Schema: public; Owner: -
--

CREATE CONSTRAINT TRIGGER audit_log_chain AFTER INSERT ON public.audit_log DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.audit_log_chain();

--
-- Name: audit_log audit_log_no_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

--
-- Name: audit_log audit_log_no_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

--
-- Name: audit_log audit_log_no_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_only_chained();

--
-- Name: devices devices_kept; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER devices_kept BEFORE DELETE OR UPDATE OF id, patient_id ON public.devices FOR EACH ROW EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: devices devices_kept_whole; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER devices_kept_whole BEFORE TRUNCATE ON public.devices FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: enrollments enrollments_guard_outside_catalogue; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER enrollments_guard_outside_catalogue BEFORE INSERT OR UPDATE ON public.enrollments FOR EACH ROW EXECUTE FUNCTION public.enrollments_guard_outside_catalogue();

--
-- Name: enrollments enrollments_rule_context; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER enrollments_rule_context AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.enrollments FOR EACH STATEMENT EXECUTE FUNCTION public.bump_rule_context_version();

--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON public.outbox FOR EACH ROW EXECUTE FUNCTION public.outbox_notify();

--
-- Name: patients patients_kept; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER patients_kept BEFORE DELETE OR UPDATE OF id ON public.patients FOR EACH ROW EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: patients patients_kept_whole; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER patients_kept_whole BEFORE TRUNCATE ON public.patients FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: threshold_overrides threshold_overrides_no_change; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER threshold_overrides_no_change BEFORE DELETE OR UPDATE ON public.threshold_overrides FOR EACH STATEMENT EXECUTE FUNCTION public.threshold_overrides_append_only();

--
-- Name: threshold_overrides threshold_overrides_rule_context; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER threshold_overrides_rule_context AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.threshold_overrides FOR EACH STATEMENT EXECUTE FUNCTION public.bump_rule_context_version();

--
-- Name: readings ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.readings FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();

--
-- Name: users users_kept; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER users_kept BEFORE DELETE OR UPDATE OF id ON public.users FOR EACH ROW EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: users users_kept_whole; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER users_kept_whole BEFORE TRUNCATE ON public.users FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_row_removal();

--
-- Name: alert_deadlines alert_deadlines_updated_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_deadlines
    ADD CONSTRAINT alert_deadlines_updated_by_fkey FOREIGN KEY (updated_by) REFERENCES public.users(id);

--
-- Name: alert_readings alert_readings_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_readings
    ADD CONSTRAINT alert_readings_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: alerts alerts_acknowledged_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_acknowledged_by_fkey FOREIGN KEY (acknowledged_by) REFERENCES public.users(id);

--
-- Name: alerts alerts_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: alerts alerts_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: alerts alerts_resolved_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_resolved_by_fkey FOREIGN KEY (resolved_by) REFERENCES public.users(id);

--
-- Name: anticoagulant_products anticoagulant_products_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.anticoagulant_products
    ADD CONSTRAINT anticoagulant_products_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: anticoagulant_products anticoagulant_products_set_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.anticoagulant_products
    ADD CONSTRAINT anticoagulant_products_set_by_fkey FOREIGN KEY (set_by) REFERENCES public.users(id);

--
-- Name: audit_log audit_log_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: auth_tokens auth_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_tokens
    ADD CONSTRAINT auth_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

--
-- Name: care_relations care_relations_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.care_relations
    ADD CONSTRAINT care_relations_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: care_relations care_relations_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.care_relations
    ADD CONSTRAINT care_relations_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: care_relations care_relations_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.care_relations
    ADD CONSTRAINT care_relations_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: daily_rollups daily_rollups_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.daily_rollups
    ADD CONSTRAINT daily_rollups_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: device_status device_status_device_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.device_status
    ADD CONSTRAINT device_status_device_id_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);

--
-- Name: devices devices_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: devices devices_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: enrollments enrollments_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: enrollments enrollments_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: instruction_confirmations instruction_confirmations_instruction_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instruction_confirmations
    ADD CONSTRAINT instruction_confirmations_instruction_id_fkey FOREIGN KEY (instruction_id) REFERENCES public.instructions(id);

--
-- Name: instruction_confirmations instruction_confirmations_user_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instruction_confirmations
    ADD CONSTRAINT instruction_confirmations_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);

--
-- Name: instructions instructions_alert_fk; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_alert_fk FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: instructions instructions_author_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);

--
-- Name: instructions instructions_author_org_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_author_org_id_fkey FOREIGN KEY (author_org_id) REFERENCES public.organisations(id);

--
-- Name: instructions instructions_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: instructions instructions_wound_case_fk; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.instructions
    ADD CONSTRAINT instructions_wound_case_fk FOREIGN KEY (wound_case_id) REFERENCES public.wound_cases(id);

--
-- Name: missed_slots missed_slots_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.missed_slots
    ADD CONSTRAINT missed_slots_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: missed_slots missed_slots_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.missed_slots
    ADD CONSTRAINT missed_slots_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: organisation_settings organisation_settings_escalation_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisation_settings
    ADD CONSTRAINT organisation_settings_escalation_organisation_id_fkey FOREIGN KEY (escalation_organisation_id) REFERENCES public.organisations(id);

--
-- Name: organisation_settings organisation_settings_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisation_settings
    ADD CONSTRAINT organisation_settings_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: organisation_settings organisation_settings_updated_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organisation_settings
    ADD CONSTRAINT organisation_settings_updated_by_fkey FOREIGN KEY (updated_by) REFERENCES public.users(id);

--
-- Name: outbox outbox_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.outbox
    ADD CONSTRAINT outbox_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: patients patients_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: responsibility responsibility_handed_over_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responsibility
    ADD CONSTRAINT responsibility_handed_over_by_fkey FOREIGN KEY (handed_over_by) REFERENCES public.users(id);

--
-- Name: responsibility responsibility_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responsibility
    ADD CONSTRAINT responsibility_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: responsibility responsibility_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responsibility
    ADD CONSTRAINT responsibility_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: rule_failures rule_failures_alert_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rule_failures
    ADD CONSTRAINT rule_failures_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES public.alerts(id);

--
-- Name: rule_failures rule_failures_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rule_failures
    ADD CONSTRAINT rule_failures_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: threshold_overrides threshold_overrides_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.threshold_overrides
    ADD CONSTRAINT threshold_overrides_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: threshold_overrides threshold_overrides_set_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.threshold_overrides
    ADD CONSTRAINT threshold_overrides_set_by_fkey FOREIGN KEY (set_by) REFERENCES public.users(id);

--
-- Name: users users_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: webhook_attempts webhook_attempts_outbox_id_webhook_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_outbox_id_webhook_id_fkey FOREIGN KEY (outbox_id, webhook_id) REFERENCES public.webhook_deliveries(outbox_id, webhook_id) ON DELETE CASCADE;

--
-- Name: webhook_deliveries webhook_deliveries_outbox_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_outbox_id_fkey FOREIGN KEY (outbox_id) REFERENCES public.outbox(id);

--
-- Name: webhook_deliveries webhook_deliveries_webhook_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES public.webhooks(id);

--
-- Name: webhooks webhooks_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: webhooks webhooks_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: wound_case_events wound_case_events_actor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_case_events
    ADD CONSTRAINT wound_case_events_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.users(id);

--
-- Name: wound_case_events wound_case_events_actor_org_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_case_events
    ADD CONSTRAINT wound_case_events_actor_org_id_fkey FOREIGN KEY (actor_org_id) REFERENCES public.organisations(id);

--
-- Name: wound_case_events wound_case_events_case_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_case_events
    ADD CONSTRAINT wound_case_events_case_id_fkey FOREIGN KEY (case_id) REFERENCES public.wound_cases(id);

--
-- Name: wound_case_events wound_case_events_instruction_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_case_events
    ADD CONSTRAINT wound_case_events_instruction_id_fkey FOREIGN KEY (instruction_id) REFERENCES public.instructions(id);

--
-- Name: wound_cases wound_cases_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: wound_cases wound_cases_routed_org_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_routed_org_id_fkey FOREIGN KEY (routed_org_id) REFERENCES public.organisations(id);

--
-- Name: wound_cases wound_cases_routing_rule_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_routing_rule_id_fkey FOREIGN KEY (routing_rule_id) REFERENCES public.wound_routing_rules(id) ON DELETE SET NULL;

--
-- Name: wound_cases wound_cases_submitted_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_submitted_by_fkey FOREIGN KEY (submitted_by) REFERENCES public.users(id);

--
-- Name: wound_cases wound_cases_submitted_by_org_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_submitted_by_org_fkey FOREIGN KEY (submitted_by_org) REFERENCES public.organisations(id);

--
-- Name: wound_cases wound_cases_wound_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_cases
    ADD CONSTRAINT wound_cases_wound_id_fkey FOREIGN KEY (wound_id) REFERENCES public.wounds(id);

--
-- Name: wound_photos wound_photos_case_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_photos
    ADD CONSTRAINT wound_photos_case_id_fkey FOREIGN KEY (case_id) REFERENCES public.wound_cases(id);

--
-- Name: wound_photos wound_photos_event_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_photos
    ADD CONSTRAINT wound_photos_event_id_fkey FOREIGN KEY (event_id) REFERENCES public.wound_case_events(id);

--
-- Name: wound_photos wound_photos_uploaded_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_photos
    ADD CONSTRAINT wound_photos_uploaded_by_fkey FOREIGN KEY (uploaded_by) REFERENCES public.users(id);

--
-- Name: wound_routing_rules wound_routing_rules_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_routing_rules
    ADD CONSTRAINT wound_routing_rules_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: wound_routing_rules wound_routing_rules_specialist_org_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_routing_rules
    ADD CONSTRAINT wound_routing_rules_specialist_org_id_fkey FOREIGN KEY (specialist_org_id) REFERENCES public.organisations(id);

--
-- Name: wound_service_levels wound_service_levels_organisation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_service_levels
    ADD CONSTRAINT wound_service_levels_organisation_id_fkey FOREIGN KEY (organisation_id) REFERENCES public.organisations(id);

--
-- Name: wound_service_levels wound_service_levels_updated_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wound_service_levels
    ADD CONSTRAINT wound_service_levels_updated_by_fkey FOREIGN KEY (updated_by) REFERENCES public.users(id);

--
-- Name: wounds wounds_created_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wounds
    ADD CONSTRAINT wounds_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

--
-- Name: wounds wounds_created_by_org_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wounds
    ADD CONSTRAINT wounds_created_by_org_fkey FOREIGN KEY (created_by_org) REFERENCES public.organisations(id);

--
-- Name: wounds wounds_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.wounds
    ADD CONSTRAINT wounds_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);

--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA public TO telemed_app;

--
-- Name: TABLE audit_log; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.actor_kind; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(actor_kind) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.actor_id; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(actor_id) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.actor_name; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(actor_name) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.actor_role; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(actor_role) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.actor_org_id; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(actor_org_id) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.action; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(action) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.patient_id; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(patient_id) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.object_type; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(object_type) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.object_id; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(object_id) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.client_addr; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(client_addr) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.request_id; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(request_id) ON TABLE public.audit_log TO telemed_app;

--
-- Name: COLUMN audit_log.detail; Type: ACL; Schema: public; Owner: -
--

GRANT INSERT(detail) ON TABLE public.audit_log TO telemed_app;

--
-- Name: FUNCTION audit_log_chain(); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.audit_log_chain() FROM PUBLIC;

--
-- Name: FUNCTION drop_reading_chunks(older_than timestamp with time zone); Type: ACL; Schema: public; Owner: -
--

REVOKE ALL ON FUNCTION public.drop_reading_chunks(older_than timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.drop_reading_chunks(older_than timestamp with time zone) TO telemed_app;

--
-- Name: TABLE threshold_overrides; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.threshold_overrides TO telemed_app;

--
-- Name: TABLE alert_deadlines; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alert_deadlines TO telemed_app;

--
-- Name: TABLE alerts; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alerts TO telemed_app;

--
-- Name: TABLE organisations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.organisations TO telemed_app;

--
-- Name: TABLE patients; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.patients TO telemed_app;

--
-- Name: TABLE responsibility; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.responsibility TO telemed_app;

--
-- Name: TABLE users; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.users TO telemed_app;

--
-- Name: TABLE alert_details; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alert_details TO telemed_app;

--
-- Name: TABLE alert_readings; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alert_readings TO telemed_app;

--
-- Name: TABLE alert_readings_since; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.alert_readings_since TO telemed_app;

--
-- Name: SEQUENCE alerts_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.alerts_id_seq TO telemed_app;

--
-- Name: TABLE anticoagulant_products; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.anticoagulant_products TO telemed_app;

--
-- Name: SEQUENCE anticoagulant_products_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.anticoagulant_products_id_seq TO telemed_app;

--
-- Name: TABLE audit_chain; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.audit_chain TO telemed_app;

--
-- Name: SEQUENCE audit_log_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.audit_log_id_seq TO telemed_app;

--
-- Name: TABLE auth_tokens; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.auth_tokens TO telemed_app;

--
-- Name: TABLE care_relations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.care_relations TO telemed_app;

--
-- Name: SEQUENCE care_relations_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.care_relations_id_seq TO telemed_app;

--
-- Name: TABLE cpr_lookup_key; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT ON TABLE public.cpr_lookup_key TO telemed_app;

--
-- Name: TABLE current_responsibility; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.current_responsibility TO telemed_app;

--
-- Name: TABLE daily_rollups; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.daily_rollups TO telemed_app;

--
-- Name: TABLE device_status; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.device_status TO telemed_app;

--
-- Name: TABLE devices; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.devices TO telemed_app;

--
-- Name: TABLE enrollments; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.enrollments TO telemed_app;

--
-- Name: TABLE ingest_slots; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.ingest_slots TO telemed_app;

--
-- Name: TABLE installation; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.installation TO telemed_app;

--
-- Name: TABLE instruction_confirmations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.instruction_confirmations TO telemed_app;

--
-- Name: SEQUENCE instruction_confirmations_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.instruction_confirmations_id_seq TO telemed_app;

--
-- Name: TABLE instructions; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.instructions TO telemed_app;

--
-- Name: TABLE job_runs; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.job_runs TO telemed_app;

--
-- Name: SEQUENCE job_runs_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.job_runs_id_seq TO telemed_app;

--
-- Name: TABLE missed_slots; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.missed_slots TO telemed_app;

--
-- Name: TABLE operational_alarms; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.operational_alarms TO telemed_app;

--
-- Name: SEQUENCE operational_alarms_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.operational_alarms_id_seq TO telemed_app;

--
-- Name: TABLE organisation_settings; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.organisation_settings TO telemed_app;

--
-- Name: TABLE outbox; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.outbox TO telemed_app;

--
-- Name: SEQUENCE outbox_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.outbox_id_seq TO telemed_app;

--
-- Name: TABLE readings; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.readings TO telemed_app;

--
-- Name: TABLE rejected_messages; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rejected_messages TO telemed_app;

--
-- Name: SEQUENCE rejected_messages_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.rejected_messages_id_seq TO telemed_app;

--
-- Name: SEQUENCE responsibility_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.responsibility_id_seq TO telemed_app;

--
-- Name: TABLE rule_context_version; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rule_context_version TO telemed_app;

--
-- Name: TABLE rule_failures; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.rule_failures TO telemed_app;

--
-- Name: SEQUENCE rule_failures_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.rule_failures_id_seq TO telemed_app;

--
-- Name: TABLE schema_migrations; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT ON TABLE public.schema_migrations TO telemed_app;

--
-- Name: TABLE signin_failures; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.signin_failures TO telemed_app;

--
-- Name: SEQUENCE threshold_overrides_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.threshold_overrides_id_seq TO telemed_app;

--
-- Name: TABLE webhook_attempts; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_attempts TO telemed_app;

--
-- Name: SEQUENCE webhook_attempts_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.webhook_attempts_id_seq TO telemed_app;

--
-- Name: TABLE webhook_deliveries; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhook_deliveries TO telemed_app;

--
-- Name: TABLE webhooks; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.webhooks TO telemed_app;

--
-- Name: TABLE wound_case_events; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wound_case_events TO telemed_app;

--
-- Name: SEQUENCE wound_case_events_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.wound_case_events_id_seq TO telemed_app;

--
-- Name: TABLE wound_cases; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wound_cases TO telemed_app;

--
-- Name: TABLE wound_photos; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wound_photos TO telemed_app;

--
-- Name: TABLE wound_routing_rules; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wound_routing_rules TO telemed_app;

--
-- Name: SEQUENCE wound_routing_rules_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.wound_routing_rules_id_seq TO telemed_app;

--
-- Name: TABLE wound_service_levels; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wound_service_levels TO telemed_app;

--
-- Name: SEQUENCE wound_service_levels_id_seq; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,USAGE ON SEQUENCE public.wound_service_levels_id_seq TO telemed_app;

--
-- Name: TABLE wounds; Type: ACL; Schema: public; Owner: -
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.wounds TO telemed_app;

--
-- Name: DEFAULT PRIVILEGES FOR SEQUENCES; Type: DEFAULT ACL; Schema: public; Owner: -
--

ALTER DEFAULT PRIVILEGES FOR ROLE telemed_owner IN SCHEMA public GRANT SELECT,USAGE ON SEQUENCES  TO telemed_app;

--
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: public; Owner: -
--

ALTER DEFAULT PRIVILEGES FOR ROLE telemed_owner IN SCHEMA public GRANT SELECT,INSERT,DELETE,UPDATE ON TABLES  TO telemed_app;

--
-- PostgreSQL database dump complete
--
