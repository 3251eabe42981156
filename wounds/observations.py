"""What a home nurse records with wound photos, and what the specialist answers.

Field-level limits live in the types (msgspec rejects them while decoding, naming the field as
`$.length_cm`); rules that relate fields to one another are in `validate` and `validate_wound`,
which return every problem at once so that a form can show them all. Vocabulary follows
CLINICAL.md: FUT wound types, NPIAP pressure-ulcer categories, PUSH tissue types, BWAT edges.
"""

import math
from collections.abc import Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Final
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

COPENHAGEN: Final = ZoneInfo("Europe/Copenhagen")


class WoundType(StrEnum):
    PRESSURE_ULCER = "pressure_ulcer"
    VENOUS_LEG_ULCER = "venous_leg_ulcer"
    ARTERIAL_ULCER = "arterial_ulcer"
    DIABETIC_FOOT_ULCER = "diabetic_foot_ulcer"
    SURGICAL_WOUND = "surgical_wound"
    TRAUMA = "trauma"
    MIXED_LEG_ULCER = "mixed_leg_ulcer"
    BURN = "burn"
    SKIN_CANCER = "skin_cancer"
    IMMUNOLOGICAL = "immunological"
    SUPERFICIAL = "superficial"
    ECZEMA = "eczema"
    CHRONIC_SKIN = "chronic_skin"
    STOMA_RELATED = "stoma_related"
    OTHER = "other"


# The Danish FUT wound-type code list (Region Nordjylland). "other" has no code: it is sent
# without one and described in the free text.
FUT_WOUND_TYPE: Final[dict[WoundType, str | None]] = {
    WoundType.ARTERIAL_ULCER: "TS1",
    WoundType.DIABETIC_FOOT_ULCER: "TS2",
    WoundType.SKIN_CANCER: "TS3",
    WoundType.IMMUNOLOGICAL: "TS4",
    WoundType.SUPERFICIAL: "TS5",
    WoundType.PRESSURE_ULCER: "TS6",
    WoundType.VENOUS_LEG_ULCER: "TS7",
    WoundType.ECZEMA: "TS8",
    WoundType.CHRONIC_SKIN: "TS9",
    WoundType.MIXED_LEG_ULCER: "TS10",
    WoundType.TRAUMA: "TS11",
    WoundType.BURN: "TS12",
    WoundType.SURGICAL_WOUND: "TS13",
    WoundType.STOMA_RELATED: "TS14",
    WoundType.OTHER: None,
}


class PressureCategory(StrEnum):
    """NPIAP/EPUAP classification."""

    CATEGORY_1 = "category_1"  # intact skin, non-blanchable erythema
    CATEGORY_2 = "category_2"  # partial thickness, no slough or eschar
    CATEGORY_3 = "category_3"
    CATEGORY_4 = "category_4"
    UNSTAGEABLE = "unstageable"  # base obscured by slough or eschar
    DEEP_TISSUE_INJURY = "deep_tissue_injury"


class ExudateAmount(StrEnum):
    NONE = "none"
    LIGHT = "light"
    MODERATE = "moderate"
    HEAVY = "heavy"


class ExudateType(StrEnum):
    SEROUS = "serous"
    SANGUINEOUS = "sanguineous"
    SEROSANGUINEOUS = "serosanguineous"
    PURULENT = "purulent"


class WoundEdge(StrEnum):
    """BWAT item 3, 'Edges'."""

    INDISTINCT = "indistinct"
    ATTACHED = "attached"
    NOT_ATTACHED = "not_attached"
    ROLLED_THICKENED = "rolled_thickened"
    FIBROTIC = "fibrotic"


class PeriwoundSkin(StrEnum):
    INTACT = "intact"
    MACERATED = "macerated"
    ERYTHEMA = "erythema"
    EXCORIATED = "excoriated"
    DRY_SCALY = "dry_scaly"
    OEDEMA = "oedema"
    INDURATION = "induration"
    CALLUS = "callus"


class InfectionSign(StrEnum):
    INCREASED_PAIN = "increased_pain"
    SPREADING_ERYTHEMA = "spreading_erythema"
    WARMTH = "warmth"
    SWELLING = "swelling"
    PURULENT_EXUDATE = "purulent_exudate"
    ODOUR = "odour"
    FEVER = "fever"
    DELAYED_HEALING = "delayed_healing"
    FRIABLE_GRANULATION = "friable_granulation"
    WOUND_BREAKDOWN = "wound_breakdown"


class Odour(StrEnum):
    NONE = "none"
    MILD = "mild"
    STRONG = "strong"


class ChangeFrequency(StrEnum):
    """How often the dressing is changed, in the words nurses and specialists use."""

    TWICE_DAILY = "twice_daily"
    DAILY = "daily"
    EVERY_OTHER_DAY = "every_other_day"
    THREE_TIMES_WEEKLY = "three_times_weekly"
    TWICE_WEEKLY = "twice_weekly"
    WEEKLY = "weekly"


CHANGES_PER_WEEK: Final[dict[ChangeFrequency, float]] = {
    ChangeFrequency.TWICE_DAILY: 14.0,
    ChangeFrequency.DAILY: 7.0,
    ChangeFrequency.EVERY_OTHER_DAY: 3.5,
    ChangeFrequency.THREE_TIMES_WEEKLY: 3.0,
    ChangeFrequency.TWICE_WEEKLY: 2.0,
    ChangeFrequency.WEEKLY: 1.0,
}


class BodyLocation(StrEnum):
    HEAD = "head"
    FACE = "face"
    EAR = "ear"
    NECK = "neck"
    SHOULDER = "shoulder"
    CHEST = "chest"
    BREAST = "breast"
    ABDOMEN = "abdomen"
    BACK = "back"
    SACRUM = "sacrum"
    COCCYX = "coccyx"
    BUTTOCK = "buttock"
    ISCHIUM = "ischium"
    HIP = "hip"
    PERINEUM = "perineum"
    UPPER_ARM = "upper_arm"
    ELBOW = "elbow"
    FOREARM = "forearm"
    HAND = "hand"
    FINGER = "finger"
    THIGH = "thigh"
    KNEE = "knee"
    LOWER_LEG = "lower_leg"
    ANKLE = "ankle"
    HEEL = "heel"
    FOOT_DORSUM = "foot_dorsum"
    FOOT_SOLE = "foot_sole"
    TOE = "toe"
    OTHER = "other"


class Laterality(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    MIDLINE = "midline"
    BILATERAL = "bilateral"
    NOT_APPLICABLE = "not_applicable"


class HospitalVisit(StrEnum):
    """Whether the patient must be seen at the hospital, and how soon."""

    NO = "no"
    WITHIN_A_WEEK = "within_a_week"
    TODAY = "today"


def _sites(names: str) -> frozenset[BodyLocation]:
    return frozenset(BodyLocation(name) for name in names.split())


_UNPAIRED: Final = _sites("head face neck chest abdomen back sacrum coccyx perineum other")
_PAIRED: Final = frozenset(BodyLocation) - _UNPAIRED
_MIDLINE: Final = _sites("sacrum coccyx")
_FOOT: Final = _sites("ankle heel foot_dorsum foot_sole toe")
_GAITER: Final = _sites("lower_leg ankle")  # where venous ulcers are

Percent = Annotated[int, Meta(ge=0, le=100)]
# Four shares each rounded to a whole percent can be off by half a point each.
TISSUE_SUM_TOLERANCE: Final = 2
_TEXT = r"\S"  # at least one character that is not white space
ShortText = Annotated[str, Meta(min_length=1, max_length=500, pattern=_TEXT)]
Question = Annotated[str, Meta(min_length=1, max_length=1000, pattern=_TEXT)]
LongText = Annotated[str, Meta(max_length=4000)]


class TissueComposition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Share of the wound bed by tissue type (PUSH), in whole percent, summing to 100."""

    granulation: Percent = 0
    slough: Percent = 0
    necrosis: Percent = 0
    epithelial: Percent = 0

    def total(self) -> int:
        return self.granulation + self.slough + self.necrosis + self.epithelial


class WoundObservation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One assessment by the home nurse, sent together with the photos."""

    wound_type: WoundType
    pressure_category: PressureCategory | None = None
    length_cm: Annotated[float, Meta(ge=0, le=100)] | None = None  # head-to-toe, LOINC 39126-8
    width_cm: Annotated[float, Meta(ge=0, le=100)] | None = None  # perpendicular, 39125-0
    depth_cm: Annotated[float, Meta(ge=0, le=30)] | None = None  # 39127-6
    tissue: TissueComposition | None = None
    exudate_amount: ExudateAmount | None = None
    exudate_type: ExudateType | None = None
    wound_edge: WoundEdge | None = None
    periwound: frozenset[PeriwoundSkin] = frozenset()
    infection_signs: frozenset[InfectionSign] = frozenset()
    odour: Odour | None = None
    pain: Annotated[int, Meta(ge=0, le=10)] | None = None
    current_dressing: ShortText | None = None
    change_frequency: ChangeFrequency | None = None
    free_text: LongText = ""
    nurse_question: Question | None = None
    urgent: bool = False


class WoundCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    wound_type: WoundType
    body_location: BodyLocation
    laterality: Laterality
    location_detail: Annotated[str, Meta(max_length=200)] = ""  # "lateral malleolus"
    onset: date | None = None


class WoundInstructions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The specialist's reply to a wound case."""

    cleansing: ShortText | None = None
    dressing: ShortText | None = None
    change_frequency: ChangeFrequency | None = None
    offloading: ShortText | None = None
    compression: ShortText | None = None
    # Danish wound telemedicine asks for new photos about every 14 days.
    new_photos_in_days: Annotated[int, Meta(ge=1, le=90)] = 14
    hospital_visit: HospitalVisit = HospitalVisit.NO
    free_text: LongText = ""


class NurseQuestionBack(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The nurse's follow-up question on the specialist's instructions."""

    question: Question


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    rule: str
    message: str


_observation_decoder: Final = msgspec.json.Decoder(WoundObservation)
_wound_decoder: Final = msgspec.json.Decoder(WoundCreate)


def decode_observation(raw: bytes | str) -> WoundObservation:
    """Decode JSON (e.g. the observations part of the multipart upload); raises
    msgspec.ValidationError naming the field."""
    return _observation_decoder.decode(raw)


def decode_wound(raw: bytes | str) -> WoundCreate:
    return _wound_decoder.decode(raw)


def area_cm2(obs: WoundObservation) -> float | None:
    """Wound area (LOINC 89260-4) as the ellipse pi/4 x length x width.

    Length x width (the rectangle, used by the PUSH size score) overestimates the area of
    the roughly oval wounds we see by about a quarter; the ellipse is closer to planimetry.
    """
    if obs.length_cm is None or obs.width_cm is None:
        return None
    return math.pi / 4 * obs.length_cm * obs.width_cm


def validate(obs: WoundObservation) -> list[FieldProblem]:
    """Every rule that relates one field to another; empty when the observation is consistent."""
    return [*_pressure_rules(obs), *_size_rules(obs), *_tissue_rules(obs), *_finding_rules(obs)]


def _pressure_rules(obs: WoundObservation) -> Iterable[FieldProblem]:
    category = obs.pressure_category
    if obs.wound_type is WoundType.PRESSURE_ULCER and category is None:
        yield FieldProblem(
            "pressure_category", "required_for_pressure_ulcer", "give the NPIAP category"
        )
    if obs.wound_type is not WoundType.PRESSURE_ULCER and category is not None:
        yield FieldProblem(
            "pressure_category",
            "only_for_pressure_ulcer",
            f"a category belongs to pressure ulcers, not to {obs.wound_type.value}",
        )
        return
    if category is PressureCategory.CATEGORY_1 and obs.depth_cm:
        yield FieldProblem(
            "depth_cm", "category_1_is_intact_skin", "a category 1 pressure ulcer has no depth"
        )
    tissue = obs.tissue
    if tissue is None or category is None:
        return
    dead = tissue.slough + tissue.necrosis
    if category in (PressureCategory.CATEGORY_1, PressureCategory.CATEGORY_2) and dead:
        yield FieldProblem(
            "tissue",
            "category_excludes_slough_and_necrosis",
            "slough or necrosis means category 3, 4 or unstageable",
        )
    if category is PressureCategory.UNSTAGEABLE and not dead:
        yield FieldProblem(
            "tissue",
            "unstageable_needs_slough_or_necrosis",
            "unstageable means the base is covered by slough or necrosis",
        )


def _size_rules(obs: WoundObservation) -> Iterable[FieldProblem]:
    if (obs.length_cm is None) != (obs.width_cm is None):
        missing = "width_cm" if obs.width_cm is None else "length_cm"
        yield FieldProblem(
            missing, "length_and_width_together", "measure both length and width, or neither"
        )


def _tissue_rules(obs: WoundObservation) -> Iterable[FieldProblem]:
    if obs.tissue is None:
        return
    total = obs.tissue.total()
    if abs(total - 100) > TISSUE_SUM_TOLERANCE:
        yield FieldProblem(
            "tissue", "tissue_sum", f"tissue shares add up to {total} %, they must make 100 %"
        )


def _finding_rules(obs: WoundObservation) -> Iterable[FieldProblem]:
    no_exudate = obs.exudate_amount is ExudateAmount.NONE
    if no_exudate and obs.exudate_type is not None:
        yield FieldProblem(
            "exudate_type", "type_without_exudate", "no exudate cannot have an exudate type"
        )
    if no_exudate and InfectionSign.PURULENT_EXUDATE in obs.infection_signs:
        yield FieldProblem(
            "infection_signs",
            "purulent_without_exudate",
            "purulent exudate is listed but the exudate amount is none",
        )
    if obs.odour is Odour.NONE and InfectionSign.ODOUR in obs.infection_signs:
        yield FieldProblem(
            "infection_signs",
            "odour_contradiction",
            "odour is listed as a sign of infection but recorded as none",
        )
    if PeriwoundSkin.INTACT in obs.periwound and len(obs.periwound) > 1:
        yield FieldProblem(
            "periwound", "intact_excludes_findings", "intact skin cannot have other findings"
        )


def validate_wound(wound: WoundCreate, *, today: date | None = None) -> list[FieldProblem]:
    """Cross-field rules for a new wound. `today` defaults to today's date in Denmark."""
    today = today or datetime.now(COPENHAGEN).date()
    problems: list[FieldProblem] = []
    if wound.onset is not None and wound.onset > today:
        problems.append(FieldProblem("onset", "not_in_future", f"onset is after {today}"))
    site, side = wound.body_location, wound.laterality
    if site in _PAIRED and side not in (Laterality.LEFT, Laterality.RIGHT, Laterality.BILATERAL):
        problems.append(
            FieldProblem("laterality", "side_required", f"say which {site.value}: left or right")
        )
    if site in _MIDLINE and side is not Laterality.MIDLINE:
        problems.append(
            FieldProblem("laterality", "midline_site", f"the {site.value} is in the midline")
        )
    if wound.wound_type is WoundType.DIABETIC_FOOT_ULCER and site not in _FOOT:
        problems.append(
            FieldProblem(
                "body_location", "diabetic_foot_on_foot", "a diabetic foot ulcer is on the foot"
            )
        )
    if wound.wound_type is WoundType.VENOUS_LEG_ULCER and site not in _GAITER:
        problems.append(
            FieldProblem(
                "body_location",
                "venous_ulcer_on_lower_leg",
                "a venous leg ulcer is on the lower leg or ankle",
            )
        )
    return problems
