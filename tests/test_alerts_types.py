"""Values the alert rules take are of the type they declare: a stored reading's comparator is
one the rules know or the reading is refused loudly, counts stay whole numbers, and an
override's refusal names the fields it was about. No database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from alerts.defaults import InvalidOverride, Override, effective_rules
from alerts.evaluation import job_for
from alerts.hooks import rule_set
from alerts.rules import (
    COMPARATORS,
    AbsoluteRule,
    Bands,
    HistoryNeed,
    InrRule,
    Obs,
    as_comparator,
)
from alerts.thresholds import _kind
from telemed.readings import StoredReading

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _reading(comparator: str | None) -> StoredReading:
    return StoredReading(
        measured_at=T0,
        received_at=T0,
        patient_id=uuid.uuid4(),
        metric="inr",
        value=1.0,
        unit="{INR}",
        comparator=comparator,
        source="device",
        origin="dev-1",
        message_id="m-1",
    )


@pytest.mark.parametrize("text", [None, *COMPARATORS])
def test_known_comparators_pass(text: str | None) -> None:
    assert as_comparator(text) == text


@pytest.mark.parametrize("text", ["=", "", "<<", "≤", " <", "lt"])
def test_an_unknown_comparator_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="unknown comparator") as raised:
        as_comparator(text)
    assert repr(text) in str(raised.value)


def test_a_reading_with_an_unknown_comparator_is_not_judged_as_if_censored() -> None:
    """An Obs is not validated when built in code: before, "=" passed into it unchecked and
    an INR rule judged the reading as censored (red)."""
    rules = rule_set("ak", [InrRule(low=2.0, high=3.0)])
    with pytest.raises(ValueError, match="unknown comparator '='"):
        job_for(_reading("="), [rules])


def test_a_censored_reading_keeps_its_comparator() -> None:
    rules = rule_set("ak", [InrRule(low=2.0, high=3.0)])
    job = job_for(_reading("<"), [rules])
    assert job.obs == Obs("inr", 1.0, T0, "<")


def test_merged_history_needs_keep_counts_whole() -> None:
    merged = HistoryNeed(latest=2, latest_hours=6.0).merge(HistoryNeed(latest=1, baseline_max=4))
    assert merged == HistoryNeed(latest=2, latest_hours=6.0, baseline_max=4)
    assert type(merged.latest) is int and type(merged.baseline_max) is int
    assert msgspec.json.decode(msgspec.json.encode(merged), type=HistoryNeed) == merged


def test_rule_kinds_are_frozen_like_their_base() -> None:
    rule = AbsoluteRule("spo2", Bands(red_low=88.0))
    with pytest.raises(AttributeError):
        rule.metric = "pulse"  # type: ignore[misc]  # the point: a frozen rule refuses this
    assert _kind(rule) == "absolute"
    assert _kind(InrRule(low=2.0, high=3.0)) == "inr"


def test_an_override_that_breaks_the_rule_names_its_fields() -> None:
    rule = AbsoluteRule("spo2", Bands(red_low=88.0, yellow_low=90.0))
    late = Override("absolute:spo2", "red_low", 95.0, "u", T0, "typo")
    with pytest.raises(InvalidOverride) as raised:
        effective_rules([rule], [late])
    assert raised.value.rule_key == "absolute:spo2"
    assert raised.value.fields == ("red_low",)
