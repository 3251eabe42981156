"""Exact pins where the code depends on a library's internals, and a lock file that agrees with
pyproject.toml.

A library whose private code, wording or measured cost the project relies on is pinned to the
one version that code was written and tested against (pyproject.toml and requirements.lock),
and an installed version other than the pin fails here, naming both. What each pin protects is
listed in INTERNALS; docs/deployment.md ("Installing") says the same.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from packaging.utils import canonicalize_name

from telemed.settings import REPO_ROOT
from tests import lockfile

INTERNALS = {
    "paho-mqtt": "ingest/paho_fast.py replaces paho's private Properties in paho.mqtt._packet, "
    "overrides the private Client._sock_recv, _handle_publish, _send_pingreq, _handle_pingresp "
    "and _handle_connack and the public loop_read and loop_misc, and clears the private _ping_t "
    "(the PINGRESP awaited) while reading is held",
    "msgspec": "telemed/errors.py reads msgspec's validation messages to give each refusal its "
    "code (tests/test_error_codes.py holds each wording)",
    "pillow": "telemed/wounds/images.py bounds a photo's memory with decode costs measured on "
    "this build, and telemed/wounds/pngbands.py hands Pillow's PNG decoder band PNGs of its own",
    "pillow-heif": "telemed/wounds/images.py bounds a HEIC decode's memory with the cost "
    "measured on this build (its libheif)",
}


def _pin(name: str) -> str | None:
    for req in lockfile.declared():
        if canonicalize_name(req.name) == name:
            specs = list(req.specifier)
            if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
                return specs[0].version
            return None
    return None


@pytest.mark.parametrize("name", sorted(INTERNALS))
def test_a_library_whose_internals_are_used_is_pinned_exactly_and_installed_at_the_pin(name):
    pin = _pin(name)
    assert pin, f"{name} must be pinned with == in pyproject.toml: {INTERNALS[name]}"
    entry = lockfile.locked().get(name)
    assert entry and entry.version == pin, (
        f"{name}: pyproject.toml pins {pin}, requirements.lock has "
        f"{entry.version if entry else 'none'}: run scripts/lock"
    )
    installed = metadata.version(name)
    if installed != pin:
        pytest.fail(
            f"{name} {installed} is installed, but the code was written and tested against "
            f"{name} {pin}, the exact pin: {INTERNALS[name]}. Install the lock "
            f"(scripts/bootstrap), or check that code against {installed} and move the pin.",
            pytrace=False,
        )


def test_paho_fast_is_written_for_the_pin_and_refuses_any_other_paho():
    import paho.mqtt

    from ingest import paho_fast

    assert _pin("paho-mqtt") == paho_fast.WRITTEN_FOR == paho.mqtt.__version__
    # The worker imports it: with another paho it does not start, and says why.
    other = "import paho.mqtt; paho.mqtt.__version__ = '2.1.0'; import ingest.paho_fast"
    run = subprocess.run(
        [sys.executable, "-c", other], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert "paho-mqtt 2.2.0, but paho-mqtt 2.1.0 is installed" in run.stderr, run.stderr


def test_the_lock_agrees_with_pyproject_toml():
    """What pyproject.toml asks for (dependencies, every extra, the build backend) is exactly
    what requirements.lock holds: each requirement met by its locked version, every package
    those need locked, and nothing locked that none of them needs."""
    lock = lockfile.locked()
    roots = [*lockfile.declared(*lockfile.all_extras()), *lockfile.build_requirements()]
    problems = []
    for req in roots:
        entry = lock.get(canonicalize_name(req.name))
        if entry is None:
            problems.append(f"pyproject.toml asks for {req}, which requirements.lock lacks")
        elif not req.specifier.contains(entry.version, prereleases=True):
            problems.append(f"pyproject.toml asks for {req}, requirements.lock has {entry.version}")
    needed = lockfile.closure(roots)
    for name, reqs in sorted(needed.items()):
        entry = lock.get(name)
        if entry is None:
            problems.append(f"{name} is needed ({', '.join(map(str, reqs))}) but not locked")
            continue
        for req in reqs:
            if not req.specifier.contains(entry.version, prereleases=True):
                problems.append(f"{req} is not met by the locked {name} {entry.version}")
    for name in sorted(set(lock) - set(needed)):
        problems.append(f"requirements.lock holds {name}, which nothing in pyproject.toml needs")
    for name, entry in sorted(lock.items()):
        if not entry.hashes:
            problems.append(f"{name} has no hash in requirements.lock")
    assert not problems, "run scripts/lock:\n" + "\n".join(problems)


def test_the_run_time_lock_is_the_locked_run_time_part():
    """requirements-runtime.lock (what a built wheel is installed with) holds exactly what the
    project's own requirements need, at the versions and hashes of requirements.lock."""
    full = lockfile.locked()
    runtime = lockfile.locked(lockfile.RUNTIME_LOCK)
    needed = set(lockfile.closure(lockfile.declared()))
    assert set(runtime) == needed, (
        f"run scripts/lock: missing {sorted(needed - set(runtime))}, "
        f"not needed {sorted(set(runtime) - needed)}"
    )
    differ = [name for name, entry in runtime.items() if full.get(name) != entry]
    assert not differ, f"run scripts/lock: not as in requirements.lock: {differ}"


def test_the_environment_is_the_lock():
    """The suite runs on exactly the locked versions (scripts/bootstrap installs them)."""
    wrong = []
    for name, entry in sorted(lockfile.locked().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "nothing"
        if installed != entry.version:
            wrong.append(f"{name}: locked {entry.version}, installed {installed}")
    assert not wrong, "run scripts/bootstrap:\n" + "\n".join(wrong)
