"""requirements.lock and pyproject.toml read side by side: what pyproject.toml asks for, what the
lock pins, and the packages a set of requirements needs, followed through the requirements of
the installed (locked) packages. Used by tests/test_pins.py and tests/test_packaging.py."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from telemed.settings import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
RUNTIME_LOCK = REPO_ROOT / "requirements-runtime.lock"
PYPROJECT = REPO_ROOT / "pyproject.toml"
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Locked:
    name: str  # canonical
    version: str
    hashes: tuple[str, ...]

    def requirement_line(self) -> str:
        return f"{self.name}=={self.version} " + " ".join(f"--hash={h}" for h in self.hashes)


def locked(path: Path = LOCK) -> dict[str, Locked]:
    """A lock's entries by canonical name: `name==version \\` and its `--hash=` lines."""
    entries: dict[str, Locked] = {}
    name = version = None
    hashes: list[str] = []

    def close() -> None:
        if name is not None:
            entries[name] = Locked(name, version, tuple(hashes))  # type: ignore[arg-type]

    for line in path.read_text().splitlines():
        if match := _ENTRY.match(line):
            close()
            name, version, hashes = canonicalize_name(match[1]), match[2], []
        hashes += _HASH.findall(line)
    close()
    return entries


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def declared(*extras: str) -> list[Requirement]:
    """The project's requirements, those of the named extras, in pyproject.toml's order."""
    project = pyproject()["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


def build_requirements() -> list[Requirement]:
    return [Requirement(t) for t in pyproject()["build-system"]["requires"]]


def all_extras() -> list[str]:
    return list(pyproject()["project"].get("optional-dependencies", {}))


def _applies(req: Requirement, extra: str) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": extra})


def closure(roots: Iterable[Requirement]) -> dict[str, set[Requirement]]:
    """Every distribution that `roots` need, through the requirements of the installed
    distributions (their extras included), mapped to the requirements made on it. A name that
    is not installed is kept with no further requirements followed."""
    needed: dict[str, set[Requirement]] = {}
    seen: set[tuple[str, str]] = set()
    todo = [r for r in roots if _applies(r, "")]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        needed.setdefault(name, set()).add(req)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            try:
                requires = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                break
            todo += [sub for sub in map(Requirement, requires) if _applies(sub, extra)]
    return needed
