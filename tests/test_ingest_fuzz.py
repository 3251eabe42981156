"""Random payloads through the real broker never crash the worker, and each one is accounted
for exactly as the contract decides: stored, rejected whole, or rejected reading by reading."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemed.catalogue.metrics import METRICS
from telemed.device_contract import PayloadError, decode_status, parse_message, status_topic
from tests.mqtt_helpers import Ingest, IngestRig, message, wait_for

NOW = datetime.now(UTC)
UNITS = sorted({u for m in METRICS.values() for u in m.accepted_units()} | {"mmHg", "KG", ""})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
times = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                 timezones=st.sampled_from([UTC, None])),
    st.sampled_from([datetime(1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)]),
)  # fmt: skip
readings = st.fixed_dictionaries(
    {
        "type": st.sampled_from(sorted(METRICS)) | st.text(max_size=8),
        "value": st.floats() | st.integers(-(2**70), 2**70) | st.sampled_from(["<0.8", ">8.0"])
        | st.text(max_size=6),
        "unit": st.sampled_from(UNITS) | st.text(max_size=6),
    },
    optional={"items": st.lists(st.integers(-2, 7), max_size=9), "note": json_values},
)  # fmt: skip
messages = st.fixed_dictionaries(
    {
        "message_id": st.from_regex(r"\A[a-z0-9:._-]{1,20}\Z") | st.text(max_size=70),
        "measured_at": times.map(lambda t: t.isoformat()) | st.text(max_size=30),
        "readings": st.lists(readings, max_size=5),
    },
    optional={"firmware": json_values},
)


def _encode(fmt: str, body: dict) -> bytes:
    if fmt == "msgpack":
        try:
            return msgspec.msgpack.encode(body)
        except OverflowError:  # msgpack has no integers beyond 64 bits; JSON does
            pass
    return json.dumps(body, allow_nan=True).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(st.sampled_from(["json", "msgpack"]), messages).map(lambda t: _encode(*t)),
)
content_types = st.sampled_from(
    [None, "application/json", "application/msgpack", "application/x-msgpack", "text/plain"]
)


def _expected(published: list[tuple[bytes, str | None, bool]]) -> tuple[int, int, set[tuple]]:
    """(whole-message rejections, rejected readings, stored keys) as the contract decides."""
    whole = rejected = 0
    keys: set[tuple] = set()
    now = datetime.now(UTC)
    for payload, content_type, is_status in published:
        try:
            if is_status:
                decode_status(payload, content_type=content_type)
                continue
            parsed = parse_message(payload, now=now, content_type=content_type)
        except PayloadError:
            whole += 1
            continue
        rejected += len(parsed.rejected)
        keys |= {(parsed.message_id, r.metric, parsed.measured_at) for r in parsed.accepted}
    return whole, rejected, keys


def test_random_payloads_never_crash_the_worker(rig: IngestRig) -> None:
    ingest = Ingest(rig)
    published: list[tuple[bytes, str | None, bool]] = []

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payloads, content_types, st.integers(0, 9).map(lambda n: n == 0))
    def publish(payload: bytes, content_type: str | None, is_status: bool) -> None:
        topic = status_topic(ingest.device_id) if is_status else None
        assert ingest.link.publish(payload, topic=topic, content_type=content_type).value == 0
        published.append((payload, content_type, is_status))

    publish()
    assert ingest.link.publish(message("sentinel", [("spo2", 97, "%")])).value == 0
    wait_for(lambda: any(r["message_id"] == "sentinel" for r in rig.readings(ingest.device_id)),
             timeout=30, what="the sentinel after the random payloads")  # fmt: skip
    assert ingest.worker.alive, ingest.worker.output()
    assert not ingest.worker.saw("internal:"), ingest.worker.output()

    whole, rejected, keys = _expected(published)
    rows = rig.rejections(ingest.device_id)
    kinds = Counter("whole" if r["reading_index"] is None else "reading" for r in rows)
    assert (kinds["whole"], kinds["reading"]) == (whole, rejected)
    stored = {
        (r["message_id"], r["metric"], r["measured_at"])
        for r in rig.readings(ingest.device_id)
        if r["message_id"] != "sentinel"
    }
    assert stored == keys
