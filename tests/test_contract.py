"""The device message contract: topics, decoding, whole-message and per-reading rules."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemed.catalogue.metrics import METRICS
from telemed.device_contract import (
    MAX_BYTES,
    OFFLINE_PAYLOAD,
    READINGS_FILTER,
    SHARED_READINGS_SUBSCRIPTION,
    TOPIC_PREFIX,
    CanonicalReading,
    ParsedMessage,
    PayloadError,
    Reading,
    ReadingMessage,
    StatusMessage,
    decode,
    decode_status,
    device_id_from_topic,
    encode_message,
    encode_status,
    parse_message,
    payload_format,
    readings_topic,
    status_topic,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def payload(readings: list[dict[str, Any]] | None = None, fmt: str = "json", **top: Any) -> bytes:
    body: dict[str, Any] = {
        "message_id": "kit-7:0001",
        "measured_at": "2026-12-01T11:30:00+01:00",
        "readings": readings if readings is not None else [r("spo2", 94, "%")],
    }
    body.update(top)
    body = {k: v for k, v in body.items() if v is not ...}
    return msgspec.msgpack.encode(body) if fmt == "msgpack" else msgspec.json.encode(body)


def r(type_: str, value: Any, unit: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "value": value, "unit": unit, **extra}


def parse(data: bytes, **kw: Any) -> ParsedMessage:
    return parse_message(data, now=NOW, **kw)


def whole_failure(data: bytes, **kw: Any) -> str:
    with pytest.raises(PayloadError) as err:
        parse(data, **kw)
    assert err.value.reason == str(err.value)
    return err.value.reason


def only_reason(readings: list[dict[str, Any]], fmt: str = "json") -> str:
    parsed = parse(payload(readings, fmt))
    assert len(parsed.rejected) == 1
    return parsed.rejected[0].reason


# --- topics -----------------------------------------------------------------------------------


def test_topics() -> None:
    assert TOPIC_PREFIX == "telemed/v1/devices"
    assert readings_topic("kit-7") == "telemed/v1/devices/kit-7/readings"
    assert status_topic("kit-7") == "telemed/v1/devices/kit-7/status"
    assert READINGS_FILTER == "telemed/v1/devices/+/readings"
    assert SHARED_READINGS_SUBSCRIPTION == "$share/ingest/telemed/v1/devices/+/readings"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "kit 7", "-kit", "x" * 65, "kit\n"])
def test_topic_helpers_refuse_ids_that_are_not_one_safe_level(bad: str) -> None:
    with pytest.raises(ValueError):
        readings_topic(bad)
    with pytest.raises(ValueError):
        status_topic(bad)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("telemed/v1/devices/kit-7/readings", "kit-7"),
        ("telemed/v1/devices/0b3c.A_9/readings", "0b3c.A_9"),
        ("telemed/v1/devices/kit-7/status", None),
        ("telemed/v1/devices/readings", None),
        ("telemed/v1/devices//readings", None),
        ("telemed/v1/devices/a/b/readings", None),
        ("telemed/v2/devices/kit-7/readings", None),
        ("xtelemed/v1/devices/kit-7/readings", None),
        ("telemed/v1/devices/kit-7/readings/extra", None),
        ("$share/ingest/telemed/v1/devices/kit-7/readings", None),
        ("telemed/v1/devices/+/readings", None),
    ],
)
def test_device_id_from_topic(topic: str, expected: str | None) -> None:
    assert device_id_from_topic(topic) == expected


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True))
def test_device_id_round_trips_through_its_topic(device_id: str) -> None:
    assert device_id_from_topic(readings_topic(device_id)) == device_id
    assert device_id_from_topic(status_topic(device_id)) is None


# --- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data", "expected"),
    [
        ("application/json", b"\x81", "json"),
        ("application/json; charset=utf-8", b"", "json"),
        ("Application/JSON", b"", "json"),
        ("application/msgpack", b"{", "msgpack"),
        ("application/x-msgpack", b"{", "msgpack"),
        (None, b' \r\n\t{"a": 1}', "json"),
        (None, b"\x83", "msgpack"),
        (None, b"\xde\x00\x03", "msgpack"),
        ("text/plain", b"{}", "json"),
        ("text/plain", b"\x81", "msgpack"),
        (None, b"[1]", None),
        (None, b"", None),
    ],
)
def test_payload_format(content_type: str | None, data: bytes, expected: str | None) -> None:
    assert payload_format(data, content_type) == expected


@pytest.mark.parametrize("content_type", [None, "application/msgpack", "application/x-msgpack"])
def test_msgpack_message(content_type: str | None) -> None:
    parsed = parse(payload(fmt="msgpack"), content_type=content_type)
    assert parsed.accepted == [CanonicalReading(seq=0, metric="spo2", value=94.0, unit="%")]


def test_msgpack_native_timestamp_is_utc() -> None:
    data = payload(fmt="msgpack", measured_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert parse(data).measured_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_declared_content_type_wins_over_sniffing() -> None:
    assert whole_failure(payload(), content_type="application/msgpack").startswith(
        "payload: expected object, got int"
    )
    assert whole_failure(payload(fmt="msgpack"), content_type="application/json").startswith(
        "payload: not valid JSON (JSON is malformed"
    )


def test_decode_returns_the_struct() -> None:
    msg = decode(payload())
    assert msg.message_id == "kit-7:0001"
    assert msg.measured_at == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert msg.measured_at.utcoffset() == timedelta(hours=1)
    assert msg.readings == [Reading(type="spo2", value=94.0, unit="%")]


# --- whole-message failures -------------------------------------------------------------------


def test_size_limit() -> None:
    data = payload()
    assert parse(data, max_bytes=len(data)).accepted
    assert whole_failure(data, max_bytes=len(data) - 1) == (
        f"payload: {len(data)} bytes is over the limit of {len(data) - 1} bytes"
    )
    big = payload(padding="x" * MAX_BYTES)
    assert whole_failure(big) == f"payload: {len(big)} bytes is over the limit of 65536 bytes"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "payload: empty"),
        (b"{", "payload: not valid JSON (Input data was truncated)"),
        (b"[1, 2]", "payload: expected object, got array"),
        (b'"hello"', "payload: expected object, got str"),
        (b"\x00\x01", "payload: neither JSON nor msgpack (JSON is malformed: invalid character"),
        (b"\x81\xa1a", "payload: not valid msgpack (Input data was truncated)"),
        (b'{"message_id": "a"}', "measured_at: required field is missing"),
    ],
)
def test_undecodable_payloads(data: bytes, reason: str) -> None:
    assert whole_failure(data).startswith(reason)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999"])
def test_json_non_finite_literals_fail_the_message(literal: bytes) -> None:
    data = payload([r("spo2", 0, "%")]).replace(b'"value":0', b'"value":' + literal)
    assert literal in data
    reason = whole_failure(data)
    assert reason.startswith(("payload: not valid JSON", "readings[0].value: number out of range"))


@pytest.mark.parametrize("field", ["message_id", "measured_at", "readings"])
def test_missing_top_level_field(field: str) -> None:
    assert whole_failure(payload(**{field: ...})) == f"{field}: required field is missing"


@pytest.mark.parametrize("field", ["type", "value", "unit"])
def test_missing_reading_field(field: str) -> None:
    reading = r("spo2", 94, "%")
    del reading[field]
    assert whole_failure(payload([reading])) == f"readings[0].{field}: required field is missing"


@pytest.mark.parametrize(
    ("top", "reason"),
    [
        ({"message_id": 17}, "message_id: expected str, got int"),
        ({"measured_at": 1733050000}, "measured_at: expected datetime, got int"),
        ({"measured_at": "yesterday"}, "measured_at: invalid RFC3339 encoded datetime"),
        ({"readings": {"type": "spo2"}}, "readings: expected array, got object"),
        ({"readings": []}, "readings: expected array of length >= 1"),
        ({"readings": [r("spo2", 94, "%")] * 33}, "readings: expected array of length <= 32"),
        ({"readings": [r("spo2", True, "%")]}, "readings[0].value: expected float | str, got bool"),
        ({"readings": [r("spo2", None, "%")]}, "readings[0].value: expected float | str, got null"),
        ({"readings": [r("spo2", 94, 1)]}, "readings[0].unit: expected str, got int"),
        ({"readings": [r(7, 94, "%")]}, "readings[0].type: expected str, got int"),
        (
            {"readings": [r("cat", 3, "{score}", items=[1, "2"])]},
            "readings[0].items[1]: expected int, got str",
        ),
        (
            {"readings": [r("cat", 3, "{score}", items=[1, 2.0])]},
            "readings[0].items[1]: expected int, got float",
        ),
    ],
)
def test_wrong_typed_fields_fail_the_message(top: dict[str, Any], reason: str) -> None:
    assert whole_failure(payload(**top)) == reason


@pytest.mark.parametrize("bad", ["", "x" * 65, "kit 7", "kit/7", "kit-7\n", "kit-ø", "a#b"])
def test_message_id_rule(bad: str) -> None:
    assert whole_failure(payload(message_id=bad)) == (
        "message_id: must be 1–64 characters from A–Z a–z 0–9 . _ : -"
    )


@pytest.mark.parametrize("good", ["a", "x" * 64, "kit-7:2026-12-01T11:30:00.000Z", "A.b_c-9"])
def test_message_ids_in_the_safe_charset(good: str) -> None:
    assert parse(payload(message_id=good)).message_id == good


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("stamp", ["2026-12-01T11:30:00", "2026-12-01T11:30:00.250"])
def test_naive_timestamp_fails_the_message(fmt: str, stamp: str) -> None:
    reason = whole_failure(payload(fmt=fmt, measured_at=stamp))
    assert reason == "measured_at: timestamp has no UTC offset"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-12-01T12:00:00Z", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
        ("2026-12-01T13:00:00+01:00", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
        ("2026-12-01T07:00:00-05:00", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_offsets_are_kept(stamp: str, expected: datetime) -> None:
    assert parse(payload(measured_at=stamp)).measured_at == expected


def test_future_limit() -> None:
    at_limit = payload(measured_at="2026-12-01T12:05:00Z")
    assert parse(at_limit).accepted
    assert whole_failure(payload(measured_at="2026-12-01T12:10:00+00:00")) == (
        "measured_at: 2026-12-01T12:10:00+00:00 is 10 min in the future (limit 5 min)"
    )
    assert whole_failure(payload(measured_at="2026-12-01T12:05:00.000001Z")) == (
        "measured_at: 2026-12-01T12:05:00.000001+00:00 is 5 min 1 s in the future (limit 5 min)"
    )
    assert whole_failure(payload(measured_at="2026-12-03T15:00:00+02:00")) == (
        "measured_at: 2026-12-03T15:00:00+02:00 is 2 d 1 h in the future (limit 5 min)"
    )


def test_future_limit_is_configurable() -> None:
    data = payload(measured_at="2026-12-01T12:10:00Z")
    assert parse(data, max_future=timedelta(minutes=10)).accepted
    assert whole_failure(data, max_future=timedelta(0)) == (
        "measured_at: 2026-12-01T12:10:00+00:00 is 10 min in the future (limit 0 s)"
    )


@pytest.mark.parametrize("age", [timedelta(hours=1), timedelta(days=3), timedelta(days=400)])
def test_late_readings_are_accepted(age: timedelta) -> None:
    stamp = (NOW - age).isoformat()
    parsed = parse(payload(measured_at=stamp))
    assert parsed.measured_at == NOW - age
    assert [a.metric for a in parsed.accepted] == ["spo2"]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="now must carry a UTC offset"):
        parse_message(payload(), now=datetime(2026, 12, 1, 12, 0))


def test_deep_nesting_in_an_unknown_field_is_a_payload_error() -> None:
    data = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert whole_failure(data, max_bytes=len(data)) == "payload: nested too deeply"


# --- unknown fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_unknown_fields_are_tolerated(fmt: str) -> None:
    readings = [r("pulse", 72, "bpm", quality="good", sensor={"led": [1, 2]})]
    data = payload(readings, fmt, firmware="2.4.1", battery=81, extra={"a": [None, 1.5]})
    parsed = parse(data)
    assert parsed.rejected == []
    assert parsed.accepted == [
        CanonicalReading(
            seq=0,
            metric="pulse",
            value=72.0,
            unit="/min",
            original_value=72.0,
            original_unit="bpm",
        )
    ]


# --- per-reading rules ------------------------------------------------------------------------


def test_copd_kit_message_with_one_bad_reading_keeps_the_others() -> None:
    parsed = parse(
        payload(
            [
                r("spo2", 93, "%"),
                r("pulse", 88, "/min"),
                r("spo2", 130, "%"),
                r("fev1", 1450, "mL"),
                r("temperature", 98.6, "[degF]"),
                r("glucose", 5.4, "mmol/L"),
            ]
        )
    )
    assert [(a.seq, a.metric, a.value) for a in parsed.accepted] == [
        (0, "spo2", 93.0),
        (1, "pulse", 88.0),
        (3, "fev1", 1.45),
        (4, "temperature", 37.0),
    ]
    duplicate = (
        "readings[2].type: spo2 appears more than once in the message (first at readings[0])"
    )
    unknown = (
        "readings[5].type: unknown metric 'glucose' (known: spo2, pulse, resp_rate, fev1, pef,"
        " weight, temperature, cat, mrc, inr)"
    )
    assert [(p.seq, p.reading.type, p.reason) for p in parsed.rejected] == [
        (2, "spo2", duplicate),
        (5, "glucose", unknown),
    ]
    assert parsed.rejected[0].reading == Reading(type="spo2", value=130.0, unit="%")


def test_impossible_value_reason() -> None:
    reason = only_reason([r("pulse", 80, "/min"), r("spo2", 130, "%")])
    assert reason == "readings[1].value: 130 % is outside the plausible range 50–100 % for spo2"


def test_wrong_unit_reason() -> None:
    assert only_reason([r("weight", 70, "stone")]) == (
        "readings[0].unit: 'stone' is not an accepted unit for weight"
        " (accepted: kg, [lb_av], lb, lbs)"
    )


def test_converted_out_of_range_reason() -> None:
    assert only_reason([r("temperature", 110, "[degF]")]) == (
        "readings[0].value: 110 [degF] (= 43.333333333333336 Cel) is outside the plausible range "
        "30–43 Cel for temperature"
    )


def test_a_bad_first_occurrence_still_claims_the_metric() -> None:
    parsed = parse(payload([r("spo2", 130, "%"), r("spo2", 95, "%")]))
    assert parsed.accepted == []
    assert [p.reason for p in parsed.rejected] == [
        "readings[0].value: 130 % is outside the plausible range 50–100 % for spo2",
        "readings[1].type: spo2 appears more than once in the message (first at readings[0])",
    ]


def test_unknown_metrics_are_not_duplicates_of_each_other() -> None:
    parsed = parse(payload([r("SpO2", 95, "%"), r("SpO2", 95, "%"), r("spo2", 95, "%")]))
    assert [a.seq for a in parsed.accepted] == [2]
    assert all("unknown metric 'SpO2'" in p.reason for p in parsed.rejected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.nan, "readings[0].value: NaN is not a measurement (a device sends NaN when it has"),
        (math.inf, "readings[0].value: inf is not a finite number"),
        (-math.inf, "readings[0].value: -inf is not a finite number"),
    ],
)
def test_msgpack_non_finite_values_are_rejected_per_reading(value: float, reason: str) -> None:
    parsed = parse(payload([r("spo2", value, "%"), r("pulse", 70, "/min")], "msgpack"))
    assert [a.metric for a in parsed.accepted] == ["pulse"]
    assert parsed.rejected[0].reason.startswith(reason)


@pytest.mark.parametrize("code", list(METRICS))
def test_every_metric_in_its_canonical_unit(code: str) -> None:
    m = METRICS[code]
    parsed = parse(payload([r(code, m.low, m.unit)]))
    assert parsed.accepted == [CanonicalReading(seq=0, metric=code, value=m.low, unit=m.unit)]
    reason = only_reason([r(code, m.high + 1, m.unit)])
    assert reason.startswith(f"readings[0].value: {m.high + 1:g} {m.unit} is outside")


def test_converted_reading_keeps_the_original() -> None:
    (reading,) = parse(payload([r("weight", 1, "[lb_av]")])).rejected
    assert reading.reason.startswith("readings[0].value: 1 [lb_av] (= 0.45359237 kg) is outside")
    (accepted,) = parse(payload([r("pef", 5, "L/s")])).accepted
    assert accepted == CanonicalReading(
        seq=0, metric="pef", value=300.0, unit="L/min", original_value=5.0, original_unit="L/s"
    )
    (spo2,) = parse(payload([r("spo2", 0.95, "{fraction}")])).accepted
    assert (spo2.value, spo2.original_value, spo2.original_unit) == (95.0, 0.95, "{fraction}")


def test_scores_must_be_whole() -> None:
    assert only_reason([r("mrc", 2.5, "{score}")]) == (
        "readings[0].value: 2.5 {score} is not a whole number of points for mrc"
    )


# --- censored INR -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unit", "comparator", "limit"),
    [
        ("<0.8", "{INR}", "<", 0.8),
        (">8.0", "{INR}", ">", 8.0),
        (" > 8 ", "INR", ">", 8.0),
        ("<0.5", "{INR}", "<", 0.5),
    ],
)
def test_censored_inr_is_accepted(text: str, unit: str, comparator: str, limit: float) -> None:
    parsed = parse(payload([r("inr", text, unit)]))
    assert parsed.rejected == []
    (reading,) = parsed.accepted
    assert (reading.metric, reading.comparator, reading.value, reading.unit) == (
        "inr",
        comparator,
        limit,
        "{INR}",
    )


def test_censored_inr_in_msgpack() -> None:
    (reading,) = parse(payload([r("inr", ">8.0", "{INR}")], "msgpack")).accepted
    assert (reading.comparator, reading.value) == (">", 8.0)


def test_plain_inr_has_no_comparator_and_lab_values_above_a_meter_are_real() -> None:
    (reading,) = parse(payload([r("inr", 12.4, "{INR}")])).accepted
    assert (reading.comparator, reading.value) == (None, 12.4)


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (r("inr", "2.5", "{INR}"), "readings[0].value: '2.5' is not a censored INR value"),
        (r("inr", "<=0.8", "{INR}"), "readings[0].value: '<=0.8' is not a censored INR value"),
        (r("inr", "<0,8", "{INR}"), "readings[0].value: '<0,8' is not a censored INR value"),
        (r("inr", "<", "{INR}"), "readings[0].value: '<' is not a censored INR value"),
        (r("inr", "<٠.٨", "{INR}"), "readings[0].value: '<٠.٨' is not a censored INR value"),
        (r("inr", ">25", "{INR}"), "readings[0].value: 25 {INR} is outside the plausible range"),
        (r("inr", "<0.8", "mmol/L"), "readings[0].unit: 'mmol/L' is not an accepted unit for inr"),
        (r("spo2", "<90", "%"), "readings[0].value: text '<90' is not a number (only inr takes"),
        (r("pulse", "72", "/min"), "readings[0].value: text '72' is not a number"),
    ],
)
def test_text_values_outside_the_censored_inr_rule(reading: dict[str, Any], reason: str) -> None:
    assert only_reason([reading]).startswith(reason)


# --- CAT --------------------------------------------------------------------------------------


def test_cat_with_items() -> None:
    items = [2, 3, 1, 4, 5, 0, 2, 1]
    (reading,) = parse(payload([r("cat", 18, "{score}", items=items)])).accepted
    assert reading == CanonicalReading(
        seq=0, metric="cat", value=18.0, unit="{score}", items=tuple(items)
    )


def test_cat_without_items_and_the_extremes() -> None:
    assert parse(payload([r("cat", 18, "{score}")])).accepted[0].items is None
    (low,) = parse(payload([r("cat", 0, "{score}", items=[0] * 8)])).accepted
    assert low.value == 0.0
    (high,) = parse(payload([r("cat", 40, "{score}", items=[5] * 8)])).accepted
    assert high.value == 40.0


@pytest.mark.parametrize(
    ("value", "items", "reason"),
    [
        (3, [1, 1, 1], "readings[0].items: cat has 8 answers, got 3"),
        (9, [1] * 9, "readings[0].items: cat has 8 answers, got 9"),
        (0, [], "readings[0].items: cat has 8 answers, got 0"),
        (13, [1, 1, 6, 1, 1, 1, 1, 1], "readings[0].items[2]: answer 6 is outside 0–5"),
        (5, [1, 1, 1, 1, 1, 1, 1, -2], "readings[0].items[7]: answer -2 is outside 0–5"),
        (8, [10**30, 0, 0, 0, 0, 0, 0, 0], "readings[0].items[0]: answer a huge number is outside"),
        (19, [2, 3, 1, 4, 5, 0, 2, 1], "readings[0].items: answers sum to 18 but value is 19"),
        (41, [5] * 8, "readings[0].value: 41 {score} is outside the plausible range 0–40"),
    ],
)
def test_cat_item_rules(value: int, items: list[int], reason: str) -> None:
    assert only_reason([r("cat", value, "{score}", items=items)]).startswith(reason)


def test_items_belong_to_cat_only() -> None:
    assert only_reason([r("mrc", 3, "{score}", items=[3])]) == (
        "readings[0].items: only cat readings carry items, not mrc"
    )


# --- status -----------------------------------------------------------------------------------


def test_status_messages() -> None:
    assert decode_status(OFFLINE_PAYLOAD) == StatusMessage(state="offline")
    assert OFFLINE_PAYLOAD == b'{"state":"offline"}'
    online = StatusMessage(state="online", battery=76.5, firmware="2.4.1")
    for fmt in ("json", "msgpack"):
        assert decode_status(encode_status(online, fmt)) == online  # type: ignore[arg-type]
    assert decode_status(b'{"state":"online","rssi":-61}') == StatusMessage(state="online")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"state":"sleeping"}', "state: invalid enum value 'sleeping'"),
        (b'{"state":"online","battery":101}', "battery: expected float <= 100.0"),
        (b'{"state":"online","battery":-1}', "battery: expected float >= 0.0"),
        (b"{}", "state: required field is missing"),
    ],
)
def test_bad_status(data: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        decode_status(data)
    assert err.value.reason == reason


# --- encoding ---------------------------------------------------------------------------------


def test_encode_message_for_simulators() -> None:
    msg = ReadingMessage(
        message_id="kit-7:42",
        measured_at=datetime(2026, 12, 1, 9, 15, tzinfo=timezone(timedelta(hours=1))),
        readings=[Reading("spo2", 95.0, "%"), Reading("inr", "<0.8", "{INR}")],
    )
    assert encode_message(msg, "json") == (
        b'{"message_id":"kit-7:42","measured_at":"2026-12-01T09:15:00+01:00","readings":'
        b'[{"type":"spo2","value":95.0,"unit":"%"},{"type":"inr","value":"<0.8","unit":"{INR}"}]}'
    )
    for fmt in ("json", "msgpack"):
        assert decode(encode_message(msg, fmt)) == msg  # type: ignore[arg-type]


# --- the protocol document -------------------------------------------------------------------

PROTOCOL_DOC = Path(__file__).resolve().parents[1] / "docs" / "device-protocol.md"


def test_examples_in_the_protocol_document_hold() -> None:
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL_DOC.read_text(), re.DOTALL)
    messages = [b.encode() for b in blocks if '"readings"' in b]
    statuses = [b.encode() for b in blocks if '"state"' in b]
    assert len(messages) == 5 and len(statuses) == 2
    outcomes = {}
    for data in messages:
        parsed = parse(data)
        outcomes[parsed.message_id] = (len(parsed.accepted), [p.seq for p in parsed.rejected])
    assert outcomes == {
        "kit-7:000318": (8, []),
        "ox-19-1733040000": (1, []),
        "inr-204:2026-11-28": (1, []),
        "tab-3:cat:0042": (1, []),
        "kit-7:000319": (3, [2]),
    }
    assert [decode_status(s).state for s in statuses] == ["online", "offline"]
    assert statuses[1].strip() == OFFLINE_PAYLOAD.replace(b":", b": ")


# --- properties -------------------------------------------------------------------------------


def _reading_for(code: str) -> st.SearchStrategy[Reading]:
    m = METRICS[code]
    if code == "cat":
        return st.lists(st.integers(0, 5), min_size=8, max_size=8).map(
            lambda items: Reading("cat", float(sum(items)), "{score}", items)
        )
    if m.whole_numbers:
        return st.integers(int(m.low), int(m.high)).map(lambda v: Reading(code, float(v), m.unit))
    numbers = st.floats(min_value=m.low, max_value=m.high).map(lambda v: Reading(code, v, m.unit))
    if code == "inr":
        censored = st.sampled_from(["<0.8", ">8.0"]).map(lambda t: Reading("inr", t, "{INR}"))
        return numbers | censored
    return numbers


offsets = st.integers(-18 * 60, 18 * 60).map(lambda m: timezone(timedelta(minutes=m)))
valid_messages = st.builds(
    ReadingMessage,
    message_id=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
    measured_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2026, 11, 30), timezones=offsets
    ),
    readings=st.lists(st.sampled_from(list(METRICS)), min_size=1, max_size=10, unique=True).flatmap(
        lambda codes: st.tuples(*(_reading_for(c) for c in codes)).map(list)
    ),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
)
jsonish = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=30,
)
all_units = sorted({u for m in METRICS.values() for u in m.accepted_units()})
field_values = (
    jsonish
    | st.sampled_from([*METRICS, *all_units, "<0.8", ">8.0", "<9x", "kit-1", ""])
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
    | st.lists(st.integers(min_value=-2, max_value=7), max_size=10)
)
_MISSING = object()


@st.composite
def mutated_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with a few fields replaced by junk or removed, to reach deep rules."""
    body: dict[str, Any] = msgspec.to_builtins(draw(valid_messages))
    for _ in range(draw(st.integers(0, 3))):
        holder = body
        if draw(st.booleans()) and isinstance(body.get("readings"), list) and body["readings"]:
            holder = draw(st.sampled_from(body["readings"]))
            key = draw(st.sampled_from(["type", "value", "unit", "items", "extra"]))
        else:
            key = draw(st.sampled_from(["message_id", "measured_at", "readings", "extra"]))
        value = draw(st.just(_MISSING) | field_values)
        if not isinstance(holder, dict):
            continue
        if value is _MISSING:
            holder.pop(key, None)
        else:
            holder[key] = value
    return body


def survives(data: bytes, content_type: str | None = None) -> None:
    try:
        parsed = parse_message(data, now=NOW, content_type=content_type)
    except PayloadError as exc:
        assert exc.reason
        return
    assert len(parsed.accepted) + len(parsed.rejected) >= 1
    for a in parsed.accepted:
        m = METRICS[a.metric]
        assert a.unit == m.unit and m.low <= a.value <= m.high
    assert all(p.reason.startswith(f"readings[{p.seq}].") for p in parsed.rejected)


@given(st.binary(max_size=300), st.sampled_from([None, "application/json", "application/msgpack"]))
def test_arbitrary_bytes_raise_only_payload_error(data: bytes, content_type: str | None) -> None:
    survives(data, content_type)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(jsonish | mutated_messages(), st.sampled_from(["json", "msgpack"]))
def test_arbitrary_structures_raise_only_payload_error(value: Any, fmt: str) -> None:
    data = msgspec.json.encode(value) if fmt == "json" else msgspec.msgpack.encode(value)
    survives(data)


@given(valid_messages, st.sampled_from(["json", "msgpack"]))
def test_valid_messages_round_trip(msg: ReadingMessage, fmt: str) -> None:
    data = encode_message(msg, fmt)  # type: ignore[arg-type]
    assert decode(data) == msg
    parsed = parse_message(data, now=NOW)
    assert parsed.rejected == []
    assert (parsed.message_id, parsed.measured_at) == (msg.message_id, msg.measured_at)
    assert [a.seq for a in parsed.accepted] == list(range(len(msg.readings)))
    for reading, accepted in zip(msg.readings, parsed.accepted, strict=True):
        assert accepted.metric == reading.type
        if isinstance(reading.value, str):
            assert f"{accepted.comparator}{accepted.value}" == reading.value
        else:
            assert (accepted.value, accepted.comparator) == (reading.value, None)
        assert accepted.items == (None if reading.items is None else tuple(reading.items))
