"""One virtual device over time: what it measures, when it is offline, what it sends on return.

Pure: the runner (devices/simulator.py) asks `step(now)` what to publish now, and does the I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from devices.sim_model import (
    MALFORMED_KINDS,
    CopdProfile,
    DeviceSpec,
    Outgoing,
    Shape,
    build,
    can_breach,
    desaturation,
    history_times,
    inr_spike,
    malformed,
    profile_for,
    readings_for,
    seeded,
)
from telemed.device_contract import Format

Window = tuple[datetime, datetime]
# What a scenario makes of one device's readings `elapsed` seconds into the run.
Scenario = Callable[[float], dict[str, float | str]]


class VirtualDevice:
    def __init__(
        self,
        spec: DeviceSpec,
        *,
        rng: random.Random,
        started: datetime,
        fmt: Format = "json",
        shape: Shape = "kit",
        breach_ratio: float = 0.0,
        malformed_ratio: float = 0.0,
        offline: list[Window] | None = None,
        scenario: Scenario | None = None,
        questionnaire_every: int = 7,
    ) -> None:
        self.spec = spec
        self.profile = profile_for(spec)
        self.rng = rng
        self.started = started
        self.fmt: Format = fmt
        self.shape: Shape = shape
        self.breach_ratio = breach_ratio
        self.malformed_ratio = malformed_ratio
        self.offline = offline or []
        self.scenario = scenario
        self.questionnaire_every = questionnaire_every
        self.sessions = 0
        self.backlog: list[Outgoing] = []

    def online(self, now: datetime) -> bool:
        return not any(start <= now < end for start, end in self.offline)

    def measure(self, now: datetime) -> Outgoing:
        rng = self.rng
        if self.malformed_ratio and rng.random() < self.malformed_ratio:
            return malformed(rng.choice(MALFORMED_KINDS), now, rng, self.fmt)
        breach = rng.random() < self.breach_ratio and can_breach(self.spec)
        overrides = self.scenario((now - self.started).total_seconds()) if self.scenario else {}
        self.sessions += 1
        readings = readings_for(
            self.spec,
            self.profile,
            now,
            rng,
            shape=self.shape,
            breach=breach,
            questionnaire=self.sessions % self.questionnaire_every == 0,
            overrides=overrides,
        )
        return build(readings, now, self.fmt, breach=breach)

    def step(self, now: datetime) -> list[Outgoing]:
        """What to publish now: nothing while offline (the device keeps what it measures), then
        everything it kept, oldest first and each with its own measured time, and the new one."""
        out = self.measure(now)
        if not self.online(now):
            self.backlog.append(out)
            return []
        ready, self.backlog = [*self.backlog, out], []
        return ready

    def history(self, end: datetime, days: int) -> list[Outgoing]:
        """The readings of the `days` before `end`, normal ones, the same on every call."""
        out = []
        for at in history_times(self.spec, end, days):
            rng = seeded("history", self.spec.device_id, at.isoformat())
            readings = readings_for(self.spec, self.profile, at, rng, shape="kit", breach=False)
            out.append(build(readings, at, self.fmt))
        return out


def offline_windows(
    rng: random.Random, start: datetime, *, until: datetime, every_s: float, length_s: float
) -> list[Window]:
    """Periods of `length_s` offline, one in every `every_s`, at a random phase that puts the
    first one inside a short run too."""
    span = min(every_s, (until - start).total_seconds()) - length_s
    first = start + timedelta(seconds=rng.uniform(0, max(0.0, span)))
    windows = []
    while first < until:
        windows.append((first, first + timedelta(seconds=length_s)))
        first += timedelta(seconds=every_s)
    return windows


def demo_scenarios(specs: list[DeviceSpec], cycle_s: float = 300) -> dict[str, Scenario]:
    """The demo's story: the first severe COPD patient desaturates to SpO2 86 %, the first AK
    patient reads INR 5.4, both within the first minute and again every `cycle_s`."""
    scenarios: dict[str, Scenario] = {}
    copd = [s for s in specs if "spo2" in s.metrics]
    severe = [s for s in copd if (s.stratum or "severe") == "severe"] or copd
    if severe:
        profile = profile_for(severe[0])
        assert isinstance(profile, CopdProfile)

        def desaturating(elapsed: float, base: int = profile.spo2) -> dict[str, float | str]:
            spo2 = desaturation(elapsed, base, cycle_s)
            # Breathing faster and a quicker pulse go with the fall.
            return {} if spo2 is None else {"spo2": spo2, "resp_rate": 20 + (base - spo2)}

        scenarios[severe[0].device_id] = desaturating
    inr = [s for s in specs if s.is_inr]
    if inr:

        def spiking(elapsed: float) -> dict[str, float | str]:
            value = inr_spike(elapsed, cycle_s)
            return {} if value is None else {"inr": value}

        scenarios[inr[0].device_id] = spiking
    return scenarios
