"""`telemed simulate`: virtual patients' home devices publishing readings over MQTT.

Every device connects with its own credentials (one connection each) through the real broker.
The values come from devices/sim_model.py (per-patient baselines, daily rhythm, noise, slow
trends; breaches and malformed payloads on request) and each device's behaviour over time
(offline periods and catch-up) from devices/sim_device.py; this module only paces and
publishes.

`--demo` reads the demo devices from $TELEMED_STATE_DIR/demo/devices.json, first sends 28 days
of history (so plots and baselines exist), then a reading set every few seconds per patient,
with an exacerbation compressed into the first minute: one COPD patient desaturates to SpO2
86 %, one AK patient reads INR 5.4.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from devices.sim_device import VirtualDevice, demo_scenarios, offline_windows
from devices.sim_model import DeviceSpec, Outgoing, Shape, seeded
from devices.sim_mqtt import DeviceLink, Tls
from telemed.device_contract import Format
from telemed.settings import Settings

log = logging.getLogger("devices.simulator")

DEMO_KIT_INTERVAL_S = 4.0
DEMO_INR_INTERVAL_S = 8.0
DEFAULT_INTERVAL_S = 5.0
STATS_EVERY_S = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="virtual COPD kits and INR meters publishing readings over MQTT"
    )
    p.add_argument("--demo", action="store_true", help="the demo devices, at a pace to watch")
    p.add_argument("--devices-file", type=Path, help="JSON list of devices (as devices.json)")
    p.add_argument("--rate", type=float, help="messages per second over all devices")
    p.add_argument(
        "--breach-ratio",
        type=float,
        help="share of messages with a reading past a red limit (default 0.05; demo 0)",
    )
    p.add_argument(
        "--offline", type=float, default=0.0, help="share of devices that go offline for a while"
    )
    p.add_argument(
        "--offline-seconds", type=float, default=30.0, help="length of an offline period"
    )
    p.add_argument("--offline-every", type=float, default=300.0, help="seconds between periods")
    p.add_argument("--malformed-ratio", type=float, default=0.0, help="share of bad payloads")
    p.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    p.add_argument("--format", choices=["json", "msgpack"], default="json")
    p.add_argument(
        "--shape",
        choices=["kit", "single"],
        default="kit",
        help="a COPD kit's readings per message",
    )
    p.add_argument("--history-days", type=int, help="past days to send first (demo: 28)")
    p.add_argument("--seed", type=int, help="for a repeatable run")
    p.add_argument(
        "--tls",
        action="store_true",
        help="connect to the devices' TLS listener (TELEMED_MQTT_TLS_PORT) with the CA and the "
        "device certificate of TELEMED_MQTT_CAFILE / _CERTFILE / _KEYFILE",
    )
    p.set_defaults(func=cmd_simulate)


def load_devices(path: Path) -> list[DeviceSpec]:
    return msgspec.json.decode(path.read_bytes(), type=list[DeviceSpec])


def _wait_for(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def build_fleet(
    specs: list[DeviceSpec], args: argparse.Namespace, started: datetime
) -> list[VirtualDevice]:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    breach = args.breach_ratio if args.breach_ratio is not None else (0.0 if args.demo else 0.05)
    scenarios = demo_scenarios(specs) if args.demo else {}
    until = started + timedelta(seconds=args.duration or 86400)
    picker = seeded("offline", seed)
    offline_ids = {s.device_id for s in picker.sample(specs, round(args.offline * len(specs)))}
    fleet = []
    for spec in specs:
        rng = seeded("device", spec.device_id, seed)
        windows = (
            offline_windows(
                rng,
                started,
                until=until,
                every_s=args.offline_every,
                length_s=args.offline_seconds,
            )
            if spec.device_id in offline_ids
            else []
        )
        fleet.append(
            VirtualDevice(
                spec,
                rng=rng,
                started=started,
                fmt=args.format,
                shape=args.shape,
                breach_ratio=breach,
                malformed_ratio=args.malformed_ratio,
                offline=windows,
                scenario=scenarios.get(spec.device_id),
            )
        )
    return fleet


def intervals(fleet: list[VirtualDevice], args: argparse.Namespace) -> list[float]:
    if args.rate:
        return [len(fleet) / args.rate] * len(fleet)
    if args.demo:
        return [DEMO_INR_INTERVAL_S if d.spec.is_inr else DEMO_KIT_INTERVAL_S for d in fleet]
    return [DEFAULT_INTERVAL_S] * len(fleet)


class Stats(msgspec.Struct):
    messages: int = 0
    readings: int = 0
    breaches: int = 0
    malformed: int = 0
    caught_up: int = 0

    def add(self, out: Outgoing, now: datetime) -> None:
        self.messages += 1
        self.readings += out.readings
        self.breaches += out.breach
        self.malformed += out.malformed is not None
        # Anything measured well before it is sent was kept while offline.
        self.caught_up += (now - out.measured_at).total_seconds() > 1


def run(
    fleet: list[VirtualDevice],
    links: list[DeviceLink],
    every: list[float],
    *,
    duration: float | None,
    history_days: int,
    stop: threading.Event,
) -> Stats:
    stats = Stats()
    if history_days:
        now = datetime.now(UTC)
        for device, link in zip(fleet, links, strict=True):
            if link.refused:
                continue
            for out in device.history(now, history_days):
                link.publish(out)
                stats.add(out, now)
        log.info("history sent", extra={"count": stats.messages})
    start = time.monotonic()
    end = start + duration if duration else float("inf")
    rng = random.Random()
    queue = [(start + rng.uniform(0, gap), i) for i, gap in enumerate(every)]
    heapq.heapify(queue)
    online = [True] * len(fleet)
    next_stats = start + STATS_EVERY_S
    while queue and not stop.is_set():
        due, i = heapq.heappop(queue)
        if due >= end:
            break
        if due > time.monotonic() and stop.wait(due - time.monotonic()):
            break
        device, link = fleet[i], links[i]
        if link.refused:
            continue
        now = datetime.now(UTC)
        if device.online(now) != online[i]:
            online[i] = not online[i]
            if online[i]:
                link.reconnect()
            else:
                link.drop()
            log.info(
                "device " + ("back online" if online[i] else "offline"),
                extra={"device_id": link.spec.device_id},
            )
        for out in device.step(now):
            link.publish(out)
            stats.add(out, now)
        heapq.heappush(queue, (due + every[i] * rng.uniform(0.85, 1.15), i))
        if time.monotonic() >= next_stats:
            next_stats += STATS_EVERY_S
            _log_stats(stats, links)
    return stats


def connect(links: list[DeviceLink], timeout_s: float = 10.0) -> None:
    for link in links:
        link.start()
    deadline = time.monotonic() + timeout_s
    for link in links:
        link.settled.wait(max(0.0, deadline - time.monotonic()))


def _log_stats(stats: Stats, links: list[DeviceLink]) -> None:
    acked = sum(link.acked for link in links)
    log.info(
        f"published {stats.messages} messages ({stats.readings} readings, {stats.breaches}"
        f" breaches, {stats.malformed} malformed, {stats.caught_up} caught up), {acked} acked",
        extra={"count": stats.messages},
    )


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from devices.cli import demo_credentials_path

    path = args.devices_file or (demo_credentials_path(settings) if args.demo else None)
    if path is None:
        print("telemed simulate: give --demo or --devices-file")
        return 2
    if not _wait_for(path, 30 if args.demo else 0):
        print(f"telemed simulate: {path} does not exist (telemed devices demo writes it)")
        return 2
    specs = load_devices(path)
    if not specs:
        print(f"telemed simulate: no devices in {path}")
        return 2
    fmt: Format = args.format
    rng = seeded("battery", args.seed)
    port, tls = settings.mqtt_port, None
    if args.tls:
        port = settings.mqtt_tls_port
        tls = Tls(
            cafile=settings.mqtt_cafile,
            certfile=settings.mqtt_certfile,
            keyfile=settings.mqtt_keyfile,
        )
        missing = [str(p) for p in (tls.cafile, tls.certfile, tls.keyfile) if not p.is_file()]
        if missing:
            print(f"telemed simulate: --tls needs {', '.join(missing)}")
            return 2
    links = [
        DeviceLink(spec, settings.mqtt_host, port, battery=rng.uniform(35, 100), tls=tls)
        for spec in specs
    ]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    history = args.history_days if args.history_days is not None else (28 if args.demo else 0)
    shape: Shape = args.shape
    log.info(
        f"simulating {len(specs)} devices ({fmt}, {shape}) against"
        f" {settings.mqtt_host}:{port}{' (TLS)' if tls else ''}"
    )
    try:
        connect(links)
        fleet = build_fleet(specs, args, datetime.now(UTC))
        stats = run(
            fleet,
            links,
            intervals(fleet, args),
            duration=args.duration,
            history_days=history,
            stop=stop,
        )
    finally:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            link.pending for link in links if not link.refused
        ):
            time.sleep(0.05)
        for link in links:
            link.stop()
    _log_stats(stats, links)
    refused = [link.spec.device_id for link in links if link.refused]
    if refused:
        log.error(f"{len(refused)} devices were refused by the broker: {', '.join(refused[:5])}")
    return 1 if len(refused) == len(links) else 0
