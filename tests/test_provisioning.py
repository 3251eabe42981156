"""Provisioning devices, the broker files, the admin API and `telemed devices`."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.rows import dict_row

from app import demo
from devices import broker
from devices.broker import BrokerUnavailable
from devices.broker_change import apply_changes
from devices.cli import demo_credentials_path, provision_demo
from devices.provisioning import KINDS, list_devices, provision, revoke
from telemed.errors import Invalid, NotFound
from telemed.settings import REPO_ROOT
from tests import services
from tests.mqtt_helpers import DeviceLink, wait_for

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")


# --- hashes and files ----------------------------------------------------------------------


def test_mosquitto_passwd_hashes_verify_and_ours_have_its_format(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "kit-7", "s3cret:with$odd chars"],
        check=True,
        capture_output=True,
    )
    theirs = passwd.read_text().strip().split(":", 1)[1]
    assert broker.verify_password("s3cret:with$odd chars", theirs)
    assert not broker.verify_password("s3cret", theirs)
    ours = broker.hash_password("s3cret:with$odd chars")
    assert re.fullmatch(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==", ours), ours
    assert theirs.split("$")[:3] == ours.split("$")[:3]  # same scheme and iteration count
    assert broker.verify_password("s3cret:with$odd chars", ours)


@given(st.text(min_size=1, max_size=40), st.binary(min_size=12, max_size=12))
def test_a_hash_verifies_its_password_only(password: str, salt: bytes) -> None:
    encoded = broker.hash_password(password, salt=salt, iterations=2)
    assert broker.verify_password(password, encoded)
    assert not broker.verify_password(password + "x", encoded)


def test_the_snapshot_holds_each_account_with_its_kind_and_hash() -> None:
    accounts = [
        broker.service_account("ingest", "telemed-ingest", "pw"),
        broker.device_account("dev-abc", "$7$101$x$y"),
    ]
    lines = broker.render_snapshot(accounts, "g1").splitlines()
    assert lines[0] == "telemed-accounts 1 g1"
    assert lines[2].startswith("add ingest telemed-ingest $7$101$")
    assert broker.verify_password("pw", lines[2].split(" ")[3])
    assert lines[3] == "add device dev-abc $7$101$x$y"
    for bad in ("a:b", "a b", "dev/+", "", "x" * 65):
        with pytest.raises(ValueError):
            broker.device_account(bad, "h").line()


def test_sync_writes_the_snapshot_and_a_fresh_journal_for_the_broker(
    db, settings, factory, tmp_path, caplog
) -> None:
    patient = factory.patient(factory.org())
    device = provision(db, patient_id=patient, kind="scale")
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    # No broker for this folder: nothing answers on this port.
    local = msgspec.structs.replace(settings, broker_dir=folder, mqtt_port=_closed_port())
    result = broker.sync_broker(db, local)
    assert result.reloaded is False
    assert sorted(p.name for p in folder.iterdir()) == ["accounts", "accounts.journal"]
    snapshot = (folder / "accounts").read_text().splitlines()
    generation = snapshot[0].split(" ")[2]
    assert (folder / "accounts.journal").read_text() == f"telemed-journal 1 {generation}\n"
    hashes = {line.split(" ")[2]: line.split(" ")[3] for line in snapshot if line.startswith("add")}
    assert broker.verify_password(device.password, hashes[device.device_id])
    assert broker.verify_password(settings.ingest_password, hashes[settings.ingest_username])
    assert broker.verify_password(settings.broker_admin_password, hashes["telemed-admin"])
    for name in ("accounts", "accounts.journal"):
        st_ = (folder / name).stat()
        assert stat.S_IMODE(st_.st_mode) == 0o640
        assert (st_.st_uid, st_.st_gid) == (folder.stat().st_uid, folder.stat().st_gid)
    # A revocation the broker does not take (none runs here) changes nothing: not the
    # registry, not the files.
    with pytest.raises(BrokerUnavailable) as refused, db.transaction():
        revoke(db, device.device_id)
        apply_changes(db, local, removed=[device.device_id])
    assert refused.value.code == "broker_unavailable" and "does not run" in refused.value.detail
    assert (folder / "accounts").read_text().splitlines() == snapshot
    assert (folder / "accounts.journal").read_text() == f"telemed-journal 1 {generation}\n"
    assert list_devices(db, patient_id=patient)[0].active
    # A full sync writes what the registry holds, broker or not.
    revoke(db, device.device_id)
    broker.sync_broker(db, local)
    assert device.device_id not in (folder / "accounts").read_text()
    # The service accounts' lines stay as they are while their passwords do not change.
    again = broker.hashes_in_snapshot(folder / "accounts")
    assert again[settings.ingest_username] == hashes[settings.ingest_username]
    rotated = msgspec.structs.replace(local, ingest_password="a new one")
    with caplog.at_level(logging.WARNING, logger="devices.broker"):
        broker.sync_broker(db, rotated)
    assert "password" in caplog.text and "changes" in caplog.text
    new_hash = broker.hashes_in_snapshot(folder / "accounts")[settings.ingest_username]
    assert new_hash != hashes[settings.ingest_username]
    assert broker.verify_password("a new one", new_hash)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- provisioning ----------------------------------------------------------------------------


def test_provision_stores_a_hash_and_returns_the_password_once(db, factory) -> None:
    patient = factory.patient(factory.org())
    device = provision(db, patient_id=patient, kind="inr_meter", serial="CC-204")
    assert DEVICE_ID.fullmatch(device.device_id) and device.mqtt_username == device.device_id
    assert len(device.password) >= 32
    row = db.execute("SELECT * FROM devices WHERE id = %s", (device.device_id,)).fetchone()
    assert (row["patient_id"], row["kind"], row["serial"], row["active"]) == (
        patient,
        "inr_meter",
        "CC-204",
        True,
    )
    assert device.password not in json.dumps(row, default=str)
    assert broker.verify_password(device.password, row["password_hash"])
    other = provision(db, patient_id=patient, kind="scale")
    assert other.serial == other.device_id and other.device_id != device.device_id
    assert [d.id for d in list_devices(db, patient_id=patient)] == [
        device.device_id,
        other.device_id,
    ]


def test_provision_refuses_an_unknown_kind_or_patient(db, factory) -> None:
    with pytest.raises(Invalid):
        provision(db, patient_id=factory.patient(factory.org()), kind="toaster")
    with pytest.raises(NotFound):
        provision(db, patient_id=uuid.uuid4(), kind="scale")


def test_a_provisioned_device_connects_and_a_revoked_one_is_shut_out(db, settings, factory):
    device = provision(db, patient_id=factory.patient(factory.org()), kind="pulse_oximeter")
    broker.sync_broker(db, settings)
    link = DeviceLink(settings, device.device_id, device.password)
    assert link.connect().value == 0
    wrong = DeviceLink(settings, device.device_id, device.password + "x")
    assert wrong.connect(retry_refused_s=0).getName() == "Not authorized"
    revoked = revoke(db, device.device_id)
    assert revoked.active is False and revoked.revoked_at is not None
    broker.sync_broker(db, settings)
    # The live connection is cut on the reload, and a new one is refused.
    wait_for(lambda: link.disconnects, what="the broker to drop the revoked device")
    link.close()
    again = DeviceLink(settings, device.device_id, device.password)
    assert again.connect(retry_refused_s=0).getName() == "Not authorized"


# --- admin API -------------------------------------------------------------------------------


def test_admin_provisions_lists_and_revokes_through_the_api(client, db, care, settings) -> None:
    h = care.admin.headers
    url = f"/api/v1/admin/patients/{care.patient}/devices"
    made = client.post(url, headers=h, json={"kind": "copd_kit", "serial": "KIT-0007"})
    assert made.status_code == 201, made.text
    body = made.json()
    password = body["password"]
    assert body["device_id"] == body["mqtt_username"] and body["serial"] == "KIT-0007"
    link = DeviceLink(settings, body["device_id"], password)
    assert link.connect().value == 0  # the broker was synced
    listed = client.get(url, headers=h)
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()] == [body["device_id"]]
    assert password not in listed.text and "password" not in listed.text
    revoked = client.post(f"/api/v1/admin/devices/{body['device_id']}/revoke", headers=h)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["active"] is False
    wait_for(lambda: link.disconnects, what="the revoked device to be dropped")
    link.close()
    audit = db.execute(
        "SELECT action, object_type, object_id, detail::text AS detail FROM audit_log "
        "WHERE patient_id = %s AND object_type = 'device' ORDER BY id",
        (care.patient,),
    ).fetchall()
    assert [(a["action"], a["object_id"]) for a in audit] == [
        ("create", body["device_id"]),
        ("read", None),
        ("revoke", body["device_id"]),
    ]
    assert all(password not in (a["detail"] or "") for a in audit)


def test_device_endpoints_are_for_admins_and_know_their_patients(client, care) -> None:
    url = f"/api/v1/admin/patients/{care.patient}/devices"
    for user in (care.nurse, care.specialist):
        assert client.post(url, headers=user.headers, json={"kind": "scale"}).status_code == 403
        assert client.get(url, headers=user.headers).status_code == 403
    h = care.admin.headers
    unknown = f"/api/v1/admin/patients/{uuid.uuid4()}/devices"
    assert client.post(unknown, headers=h, json={"kind": "scale"}).status_code == 404
    assert client.get(unknown, headers=h).status_code == 404
    assert client.post(url, headers=h, json={"kind": "toaster"}).status_code == 400
    assert client.post("/api/v1/admin/devices/dev-nope/revoke", headers=h).status_code == 404
    assert (
        client.get("/api/v1/admin/rejected-messages", headers=care.nurse.headers).status_code == 403
    )


# --- command line ------------------------------------------------------------------------------


def _telemed(settings, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    run_env = {
        **os.environ,
        "TELEMED_DSN": settings.dsn,
        "TELEMED_BROKER_DIR": str(settings.broker_dir),
        "TELEMED_MQTT_PORT": str(settings.mqtt_port),
        "TELEMED_INGEST_PASSWORD": settings.ingest_password,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=run_env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_provisions_lists_and_revokes(db, settings, factory) -> None:
    patient = factory.patient(factory.org())
    pseudonym = db.execute("SELECT pseudonym FROM patients WHERE id = %s", (patient,)).fetchone()
    out = _telemed(settings, "devices", "provision", "--patient", pseudonym["pseudonym"],
                   "--kind", "thermometer")  # fmt: skip
    assert out.returncode == 0, out.stderr
    fields = dict(re.findall(r"^(\w+):\s+(\S+)$", out.stdout, re.M))
    device_id, password = fields["device_id"], fields["password"]
    assert broker.verify_password(password, _broker_hash(settings, device_id) or "")
    listed = _telemed(settings, "devices", "list", "--patient", str(patient))
    assert device_id in listed.stdout and "thermometer" in listed.stdout
    assert _telemed(settings, "devices", "revoke", device_id).returncode == 0
    assert device_id not in _telemed(settings, "devices", "list").stdout
    assert device_id in _telemed(settings, "devices", "list", "--all").stdout
    assert _broker_hash(settings, device_id) is None
    bad = _telemed(settings, "devices", "provision", "--patient", "P-NOBODY", "--kind", "scale")
    assert bad.returncode == 1 and "no patient" in bad.stderr
    assert _telemed(settings, "devices", "sync").stdout.startswith("broker files written for")


def _broker_hash(settings, device_id: str) -> str | None:
    """The device's hash as the broker reads it at start: the snapshot, then the journal."""
    found = None
    for name in ("accounts", "accounts.journal"):
        for line in (settings.broker_dir / name).read_text().splitlines():
            parts = line.split(" ")
            if parts[0] == "add" and parts[2] == device_id:
                found = parts[3]
            elif parts[0] == "remove" and parts[1] == device_id:
                found = None
    return found


@pytest.fixture
def demo_db(service_env) -> psycopg.Connection:
    """The demo seed in a database of its own, so that it touches no other test's data."""
    dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    try:
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            demo.seed(conn)
            yield conn
    finally:
        services.drop_database(dsn)


def test_devices_demo_provisions_each_demo_patient_once(demo_db, settings, tmp_path) -> None:
    local = msgspec.structs.replace(settings, broker_dir=tmp_path / "mosquitto")
    path = demo_credentials_path(msgspec.structs.replace(settings, state_dir=tmp_path))
    assert path == tmp_path / "demo" / "devices.json"
    first = provision_demo(demo_db, local, path)
    programs = [p[2] for p in demo.PATIENTS]
    assert sorted(e["kind"] for e in first) == sorted(
        {"copd": "copd_kit", "ak": "inr_meter"}[p] for p in programs
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == first
    assert set(first[0]) == {
        "device_id", "password", "patient_id", "pseudonym", "kind", "program", "stratum",
    }  # fmt: skip
    snapshot = (local.broker_dir / "accounts").read_text()
    assert all(f"add device {e['device_id']} " in snapshot for e in first)
    assert provision_demo(demo_db, local, path) == first  # idempotent
    # A device whose password was lost is replaced, and the old one revoked.
    lost, *kept = first
    path.write_text(json.dumps(kept))
    third = provision_demo(demo_db, local, path)
    assert [e["device_id"] for e in third if e["patient_id"] != lost["patient_id"]] == [
        e["device_id"] for e in kept
    ]
    replaced = next(e for e in third if e["patient_id"] == lost["patient_id"])
    assert replaced["device_id"] != lost["device_id"]
    old = demo_db.execute("SELECT active FROM devices WHERE id = %s", (lost["device_id"],))
    assert old.fetchone()["active"] is False
    assert set(KINDS) >= {e["kind"] for e in third}


def test_bulk_provisioning_from_a_file_enrols_all_or_nothing(db, settings, factory, tmp_path):
    patients = [factory.patient(factory.org()) for _ in range(3)]
    pseudonyms = [
        db.execute("SELECT pseudonym FROM patients WHERE id = %s", (p,)).fetchone()["pseudonym"]
        for p in patients
    ]
    good = tmp_path / "fleet.csv"
    good.write_text(
        "patient,kind,serial\n"
        f"{pseudonyms[0]},copd_kit,KIT-{uuid.uuid4().hex[:6]}\n"
        f"{patients[1]},inr_meter,\n"
        f"{pseudonyms[2]},scale,\n"
    )
    out = tmp_path / "passwords.json"
    done = _telemed(settings, "devices", "provision-bulk", str(good), "--out", str(out))
    assert done.returncode == 0, done.stderr
    entries = json.loads(out.read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [e["patient_id"] for e in entries] == [str(p) for p in patients]
    for e in entries:
        link = DeviceLink(settings, e["device_id"], e["password"])
        assert link.connect().value == 0, e
        link.close()
    # A bad row anywhere: nothing is enrolled, and the error names the row.
    before = db.execute("SELECT count(*) AS n FROM devices").fetchone()["n"]
    cases = {
        "unknown.csv": (f"patient,kind,serial\n{pseudonyms[0]},scale,\nP-NOBODY,scale,\n", "row 2"),
        "kind.csv": (f"patient,kind,serial\n{pseudonyms[0]},17,5\n", "row 1"),
        "nul.csv": (f"patient,kind,serial\n{pseudonyms[0]}\x00,scale,\n", "row 1"),
        "columns.csv": ("patient,kind,colour\nx,scale,red\n", "columns"),
        "bad.json": ('[{"patient": "x", "kind": "scale", "extra": 1}]', "extra"),
        "deep.json": ("[" * 5000 + "]" * 5000, "bad.json"),
        "reserved.csv": (
            f"patient,kind,serial,device_id\n{pseudonyms[0]},scale,,kit-a1\n"
            f"{pseudonyms[1]},scale,,telemed-admin-9\n",
            "row 2: a device may not "
            "have a service account's name; device_id: ids starting with telemed-",
        ),
        "twice.csv": (
            f"patient,kind,serial,device_id\n{pseudonyms[0]},scale,,kit-b2\n"
            f"{pseudonyms[1]},scale,,kit-b2\n",
            "row 2: the device id of row 1 again",
        ),
        "serial.csv": (
            f"patient,kind,serial\n{pseudonyms[0]},scale,{entries[0]['serial']}\n",
            "row 1: a device with this serial exists",
        ),
    }
    for name, (text, said) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        again = tmp_path / f"{name}.out"
        res = _telemed(settings, "devices", "provision-bulk", str(path), "--out", str(again))
        assert res.returncode == 1, (name, res.stdout, res.stderr)
        assert said in res.stderr or name == "deep.json", (name, res.stderr)
        assert not again.exists()
    assert db.execute("SELECT count(*) AS n FROM devices").fetchone()["n"] == before
    # The passwords file is never overwritten.
    assert (
        _telemed(settings, "devices", "provision-bulk", str(good), "--out", str(out)).returncode
        == 1
    )
