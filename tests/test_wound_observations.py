import json
import math
from datetime import date

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wounds.observations import (
    CHANGES_PER_WEEK,
    FUT_WOUND_TYPE,
    TISSUE_SUM_TOLERANCE,
    BodyLocation,
    ChangeFrequency,
    FieldProblem,
    InfectionSign,
    Laterality,
    NurseQuestionBack,
    PeriwoundSkin,
    PressureCategory,
    TissueComposition,
    WoundCreate,
    WoundInstructions,
    WoundObservation,
    WoundType,
    area_cm2,
    decode_observation,
    decode_wound,
    validate,
    validate_wound,
)

VENOUS = {
    "wound_type": "venous_leg_ulcer",
    "length_cm": 4.5,
    "width_cm": 3.0,
    "depth_cm": 0.3,
    "tissue": {"granulation": 60, "slough": 30, "epithelial": 10},
    "exudate_amount": "moderate",
    "exudate_type": "serous",
    "wound_edge": "attached",
    "periwound": ["macerated", "oedema"],
    "infection_signs": ["increased_pain", "warmth"],
    "odour": "mild",
    "pain": 6,
    "current_dressing": "Aquacel Ag + kortstraekkompression",
    "change_frequency": "three_times_weekly",
    "free_text": "Saaret er vokset siden sidst.",
    "nurse_question": "Skal vi fortsaette med soelvbandagen?",
    "urgent": False,
}


def decode(**changes: object) -> WoundObservation:
    body = {**VENOUS, **changes}
    return decode_observation(json.dumps({k: v for k, v in body.items() if v is not ...}))


def rules(problems: list[FieldProblem]) -> set[tuple[str, str]]:
    return {(p.field, p.rule) for p in problems}


def refused_at(body: dict[str, object]) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_observation(json.dumps(body))
    return str(caught.value)


def test_a_full_observation_decodes_and_is_consistent() -> None:
    obs = decode()
    assert obs.wound_type is WoundType.VENOUS_LEG_ULCER
    assert obs.tissue == TissueComposition(granulation=60, slough=30, epithelial=10)
    assert obs.periwound == {PeriwoundSkin.MACERATED, PeriwoundSkin.OEDEMA}
    assert obs.change_frequency is ChangeFrequency.THREE_TIMES_WEEKLY
    assert validate(obs) == []
    assert msgspec.json.decode(msgspec.json.encode(obs), type=WoundObservation) == obs


def test_only_the_wound_type_is_required() -> None:
    obs = decode_observation(b'{"wound_type": "trauma"}')
    assert validate(obs) == []
    assert area_cm2(obs) is None


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("length_cm", 100.5, "$.length_cm"),
        ("length_cm", -1, "$.length_cm"),
        ("width_cm", 250, "$.width_cm"),
        ("depth_cm", 31, "$.depth_cm"),
        ("pain", 11, "$.pain"),
        ("pain", -1, "$.pain"),
        ("pain", 5.5, "$.pain"),
        ("tissue", {"granulation": 101}, "$.tissue.granulation"),
        ("tissue", {"slough": -5}, "$.tissue.slough"),
        ("tissue", {"bone": 10}, "bone"),
        ("wound_type", "leg_ulcer", "$.wound_type"),
        ("pressure_category", "category_5", "$.pressure_category"),
        ("exudate_amount", "lots", "$.exudate_amount"),
        ("exudate_type", "bloody", "$.exudate_type"),
        ("wound_edge", "jagged", "$.wound_edge"),
        ("periwound", ["purple"], "$.periwound[0]"),
        ("infection_signs", ["warmth", "itching"], "$.infection_signs[1]"),
        ("odour", "foul", "$.odour"),
        ("change_frequency", "hourly", "$.change_frequency"),
        ("current_dressing", "x" * 501, "$.current_dressing"),
        ("current_dressing", "", "$.current_dressing"),
        ("free_text", "x" * 4001, "$.free_text"),
        ("nurse_question", "   ", "$.nurse_question"),
        ("nurse_question", "?" * 1001, "$.nurse_question"),
        ("urgent", "yes", "$.urgent"),
        ("lenght_cm", 3, "lenght_cm"),
    ],
)
def test_field_limits_name_the_field(field: str, value: object, where: str) -> None:
    assert where in refused_at({**VENOUS, field: value})


def test_the_wound_type_is_required() -> None:
    assert "wound_type" in refused_at({"pain": 3})


def test_repeated_findings_count_once() -> None:
    obs = decode(infection_signs=["odour", "odour", "fever"])
    assert obs.infection_signs == {InfectionSign.ODOUR, InfectionSign.FEVER}


@pytest.mark.parametrize("category", list(PressureCategory))
def test_pressure_category_accepted_for_pressure_ulcers(category: PressureCategory) -> None:
    obs = decode(
        wound_type="pressure_ulcer",
        pressure_category=category.value,
        depth_cm=None if category is PressureCategory.CATEGORY_1 else 0.5,
        tissue={"granulation": 50, "slough": 50}
        if category in (PressureCategory.UNSTAGEABLE, PressureCategory.CATEGORY_3)
        else {"granulation": 100},
    )
    assert validate(obs) == []


def test_pressure_ulcer_without_category() -> None:
    problems = validate(decode(wound_type="pressure_ulcer", tissue=None))
    assert rules(problems) == {("pressure_category", "required_for_pressure_ulcer")}


@pytest.mark.parametrize("wound_type", [t for t in WoundType if t is not WoundType.PRESSURE_ULCER])
def test_category_only_for_pressure_ulcers(wound_type: WoundType) -> None:
    problems = validate(decode(wound_type=wound_type.value, pressure_category="category_2"))
    assert rules(problems) == {("pressure_category", "only_for_pressure_ulcer")}
    assert wound_type.value in problems[0].message


def test_npiap_categories_against_tissue_and_depth() -> None:
    cat2 = decode(wound_type="pressure_ulcer", pressure_category="category_2")  # 30 % slough
    assert rules(validate(cat2)) == {("tissue", "category_excludes_slough_and_necrosis")}
    cat1 = decode(
        wound_type="pressure_ulcer", pressure_category="category_1", tissue=None, depth_cm=0.2
    )
    assert rules(validate(cat1)) == {("depth_cm", "category_1_is_intact_skin")}
    unstageable = decode(
        wound_type="pressure_ulcer",
        pressure_category="unstageable",
        tissue={"granulation": 90, "epithelial": 10},
    )
    assert rules(validate(unstageable)) == {("tissue", "unstageable_needs_slough_or_necrosis")}


@given(
    st.lists(st.integers(0, 100), min_size=4, max_size=4).filter(lambda p: sum(p) <= 400),
)
def test_tissue_must_make_100_within_rounding(shares: list[int]) -> None:
    granulation, slough, necrosis, epithelial = shares
    tissue = {
        "granulation": granulation,
        "slough": slough,
        "necrosis": necrosis,
        "epithelial": epithelial,
    }
    problems = rules(validate(decode(tissue=tissue)))
    off = abs(sum(shares) - 100) > TISSUE_SUM_TOLERANCE
    assert (("tissue", "tissue_sum") in problems) is off


def test_tissue_thirds_are_accepted_and_half_is_not() -> None:
    assert validate(decode(tissue={"granulation": 33, "slough": 33, "epithelial": 33})) == []
    problems = validate(decode(tissue={"granulation": 50}))
    assert rules(problems) == {("tissue", "tissue_sum")}
    assert "50" in problems[0].message


@pytest.mark.parametrize(
    ("missing", "kept"), [("width_cm", "length_cm"), ("length_cm", "width_cm")]
)
def test_length_and_width_come_together(missing: str, kept: str) -> None:
    obs = decode(**{missing: ...})
    assert rules(validate(obs)) == {(missing, "length_and_width_together")}
    assert area_cm2(obs) is None


def test_contradicting_findings() -> None:
    obs = decode(
        exudate_amount="none",
        exudate_type="purulent",
        infection_signs=["purulent_exudate", "odour"],
        odour="none",
        periwound=["intact", "erythema"],
    )
    assert rules(validate(obs)) == {
        ("exudate_type", "type_without_exudate"),
        ("infection_signs", "purulent_without_exudate"),
        ("infection_signs", "odour_contradiction"),
        ("periwound", "intact_excludes_findings"),
    }


def test_area_is_the_ellipse() -> None:
    assert area_cm2(decode(length_cm=4.0, width_cm=2.0)) == pytest.approx(2 * math.pi)


@given(st.floats(0, 100), st.floats(0, 100))
def test_area_is_symmetric_and_below_the_rectangle(length: float, width: float) -> None:
    obs = WoundObservation(wound_type=WoundType.TRAUMA, length_cm=length, width_cm=width)
    swapped = WoundObservation(wound_type=WoundType.TRAUMA, length_cm=width, width_cm=length)
    area = area_cm2(obs)
    assert area == pytest.approx(area_cm2(swapped))
    assert 0 <= area <= length * width


def test_every_wound_type_has_its_fut_code() -> None:
    assert set(FUT_WOUND_TYPE) == set(WoundType)
    codes = [c for c in FUT_WOUND_TYPE.values() if c is not None]
    assert sorted(codes, key=lambda c: int(c[2:])) == [f"TS{n}" for n in range(1, 15)]
    assert FUT_WOUND_TYPE[WoundType.PRESSURE_ULCER] == "TS6"
    assert FUT_WOUND_TYPE[WoundType.VENOUS_LEG_ULCER] == "TS7"
    assert FUT_WOUND_TYPE[WoundType.OTHER] is None


def test_change_frequencies_have_a_weekly_count() -> None:
    assert set(CHANGES_PER_WEEK) == set(ChangeFrequency)
    assert CHANGES_PER_WEEK[ChangeFrequency.EVERY_OTHER_DAY] == 3.5


# --- a new wound --------------------------------------------------------------------------

TODAY = date(2024, 5, 17)


def wound(**changes: object) -> WoundCreate:
    body = {"wound_type": "venous_leg_ulcer", "body_location": "lower_leg", "laterality": "left"}
    return decode_wound(json.dumps({**body, **changes}))


def test_a_new_wound() -> None:
    created = wound(onset="2024-03-01", location_detail="medial malleolus")
    assert created.onset == date(2024, 3, 1)
    assert created.laterality is Laterality.LEFT
    assert validate_wound(created, today=TODAY) == []
    assert validate_wound(wound(onset=TODAY.isoformat()), today=TODAY) == []


def test_onset_in_the_future_is_refused() -> None:
    problems = validate_wound(wound(onset="2024-05-18"), today=TODAY)
    assert rules(problems) == {("onset", "not_in_future")}


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"body_location": "elbow_pit"}, "$.body_location"),
        ({"laterality": "both"}, "$.laterality"),
        ({"onset": "17-05-2024"}, "$.onset"),
        ({"location_detail": "x" * 201}, "$.location_detail"),
        ({"patient_cpr": "0101011234"}, "patient_cpr"),
    ],
)
def test_wound_fields_name_the_field(changes: dict[str, object], where: str) -> None:
    with pytest.raises(
        msgspec.ValidationError, match=where.replace("$", r"\$").replace("[", r"\[")
    ):
        wound(**changes)


def test_sides_and_sites() -> None:
    heel = wound(wound_type="pressure_ulcer", body_location="heel", laterality="not_applicable")
    assert rules(validate_wound(heel, today=TODAY)) == {("laterality", "side_required")}
    sacrum = wound(wound_type="pressure_ulcer", body_location="sacrum", laterality="left")
    assert rules(validate_wound(sacrum, today=TODAY)) == {("laterality", "midline_site")}
    both_legs = wound(laterality="bilateral")
    assert validate_wound(both_legs, today=TODAY) == []


@pytest.mark.parametrize("site", list(BodyLocation))
def test_diabetic_foot_ulcers_are_on_the_foot(site: BodyLocation) -> None:
    created = WoundCreate(
        wound_type=WoundType.DIABETIC_FOOT_ULCER, body_location=site, laterality=Laterality.RIGHT
    )
    on_foot = site.value in {"ankle", "heel", "foot_dorsum", "foot_sole", "toe"}
    found = rules(validate_wound(created, today=TODAY))
    assert (("body_location", "diabetic_foot_on_foot") in found) is not on_foot


def test_venous_ulcer_on_the_sacrum_is_questioned() -> None:
    created = wound(body_location="sacrum", laterality="midline")
    assert rules(validate_wound(created, today=TODAY)) == {
        ("body_location", "venous_ulcer_on_lower_leg")
    }


# --- the specialist's reply and the nurse's question back ---------------------------------


def test_instructions() -> None:
    reply = msgspec.json.decode(
        json.dumps(
            {
                "cleansing": "Skyl med NaCl",
                "dressing": "Skum med soelv",
                "change_frequency": "twice_weekly",
                "compression": "Kortstraek 40 mmHg",
                "new_photos_in_days": 7,
                "hospital_visit": "within_a_week",
                "free_text": "Ring hvis feber.",
            }
        ),
        type=WoundInstructions,
    )
    assert reply.change_frequency is ChangeFrequency.TWICE_WEEKLY
    assert reply.offloading is None
    assert WoundInstructions().new_photos_in_days == 14
    assert WoundInstructions().hospital_visit.value == "no"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"new_photos_in_days": 0}, "$.new_photos_in_days"),
        ({"new_photos_in_days": 91}, "$.new_photos_in_days"),
        ({"hospital_visit": "tomorrow"}, "$.hospital_visit"),
        ({"dressing": " "}, "$.dressing"),
        ({"offloading": "x" * 501}, "$.offloading"),
        ({"dose": "5 mg"}, "dose"),
    ],
)
def test_instruction_limits_name_the_field(body: dict[str, object], where: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(json.dumps(body), type=WoundInstructions)
    assert where in str(caught.value)


def test_question_back() -> None:
    decoded = msgspec.json.decode(b'{"question": "Hvilken skumbandage?"}', type=NurseQuestionBack)
    assert decoded.question == "Hvilken skumbandage?"
    for bad in (b"{}", b'{"question": ""}', b'{"question": "\\n\\t "}'):
        with pytest.raises(msgspec.ValidationError, match="question"):
            msgspec.json.decode(bad, type=NurseQuestionBack)
