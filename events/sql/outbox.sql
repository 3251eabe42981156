-- name: insert
-- The events of events.outbox.enqueue / enqueue_many, as one JSON array, in the order given
-- (so their ids ascend in that order). Sets of rows come as JSON: msgspec encodes them fast,
-- psycopg would build array parameters in Python.
INSERT INTO outbox (event, patient_id, organisation_ids, payload)
SELECT e.event, e.patient_id,
       ARRAY(SELECT jsonb_array_elements_text(e.organisation_ids)::uuid), e.payload
FROM json_to_recordset(%(events)s::json)
     AS e (n int, event text, patient_id uuid, organisation_ids jsonb, payload jsonb)
ORDER BY e.n
RETURNING id;
