"""The forms' one number reader (static/js/numbers.js), run by Node against the table of cases in
tests/number_cases.json with the specs the server sends the pages; and the server's check of
the numbers that arrive (telemed.numbers.check)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from telemed import numbers
from telemed.settings import REPO_ROOT

CASES = json.loads((Path(__file__).parent / "number_cases.json").read_text())["cases"]
READER = REPO_ROOT / "app" / "web" / "static" / "js" / "numbers.js"
RUN = """
const reader = require(process.argv[1]);
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(input.map((c) => reader.parse(c.text, c.spec))));
"""


def spec_of(case: dict) -> dict:
    return case["spec"] if isinstance(case["spec"], dict) else numbers.for_page()[case["spec"]]


@pytest.fixture(scope="module")
def results() -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/web-assets installs it)")
    stdin = json.dumps([{"text": c["text"], "spec": spec_of(c)} for c in CASES])
    out = subprocess.run(
        [node, "-e", RUN, str(READER)], input=stdin, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[repr(c["text"]) for c in CASES])
def test_the_reader_reads_or_refuses_with_a_code(results, index):
    case, got = CASES[index], results[index]
    if "code" in case:
        assert got["ok"] is False and got["code"] == case["code"], got
    else:
        assert got == {"ok": True, "value": case["value"]}


def test_every_refusal_code_the_reader_gives_has_a_text_and_is_documented():
    from app.web.texts import TEXT

    codes = {c["code"] for c in CASES if "code" in c}
    doc = (REPO_ROOT / "docs" / "errors.md").read_text()
    for code in codes:
        assert f"error.{code}" in TEXT, code
        assert f"`{code}`" in doc, code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (17.5, None),
        (200, None),
        (None, None),
        (0, "out_of_range"),
        (200.5, "out_of_range"),
        (math.nan, "not_a_number"),
        (math.inf, "not_a_number"),
        (True, "not_a_number"),
        ("17,5", "not_a_number"),
    ],
)
def test_the_server_checks_a_dose_by_the_same_spec(value, code):
    problem = numbers.check("fields.weekly_dose_mg", value, numbers.SPECS["dose.weekly_mg"])
    assert (problem.code if problem else None) == code
    if problem:
        assert problem.field == "fields.weekly_dose_mg"
        assert problem.params == {"min": 0, "max": 200.0, "unit": "mg"}


def test_pain_and_plausible_ranges_on_the_server():
    pain = numbers.SPECS["wound.pain"]
    assert numbers.check("pain", 5.5, pain).code == "not_whole"
    assert numbers.check("pain", 10, pain) is None
    spo2 = numbers.metric_spec("spo2", required=True)
    assert numbers.check("spo2", None, spo2).code == "required"
    assert numbers.check("spo2", 49.9, spo2).code == "out_of_range"
    assert numbers.check("spo2", 50, spo2) is None


CODES = {"required", "not_a_number", "wrong_unit", "wrong_scale", "ambiguous_number",
         "out_of_range", "not_whole"}  # fmt: skip


def _what_was_typed(text: str, spec: dict) -> float:
    """The number a person typed, read the plain way: the field's unit or the scale's
    denominator taken off, a decimal comma made a point."""
    text = " ".join(text.replace("\u2212", "-").split()).lower()
    if spec.get("scale") and text.endswith(f"/{spec['scale']}"):
        text = text.rsplit("/", 1)[0].strip()
    for unit in sorted(
        [*spec.get("units", []), spec.get("unit", "").lower()], key=len, reverse=True
    ):
        if unit and text.endswith(unit):
            text = text[: -len(unit)].strip()
            break
    return float(text.replace(",", "."))


def test_whatever_is_typed_the_reader_gives_the_number_typed_or_a_code():
    """Thousands of random texts through the reader: it gives the very number typed, within
    the field's bounds, or refuses with a known code; never NaN, never another number."""
    import random

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rng = random.Random(12)
    parts = ["1", "7", "0", "5", "10", ",", ".", " ", "-", "\u2212", "/", "cm", "mg", "mm", "%",
             "e", "x", "nan", "°C", "10", "00", "\u00a0", "\x00", "a", "g"]  # fmt: skip
    specs = numbers.for_page()
    names = ["dose.weekly_mg", "wound.length_cm", "wound.pain", "metric.spo2", "metric.inr"]
    cases = []
    for _ in range(4000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        cases.append({"text": text, "spec": specs[rng.choice(names)]})
    out = subprocess.run(
        [node, "-e", RUN, str(READER)], input=json.dumps(cases), capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    accepted = 0
    for case, got in zip(cases, json.loads(out.stdout), strict=True):
        spec, text = case["spec"], case["text"]
        if not got["ok"]:
            assert got["code"] in CODES, (text, got)
            continue
        if got["value"] is None:
            assert text.replace("\u00a0", " ").strip() == "", (text, got)
            continue
        accepted += 1
        value = got["value"]
        assert math.isfinite(value) and spec["min"] <= value <= spec["max"], (text, got)
        assert value == _what_was_typed(text, spec), (text, got)
    assert accepted > 100  # the texts were not all refused
