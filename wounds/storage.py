"""Photo files under the media folder, written so that a crash or a failed request leaves nothing
that counts as stored.

    <media>/originals/ab/cd/<sha256>      the uploaded bytes, content-addressed, write-once
    <media>/photos/<id[:2]>/<id>/         display.jpg, thumb-240.jpg, thumb-100.jpg
    <media>/tmp/                          files being written; renamed into place when complete
    <media>/installation                  the id of the database whose rows refer to these files
    <media>/orphans/<day>/                files the sweep found without a row, kept for a while

A file counts as stored only when a wound_photos row refers to it, and that row is committed
after the files are durable (fsync of the file and of its directory). A request that fails after
writing removes its photo folders (their names are fresh ids, so nobody else uses them) and the
originals it created that no committed row refers to. An original that already existed is never
removed by a request: another case refers to the same bytes. What a crash left behind (files
without a row) is found by `leftovers` and removed by the sweep; wounds.media has the
locks that keep both from removing a file an upload in flight is about to refer to.

Blocking I/O; callers run these methods in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Final

import msgspec

_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
FILE_MODE: Final = 0o440
DIR_MODE: Final = 0o750


OWNER_FILE: Final = "installation"
ORPHANS: Final = "orphans"


class MediaMismatch(RuntimeError):
    """The media folder belongs to another database."""


class PhotoFiles(msgspec.Struct, frozen=True, kw_only=True):
    """What one sanitised photo puts on disk."""

    photo_id: uuid.UUID
    sha256: str
    original: bytes
    display: bytes
    thumbnails: dict[int, bytes]


class Staged(msgspec.Struct, kw_only=True):
    """Files one request wrote, for cleaning up if its transaction does not commit."""

    photo_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    created_originals: list[str] = msgspec.field(default_factory=list)


class Leftovers(msgspec.Struct, kw_only=True):
    """Files older than a cutoff that may have no row: the sweep asks the database which."""

    photo_ids: list[uuid.UUID] = msgspec.field(default_factory=list)
    originals: list[str] = msgspec.field(default_factory=list)
    tmp: list[Path] = msgspec.field(default_factory=list)


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def original_path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / "originals" / sha256[:2] / sha256[2:4] / sha256

    def photo_dir(self, photo_id: uuid.UUID) -> Path:
        name = str(photo_id)
        return self.root / "photos" / name[:2] / name

    def display_path(self, photo_id: uuid.UUID) -> Path:
        return self.photo_dir(photo_id) / "display.jpg"

    def thumb_path(self, photo_id: uuid.UUID, size: int) -> Path:
        return self.photo_dir(photo_id) / f"thumb-{int(size)}.jpg"

    def stage(self, photos: list[PhotoFiles], staged: Staged) -> None:
        """Write every photo's original and derivatives durably, noting each in `staged` as soon
        as it exists, so that the caller can clean up after an error here or later."""
        for photo in photos:
            if self.put_original(photo.sha256, photo.original):
                staged.created_originals.append(photo.sha256)
            staged.photo_ids.append(photo.photo_id)
            self.put_derivatives(photo)

    def put_original(self, sha256: str, data: bytes) -> bool:
        """Store the bytes under their digest; False if they were there already."""
        final = self.original_path(sha256)
        if final.exists():
            return False
        _mkdirs(final.parent)
        tmp = self._tmp_name()
        _write_durably(tmp, data)
        try:
            # link() fails if the name exists, where rename() would replace: write-once even
            # when two requests store the same bytes at the same time.
            os.link(tmp, final)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        _fsync_dir(final.parent)
        return True

    def put_derivatives(self, photo: PhotoFiles) -> Path:
        """The display copy and thumbnails, written in a fresh folder renamed into place whole."""
        final = self.photo_dir(photo.photo_id)
        work = self._tmp_name()
        work.mkdir(mode=DIR_MODE)
        try:
            _write_durably(work / "display.jpg", photo.display)
            for size, data in photo.thumbnails.items():
                _write_durably(work / f"thumb-{int(size)}.jpg", data)
            _fsync_dir(work)
            _mkdirs(final.parent)
            work.rename(final)  # the id is fresh: the name cannot exist
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        _fsync_dir(final.parent)
        return final

    def claim(self, installation: str) -> None:
        """Record that this folder belongs to `installation` (the database's identity), or check
        that it does: a folder shared by two databases would have each one's photos look like
        leftovers to the other."""
        owner = self.owner()
        if owner is None:
            _mkdirs(self.root)
            tmp = self._tmp_name()
            _write_durably(tmp, installation.encode())
            try:
                os.link(tmp, self.root / OWNER_FILE)
            except FileExistsError:
                pass  # another request claimed it meanwhile; checked below
            finally:
                tmp.unlink()
            _fsync_dir(self.root)
            owner = self.owner()
        if owner != installation:
            raise MediaMismatch(
                f"the media folder {self.root} belongs to installation {owner}, but this "
                f"database is installation {installation}: point TELEMED_MEDIA_DIR at this "
                "database's folder (or move that folder aside for a new database)"
            )

    def owner(self) -> str | None:
        try:
            return (self.root / OWNER_FILE).read_text().strip()
        except FileNotFoundError:
            return None

    def leftovers(self, cutoff: float) -> Leftovers:
        """Photo folders, originals and temporary files last changed before `cutoff` (a Unix
        time); names that are not ours are left alone."""
        found = Leftovers()
        for folder in _entries(self.root / "photos", 2):
            try:
                photo_id = uuid.UUID(folder.name)
            except ValueError:
                continue
            if str(photo_id) == folder.name and _older(folder, cutoff):
                found.photo_ids.append(photo_id)
        for path in _entries(self.root / "originals", 3):
            if _SHA256.match(path.name) and _older(path, cutoff):
                found.originals.append(path.name)
        found.tmp = [p for p in _entries(self.tmp, 1) if _older(p, cutoff)]
        return found

    def remove_photo_dir(self, photo_id: uuid.UUID) -> None:
        folder = self.photo_dir(photo_id)
        shutil.rmtree(folder, ignore_errors=True)
        _fsync_dir_if_there(folder.parent)

    def remove_original(self, sha256: str) -> None:
        path = self.original_path(sha256)
        path.unlink(missing_ok=True)
        _fsync_dir_if_there(path.parent)

    def remove_tmp(self, path: Path) -> None:
        if path.parent != self.tmp:
            raise ValueError(f"{path} is not in {self.tmp}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def set_aside(self, path: Path, day: date) -> Path:
        """Move a photo folder or an original no row refers to into `orphans/<day>/`, under the
        same relative path: a database restored to an earlier point has no rows for photos it
        once accepted, and their files are then the only copy left."""
        target = self.root / ORPHANS / day.isoformat() / path.relative_to(self.root)
        _mkdirs(target.parent)
        try:
            path.rename(target)
        except FileNotFoundError:
            return target
        _fsync_dir(target.parent)
        _fsync_dir_if_there(path.parent)
        return target

    def prune_orphans(self, before: date) -> int:
        """Remove the days of set-aside files older than `before`; how many days went."""
        pruned = 0
        for folder in _entries(self.root / ORPHANS, 1):
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if day < before:
                shutil.rmtree(folder, ignore_errors=True)
                pruned += 1
        return pruned

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def _tmp_name(self) -> Path:
        _mkdirs(self.tmp)
        return self.tmp / uuid.uuid4().hex


def _entries(folder: Path, depth: int) -> list[Path]:
    """The entries `depth` levels below `folder` (1: its own entries)."""
    level = [folder]
    for _ in range(depth):
        below = []
        for parent in level:
            try:
                with os.scandir(parent) as it:
                    below.extend(Path(e.path) for e in it)
            except (FileNotFoundError, NotADirectoryError):
                continue
        level = below
    return level


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.lstat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _fsync_dir_if_there(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(folder)


def _mkdirs(folder: Path) -> None:
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
