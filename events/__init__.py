"""Events: the outbox (the one writer of its rows), the event stream to signed-in clinicians,
and webhooks to organisations' systems. Alerts and wounds write events; nothing here knows
what an alert or a wound case is beyond the event's name and payload."""
