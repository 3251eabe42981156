"""Admin API for devices: provision one for a patient or many at once (the passwords are in
the answer, once), list a patient's devices, revoke one, give one a new password, and see
recently rejected device messages.

A change and the broker's update happen in one transaction, all or nothing
(devices/broker_change.py): if the broker does not run, refuses the change or does not answer,
the registry is left as it was and the answer is 503 with the code `broker_unavailable` (and
Retry-After), so the registry never shows active a device the broker does not know, and a
revoked device is never left able to connect.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from psycopg import AsyncConnection

from devices import provisioning
from devices.broker_change import registry_change_async
from devices.provisioning import DeviceOut, Kind, ProvisionedDevice
from devices.provisioning_bulk import MAX_ROWS, NewDevice, provision_many_async
from devices.rejections import RejectionOut, list_rejections_async
from telemed import audit
from telemed.access import Actor, require_role
from telemed.settings import Settings

log = logging.getLogger("devices.api")


# A body of MAX_ROWS rows at their longest (a patient's id, the longest kind, a 100-character
# serial and a 64-character device id: about 250 bytes each) fits with room to spare.
BULK_MAX_BODY = 4 * 1024 * 1024

DeviceId = Annotated[str, msgspec.Meta(min_length=3, max_length=64)]


class DeviceCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Kind
    serial: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    device_id: DeviceId | None = None


class DevicesCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Devices to enrol at once, all or none; each patient by id or pseudonym."""

    devices: Annotated[list[NewDevice], msgspec.Meta(min_length=1, max_length=MAX_ROWS)]


async def provision_device(
    conn: AsyncConnection,
    actor: Actor,
    settings: Settings,
    patient_id: uuid.UUID,
    data: DeviceCreate,
) -> ProvisionedDevice:
    require_role(actor, ["admin"])
    async with registry_change_async(conn, settings) as change:
        device, password_hash = await provisioning.provision_async(
            conn,
            patient_id=patient_id,
            kind=data.kind,
            serial=data.serial,
            created_by=actor.user_id,
            device_id=data.device_id,
        )
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=patient_id,
            object_type="device",
            object_id=device.device_id,
            detail={"kind": device.kind, "serial": device.serial},
        )
        change.add(device.device_id, password_hash)
    log.info("device provisioned", extra={"device_id": device.device_id})
    return device


async def provision_devices(
    conn: AsyncConnection, actor: Actor, settings: Settings, data: DevicesCreate
) -> list[ProvisionedDevice]:
    require_role(actor, ["admin"])
    async with registry_change_async(conn, settings) as change:
        made = await provision_many_async(
            conn, data.devices, created_by=actor.user_id, field_prefix="devices"
        )
        await audit.record_objects(
            conn,
            actor,
            "create",
            [(d.patient_id, "device", d.device_id, {"kind": d.kind, "serial": d.serial})
             for d, _ in made],
        )  # fmt: skip
        for d, password_hash in made:
            change.add(d.device_id, password_hash)
    log.info("devices provisioned", extra={"count": len(made)})
    return [d for d, _ in made]


async def rotate_device(
    conn: AsyncConnection, actor: Actor, settings: Settings, device_id: str
) -> ProvisionedDevice:
    require_role(actor, ["admin"])
    async with registry_change_async(conn, settings) as change:
        device, password_hash = await provisioning.rotate_async(conn, device_id)
        await audit.record(
            conn,
            actor,
            "rotate",
            patient_id=device.patient_id,
            object_type="device",
            object_id=device.device_id,
        )
        change.add(device.device_id, password_hash)
    log.info("device password rotated", extra={"device_id": device.device_id})
    return device


async def patient_devices(
    conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
) -> list[DeviceOut]:
    require_role(actor, ["admin"])
    await provisioning.require_patient_exists(conn, patient_id)
    devices = await provisioning.list_devices_async(conn, patient_id=patient_id)
    await audit.record(conn, actor, "read", patient_id=patient_id, object_type="device")
    return devices


async def revoke_device(
    conn: AsyncConnection, actor: Actor, settings: Settings, device_id: str
) -> DeviceOut:
    require_role(actor, ["admin"])
    async with registry_change_async(conn, settings) as change:
        device = await provisioning.revoke_async(conn, device_id)
        await audit.record(
            conn,
            actor,
            "revoke",
            patient_id=device.patient_id,
            object_type="device",
            object_id=device.id,
        )
        change.remove(device.id)
    log.info("device revoked", extra={"device_id": device.id})
    return device


async def recent_rejections(
    conn: AsyncConnection, actor: Actor, device_id: str | None, limit: int
) -> list[RejectionOut]:
    require_role(actor, ["admin"])
    rows = await list_rejections_async(conn, device_id=device_id, limit=limit)
    # Reasons quote measured values: a read of each patient's data.
    patients = sorted({r.patient_id for r in rows if r.patient_id is not None}, key=str)
    await audit.record_many(conn, actor, "read", patients, object_type="rejected_message")
    return rows


class DeviceAdminController(Controller):
    path = "/api/v1/admin"
    tags = ["devices"]

    @post(
        "/patients/{patient_id:uuid}/devices",
        operation_id="provisionDevice",
        summary="Provision a device for a patient; the answer holds its MQTT password, once",
    )
    async def provision(
        self,
        conn: AsyncConnection,
        actor: Actor,
        state: State,
        patient_id: uuid.UUID,
        data: DeviceCreate,
    ) -> ProvisionedDevice:
        return await provision_device(conn, actor, state.settings, patient_id, data)

    @post(
        "/devices",
        operation_id="provisionDevices",
        summary="Enrol many devices at once, all or none (at most 10,000); the answer holds "
        "their MQTT passwords, once",
        request_max_body_size=BULK_MAX_BODY,
    )
    async def provision_many(
        self, conn: AsyncConnection, actor: Actor, state: State, data: DevicesCreate
    ) -> list[ProvisionedDevice]:
        return await provision_devices(conn, actor, state.settings, data)

    @post(
        "/devices/{device_id:str}/rotate",
        operation_id="rotateDevicePassword",
        summary="Give a device a new MQTT password (in the answer, once): the old one is "
        "refused at once and the device disconnected",
        status_code=200,
    )
    async def rotate(
        self, conn: AsyncConnection, actor: Actor, state: State, device_id: str
    ) -> ProvisionedDevice:
        return await rotate_device(conn, actor, state.settings, device_id)

    @get(
        "/patients/{patient_id:uuid}/devices",
        operation_id="listPatientDevices",
        summary="A patient's devices, active and revoked",
    )
    async def list_for_patient(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> list[DeviceOut]:
        return await patient_devices(conn, actor, patient_id)

    @post(
        "/devices/{device_id:str}/revoke",
        operation_id="revokeDevice",
        summary="Revoke a device: the broker shuts it out, its readings stay",
        status_code=200,
    )
    async def revoke(
        self, conn: AsyncConnection, actor: Actor, state: State, device_id: str
    ) -> DeviceOut:
        return await revoke_device(conn, actor, state.settings, device_id)

    @get(
        "/rejected-messages",
        operation_id="listRejectedMessages",
        summary="Device messages and readings the ingest workers rejected, newest first",
    )
    async def rejected(
        self,
        conn: AsyncConnection,
        actor: Actor,
        device_id: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[RejectionOut]:
        return await recent_rejections(conn, actor, device_id, limit)


def routers() -> list:
    return [DeviceAdminController]
