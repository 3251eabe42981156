"""`telemed up` as real processes: children die with the supervisor, duplicates are refused,
a crashing part backs off and raises an alarm, and a smaller fleet never strands a slot."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from telemed.settings import REPO_ROOT
from tests.mqtt_helpers import message, wait_for
from tests.test_fleet import session_present
from tests.up_helpers import Installation, Up, alive, children_of, installation, wait_gone


@pytest.fixture
def inst(settings, service_env, db) -> Iterator[Installation]:
    with installation(settings, service_env, db) as i:
        yield i


def telemed(inst: Installation, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=inst.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def logged_at(up: Up, *texts: str) -> list[float]:
    """When the supervisor logged the lines holding any of `texts` (their own time field)."""
    found = []
    for _, line in up.lines:
        if any(t in line for t in texts) and line.startswith("{"):
            found.append(datetime.fromisoformat(json.loads(line)["time"]).timestamp())
    return found


def test_killing_the_supervisor_with_sigkill_stops_every_child(inst: Installation) -> None:
    up = inst.up("--workers", "2")
    inst.wait_running(up, 2)
    children = children_of(up.proc.pid)
    assert len(children) >= 4, children  # api, two ingest slots, scheduler
    os.kill(up.proc.pid, signal.SIGKILL)
    up.proc.wait(10)
    left = wait_gone(children, timeout=40)
    assert not left, f"still running after the supervisor died: {left}\n{up.output()}"
    # They stopped as on SIGTERM: each worker finished its batch and said so.
    wait_for(lambda: up.count("stopped: ") >= 2, timeout=5, what="the workers' summaries")


def test_a_second_supervisor_and_a_hand_started_slot_are_refused(inst: Installation) -> None:
    first = inst.up("--workers", "2")
    inst.wait_running(first, 2)
    children = children_of(first.proc.pid)
    second = inst.up("--workers", "2")
    assert second.wait(60) == 3, second.output()
    assert second.count("another `telemed up` is running against this database") == 1
    assert second.count("telemed up pid") == 1  # it says which one
    hand = telemed(inst, "ingest", "--slot", "1")
    assert hand.returncode == 3, hand.stderr
    assert f"slot 1 ({inst.prefix}-1) is already running" in hand.stderr
    # The first went on undisturbed: same children, no restart, no session thrown off.
    assert children_of(first.proc.pid) == children
    assert all(alive(p) for p in children)
    assert first.count("exited with status") == 0 and first.count("took over the session") == 0


def test_an_api_port_in_use_is_refused_with_a_clear_message(inst: Installation) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", inst.port))
        squatter.listen()
        up = inst.up("--workers", "1")
        assert up.wait(60) == 3, up.output()
    assert up.count(f"the API's address 127.0.0.1:{inst.port} is in use") == 1, up.output()
    assert up.count("subscribed to") == 0  # nothing was started


def test_a_crashing_slot_backs_off_and_raises_an_alarm_operators_see(inst: Installation) -> None:
    admin = inst.factory.user("admin", inst.factory.org("hospital_department"))
    # A share group whose subscription the broker's ACL refuses: the worker exits at once.
    up = inst.up("--workers", "1", env={"TELEMED_INGEST_GROUP": "nowhere/at/all"})
    wait_for(lambda: up.count("keeps crashing") >= 1 or up.proc.poll() is not None,
             timeout=90, what="the crash alarm")  # fmt: skip
    exits = sorted(logged_at(up, "ingest-0 exited with status", "ingest-0 keeps crashing"))
    starts = logged_at(up, "starting ingest-0 again")
    assert len(exits) >= 3 and len(starts) >= 2, up.output()
    waited = [start - exit for exit, start in zip(exits, starts, strict=False)]
    assert 1 <= waited[0] < 3 and 2 <= waited[1] < 4, waited  # 1 s, then 2 s, then 4 s
    assert up.count("restarting in 1 s") == 1 and up.count("restarting in 2 s") == 1
    line = next(line for _, line in up.lines if "keeps crashing" in line)
    assert '"level": "error"' in line and "next restart in 4 s" in line
    alarms = httpx.get(f"{inst.base}/api/v1/admin/alarms", headers=admin.headers).json()
    assert [a["key"] for a in alarms] == ["telemed up: ingest-0 crashing"], alarms
    assert alarms[0]["severity"] == "critical" and "status 2" in alarms[0]["message"]
    # Readiness counts it (at its next check) and stays ready: the API itself is fine.
    ready = wait_for(lambda: (r := httpx.get(f"{inst.base}/readyz")).status_code == 200
                     and r.json()["alarms"] and r.json(), what="the alarm in /readyz")  # fmt: skip
    assert ready["status"] == "ready" and ready["alarms"] == 1
    assert up.proc.poll() is None  # and the supervisor goes on trying, slower


def test_a_smaller_fleet_names_the_stranded_slot_and_retires_it_on_request(
    inst: Installation,
) -> None:
    device = inst.device()
    link = inst.link(device)
    up = inst.up("--workers", "2")
    inst.wait_running(up, 2)
    assert up.stop() == 0
    ids = [f"{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(1000)]
    link.publish_many([message(i) for i in ids])  # queued in the sessions of slots 0 and 1
    smaller = inst.up("--workers", "1")
    assert smaller.wait(60) == 3, smaller.output()
    assert smaller.count("ingest slot(s) 1 ran before") == 1, smaller.output()
    assert smaller.count("--retire-stranded") == 1
    assert inst.message_ids(device.device_id) == []  # it started nothing
    retiring = inst.up("--workers", "1", "--retire-stranded")
    wait_for(lambda: len(inst.message_ids(device.device_id)) >= len(ids), timeout=90,
             what="every reading")  # fmt: skip
    wait_for(lambda: retiring.count("retire-slot-1 done") == 1, timeout=60, what="the retire")
    assert inst.message_ids(device.device_id) == sorted(ids)
    more = [f"{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(200)]
    link.publish_many([message(i) for i in more])  # slot 0 alone now takes everything
    wait_for(lambda: len(inst.message_ids(device.device_id)) >= len(ids) + len(more),
             what="the readings after the retire")  # fmt: skip
    assert inst.message_ids(device.device_id) == sorted(ids + more)
    assert retiring.stop() == 0
    assert not session_present(inst.settings, f"{inst.prefix}-1")
    slots = json.loads(telemed(inst, "ingest", "slots", "--json").stdout)
    assert {r["slot"]: r["state"] for r in slots} == {0: "stopped", 1: "retired"}


def test_the_restart_backoff_doubles_to_its_cap_and_starts_over_after_a_steady_run() -> None:
    from app.supervise import Backoff

    b = Backoff(min_s=1, max_s=60, stable_s=60)
    quick, delays = 0, []
    for _ in range(9):
        quick = b.quick_exits(quick, ran_s=0.5)
        delays.append(b.delay(quick))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert b.quick_exits(quick, ran_s=60) == 1  # a steady run starts the count again
    assert b.delay(b.quick_exits(quick, ran_s=3600)) == 1
