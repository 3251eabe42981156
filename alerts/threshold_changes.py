"""A specialist's change of a patient's thresholds, and why one is refused. Pure; no database.

A change sets a field to a `value`, `reset`s it to the program default, or `remove`s it on
purpose with a `removal_reason`. A null or a missing value is never read as "no limit": a page
that failed to read what was typed must not be able to remove a red limit. Each limit must lie
within the metric's plausible range (telemed.numbers.metric_spec), and the merged rule must
keep its bands in order. Every refusal names the field (`<rule_key>.<field>`, or
`changes[i].…` for a change that names no known field) with a stable code (docs/errors.md).
"""

from __future__ import annotations

import types
import typing
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from alerts.defaults import OVERRIDABLE, InvalidOverride, Override, OverrideValue, effective_rules
from alerts.rules import AbsoluteRule, Bands, BaselineRule, ChangeRule, InrRule, MissedRule, Rule
from alerts.schedule import Schedule
from telemed import numbers
from telemed.errors import FieldProblem, Invalid


class ThresholdChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One field of one rule: set it to `value`, `reset` it to the program default, or `remove`
    it (a limit; for `enabled`, the whole rule) on purpose, saying why in `removal_reason`."""

    rule_key: Annotated[str, Meta(min_length=1, max_length=100)]
    field: Annotated[str, Meta(min_length=1, max_length=50)]
    value: OverrideValue | msgspec.UnsetType = msgspec.UNSET
    reset: bool = False
    remove: bool = False
    removal_reason: Annotated[str, Meta(max_length=1000)] | None = None


class ThresholdsUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=1000)]
    changes: Annotated[list[ThresholdChange], Meta(min_length=1, max_length=50)]


def holder_type(rule: Rule) -> type[msgspec.Struct]:
    """The Struct whose fields an override sets: the bands, the schedule, or the rule."""
    if isinstance(rule, AbsoluteRule):
        return Bands
    if isinstance(rule, MissedRule):
        return Schedule
    return type(rule)


def removable(rule: Rule, field: str) -> bool:
    """Whether a field may be left without a value: a limit the rule can do without, or
    `enabled` (switching the whole rule off)."""
    if field == "enabled":
        return True
    info = {f.name: f for f in msgspec.structs.fields(holder_type(rule))}.get(field)
    if info is None:
        return False
    annotation = info.type
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return type(None) in typing.get_args(annotation)
    return False


def plausible_bounds(rule: Rule, field: str) -> numbers.NumberSpec | None:
    """The range a value of this field must lie in, from the metric's plausible range."""
    if isinstance(rule, AbsoluteRule | InrRule):
        return numbers.metric_spec(rule.metric)
    if isinstance(rule, BaselineRule) and field.endswith(("_drop", "_rise")):
        if rule.mode == "percent":
            return numbers.NumberSpec(unit="%", min=0, max=100, min_exclusive=True)
        return _difference(rule.metric)
    if isinstance(rule, ChangeRule) and field == "delta":
        return _difference(rule.metric)
    return None


def _difference(metric: str) -> numbers.NumberSpec:
    """A difference between two values of the metric: above 0, at most its plausible span."""
    span = numbers.metric_spec(metric)
    if span.min is None or span.max is None:
        raise ValueError(f"metric {metric!r} has no plausible range to bound a change by")
    return msgspec.structs.replace(span, min=0, max=span.max - span.min, min_exclusive=True)


def _code_of(exc: InvalidOverride, rule: Rule) -> str:
    text = str(exc)
    if "set no limit" in text or "needs a drop or rise limit" in text:
        return "no_limit_left"
    if "whole number" in text:
        return "not_whole"
    if "needs a number" in text or "finite" in text:
        return "not_a_number"
    if "cannot be removed" in text:
        return "not_removable"
    if isinstance(rule, AbsoluteRule | InrRule) or "must be above" in text:
        return "bands_out_of_order"
    return "invalid"


def _check_one(i: int, change: ThresholdChange, rule: Rule) -> FieldProblem | None:
    name = f"{change.rule_key}.{change.field}"
    chosen = sum((change.value is not msgspec.UNSET, change.reset, change.remove))
    if change.reset and change.value is not msgspec.UNSET:
        return FieldProblem(f"changes[{i}].value", "a reset takes no value", "reset_takes_no_value")
    if chosen > 1:
        return FieldProblem(name, "give one of value, reset and remove", "invalid")
    if change.remove:
        if not removable(rule, change.field):
            return FieldProblem(name, "this value cannot be removed", "not_removable")
        if not (change.removal_reason or "").strip():
            return FieldProblem(
                f"{name}.removal_reason",
                "say why the limit is removed",
                "removal_reason_required",
            )
        return None
    if change.reset:
        return None
    if change.value is msgspec.UNSET or change.value is None:
        return FieldProblem(
            name,
            "a value is required; to remove the limit, send remove with a removal_reason",
            "value_required",
        )
    if change.field == "enabled":
        if change.value is False:
            return FieldProblem(
                name,
                "switching a rule off is a removal: send remove with a removal_reason",
                "value_required",
            )
        return None
    spec = plausible_bounds(rule, change.field)
    if spec is not None and not isinstance(change.value, bool):
        problem = numbers.check(name, change.value, spec)
        if problem is not None and problem.code == "out_of_range":
            text = f"outside the plausible range of {rule.metric}: {problem.message}"
            return FieldProblem(name, text, "outside_plausible_range", spec.params())
        if problem is not None:
            return problem
    return None


def stored_value(change: ThresholdChange) -> OverrideValue:
    """What the override row holds: None for a removed limit, False for a rule switched off."""
    if change.remove:
        return False if change.field == "enabled" else None
    return None if change.value is msgspec.UNSET else change.value


def validate_changes(
    defaults_by_key: dict[str, Rule],
    current: list[Override],
    changes: list[ThresholdChange],
    *,
    set_by: str,
    set_at: datetime,
    reason: str,
) -> None:
    """Raise Invalid naming each field that is unknown, not explicit, implausible, or that makes
    its rule invalid once merged with the overrides in force."""
    problems: list[FieldProblem] = []
    merged = {(o.rule_key, o.field): o for o in current}
    for i, change in enumerate(changes):
        rule = defaults_by_key.get(change.rule_key)
        if rule is None:
            where = f"changes[{i}].rule_key"
            problems.append(FieldProblem(where, "no such rule for the patient", "unknown_rule"))
            continue
        allowed = ("enabled", *OVERRIDABLE[type(rule)])
        if change.field not in allowed:
            problems.append(
                FieldProblem(f"changes[{i}].field", f"one of {', '.join(allowed)}", "unknown_field")
            )
            continue
        problem = _check_one(i, change, rule)
        if problem is not None:
            problems.append(problem)
            continue
        if change.reset:
            merged.pop((change.rule_key, change.field), None)
            continue
        merged[(change.rule_key, change.field)] = Override(
            change.rule_key, change.field, stored_value(change), set_by, set_at, reason
        )
    if not problems:
        for key in sorted({c.rule_key for c in changes}):
            overrides = [o for (k, _), o in merged.items() if k == key]
            try:
                effective_rules([defaults_by_key[key]], overrides)
            except InvalidOverride as exc:
                code = _code_of(exc, defaults_by_key[key])
                named = [c.field for c in changes if c.rule_key == key and c.field in exc.fields]
                for name in named or [c.field for c in changes if c.rule_key == key]:
                    problems.append(FieldProblem(f"{key}.{name}", str(exc), code))
    if problems:
        raise Invalid("the thresholds are not valid", problems)
