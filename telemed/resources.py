"""Where the running code finds its files: SQL, the migrations, the pages' templates and
static assets. Always in the installed packages, never in a source tree, so that a wheel
installed anywhere runs as a checkout does (tests/test_packaging.py builds and runs one).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_dir(package: str, *parts: str) -> Path:
    """The folder `parts` inside the installed package `package`, which must exist.

    The packages are installed as plain files (not zipped), so this is a real path. A missing
    folder means a package built without its data files: refused by name rather than found
    empty later."""
    root = files(package)
    if not isinstance(root, Path):
        raise RuntimeError(f"package {package!r} is not installed as files ({root!r})")
    folder = root.joinpath(*parts)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: package {package!r} was installed without its data files"
        )
    return folder
