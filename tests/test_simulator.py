"""The device simulator: plausible values, breaches at the asked ratio, malformed payloads that
the contract rejects, offline catch-up with original times, and a real publish to the broker."""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from alerts.checks import evaluate
from alerts.defaults import default_rules
from alerts.rules import AbsoluteRule, InrRule, Obs, classify
from devices.sim_device import VirtualDevice, demo_scenarios, offline_windows
from devices.sim_model import (
    MALFORMED_KINDS,
    DeviceSpec,
    Outgoing,
    build,
    malformed,
    profile_for,
    readings_for,
)
from telemed.catalogue.metrics import METRICS
from telemed.device_contract import PayloadError, parse_message

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
COPD = [
    DeviceSpec(device_id=f"kit-{s}", kind="copd_kit", program="copd", stratum=s)
    for s in ("mild", "moderate", "severe")
]
AK = [
    DeviceSpec(device_id=f"inr-{s}", kind="inr_meter", program="ak", stratum=s)
    for s in ("2.0-3.0", "2.5-3.5", "3.0-4.0")
]
PARTS = [
    DeviceSpec(device_id=f"{kind}-1", kind=kind, program="copd", stratum="moderate")
    for kind in ("pulse_oximeter", "spirometer", "scale", "thermometer", "tablet")
]
SPECS = COPD + AK + PARTS

moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


def observations(out: Outgoing) -> list[Obs]:
    parsed = parse_message(out.payload, now=out.measured_at, content_type=out.content_type)
    assert parsed.rejected == [], parsed.rejected
    return [Obs(r.metric, r.value, parsed.measured_at, r.comparator) for r in parsed.accepted]


def rules_for(spec: DeviceSpec) -> list:
    return default_rules(spec.program or "copd", spec.stratum or "severe")


def crosses_threshold(spec: DeviceSpec, obs: Obs) -> bool:
    """Past a band limit (yellow or red, sustain aside) or outside the INR range."""
    for rule in rules_for(spec):
        if isinstance(rule, AbsoluteRule) and rule.metric == obs.metric:
            return classify(rule.bands, obs.value) is not None
        if isinstance(rule, InrRule) and obs.metric == "inr":
            return obs.comparator is not None or not rule.low <= obs.value <= rule.high
    return False


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    spec=st.sampled_from(SPECS),
    at=moments,
    seed=st.integers(0, 2**32),
    breach=st.booleans(),
    shape=st.sampled_from(["kit", "single"]),
    fmt=st.sampled_from(["json", "msgpack"]),
)
def test_every_reading_is_plausible_and_parses(spec, at, seed, breach, shape, fmt) -> None:
    rng = random.Random(seed)
    readings = readings_for(
        spec, profile_for(spec), at, rng, shape=shape, breach=breach, questionnaire=True
    )
    out = build(readings, at, fmt, breach=breach)
    parsed = parse_message(out.payload, now=at, content_type=out.content_type)
    assert parsed.rejected == []
    assert parsed.measured_at == at
    assert len(parsed.accepted) == len(readings) == out.readings
    expected = (*spec.metrics, "cat", "mrc") if spec.questionnaire else spec.metrics
    assert {r.metric for r in parsed.accepted} <= set(expected)
    assert shape == "kit" or len(readings) == 1
    for r in parsed.accepted:
        metric = METRICS[r.metric]
        assert metric.low <= r.value <= metric.high
        if r.metric == "cat":
            assert r.items is not None and sum(r.items) == r.value
    if not breach:
        assert not any(crosses_threshold(spec, o) for o in observations(out))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.device_id)
def test_two_months_of_normal_readings_raise_no_alert(spec: DeviceSpec) -> None:
    """Daily readings with rhythm, noise and trend stay clear of every default rule, the
    baseline and change rules included."""
    rules = rules_for(spec)
    device = VirtualDevice(spec, rng=random.Random(7), started=NOW)
    history: list[Obs] = []
    for day in range(60):
        for hour in (8, 19):
            at = NOW + timedelta(days=day, hours=hour - 12, minutes=day % 50)
            for obs in observations(device.measure(at)):
                assert evaluate(obs, history, rules) == [], (day, obs)
                history.append(obs)


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("shape", ["kit", "single"])
def test_breach_ratio_is_respected(ratio: float, shape: str) -> None:
    n = 1500
    rng = random.Random(int(ratio * 100) + len(shape))
    breaching = 0
    specs = [s for s in SPECS if s.kind not in ("spirometer", "scale", "tablet")]
    for i in range(n):
        spec = specs[i % len(specs)]
        device = VirtualDevice(spec, rng=rng, started=NOW, shape=shape, breach_ratio=ratio)
        out = device.measure(NOW + timedelta(seconds=i))
        hit = any(crosses_threshold(spec, o) for o in observations(out))
        assert hit == out.breach
        breaching += hit
    sd = math.sqrt(n * ratio * (1 - ratio))
    assert abs(breaching - n * ratio) <= 4.5 * sd + 1


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.device_id)
def test_a_breach_alerts_on_one_reading(spec: DeviceSpec) -> None:
    """Breaches go past the red limit, so they alert without waiting for a second reading;
    a device that measures nothing with such a limit (a scale) sends no breach."""
    device = VirtualDevice(spec, rng=random.Random(3), started=NOW, breach_ratio=1.0)
    if spec.kind in ("spirometer", "scale", "tablet"):
        assert not any(device.measure(NOW + timedelta(minutes=i)).breach for i in range(50))
        return
    for i in range(50):
        fired = [
            b
            for o in observations(device.measure(NOW + timedelta(minutes=i)))
            for b in evaluate(o, [], rules_for(spec))
        ]
        assert fired, i


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_malformed_payloads_are_rejected(kind: str, fmt: str) -> None:
    rng = random.Random(kind)
    for i in range(30):
        out = malformed(kind, NOW + timedelta(seconds=i), rng, fmt)
        assert out.malformed == kind
        try:
            parsed = parse_message(
                out.payload, now=NOW + timedelta(minutes=1), content_type=out.content_type
            )
        except PayloadError as exc:
            assert kind in ("bad_json", "naive_time"), exc.reason
            if kind == "naive_time":
                assert exc.reason == "measured_at: timestamp has no UTC offset"
            continue
        assert kind in ("wrong_unit", "impossible")
        assert parsed.accepted == []
        assert [p.seq for p in parsed.rejected] == [0]
        field = "unit" if kind == "wrong_unit" else "value"
        assert parsed.rejected[0].reason.startswith(f"readings[0].{field}: ")


def test_malformed_ratio_is_respected() -> None:
    rng = random.Random(11)
    device = VirtualDevice(COPD[0], rng=rng, started=NOW, malformed_ratio=0.2)
    outs = [device.measure(NOW + timedelta(seconds=i)) for i in range(2000)]
    bad = sum(o.malformed is not None for o in outs)
    assert abs(bad - 400) <= 4.5 * math.sqrt(2000 * 0.2 * 0.8)
    assert {o.malformed for o in outs} == {None, *MALFORMED_KINDS}


def test_offline_device_catches_up_with_original_measured_times() -> None:
    window = (NOW + timedelta(minutes=10), NOW + timedelta(minutes=25))
    device = VirtualDevice(COPD[2], rng=random.Random(5), started=NOW, offline=[window])
    sent: list[tuple[datetime, Outgoing]] = []
    for minute in range(40):
        now = NOW + timedelta(minutes=minute)
        sent += [(now, out) for out in device.step(now)]
    assert len(sent) == 40 and device.backlog == []
    measured = [out.measured_at for _, out in sent]
    assert measured == [NOW + timedelta(minutes=m) for m in range(40)]
    for published, out in sent:
        assert not window[0] <= published < window[1]
        parsed = parse_message(out.payload, now=published, content_type=out.content_type)
        assert parsed.measured_at == out.measured_at
        if window[0] <= out.measured_at < window[1]:
            assert published == window[1]
        else:
            assert published == out.measured_at
    assert len({out.message_id for _, out in sent}) == 40


@given(seed=st.integers(0, 2**32), every=st.floats(30, 600), length=st.floats(1, 29))
def test_offline_windows_start_inside_the_run(seed: int, every: float, length: float) -> None:
    until = NOW + timedelta(seconds=60)
    windows = offline_windows(random.Random(seed), NOW, until=until, every_s=every, length_s=length)
    assert windows and NOW <= windows[0][0] < until
    for start, end in windows:
        assert end - start == timedelta(seconds=length)


def test_history_is_repeatable_and_clean() -> None:
    for spec in SPECS:
        a = VirtualDevice(spec, rng=random.Random(1), started=NOW).history(NOW, 28)
        b = VirtualDevice(spec, rng=random.Random(2), started=NOW).history(NOW, 28)
        assert [o.payload for o in a] == [o.payload for o in b]
        assert len(a) == (4 if spec.is_inr else 28)
        assert all(o.readings == len(spec.metrics) for o in a if spec.kind != "tablet")
        assert all(o.measured_at < NOW for o in a)
        assert len({o.message_id for o in a}) == len(a)


def test_demo_story_raises_alerts_within_a_minute() -> None:
    specs = [COPD[1], COPD[2], AK[0], AK[1]]
    scenarios = demo_scenarios(specs)
    assert set(scenarios) == {COPD[2].device_id, AK[0].device_id}
    spo2, inr = [], []
    for spec in (COPD[2], AK[0]):
        device = VirtualDevice(
            spec, rng=random.Random(9), started=NOW, scenario=scenarios[spec.device_id]
        )
        for second in range(0, 60, 4):
            for obs in observations(device.measure(NOW + timedelta(seconds=second))):
                fired = evaluate(obs, [], rules_for(spec))
                if obs.metric == "spo2":
                    spo2.append((obs.value, bool(fired)))
                if obs.metric == "inr":
                    inr.append((obs.value, bool(fired)))
    assert (86, True) in spo2
    assert (5.4, True) in inr


def test_devices_file_and_command(tmp_path) -> None:
    from devices import simulator

    path = tmp_path / "devices.json"
    path.write_bytes(
        msgspec.json.encode(
            [
                {
                    "device_id": "kit-a1",
                    "password": "x",
                    "patient_id": "p",
                    "pseudonym": "P-1",
                    "kind": "copd_kit",
                    "program": "copd",
                    "stratum": "moderate",
                    "extra": 1,
                },
                {"device_id": "inr-b2", "password": "y", "kind": "inr_meter"},
            ]
        )
    )
    specs = simulator.load_devices(path)
    assert [s.is_inr for s in specs] == [False, True]
    parser = argparse.ArgumentParser()
    simulator.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "simulate",
            "--devices-file",
            str(path),
            "--rate",
            "4",
            "--offline",
            "0.5",
            "--duration",
            "30",
            "--seed",
            "1",
        ]
    )
    fleet = simulator.build_fleet(specs, args, NOW)
    assert sum(bool(d.offline) for d in fleet) == 1
    assert simulator.intervals(fleet, args) == [0.5, 0.5]
    assert args.func is simulator.cmd_simulate


def test_a_provisioned_device_publishes_through_the_broker(db, settings, factory) -> None:
    """With its own credentials a simulated device gets PUBACKs for its readings and its
    status, which a reader with the ingest account receives; a wrong password is refused."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from devices.sim_mqtt import DeviceLink
    from telemed.device_contract import readings_topic, status_topic

    provisioning = pytest.importorskip("devices.provisioning")
    broker = pytest.importorskip("devices.broker")
    patient = factory.patient(factory.org(), program="copd", stratum="severe")
    device = provisioning.provision(db, patient_id=patient, kind="copd_kit")
    broker.sync_broker(db, settings)

    received: dict[str, list[bytes]] = {"readings": [], "status": []}
    subscribed = threading.Event()
    reader = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    reader.username_pw_set(settings.ingest_username, settings.ingest_password)
    reader.on_connect = lambda c, *_: c.subscribe(
        [(readings_topic(device.device_id), 1), (status_topic(device.device_id), 1)]
    )
    reader.on_subscribe = lambda *_: subscribed.set()
    reader.on_message = lambda _c, _u, m: received[m.topic.rsplit("/", 1)[1]].append(m.payload)
    reader.connect(settings.mqtt_host, settings.mqtt_port)
    reader.loop_start()
    spec = DeviceSpec(device_id=device.device_id, password=device.password, kind="copd_kit")
    link = DeviceLink(spec, settings.mqtt_host, settings.mqtt_port)
    wrong = DeviceLink(
        msgspec.structs.replace(spec, password="not-" + device.password),
        settings.mqtt_host,
        settings.mqtt_port,
    )
    try:
        assert subscribed.wait(10)
        wrong.start()
        link.start()
        assert link.connected.wait(10), "the device could not log in"
        assert wrong.settled.wait(10) and wrong.refused
        now = datetime.now(UTC)
        sim = VirtualDevice(spec, rng=random.Random(1), started=now, shape="kit")
        outs = [sim.measure(now - timedelta(seconds=10 - i)) for i in range(3)]
        for out in outs:
            link.publish(out)
        deadline = time.monotonic() + 10
        while (link.acked < 3 or len(received["readings"]) < 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.acked == link.sent == 3 and link.pending == 0
        assert received["readings"] == [o.payload for o in outs]
        assert b'"state":"online"' in received["status"][0]
    finally:
        link.stop()
        wrong.stop()
        provisioning.revoke(db, device.device_id)
        broker.sync_broker(db, settings)
        reader.loop_stop()
        reader.disconnect()
