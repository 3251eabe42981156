"""`telemed devices …`: provision (one, or a file of them), revoke, rotate a password, list,
sync the broker, demo devices, rejections.

Every change reaches the broker in the same transaction, all or nothing
(devices/broker_change.py): a broker that does not take it leaves the registry as it was, and
the command says so and exits 1.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telemed.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]

DEMO_KINDS = {"copd": "copd_kit", "ak": "inr_meter"}

_DEMO_PATIENTS = """
SELECT p.id, p.pseudonym, e.program, e.stratum
FROM patients p
JOIN enrollments e ON e.patient_id = p.id AND e.end_date IS NULL
WHERE (p.name, p.date_of_birth) IN (SELECT * FROM unnest(%(names)s::text[], %(dobs)s::date[]))
ORDER BY p.name, e.program
"""
_ACTIVE_OF_KIND = """
SELECT id, password_hash FROM devices
WHERE patient_id = %(patient_id)s AND kind = %(kind)s AND active ORDER BY created_at
"""


def demo_credentials_path(settings: Settings) -> Path:
    """$TELEMED_STATE_DIR/demo/devices.json, which the simulator reads."""
    return settings.state_dir / "demo" / "devices.json"


def _known_passwords(path: Path) -> dict[str, str]:
    try:
        entries = json.loads(path.read_text())
        return {e["device_id"]: e["password"] for e in entries}
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return {}


def provision_demo(conn: Any, settings: Any, path: Path) -> list[dict[str, Any]]:
    """A device for every demo patient: a COPD kit per COPD enrollment, an INR meter per AK
    enrollment. A device whose password is in `path` is kept; any other active one of that
    kind is revoked and replaced, since without its password nothing can drive it."""
    from devices.broker import sync_broker, verify_password, write_atomically
    from devices.provisioning import provision, revoke
    from telemed import demo_data as demo

    known = _known_passwords(path)
    names = [p[0] for p in demo.PATIENTS]
    dobs = [p[1] for p in demo.PATIENTS]
    entries = []
    with conn.transaction():
        patients = conn.execute(_DEMO_PATIENTS, {"names": names, "dobs": dobs}).fetchall()
        for p in patients:
            kind = DEMO_KINDS[p["program"]]
            active = conn.execute(_ACTIVE_OF_KIND, {"patient_id": p["id"], "kind": kind}).fetchall()
            usable = [
                d for d in active if verify_password(known.get(d["id"], ""), d["password_hash"])
            ]
            if usable:
                device_id, password = usable[0]["id"], known[usable[0]["id"]]
            else:
                for d in active:
                    revoke(conn, d["id"])
                new = provision(conn, patient_id=p["id"], kind=kind)
                device_id, password = new.device_id, new.password
            entries.append(
                {
                    "device_id": device_id,
                    "password": password,
                    "patient_id": str(p["id"]),
                    "pseudonym": p["pseudonym"],
                    "kind": kind,
                    "program": p["program"],
                    "stratum": p["stratum"],
                }
            )
        sync_broker(conn, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(entries, indent=2) + "\n", mode=0o600, for_broker=False)
    return entries


# --- commands -----------------------------------------------------------------------------------


def _reported(func: Command) -> Command:
    """A domain error (unknown patient, bad kind, ...) as one line and exit status 1."""

    @functools.wraps(func)
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from telemed.errors import DomainError

        try:
            return func(args, settings)
        except DomainError as exc:
            problems = "".join(f"; {p.field}: {p.message}" for p in exc.problems)
            print(f"telemed devices: {exc.detail}{problems}", file=sys.stderr)
            return 1

    return run


def _connect(settings: Settings) -> tuple[Any, Settings]:
    from telemed.db import connect_sync

    return connect_sync(settings.dsn), settings


@_reported
def cmd_provision(args: argparse.Namespace, settings: Settings) -> int:
    from devices.broker_change import registry_change
    from devices.provisioning import find_patient, provision_with_hash

    conn, settings = _connect(settings)
    with conn, registry_change(conn, settings) as change:
        patient_id = find_patient(conn, args.patient)
        device, password_hash = provision_with_hash(
            conn, patient_id, args.kind, args.serial, None, args.device_id
        )
        change.add(device.device_id, password_hash)
    print(f"device_id: {device.device_id}")
    print(f"password:  {device.password}")
    print("(the password is shown only now; it is not stored)", file=sys.stderr)
    return 0


@_reported
def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from devices.broker_change import registry_change
    from devices.provisioning import revoke

    conn, settings = _connect(settings)
    with conn, registry_change(conn, settings) as change:
        devices = [revoke(conn, device_id) for device_id in args.device_id]
        for d in devices:
            change.remove(d.id)
    for device in devices:
        at = device.revoked_at.isoformat(timespec="seconds") if device.revoked_at else "?"
        print(f"revoked {device.id} (patient {device.patient_id}) at {at}")
    return 0


@_reported
def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from devices.broker_change import registry_change
    from devices.provisioning import rotate

    conn, settings = _connect(settings)
    with conn, registry_change(conn, settings) as change:
        device, password_hash = rotate(conn, args.device_id)
        change.add(device.device_id, password_hash)
    print(f"device_id: {device.device_id}")
    print(f"password:  {device.password}")
    print(
        "(the password is shown only now; the old one is refused from now on and the device "
        "was disconnected: load the new one onto it)",
        file=sys.stderr,
    )
    return 0


def read_bulk_file(path: Path) -> list[Any]:
    """Rows to enrol from a CSV file (a header with patient,kind and optionally serial and
    device_id) or a JSON list of {"patient", "kind", "serial", "device_id"} objects; the
    patient by id or pseudonym."""
    import msgspec

    from devices.provisioning_bulk import NewDevice
    from telemed.errors import FieldProblem, Invalid

    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".json":
            return msgspec.json.decode(text, type=list[NewDevice])
        rows = []
        for i, rec in enumerate(csv.DictReader(io.StringIO(text), strict=True), start=1):
            extra = set(rec) - {"patient", "kind", "serial", "device_id"}
            if extra or None in rec.values():
                raise Invalid(
                    f"row {i}: columns are patient,kind,serial,device_id; "
                    f"got {sorted(rec, key=str)}"
                )
            rows.append(msgspec.convert({k: v or None for k, v in rec.items()}, NewDevice))
        return rows
    except (msgspec.ValidationError, msgspec.DecodeError, csv.Error) as exc:
        raise Invalid(f"{path}: {exc}", [FieldProblem("file", str(exc))]) from None


@_reported
def cmd_provision_bulk(args: argparse.Namespace, settings: Settings) -> int:
    from devices.broker import write_atomically
    from devices.broker_change import registry_change
    from devices.provisioning_bulk import provision_many
    from telemed.errors import Invalid

    rows = read_bulk_file(args.file)
    if not rows:
        raise Invalid(f"{args.file}: no devices")
    if args.out.exists():
        raise Invalid(f"{args.out} exists; the passwords are written to a new file only")
    conn, settings = _connect(settings)
    written = False
    try:
        with conn, registry_change(conn, settings) as change:
            made = provision_many(conn, rows)
            for d, h in made:
                change.add(d.device_id, h)
            # Before the broker and the commit: a failure to write the passwords leaves nothing
            # enrolled, and a failure after removes the file again.
            entries = [
                {"device_id": d.device_id, "password": d.password, "patient_id": str(d.patient_id),
                 "kind": d.kind, "serial": d.serial}
                for d, _ in made
            ]  # fmt: skip
            write_atomically(args.out, json.dumps(entries, indent=1) + "\n", mode=0o600,
                             for_broker=False)  # fmt: skip
            written = True
    except BaseException:
        if written:
            args.out.unlink(missing_ok=True)
        raise
    print(f"{len(made)} devices enrolled; their passwords (shown nowhere else) are in {args.out}")
    return 0


@_reported
def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from devices.provisioning import find_patient, list_devices

    conn, _ = _connect(settings)
    with conn:
        patient_id = find_patient(conn, args.patient) if args.patient else None
        devices = list_devices(conn, patient_id=patient_id, active_only=not args.all)
    for d in devices:
        state = "active" if d.active else f"revoked {d.revoked_at:%Y-%m-%d}"
        print(f"{d.id:<20} {d.kind:<15} {d.patient_id}  {state}  serial {d.serial}")
    return 0


@_reported
def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from devices.broker import sync_broker

    conn, settings = _connect(settings)
    with conn:
        result = sync_broker(conn, settings)
    reload = "broker reloaded" if result.reloaded else "broker not running"
    print(f"broker files written for {result.devices} devices ({reload})")
    return 0


@_reported
def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    conn, settings = _connect(settings)
    path = demo_credentials_path(settings)
    with conn:
        entries = provision_demo(conn, settings, path)
    print(f"{len(entries)} demo devices; credentials in {path}")
    return 0


@_reported
def cmd_rejected(args: argparse.Namespace, settings: Settings) -> int:
    from devices.rejections import list_rejections

    conn, _ = _connect(settings)
    with conn:
        rows = list_rejections(conn, device_id=args.device, limit=args.limit)
    for r in rows:
        where = f"[{r.reading_index}]" if r.reading_index is not None else ""
        print(
            f"{r.received_at:%Y-%m-%d %H:%M:%S} {r.device_id or '-'} {r.message_id or '-'}{where}"
        )
        print(f"    {r.reason}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("devices", help="provision and revoke home devices")
    sub = p.add_subparsers(dest="devices_command", required=True)

    from devices.provisioning import KINDS

    c = sub.add_parser("provision", help="register a device for a patient; prints its password")
    c.add_argument("--patient", required=True, help="patient id (uuid) or pseudonym")
    c.add_argument("--kind", required=True, choices=KINDS)
    c.add_argument("--serial", help="the hardware serial (default: the device id)")
    c.add_argument(
        "--device-id",
        help="the device's id (and MQTT username), e.g. the one printed on the kit: 3-64 of "
        "a-z 0-9 -, not starting with telemed- (default: a new random dev-… id)",
    )
    c.set_defaults(func=cmd_provision)

    c = sub.add_parser(
        "provision-bulk",
        help="enrol the devices of a CSV (patient,kind[,serial][,device_id]) or JSON file in one "
        "transaction",
    )
    c.add_argument("file", type=Path)
    c.add_argument("--out", type=Path, required=True, help="new file for the passwords (0600)")
    c.set_defaults(func=cmd_provision_bulk)

    c = sub.add_parser("revoke", help="revoke devices and lock them out of the broker at once")
    c.add_argument("device_id", nargs="+")
    c.set_defaults(func=cmd_revoke)

    c = sub.add_parser(
        "rotate",
        help="give a device a new password (printed once); the old one is refused at once and "
        "the device disconnected",
    )
    c.add_argument("device_id")
    c.set_defaults(func=cmd_rotate)

    c = sub.add_parser("list", help="list devices")
    c.add_argument("--patient", help="patient id (uuid) or pseudonym")
    c.add_argument("--all", action="store_true", help="include revoked devices")
    c.set_defaults(func=cmd_list)

    c = sub.add_parser("sync", help="rewrite the broker's accounts from the database, reload them")
    c.set_defaults(func=cmd_sync)

    c = sub.add_parser("demo", help="devices for the demo patients, credentials for the simulator")
    c.set_defaults(func=cmd_demo)

    c = sub.add_parser("rejected", help="recently rejected device messages")
    c.add_argument("--device", help="only this device")
    c.add_argument("--limit", type=int, default=20)
    c.set_defaults(func=cmd_rejected)
