-- Events to deliver (server-sent events, webhooks), written in the same transaction as what caused
-- them, so an event exists exactly when its cause was committed. `organisation_ids` are the
-- organisations that should hear of it.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    event            text NOT NULL,
    patient_id       uuid REFERENCES patients (id),
    organisation_ids uuid[] NOT NULL,
    payload          jsonb NOT NULL
);
CREATE INDEX outbox_created ON outbox (created_at);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('telemed_outbox', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_notify();
