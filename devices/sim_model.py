"""Virtual patients for the simulator: what a home device measures, as pure functions.

A COPD patient has a baseline per metric (by stratum), a daily rhythm, noise and a slow trend;
an AK patient an INR scattered inside the therapeutic range. On request a reading crosses a
threshold (past the red limit of the default rules in alerts/defaults.py, so that one reading
raises an alert), and a payload can be spoiled in the ways real firmware spoils them. Values
depend only on the profile, the time and the random generator passed in: no I/O here.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from telemed.catalogue.metrics import CAT_ITEM_MAX, CAT_ITEMS
from telemed.device_contract import Format, Reading, ReadingMessage, encode_message

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
KIT_METRICS = ("spo2", "pulse", "resp_rate", "fev1", "pef", "temperature", "weight")
QUESTIONNAIRE = ("cat", "mrc")
# What each kind of device (devices.provisioning.KINDS) measures; a COPD kit's hub sends all.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "copd_kit": KIT_METRICS,
    "pulse_oximeter": ("spo2", "pulse"),
    "spirometer": ("fev1", "pef"),
    "scale": ("weight",),
    "thermometer": ("temperature",),
    "tablet": (),
}
# Metrics a breach is made on: their absolute limits alert on one reading when red.
BREACHABLE = ("spo2", "pulse", "resp_rate", "temperature")
MALFORMED_KINDS = ("bad_json", "wrong_unit", "impossible", "naive_time")
Shape = Literal["kit", "single"]

# Red limits of the COPD defaults (alerts/defaults.py, from CLINICAL.md): SpO2 red below 88 %
# (severe) or 90 % (mild, moderate), pulse red above 120, respiratory rate above 30,
# temperature above 38.5 Cel. Normal readings stay inside the yellow limits.
SPO2_RED = {"severe": 88, "moderate": 90, "mild": 90}
SPO2_BASE = {"severe": (91, 93), "moderate": (93, 95), "mild": (94, 97)}
FEV1_BASE = {"severe": (0.7, 1.1), "moderate": (1.2, 1.8), "mild": (1.8, 2.6)}
CAT_BASE = {"severe": (20, 28), "moderate": (12, 20), "mild": (5, 12)}
MRC_BASE = {"severe": (3, 4), "moderate": (2, 3), "mild": (1, 2)}


class DeviceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One device as `telemed devices demo` lists it in devices.json."""

    device_id: str
    password: str = ""
    patient_id: str | None = None
    pseudonym: str | None = None
    kind: str = "copd_kit"
    program: str | None = None
    stratum: str | None = None

    @property
    def is_inr(self) -> bool:
        return "inr" in self.kind.lower() or (
            self.program == "ak" and self.kind not in KIND_METRICS
        )

    @property
    def metrics(self) -> tuple[str, ...]:
        """What the device measures each time; the questionnaire comes on top, now and then."""
        return ("inr",) if self.is_inr else KIND_METRICS.get(self.kind, KIT_METRICS)

    @property
    def questionnaire(self) -> bool:
        return self.kind in ("copd_kit", "tablet") or self.kind not in KIND_METRICS


class CopdProfile(msgspec.Struct, frozen=True):
    stratum: str
    spo2: int
    pulse: float
    resp_rate: int
    fev1: float
    pef: float
    weight: float
    temperature: float
    cat: int
    mrc: int
    trend_phase: float
    fev1_in_ml: bool


class InrProfile(msgspec.Struct, frozen=True):
    low: float
    high: float
    spread: float


Profile = CopdProfile | InrProfile


def seeded(*parts: object) -> random.Random:
    """A generator seeded from the parts, the same in every process (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def copd_stratum(stratum: str | None) -> str:
    return stratum if stratum in SPO2_BASE else "severe"


def inr_range(stratum: str | None) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in (stratum or "").split("-"))
    except ValueError:
        return 2.0, 3.0
    return (low, high) if 1.5 < low < high < 5.0 else (2.0, 3.0)


def profile_for(spec: DeviceSpec, seed: object = 0) -> Profile:
    rng = seeded("profile", spec.patient_id or spec.device_id, seed)
    if spec.is_inr:
        low, high = inr_range(spec.stratum)
        return InrProfile(low=low, high=high, spread=rng.uniform(0.15, 0.3))
    stratum = copd_stratum(spec.stratum)
    fev1 = rng.uniform(*FEV1_BASE[stratum])
    return CopdProfile(
        stratum=stratum,
        spo2=rng.randint(*SPO2_BASE[stratum]),
        pulse=rng.uniform(68, 88),
        resp_rate=rng.randint(14, 20),
        fev1=fev1,
        pef=fev1 * rng.uniform(150, 180),
        weight=rng.uniform(55, 95),
        temperature=rng.uniform(36.4, 36.85),
        cat=rng.randint(*CAT_BASE[stratum]),
        mrc=rng.randint(*MRC_BASE[stratum]),
        trend_phase=rng.uniform(0, 2 * math.pi),
        fev1_in_ml=rng.random() < 0.3,
    )


# --- values -------------------------------------------------------------------------------


def _hour(at: datetime) -> float:
    local = at.astimezone(COPENHAGEN)
    return local.hour + local.minute / 60


def _rhythm(at: datetime, peak_hour: float) -> float:
    """-1..1 over the day, highest at the local `peak_hour`."""
    return math.cos((_hour(at) - peak_hour) / 24 * 2 * math.pi)


def _trend(p: CopdProfile, at: datetime, period_days: float) -> float:
    """-1..1, slowly, over weeks."""
    return math.sin(at.timestamp() / 86400 / period_days * 2 * math.pi + p.trend_phase)


def _bounded(rng: random.Random, sd: float, bound: float) -> float:
    return max(-bound, min(bound, rng.gauss(0, sd)))


def copd_reading(p: CopdProfile, metric: str, at: datetime, rng: random.Random) -> Reading:
    """A normal reading: inside the yellow limits and close enough to the patient's own
    baseline that the baseline and change rules stay quiet (a drop of 3 SpO2 points, 20 % of
    FEV1/PEF, a rise of 4 CAT points, 2 kg in 3 days would alert)."""
    if metric == "spo2":
        # Oximeters show whole percent; the patient sits at baseline ±1.
        value: float = p.spo2 + round(_bounded(rng, 0.6, 1.0) - 0.3 * _rhythm(at, 4))
        return Reading("spo2", int(value), "%")
    if metric == "pulse":
        value = p.pulse + 5 * _rhythm(at, 16) + _bounded(rng, 3, 6)
        return Reading("pulse", round(min(99, max(51, value))), "/min")
    if metric == "resp_rate":
        return Reading("resp_rate", p.resp_rate + round(_bounded(rng, 1, 2)), "/min")
    if metric in ("fev1", "pef"):
        # A morning dip of a few per cent, noise within ±5 %, a slow drift of ±2 %.
        base = p.fev1 if metric == "fev1" else p.pef
        factor = 1 + 0.02 * _rhythm(at, 15) + _bounded(rng, 0.025, 0.05) + 0.02 * _trend(p, at, 30)
        if metric == "pef":
            return Reading("pef", round(base * factor), "L/min")
        if p.fev1_in_ml:
            return Reading("fev1", int(round(base * factor * 1000, -1)), "mL")
        return Reading("fev1", round(base * factor, 2), "L")
    if metric == "temperature":
        value = p.temperature + 0.25 * _rhythm(at, 18) + _bounded(rng, 0.08, 0.15)
        return Reading("temperature", round(value, 1), "Cel")
    if metric == "weight":
        value = p.weight + 0.4 * _trend(p, at, 21) + _bounded(rng, 0.15, 0.3)
        return Reading("weight", round(value, 1), "kg")
    if metric == "cat":
        return cat_reading(p.cat + round(_bounded(rng, 0.7, 1.0)), rng)
    if metric == "mrc":
        return Reading("mrc", p.mrc, "{score}")
    raise ValueError(f"a COPD kit does not measure {metric}")


def cat_reading(score: int, rng: random.Random) -> Reading:
    """A CAT score with eight answers 0–5 that add up to it."""
    score = max(0, min(CAT_ITEMS * CAT_ITEM_MAX, score))
    items = [0] * CAT_ITEMS
    for _ in range(score):
        i = rng.choice([i for i, a in enumerate(items) if a < CAT_ITEM_MAX])
        items[i] += 1
    return Reading("cat", score, "{score}", items=items)


def copd_breach(p: CopdProfile, metric: str, rng: random.Random) -> Reading:
    """A reading past the red limit of the stratum's defaults."""
    if metric == "spo2":
        return Reading("spo2", SPO2_RED[p.stratum] - rng.randint(1, 4), "%")
    if metric == "pulse":
        return Reading("pulse", rng.randint(122, 138), "/min")
    if metric == "resp_rate":
        return Reading("resp_rate", rng.randint(31, 36), "/min")
    if metric == "temperature":
        return Reading("temperature", round(rng.uniform(38.7, 39.6), 1), "Cel")
    raise ValueError(f"no breach is made on {metric}")


def inr_reading(p: InrProfile, rng: random.Random) -> Reading:
    """A result inside the range, shown with one decimal as point-of-care meters do."""
    mid = (p.low + p.high) / 2
    half = (p.high - p.low) / 2 - 0.1
    return Reading("inr", round(mid + _bounded(rng, p.spread, half), 1), "{INR}")


def inr_breach(p: InrProfile, rng: random.Random) -> Reading:
    """Out of range: just outside (yellow), urgent (≥ 5.0 or ≤ 1.5), or beyond the meter's
    measuring range ("<0.8" / ">8.0", CLINICAL.md)."""
    roll = rng.random()
    if roll < 0.2:
        return Reading("inr", ">8.0" if rng.random() < 0.7 else "<0.8", "{INR}")
    if roll < 0.55:
        value = rng.uniform(5.0, 7.9) if rng.random() < 0.75 else rng.uniform(1.0, 1.5)
    elif rng.random() < 0.6:
        value = rng.uniform(p.high + 0.1, 4.9)
    else:
        value = rng.uniform(1.6, p.low - 0.1)
    return Reading("inr", round(value, 1), "{INR}")


# --- messages -----------------------------------------------------------------------------


class Outgoing(msgspec.Struct, frozen=True):
    """A payload ready for the device's readings topic, with what the simulator made of it."""

    payload: bytes
    content_type: str
    measured_at: datetime
    message_id: str | None
    readings: int
    breach: bool = False
    malformed: str | None = None


CONTENT_TYPES: dict[str, str] = {"json": "application/json", "msgpack": "application/msgpack"}


def message_id(at: datetime, metric: str | None = None) -> str:
    """Unique per device and measurement: the measured time in ms (plus the metric of a
    single-reading message, since several are taken at one moment)."""
    ms = int(at.timestamp() * 1000)
    return f"m{ms}" if metric is None else f"m{ms}-{metric}"


def can_breach(spec: DeviceSpec) -> bool:
    return spec.is_inr or any(m in BREACHABLE for m in spec.metrics)


def readings_for(
    spec: DeviceSpec,
    p: Profile,
    at: datetime,
    rng: random.Random,
    *,
    shape: Shape,
    breach: bool,
    questionnaire: bool = False,
    overrides: dict[str, float | str] | None = None,
) -> list[Reading]:
    """One measuring moment of the device: its metrics (one of them in the `single` shape),
    one past a red limit if `breach` (ignored by a device that measures nothing with one)."""
    if isinstance(p, InrProfile):
        reading = inr_breach(p, rng) if breach else inr_reading(p, rng)
        if overrides and "inr" in overrides:
            reading = Reading("inr", overrides["inr"], "{INR}")
        return [reading]
    metrics = spec.metrics + (QUESTIONNAIRE if questionnaire and spec.questionnaire else ())
    breachable = [m for m in metrics if m in BREACHABLE] if breach else []
    if shape == "single" or not metrics:
        metrics = (rng.choice(breachable or metrics or QUESTIONNAIRE),)
        breachable = [m for m in breachable if m in metrics]
    readings = [copd_reading(p, m, at, rng) for m in metrics]
    if breachable:
        i = metrics.index(rng.choice(breachable))
        readings[i] = copd_breach(p, metrics[i], rng)
    for i, r in enumerate(readings):
        if overrides and r.type in overrides:
            readings[i] = Reading(r.type, overrides[r.type], r.unit, items=r.items)
    return readings


def build(readings: list[Reading], at: datetime, fmt: Format, *, breach: bool = False) -> Outgoing:
    single = readings[0].type if len(readings) == 1 else None
    msg = ReadingMessage(message_id=message_id(at, single), measured_at=at, readings=readings)
    return Outgoing(
        payload=encode_message(msg, fmt),
        content_type=CONTENT_TYPES[fmt],
        measured_at=at,
        message_id=msg.message_id,
        readings=len(readings),
        breach=breach,
    )


def malformed(kind: str, at: datetime, rng: random.Random, fmt: Format = "json") -> Outgoing:
    """A payload that the backend must reject, whole or its one reading: broken JSON, a unit
    the metric does not take, an impossible value, or a timestamp without a UTC offset."""
    mid = message_id(at, "bad")
    body: dict[str, object] = {
        "message_id": mid,
        "measured_at": at.isoformat(),
        "readings": [{"type": "spo2", "value": rng.randint(90, 97), "unit": "%"}],
    }
    reading = body["readings"][0]  # type: ignore[index]
    if kind == "wrong_unit":
        reading["unit"] = rng.choice(["mmHg", "kg", "{fraction}%"])
    elif kind == "impossible":
        reading["value"] = rng.choice([130, 0, -5, 250])
    elif kind == "naive_time":
        body["measured_at"] = at.replace(tzinfo=None).isoformat()
    elif kind != "bad_json":
        raise ValueError(f"unknown malformation {kind!r}")
    data = msgspec.msgpack.encode(body) if fmt == "msgpack" else msgspec.json.encode(body)
    if kind == "bad_json":
        # Firmware that lost the tail of its buffer: valid up to a point, then cut off.
        data, fmt = msgspec.json.encode(body)[: rng.randint(5, 40)], "json"
    return Outgoing(
        payload=data,
        content_type=CONTENT_TYPES[fmt],
        measured_at=at,
        message_id=mid,
        readings=1,
        malformed=kind,
    )


# --- the demo's compressed exacerbations --------------------------------------------------


def desaturation(elapsed: float, baseline: int, cycle_s: float = 300) -> int | None:
    """SpO2 in a demo cycle: falls from the baseline to 86 % over 40 s, stays there, and is
    back by 150 s — days of an exacerbation in two and a half minutes. None: normal."""
    t = elapsed % cycle_s
    if t < 5 or t >= 150:
        return None
    if t < 45:
        return round(baseline - (baseline - 86) * (t - 5) / 40)
    if t < 90:
        return 86
    return round(86 + (baseline - 86) * (t - 90) / 60)


def inr_spike(elapsed: float, cycle_s: float = 300) -> float | None:
    """The demo's AK patient reads INR 5.4 from 15 s to 60 s into each cycle."""
    return 5.4 if 15 <= elapsed % cycle_s < 60 else None


def history_times(spec: DeviceSpec, end: datetime, days: int) -> list[datetime]:
    """When a device measured in the `days` before `end`: a COPD kit daily between 08:00 and
    09:30 local, an INR meter weekly on the patient's weekday. Deterministic, so a history sent
    twice has the same ids and times and stores once."""
    times = []
    local_end = end.astimezone(COPENHAGEN)
    weekday = seeded("weekday", spec.device_id).randrange(7)
    for back in range(days, 0, -1):
        day = (local_end - timedelta(days=back)).date()
        if spec.is_inr and day.weekday() != weekday:
            continue
        minutes = seeded("time", spec.device_id, day).randint(8 * 60, 9 * 60 + 30)
        local = datetime(day.year, day.month, day.day, tzinfo=COPENHAGEN)
        times.append(local + timedelta(minutes=minutes))
    return [t for t in times if t < end]
