"""A registry change and the broker's are one (devices/broker_change.py): against a broker of
the test's own (the project's plugin, a scratch folder, a free port), stopped, paused, refusing
or failing halfway, a change through the admin API answers 503 `broker_unavailable` and leaves
the registry, the account files and the broker as they were; once the broker is back, the same
request succeeds. A commit that fails after the broker took the change is repaired.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from devices import broker, broker_change, broker_control
from devices.provisioning import provision_with_hash
from tests.mqtt_helpers import DeviceLink, wait_for

MOSQUITTO = "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnBroker:
    """Mosquitto with the project's plugin, on a folder and port of its own."""

    def __init__(self, folder: Path, plugin: Path) -> None:
        self.folder, self.port = folder, _free_port()
        (folder / "mosquitto.conf").write_text(
            f"per_listener_settings false\nlistener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"plugin {plugin}\nplugin_opt_accounts {folder}/accounts\n"
            f"plugin_opt_journal {folder}/accounts.journal\n"
            f"pid_file {folder}/mosquitto.pid\nlog_dest file {folder}/mosquitto.log\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        conf = str(self.folder / "mosquitto.conf")
        quiet = subprocess.DEVNULL
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=quiet, stderr=quiet)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the test's own broker did not start")
            time.sleep(0.05)
        wait_for(lambda: (self.folder / "mosquitto.pid").exists(), what="the pid file")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(30)
        (self.folder / "mosquitto.pid").unlink(missing_ok=True)

    def log(self) -> str:
        return (self.folder / "mosquitto.log").read_text(errors="replace")


@pytest.fixture
def own(settings, tmp_path, db) -> Iterator[tuple[OwnBroker, object]]:
    folder = tmp_path / "broker"
    folder.mkdir()
    b = OwnBroker(folder, settings.broker_dir / "telemed_auth.so")
    local = msgspec.structs.replace(settings, broker_dir=folder, mqtt_port=b.port)
    b.start()
    broker.sync_broker(db, local)  # the broker learns the service accounts (by SIGHUP)
    wait_for(lambda: "accounts loaded" in b.log(), what="the accounts loaded")
    try:
        yield b, local
    finally:
        b.stop()


@pytest.fixture
def own_client(own):
    from litestar.testing import TestClient

    from app.asgi import create_app

    _, local = own
    with TestClient(app=create_app(local), raise_server_exceptions=False) as c:
        yield c


def _files(local) -> tuple[str, str]:
    return ((local.broker_dir / "accounts").read_text(),
            (local.broker_dir / "accounts.journal").read_text())  # fmt: skip


def _devices_of(db, patient) -> list[dict]:
    return db.execute(
        "SELECT id, active FROM devices WHERE patient_id = %s ORDER BY created_at", (patient,)
    ).fetchall()


def _connects(local, device_id: str, password: str) -> bool:
    link = DeviceLink(local, device_id, password)
    rc = link.connect(retry_refused_s=0)
    link.close()
    return not rc.is_failure


def test_a_stopped_broker_makes_provisioning_and_revoking_a_503_that_changes_nothing(
    own, own_client, care, db
):
    b, local = own
    h = care.admin.headers
    url = f"/api/v1/admin/patients/{care.patient}/devices"
    before = _files(local)
    b.stop()
    answer = own_client.post(url, headers=h, json={"kind": "scale", "serial": "DOWN-1"})
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["code"] == "broker_unavailable" and "does not run" in body["detail"]
    assert answer.headers["Retry-After"] == "5"
    # Nothing changed: no device in the registry, no line in the broker's files, no audit row.
    assert _devices_of(db, care.patient) == []
    assert _files(local) == before
    audit = db.execute("SELECT count(*) AS n FROM audit_log WHERE patient_id = %s AND "
                       "object_type = 'device' AND action = 'create'", (care.patient,))  # fmt: skip
    assert audit.fetchone()["n"] == 0
    # The broker back: the same request succeeds, and the device connects.
    b.start()
    made = own_client.post(url, headers=h, json={"kind": "scale", "serial": "DOWN-1"})
    assert made.status_code == 201, made.text
    device = made.json()
    assert _connects(local, device["device_id"], device["password"])

    # Revoking with the broker stopped: 503, and the device stays active in both.
    b.stop()
    revoke = f"/api/v1/admin/devices/{device['device_id']}/revoke"
    refused = own_client.post(revoke, headers=h)
    assert refused.status_code == 503 and refused.json()["code"] == "broker_unavailable"
    assert _devices_of(db, care.patient) == [{"id": device["device_id"], "active": True}]
    b.start()
    assert _connects(local, device["device_id"], device["password"])
    assert own_client.post(revoke, headers=h).status_code == 200
    assert not _connects(local, device["device_id"], device["password"])


def test_a_paused_broker_is_a_503_after_the_timeout_and_hears_of_nothing(
    own, own_client, care, db, monkeypatch
):
    b, local = own
    monkeypatch.setattr(broker_change, "ANSWER_TIMEOUT_S", 1.5)
    before = _files(local)
    assert b.proc is not None
    b.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = own_client.post(f"/api/v1/admin/patients/{care.patient}/devices",
                                 headers=care.admin.headers, json={"kind": "scale"})  # fmt: skip
        took = time.monotonic() - started
    finally:
        b.proc.send_signal(signal.SIGCONT)
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "broker_unavailable"
    assert "did not answer" in answer.json()["detail"] and took < 10
    assert _devices_of(db, care.patient) == [] and _files(local) == before


def _break_lines(monkeypatch, extra: str = "no-such-command") -> None:
    """The application's lines with one the plugin refuses at the end."""
    original = broker_change._lines

    def with_bad(settings, added, removed):
        return [*original(settings, added, removed), extra]

    monkeypatch.setattr(broker_change, "_lines", with_bad)


def test_a_change_the_broker_refuses_is_undone(own, own_client, care, db, monkeypatch):
    _, local = own
    before = _files(local)
    _break_lines(monkeypatch)
    answer = own_client.post(f"/api/v1/admin/patients/{care.patient}/devices",
                             headers=care.admin.headers, json={"kind": "scale"})  # fmt: skip
    assert answer.status_code == 503, answer.text
    assert "refused a control message" in answer.json()["detail"]
    assert _devices_of(db, care.patient) == [] and _files(local) == before


def test_a_change_refused_halfway_is_taken_back_from_the_broker(own, db, factory, monkeypatch):
    """Two batches: the broker applies the first and refuses the second. The registry rolls
    back, the files are put back, and the broker, told to reread them, forgets the first."""
    b, local = own
    patient = factory.patient(factory.org())
    monkeypatch.setattr(broker_control, "BATCH_LINES", 2)
    _break_lines(monkeypatch)
    before = _files(local)
    made = []
    with pytest.raises(broker.BrokerUnavailable), broker_change.registry_change(db, local) as ch:
        for kind in ("scale", "thermometer"):
            device, password_hash = provision_with_hash(db, patient, kind, None, None)
            ch.add(device.device_id, password_hash)
            made.append(device)
    assert _devices_of(db, patient) == [] and _files(local) == before
    log = b.log()
    assert "applied 2 changes" in log and "control message refused: error line 2" in log, log
    wait_for(lambda: b.log().count("accounts loaded") >= 2, what="the broker's reread")
    for device in made:
        wait_for(lambda d=device: not _connects(local, d.device_id, d.password),
                 what=f"{device.device_id} unknown to the broker again")  # fmt: skip


def test_a_commit_that_fails_after_the_broker_took_the_change_is_repaired(
    own, db, owner_db, factory
):
    b, local = own
    patient = factory.patient(factory.org())
    serial = f"FAIL-AT-COMMIT-{uuid.uuid4().hex[:6]}"
    owner_db.execute(
        "CREATE FUNCTION test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'refused at commit'; END $$"
    )
    owner_db.execute(
        "CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON devices "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        f"WHEN (NEW.serial = '{serial}') EXECUTE FUNCTION test_fail_at_commit()"
    )
    try:
        from telemed.db import connect_sync

        with (
            connect_sync(local.dsn) as conn,
            pytest.raises(Exception, match="refused at commit"),
            broker_change.registry_change(conn, local) as change,
        ):
            device, password_hash = provision_with_hash(conn, patient, "scale", serial, None)
            change.add(device.device_id, password_hash)
    finally:
        owner_db.execute("DROP TRIGGER test_fail_at_commit ON devices")
        owner_db.execute("DROP FUNCTION test_fail_at_commit()")
    assert _devices_of(db, patient) == []
    assert "applied 1 changes" in b.log()  # the broker had it, before the commit failed
    assert device.device_id not in "".join(_files(local))
    wait_for(lambda: not _connects(local, device.device_id, device.password),
             what="the broker to forget the device")  # fmt: skip
