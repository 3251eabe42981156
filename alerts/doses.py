"""The weekly anticoagulant dose in a specialist's AK instruction: the patient's product, the
read-back that a dose outside the usual range or a large change needs before it is sent, and
the dose in tablets for the carers. For plausibility and read-back only, never for deciding a
dose (docs/doses.md, with the sources).

Warfarin maintenance is usually 2.5–10 mg a day, 17.5–70 mg a week, and a dose change usually
5–20 % of the weekly dose (pro.medicin.dk, Warfarin "Orion"; Felleskatalogen, Marevan; ACCP
guidance on dose adjustment). A dose outside that band, a change above 20 %, a dose with no
current dose to compare with, a product with no usual band known to us (phenprocoumon), a
patient whose product is not recorded, or a dose that is no whole number of (half) tablets is
not forbidden: it needs the specialist's explicit confirmation of a read-back showing the
current dose, the new dose and the change in percent, and the confirmation is recorded with the
instruction.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

from telemed import audit
from telemed.access import Actor, require_patient
from telemed.catalogue.programs import AK_PRODUCTS, AkProduct
from telemed.db import AsyncConn, Queries
from telemed.errors import FieldProblem, refuse_nul, required_reason

Q = Queries("doses", folder=Path(__file__).parent / "sql")

Substance = Literal["warfarin", "phenprocoumon"]

# The Danish products live in the clinical catalogue; migrations/0050 holds the same codes.
Product = AkProduct
PRODUCTS: Final = AK_PRODUCTS
ProductCode = Literal["marevan", "waran", "warfarin_orion", "marcoumar"]

# Usual weekly maintenance doses by substance, mg (warfarin 2.5–10 mg a day); none known to us
# for phenprocoumon, whose every dose is therefore read back.
USUAL_WEEKLY_MG: Final[dict[Substance, tuple[float, float] | None]] = {
    "warfarin": (17.5, 70.0),
    "phenprocoumon": None,
}
# Dose changes are usually 5–20 % of the weekly dose; above that, read back.
MAX_CHANGE_PERCENT: Final = 20.0
# Without a recorded product the dose is judged as warfarin, the common case, and read back.
ASSUMED_SUBSTANCE: Final[Substance] = "warfarin"

Reason = Literal[
    "outside_usual_range",
    "large_change",
    "no_current_dose",
    "no_usual_range",
    "no_product",
    "not_in_tablets",
]


class Readback(msgspec.Struct, frozen=True, kw_only=True):
    """What the specialist confirms, and what the carers are shown."""

    unit: str = "mg"
    current_weekly_mg: float | None
    new_weekly_mg: float
    change_percent: float | None
    product: str | None
    product_name: str | None
    tablet_mg: float | None
    tablets_per_week: float | None  # in whole or half tablets; None where not expressible
    usual_weekly_mg: tuple[float, float] | None
    max_change_percent: float = MAX_CHANGE_PERCENT
    reasons: list[Reason]

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.reasons)


class DoseConfirmation(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The read-back as the specialist saw and confirmed it."""

    current_weekly_mg: float | None
    new_weekly_mg: float
    change_percent: float | None


def change_percent(current: float | None, new: float) -> float | None:
    """The change from `current` to `new` in percent of `current`, to one decimal."""
    if current is None or current <= 0:
        return None
    exact = (Decimal(repr(new)) - Decimal(repr(current))) / Decimal(repr(current)) * 100
    return float(exact.quantize(Decimal("0.1")))


def tablets(weekly_mg: float, product: Product) -> float | None:
    """The weekly dose in tablets of `product`, in halves where the tablet is scored; None
    when it is no such number."""
    step = Decimal("0.5") if product.scored else Decimal(1)
    count = Decimal(repr(weekly_mg)) / Decimal(repr(product.tablet_mg))
    whole_steps = count / step
    if whole_steps != whole_steps.to_integral_value():
        return None
    return float(count)


def readback(current: float | None, new: float, product: Product | None) -> Readback:
    substance = product.substance if product else ASSUMED_SUBSTANCE
    usual = USUAL_WEEKLY_MG[substance]
    change = change_percent(current, new)
    count = tablets(new, product) if product else None
    reasons: list[Reason] = []
    if product is None:
        reasons.append("no_product")
    if usual is None:
        reasons.append("no_usual_range")
    elif not usual[0] <= new <= usual[1]:
        reasons.append("outside_usual_range")
    if current is None:
        reasons.append("no_current_dose")
    elif change is not None and abs(change) > MAX_CHANGE_PERCENT:
        reasons.append("large_change")
    if product is not None and count is None:
        reasons.append("not_in_tablets")
    return Readback(
        current_weekly_mg=current,
        new_weekly_mg=new,
        change_percent=change,
        product=product.code if product else None,
        product_name=product.name if product else None,
        tablet_mg=product.tablet_mg if product else None,
        tablets_per_week=count,
        usual_weekly_mg=usual,
        reasons=reasons,
    )


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def check_confirmation(
    field: str, found: Readback, confirmation: DoseConfirmation | None
) -> FieldProblem | None:
    """Why the dose may not be sent as it stands: a read-back is needed and not confirmed, or
    the confirmation is of another read-back (the dose or the current dose changed since)."""
    params = msgspec.to_builtins(found)
    if confirmation is None:
        if not found.needs_confirmation:
            return None
        text = "read the dose back and confirm it: " + ", ".join(found.reasons)
        return FieldProblem(field, text, "dose_confirmation_required", params)
    matches = (
        _same(confirmation.current_weekly_mg, found.current_weekly_mg)
        and _same(confirmation.new_weekly_mg, found.new_weekly_mg)
        and _same(confirmation.change_percent, found.change_percent)
    )
    if not matches:
        text = "the confirmed read-back is not the dose being sent or the current dose"
        return FieldProblem(field, text, "dose_confirmation_mismatch", params)
    return None


# --- the patient's product ----------------------------------------------------------------


class ProductSet(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    product: ProductCode
    reason: Annotated[str, Meta(min_length=1, max_length=1000)]


class ProductRecord(msgspec.Struct, kw_only=True):
    product: str
    name: str
    substance: str
    tablet_mg: float
    scored: bool | None
    set_by: uuid.UUID
    set_by_name: str
    set_at: datetime
    reason: str


class ProductOut(msgspec.Struct, kw_only=True):
    patient_id: uuid.UUID
    current: ProductRecord | None
    history: list[ProductRecord]


def _record(row: dict[str, Any]) -> ProductRecord:
    p = PRODUCTS[row["product"]]
    return ProductRecord(
        name=p.name, substance=p.substance, tablet_mg=p.tablet_mg, scored=p.scored, **row
    )


async def product_of(conn: AsyncConn, patient_id: uuid.UUID) -> Product | None:
    cur = await conn.execute(Q.current_product, {"patient_id": patient_id})
    row = await cur.fetchone()
    return PRODUCTS[row["product"]] if row else None


async def current_weekly_dose(conn: AsyncConn, patient_id: uuid.UUID) -> float | None:
    """The weekly dose the patient's latest AK instruction set, if any."""
    cur = await conn.execute(Q.latest_weekly_dose, {"patient_id": patient_id})
    row = await cur.fetchone()
    return row["weekly_dose_mg"] if row else None


async def lock_patient(conn: AsyncConn, patient_id: uuid.UUID) -> None:
    await conn.execute(Q.lock_patient, {"patient_id": patient_id})


async def get_product(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, *, admin: bool = False
) -> ProductOut:
    roles = ("admin",) if admin else ("nurse", "specialist")
    await require_patient(conn, actor, patient_id, roles=roles)
    async with conn.transaction():
        cur = await conn.execute(Q.product_history, {"patient_id": patient_id})
        history = [_record(r) for r in await cur.fetchall()]
        await audit.record(
            conn, actor, "read", patient_id=patient_id, object_type="anticoagulant_product"
        )
    return ProductOut(
        patient_id=patient_id, current=history[0] if history else None, history=history
    )


async def set_product(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: ProductSet
) -> ProductOut:
    """An administrator records the product the patient takes, with a reason; audited."""
    await require_patient(conn, actor, patient_id, roles=("admin",))
    refuse_nul(data)
    reason = required_reason(data.reason)
    async with conn.transaction():
        await conn.execute(
            Q.insert_product,
            {
                "patient_id": patient_id,
                "product": data.product,
                "set_by": actor.user_id,
                "reason": reason,
            },
        )
        await audit.record(
            conn,
            actor,
            "update",
            patient_id=patient_id,
            object_type="anticoagulant_product",
            detail={"product": data.product, "reason": reason},
        )
    return await get_product(conn, actor, patient_id, admin=True)
