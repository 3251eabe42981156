"""Default rule sets per program and stratum, their JSON form, and per-patient overrides.

Every value is a starting point a specialist can change per patient; the comment beside each
names where it comes from (see docs/alert-rules.md and CLINICAL.md). Programs, strata, the
accepted INR ranges with their urgent bounds and the measuring schedules come from the clinical
catalogue (`telemed.catalogue`): a stratum it accepts always has a rule set here, one it does not
is UnknownStratum.
"""

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec

from alerts.rules import (
    AbsoluteRule,
    Bands,
    BaselineRule,
    ChangeRule,
    InrRule,
    MissedRule,
    Rule,
    Sustain,
    validate_rule_set,
)

# default_rules raises the catalogue's UnknownProgram and UnknownStratum; callers catch them here.
from telemed.catalogue.programs import (
    UnknownProgram as UnknownProgram,
)
from telemed.catalogue.programs import (
    UnknownStratum,
    check_stratum,
    inr_range,
    parse_ak_stratum,
)
from telemed.catalogue.schedules import default_schedules


class InvalidOverride(ValueError):
    """An override that does not fit its rule; `rule_key` and `fields` say which, when known."""

    def __init__(self, message: str, *, rule_key: str | None = None, fields: Sequence[str] = ()):
        super().__init__(message)
        self.rule_key = rule_key
        self.fields = tuple(fields)


# A second reading in the yellow band before anyone is paged: a cold finger or a loose probe
# gives one low SpO2 or an odd pulse, and patients are told to re-measure. 192 h lets the
# weekly phase of the schedule (every 7 days, with a day's slack) still sustain. Red is at once.
_RECHECK = Sustain(count=2, within_hours=192.0)

_SPO2_BANDS = {
    # CLINICAL.md severe-stratum defaults; BTS oxygen guideline targets 88–92 % in patients at
    # risk of hypercapnia, so below 88 is red and below 90 (the home-monitoring exacerbation
    # marker) yellow.
    "severe": Bands(red_low=88.0, yellow_low=90.0),
    # CLINICAL.md mild/moderate: SpO2 < 90 matched exacerbations in home-monitoring studies
    # (red); yellow < 92 sits between that and TELBIL's < 95 flag for chronic lung disease.
    "moderate": Bands(red_low=90.0, yellow_low=92.0),
    "mild": Bands(red_low=90.0, yellow_low=92.0),
}

# TELBIL (Danish tele-monitored COPD trial) flags pulse < 50 or > 100 (yellow); red at < 40 or
# > 120 per CLINICAL.md's starting defaults.
_PULSE = Bands(red_low=40.0, yellow_low=50.0, yellow_high=100.0, red_high=120.0)
# CLINICAL.md: yellow > 24, red > 30 (TELBIL flags > 24); TELBIL also flags < 12 (yellow).
_RESP_RATE = Bands(yellow_low=12.0, yellow_high=24.0, red_high=30.0)
# CLINICAL.md: yellow > 37.5, red > 38.5 (TELBIL flags > 37).
_TEMPERATURE = Bands(yellow_high=37.5, red_high=38.5)

# Baselines are the median of the patient's own readings (CLINICAL.md: "median of the last 14
# days is robust and simple"). The window is 28 days because the COPD schedule drops to weekly
# after 14 days: 14 days would then hold two readings, 28 days holds at least three.
_BASELINE_DAYS = 28.0
_BASELINE_MIN = 3


def _copd_rules(stratum: str) -> list[Rule]:
    schedules = default_schedules("copd", stratum)
    return [
        AbsoluteRule("spo2", _SPO2_BANDS[stratum], sustain=_RECHECK),
        AbsoluteRule("pulse", _PULSE, sustain=_RECHECK),
        AbsoluteRule("resp_rate", _RESP_RATE),
        AbsoluteRule("temperature", _TEMPERATURE),
        # BTS oxygen guideline: act on a fall of >= 3 points from the patient's usual SpO2.
        BaselineRule(
            "spo2",
            "points",
            yellow_drop=3.0,
            window_days=_BASELINE_DAYS,
            min_readings=_BASELINE_MIN,
        ),
        # CLINICAL.md: FEV1 or PEF >= 20 % under baseline yellow, >= 30 % red (FUT RELGAL/RELRAL
        # style relative limits).
        BaselineRule(
            "fev1",
            "percent",
            yellow_drop=20.0,
            red_drop=30.0,
            window_days=_BASELINE_DAYS,
            min_readings=_BASELINE_MIN,
        ),
        BaselineRule(
            "pef",
            "percent",
            yellow_drop=20.0,
            red_drop=30.0,
            window_days=_BASELINE_DAYS,
            min_readings=_BASELINE_MIN,
        ),
        # CLINICAL.md: CAT rise >= 4 points over baseline (the clinically important difference
        # is about 2 points, so 4 is a clear worsening rather than noise).
        BaselineRule(
            "cat", "points", yellow_rise=4.0, window_days=_BASELINE_DAYS, min_readings=_BASELINE_MIN
        ),
        # CLINICAL.md: weight change >= 2 kg in 3 days, either way (fluid), yellow.
        ChangeRule("weight", delta=2.0, within_hours=72.0),
        *(MissedRule(metric, schedule) for metric, schedule in schedules.items()),
    ]


def parse_inr_range(stratum: str) -> tuple[float, float]:
    """'2.0-3.0' -> (2.0, 3.0), whether or not the catalogue accepts the range."""
    parsed = parse_ak_stratum(stratum)
    if parsed is None:
        raise UnknownStratum("ak", stratum, "is not an INR range written low-high")
    return parsed


def _ak_rules(stratum: str) -> list[Rule]:
    # The range and its urgent bounds come from the catalogue's policy (urgent >= 5.0: Danish
    # labs phone results above 5.0; urgent <= 1.5, or low - 0.5 for ranges starting below 2.0).
    accepted = inr_range(stratum)
    inr = InrRule(
        low=accepted.low,
        high=accepted.high,
        urgent_low=accepted.urgent_low,
        urgent_high=accepted.urgent_high,
    )
    schedules = default_schedules("ak", stratum)
    return [inr, *(MissedRule(metric, schedule) for metric, schedule in schedules.items())]


def default_rules(program: str, stratum: str) -> list[Rule]:
    """The default rule set of a program and stratum; UnknownProgram or UnknownStratum for a
    pair the catalogue does not accept."""
    check_stratum(program, stratum)
    rules = _copd_rules(stratum) if program == "copd" else _ak_rules(stratum)
    validate_rule_set(rules)
    return rules


_RULES_DECODER = msgspec.json.Decoder(list[Rule])


def rules_to_json(rules: Sequence[Rule]) -> bytes:
    return msgspec.json.encode(list(rules))


def rules_from_json(data: bytes | str) -> list[Rule]:
    """Decode a stored rule set; the rules' own validation runs (msgspec.ValidationError)."""
    return _RULES_DECODER.decode(data)


OverrideValue = bool | float | None


class Override(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One per-patient change of one field of one rule; `enabled` switches a rule off or on."""

    rule_key: str
    field: str
    value: OverrideValue
    set_by: str
    set_at: datetime
    reason: str


class FieldValue(msgspec.Struct, frozen=True):
    field: str
    value: OverrideValue
    source: Literal["default", "override"]
    default: OverrideValue
    set_by: str | None = None
    set_at: datetime | None = None
    reason: str | None = None


class EffectiveRule(msgspec.Struct, frozen=True):
    rule: Rule
    enabled: bool
    fields: tuple[FieldValue, ...]

    @property
    def key(self) -> str:
        return self.rule.key


# Fields a per-patient override may set, per rule kind; None in a value removes that limit.
OVERRIDABLE: dict[type, tuple[str, ...]] = {
    AbsoluteRule: ("red_low", "yellow_low", "yellow_high", "red_high"),
    BaselineRule: (
        "yellow_drop",
        "red_drop",
        "yellow_rise",
        "red_rise",
        "window_days",
        "min_readings",
        "max_readings",
    ),
    ChangeRule: ("delta", "within_hours"),
    InrRule: ("low", "high", "urgent_low", "urgent_high"),
    MissedRule: ("every_n_days", "grace_hours"),
}
_INTEGER_FIELDS = {"min_readings", "max_readings", "every_n_days"}
_OPTIONAL_FIELDS = {
    "red_low",
    "yellow_low",
    "yellow_high",
    "red_high",
    "yellow_drop",
    "red_drop",
    "yellow_rise",
    "red_rise",
}


def _holder(rule: Rule) -> msgspec.Struct:
    if isinstance(rule, AbsoluteRule):
        return rule.bands
    if isinstance(rule, MissedRule):
        return rule.schedule
    return rule


def _coerce(override: Override) -> OverrideValue:
    value, name = override.value, override.field

    def refused(problem: str) -> InvalidOverride:
        message = f"override of {override.rule_key}.{name} {problem}"
        return InvalidOverride(message, rule_key=override.rule_key, fields=(name,))

    if isinstance(value, bool):
        raise refused(f"needs a number, got {value}")
    if value is None:
        if name not in _OPTIONAL_FIELDS:
            raise refused("cannot be removed")
        return None
    if not math.isfinite(value):
        raise refused("must be finite")
    if name in _INTEGER_FIELDS:
        if value != int(value):
            raise refused(f"must be a whole number, got {value}")
        return int(value)
    return float(value)


def _latest(overrides: Sequence[Override]) -> dict[tuple[str, str], Override]:
    latest: dict[tuple[str, str], Override] = {}
    for item in sorted(overrides, key=lambda o: o.set_at):
        latest[(item.rule_key, item.field)] = item
    return latest


def effective_rules(defaults: Sequence[Rule], overrides: Sequence[Override]) -> list[EffectiveRule]:
    """Merge per-patient overrides (latest `set_at` per rule and field wins) into the defaults.

    Raises InvalidOverride for an unknown rule key or field, a value of the wrong type, or a
    merged rule that fails its own validation (e.g. a yellow limit moved past the red one).
    """
    latest = _latest(overrides)
    by_key = {rule.key: rule for rule in defaults}
    for key, name in latest:
        if key not in by_key:
            raise InvalidOverride(f"override for unknown rule {key!r}", rule_key=key)
        if name != "enabled" and name not in OVERRIDABLE[type(by_key[key])]:
            raise InvalidOverride(
                f"rule {key!r} has no overridable field {name!r}", rule_key=key, fields=(name,)
            )
    result: list[EffectiveRule] = []
    for rule in defaults:
        holder = _holder(rule)
        fields: list[FieldValue] = []
        changes: dict[str, OverrideValue] = {}
        enabled = True
        for name in ("enabled", *OVERRIDABLE[type(rule)]):
            default: OverrideValue = True if name == "enabled" else getattr(holder, name)
            item = latest.get((rule.key, name))
            if item is None:
                fields.append(FieldValue(name, default, "default", default))
                continue
            if name == "enabled":
                if not isinstance(item.value, bool):
                    raise InvalidOverride(
                        f"override of {rule.key}.enabled needs true or false",
                        rule_key=rule.key,
                        fields=("enabled",),
                    )
                value: OverrideValue = item.value
                enabled = item.value
            else:
                value = _coerce(item)
                changes[name] = value
            fields.append(
                FieldValue(name, value, "override", default, item.set_by, item.set_at, item.reason)
            )
        result.append(EffectiveRule(_apply(rule, changes), enabled, tuple(fields)))
    return result


def _apply(rule: Rule, changes: dict[str, OverrideValue]) -> Rule:
    """The rule with `changes` made to its holder (`_holder`: the bands, the schedule or the
    rule itself), validated again."""
    if not changes:
        return rule
    structs = msgspec.structs
    try:
        if isinstance(rule, AbsoluteRule):
            return structs.replace(rule, bands=structs.replace(rule.bands, **changes))
        if isinstance(rule, MissedRule):
            return structs.replace(rule, schedule=structs.replace(rule.schedule, **changes))
        return structs.replace(rule, **changes)
    except ValueError as exc:
        raise InvalidOverride(
            f"overrides make rule {rule.key!r} invalid: {exc}",
            rule_key=rule.key,
            fields=tuple(changes),
        ) from exc


def active_rules(effective: Sequence[EffectiveRule]) -> list[Rule]:
    """The rules to evaluate: the effective ones not switched off."""
    return [item.rule for item in effective if item.enabled]


def effective_per_rule(
    defaults: Sequence[Rule], overrides: Sequence[Override]
) -> tuple[list[EffectiveRule], list[InvalidOverride]]:
    """Like `effective_rules`, but rule by rule and forgiving: overrides of keys not in
    `defaults` (another program's rules) are left out, and a rule whose overrides no longer fit
    (the stratum changed since they were set, say) stays at its default, its error returned."""
    by_key: dict[str, list[Override]] = {}
    keys = {rule.key for rule in defaults}
    for item in overrides:
        if item.rule_key in keys:
            by_key.setdefault(item.rule_key, []).append(item)
    result: list[EffectiveRule] = []
    problems: list[InvalidOverride] = []
    for rule in defaults:
        try:
            result.extend(effective_rules([rule], by_key.get(rule.key, [])))
        except InvalidOverride as exc:
            problems.append(exc)
            result.extend(effective_rules([rule], []))
    return result, problems
