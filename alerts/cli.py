"""Commands of the alerts package: `telemed rules coverage`."""

from __future__ import annotations

import argparse
import sys

from telemed.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    rules = subparsers.add_parser("rules", help="the alert rules of the programs")
    commands = rules.add_subparsers(dest="rules_command", required=True)
    p = commands.add_parser(
        "coverage",
        help="list every program and stratum the catalogue accepts with the rules it gets; "
        "exit 1 if any has none (needs no database)",
    )
    p.set_defaults(func=cmd_rules_coverage)


def cmd_rules_coverage(args: argparse.Namespace, settings: Settings) -> int:
    """One line per program and stratum: `program stratum: rule, rule, ...`, or `NO RULES`
    with the reason; the exit status is 1 when any accepted stratum is not covered."""
    from alerts.rule_coverage import coverage

    lines = coverage()
    for line in lines:
        if line.problem is None:
            print(f"{line.program} {line.stratum}: {', '.join(line.rules)}")
        else:
            print(f"{line.program} {line.stratum}: NO RULES: {line.problem}")
    uncovered = sum(line.problem is not None for line in lines)
    if uncovered:
        print(f"{uncovered} of {len(lines)} accepted strata have no rules", file=sys.stderr)
        return 1
    print(f"all {len(lines)} accepted strata have rules", file=sys.stderr)
    return 0
