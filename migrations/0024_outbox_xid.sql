-- Where each event stands among transactions. Outbox ids are taken at insert, not at commit, so
-- an event can commit after one with a higher id. `xid` is the writing transaction; `horizon`
-- the xmin of its snapshot when it wrote the event: every transaction below it had ended. An
-- event with a lower id that commits after this one was running then, so its xid is at or above
-- this event's horizon. A resuming event stream replays those besides the higher ids (alerts.sse).
ALTER TABLE outbox
    ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN horizon xid8 NOT NULL DEFAULT pg_snapshot_xmin(pg_current_snapshot());
CREATE INDEX outbox_xid ON outbox (xid);
