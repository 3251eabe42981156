"""The event stream over real HTTP: an event appears once enqueued, only for its organisations,
resume with Last-Event-ID, heartbeats, and the end of a stream whose sign-in was revoked."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from tests import test_alerts_notify_support as support
from tests.test_alerts_notify_support import enqueue

# Fixtures of the notification tests' own database and server.
events_server = support.events_server
events_app = support.events_app
events_settings = support.events_settings
own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory
own_settings = support.own_settings


@dataclass
class Stream:
    """Reads one event stream in a thread; events and comments land in a queue."""

    url: str
    headers: dict[str, str]
    items: queue.Queue = field(default_factory=queue.Queue)
    status: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=20) as r:
                self.status = r.status_code
                fields: dict[str, str] = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.items.put(("comment", line[1:].strip()))
                    elif line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    elif "data" in fields:
                        # the SSE id is "<outbox id>:<horizon>" (events.stream)
                        fields["outbox_id"] = fields.get("id", "").partition(":")[0]
                        self.items.put(("event", fields))
                        fields = {}
                    else:
                        fields = {}
        except httpx.HTTPError as exc:
            self.items.put(("error", str(exc)))
        finally:
            self.ended.set()

    def next(self, timeout: float = 5.0) -> tuple[str, object]:
        return self.items.get(timeout=timeout)

    def next_event(self, timeout: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            kind, value = self.next(max(0.01, deadline - time.monotonic()))
            if kind == "event":
                return value  # type: ignore[return-value]

    def events_within(self, seconds: float) -> list[dict[str, str]]:
        found, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, value = self.items.get(timeout=left)
            except queue.Empty:
                break
            if kind == "event":
                found.append(value)
        return found


@pytest.fixture
def open_stream(events_server: str) -> Iterator:
    streams: list[Stream] = []

    def start(headers: dict[str, str], query: str = "") -> Stream:
        s = Stream(f"{events_server}/api/v1/events{query}", headers)
        threading.Thread(target=s.run, daemon=True).start()
        streams.append(s)
        return s

    yield start


def _connected(s: Stream) -> None:
    kind, value = s.next(10)
    assert (kind, value) == ("comment", "connected"), (kind, value, s.status)


def test_event_reaches_its_organisations_only(
    open_stream, own_db: psycopg.Connection, own_factory
) -> None:
    hospital, nursing, other = own_factory.org(), own_factory.org("home_nursing"), own_factory.org()
    patient = own_factory.patient(hospital, program="copd", serving=[nursing])
    nurse = own_factory.user("nurse", nursing)
    stranger = own_factory.user("nurse", other)
    mine, theirs = open_stream(nurse.headers), open_stream(stranger.headers)
    _connected(mine)
    _connected(theirs)
    assert mine.status == 200

    event = enqueue(own_db, "alert.raised", {"alert_id": 1}, [hospital, nursing], patient)
    got = mine.next_event()
    assert got["outbox_id"] == str(event) and got["event"] == "alert.raised"
    assert re.fullmatch(rf"{event}:[0-9]+", got["id"])
    body = json.loads(got["data"])
    assert body["id"] == event and body["payload"] == {"alert_id": 1}
    assert body["patient_id"] == str(patient)

    own = enqueue(own_db, "alert.raised", {"alert_id": 2}, [other])
    assert theirs.next_event()["outbox_id"] == str(own)
    assert theirs.events_within(0.5) == []
    assert mine.events_within(0.5) == []
    read = own_db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'read' AND object_type = 'event' "
        "AND object_id = %s AND actor_id = %s",
        (str(event), str(nurse.id)),
    ).fetchone()
    assert read["n"] == 1


def test_resume_from_last_event_id_then_live(
    open_stream, own_db: psycopg.Connection, own_factory
) -> None:
    org, other = own_factory.org(), own_factory.org()
    specialist = own_factory.user("specialist", org)
    first = enqueue(own_db, "alert.raised", {"n": 1}, [org])
    enqueue(own_db, "alert.raised", {"n": "not mine"}, [other])
    second = enqueue(own_db, "alert.upgraded", {"n": 2}, [org])
    third = enqueue(own_db, "alert.escalated", {"n": 3}, [other, org])

    resumed = open_stream({**specialist.headers, "Last-Event-ID": str(first)})
    _connected(resumed)
    got = [resumed.next_event()["outbox_id"], resumed.next_event()["outbox_id"]]
    assert got == [str(second), str(third)]
    live = enqueue(own_db, "alert.raised", {"n": 4}, [org])
    assert resumed.next_event()["outbox_id"] == str(live)
    assert resumed.events_within(0.3) == []

    by_query = open_stream(specialist.headers, f"?last_event_id={third}")
    _connected(by_query)
    assert by_query.next_event()["outbox_id"] == str(live)


def test_resume_replays_an_event_that_committed_late_with_a_lower_id(
    open_stream, own_db: psycopg.Connection, own_dsn: str, own_factory
) -> None:
    """Ids are taken at insert: a slow transaction's event gets a lower id than a quick one's
    but commits after the client got the quick one and went away. The resumed stream has it."""
    org = own_factory.org()
    specialist = own_factory.user("specialist", org)
    first = open_stream(specialist.headers)
    _connected(first)
    with psycopg.connect(own_dsn) as slow:  # not autocommit: its transaction stays open
        late = slow.execute(
            "INSERT INTO outbox (event, organisation_ids, payload) "
            "VALUES ('alert.raised', %s, '{\"n\": \"late\"}') RETURNING id",
            ([org],),
        ).fetchone()[0]
        quick = enqueue(own_db, "alert.upgraded", {"n": "quick"}, [org])
        seen = first.next_event()
        assert seen["outbox_id"] == str(quick) and late < quick
        slow.commit()  # the client has gone with the quick event's id
    resumed = open_stream({**specialist.headers, "Last-Event-ID": seen["id"]})
    _connected(resumed)
    assert resumed.next_event()["outbox_id"] == str(late)
    assert resumed.events_within(0.3) == []  # the quick one, which the client has, is not resent
    # A bare outbox id (a hand-made resume point) replays only higher ids.
    bare = open_stream({**specialist.headers, "Last-Event-ID": str(quick)})
    _connected(bare)
    assert bare.events_within(0.3) == []


def test_a_resume_point_that_is_not_an_event_id_is_refused(events_server: str, own_factory) -> None:
    specialist = own_factory.user("specialist", own_factory.org())
    url = f"{events_server}/api/v1/events?last_event_id=yesterday"
    r = httpx.get(url, headers=specialist.headers)
    assert r.status_code == 422
    assert [p["field"] for p in r.json()["problems"]] == ["last_event_id"]


def test_only_signed_in_clinicians_may_listen(events_server: str, own_factory) -> None:
    admin = own_factory.user("admin", own_factory.org())
    url = f"{events_server}/api/v1/events"
    assert httpx.get(url, headers=admin.headers).status_code == 403
    assert httpx.get(url).status_code == 401
    bad = {"Authorization": f"Bearer {uuid.uuid4().hex}"}
    assert httpx.get(url, headers=bad).status_code == 401


def test_heartbeats_and_a_revoked_sign_in_ends_the_stream(
    open_stream, events_app, own_db: psycopg.Connection, own_factory
) -> None:
    nurse = own_factory.user("nurse", own_factory.org("home_nursing"))
    with support.stream_settings(events_app, heartbeat_s=0.2):
        s = open_stream(nurse.headers)
        _connected(s)
    assert s.next(3) == ("comment", "keep-alive")
    own_db.execute("UPDATE auth_tokens SET revoked_at = now() WHERE user_id = %s", (nurse.id,))
    assert s.ended.wait(5)


def test_streams_end_after_their_maximum_age(open_stream, events_app, own_factory) -> None:
    with support.stream_settings(events_app, max_stream_s=0.5):
        s = open_stream(own_factory.user("specialist", own_factory.org()).headers)
        _connected(s)
    assert s.ended.wait(5)


def test_stream_catches_up_after_the_listen_connection_is_lost(
    open_stream, own_db: psycopg.Connection, own_factory
) -> None:
    org = own_factory.org()
    s = open_stream(own_factory.user("specialist", org).headers)
    _connected(s)
    before = enqueue(own_db, "alert.raised", {"n": 1}, [org])
    assert s.next_event()["outbox_id"] == str(before)
    killed = own_db.execute(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
        "WHERE application_name = 'telemed-events' AND datname = current_database()"
    ).fetchone()
    assert killed["n"] == 1
    during = enqueue(own_db, "alert.raised", {"n": 2}, [org])  # nobody listens now
    assert s.next_event(timeout=10)["outbox_id"] == str(during)
    after = enqueue(own_db, "alert.raised", {"n": 3}, [org])
    assert s.next_event()["outbox_id"] == str(after)
    assert s.events_within(0.3) == []
