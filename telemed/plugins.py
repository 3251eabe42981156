"""Entry points of the outer packages (devices, ingest, alerts), loaded by name."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger("telemed.plugins")


def load(group: str) -> list[tuple[str, Any]]:
    """Load every entry point of a group, sorted by name.

    An entry point whose module is not in this installation (a slimmer deployment, say) is
    skipped with a warning; any other import error is raised, so that a broken module never
    goes unnoticed.
    """
    found = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            found.append((ep.name, ep.load()))
        except ModuleNotFoundError as exc:
            if exc.name and _module_of(ep).startswith(exc.name):
                log.warning(
                    "entry point %s:%s skipped: module %s is missing", group, ep.name, exc.name
                )
                continue
            raise
    return found


def _module_of(ep: EntryPoint) -> str:
    return ep.value.split(":", 1)[0]
