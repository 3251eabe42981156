"""Read a multipart/form-data upload of photos and JSON parts, with limits enforced while the
bytes arrive.

Litestar's own form parsing spools every file part to a temporary file and knows one limit, the
whole body; a refused photo would only be noticed after the whole request was read. Here each
photo, each field and the request as a whole have their own limit, checked as the bytes stream in,
and the answer names the photo that broke it ("photo 3 (IMG_0042.HEIC) is larger than 15 MiB").
Photos are kept in memory: the total is bounded by `max_request_bytes`, and `images.sanitize`
needs the bytes anyway.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from multipart import ParserError, ParserLimitReached, PushMultipartParser

from telemed.errors import BadRequest, FieldProblem, Invalid, TooLarge, Unsupported
from telemed.settings import WoundSettings

log = logging.getLogger("telemed.wounds")
MIB: Final = 1024 * 1024
PHOTOS: Final = "photos"
_BOUNDARY: Final = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;,"]{1,200}))', re.I)
_PATH_SEPARATORS: Final = re.compile(r"[\\/]")


class UploadLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_photos: int = 10
    max_photo_bytes: int = 15 * MIB
    max_request_bytes: int = 64 * MIB
    max_field_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: WoundSettings) -> UploadLimits:
        return cls(
            max_photos=settings.max_photos,
            max_photo_bytes=settings.max_photo_bytes,
            max_request_bytes=settings.max_request_bytes,
        )


class FilePart(msgspec.Struct, frozen=True, kw_only=True):
    index: int  # 0-based among the photos of the request
    filename: str  # cleaned for display; never used as a path
    declared_type: str  # what the client said; informational only, the bytes are sniffed
    data: bytes

    @property
    def label(self) -> str:
        return f"photo {self.index + 1} ({self.filename})" if self.filename else self.field

    @property
    def field(self) -> str:
        return f"{PHOTOS}[{self.index}]"


class Form(msgspec.Struct, frozen=True, kw_only=True):
    fields: dict[str, bytes]
    photos: list[FilePart]


def boundary_of(content_type: str) -> bytes:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind != "multipart/form-data":
        raise Unsupported(
            f"send the case as multipart/form-data, not {kind or 'an untyped body'}",
            [FieldProblem("content-type", "must be multipart/form-data", "not_multipart")],
        )
    match = _BOUNDARY.search(content_type)
    if not match:
        raise BadRequest(
            "the multipart boundary is missing from Content-Type",
            [FieldProblem("content-type", "boundary missing", "malformed")],
        )
    return (match.group(1) or match.group(2)).encode("latin-1")


def clean_filename(raw: str | None) -> str:
    """The last path component, without control characters, at most 255 characters."""
    name = _PATH_SEPARATORS.split(raw or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255]


def _too_large_request(limit: int) -> TooLarge:
    return TooLarge(
        f"the request is larger than {limit // MIB} MiB; send fewer or smaller photos",
        [FieldProblem("body", f"at most {limit} bytes", "too_large", {"max_bytes": limit})],
    )


async def read_form(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str,
    content_length: int | None,
    limits: UploadLimits,
    fields: tuple[str, ...],
) -> Form:
    """Read photos (parts named `photos`) and the named fields; refuse anything else."""
    boundary = boundary_of(content_type)
    if content_length is not None and content_length > limits.max_request_bytes:
        raise _too_large_request(limits.max_request_bytes)
    reader = _Reader(limits, fields)
    stream = _Counted(chunks, limits.max_request_bytes)
    try:
        parser = PushMultipartParser(
            boundary, max_segment_count=limits.max_photos + len(fields) + 1
        )
        with parser as p:
            async for chunk in stream:
                if chunk:  # an empty chunk would tell the parser that the stream ended
                    for event in p.parse(chunk):
                        reader.feed(event)
            # Leaving the block closes the parser, which raises ParserError if the stream ended
            # before the closing boundary.
    except ParserLimitReached as exc:
        # The parser's own words stay in the log; the answer says what to do.
        log.info("multipart limit reached: %s", exc)
        raise TooLarge(
            f"the request has more than {limits.max_photos} photos and {len(fields)} fields",
            [FieldProblem("body", "too many parts", "too_large")],
        ) from None
    except ParserError as exc:
        log.info("malformed multipart body: %s", exc)
        raise BadRequest(
            "the multipart body is malformed or was cut off; send it again",
            [FieldProblem("body", "malformed multipart body", "malformed")],
        ) from None
    except (TooLarge, Invalid):
        # A client still sending would take a closed connection for a network error and never
        # show the answer; read the rest (within the request limit) so that it gets the answer.
        await stream.drain()
        raise
    return Form(fields=reader.fields, photos=reader.photos)


class _Counted:
    """The request's chunks, refused beyond `limit` bytes in total."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = chunks.__aiter__()
        self.limit = limit
        self.total = 0
        self.over = False

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._chunks.__anext__()
        self.total += len(chunk)
        if self.total > self.limit:
            self.over = True
            raise _too_large_request(self.limit)
        return chunk

    async def drain(self) -> None:
        if self.over:
            return
        try:
            async for chunk in self:
                if not chunk:
                    return
        except (TooLarge, StopAsyncIteration):
            return
        except Exception:  # the client went away: nothing left to answer
            return


class _Reader:
    def __init__(self, limits: UploadLimits, fields: tuple[str, ...]) -> None:
        self.limits = limits
        self.allowed = fields
        self.fields: dict[str, bytes] = {}
        self.photos: list[FilePart] = []
        self._name: str | None = None
        self._filename = ""
        self._declared = ""
        self._buffer = bytearray()
        self._limit = 0

    def feed(self, event: object) -> None:
        if event is None:
            self._end()
        elif isinstance(event, bytes | bytearray | memoryview):
            if len(self._buffer) + len(event) > self._limit:
                raise self._part_too_large()
            self._buffer += event
        else:
            self._start(event)

    def _start(self, segment: object) -> None:
        name = getattr(segment, "name", None) or ""
        self._buffer = bytearray()
        self._name = name
        if name == PHOTOS:
            if len(self.photos) >= self.limits.max_photos:
                most = self.limits.max_photos
                raise TooLarge(
                    f"at most {most} photos per request",
                    [FieldProblem(PHOTOS, f"at most {most} photos", "too_large", {"max": most})],
                )
            self._filename = clean_filename(getattr(segment, "filename", None))
            self._declared = (getattr(segment, "content_type", None) or "")[:100]
            self._limit = self.limits.max_photo_bytes
        elif name in self.allowed:
            if name in self.fields:
                raise Invalid(
                    f"the part {name!r} is sent twice",
                    [FieldProblem(name, "twice", "duplicate_part")],
                )
            self._limit = self.limits.max_field_bytes
        else:
            expected = ", ".join(repr(f) for f in (PHOTOS, *self.allowed))
            raise Invalid(
                f"unknown part {name!r}; this request takes {expected}",
                [FieldProblem(name or "body", "unknown part", "unknown_part")],
            )

    def _end(self) -> None:
        name, data = self._name, bytes(self._buffer)
        self._buffer = bytearray()
        if name == PHOTOS:
            if data or self._filename:  # an empty file input sends a part with neither
                self.photos.append(
                    FilePart(
                        index=len(self.photos),
                        filename=self._filename,
                        declared_type=self._declared,
                        data=data,
                    )
                )
        elif name is not None:
            self.fields[name] = data
        self._name = None

    def _part_too_large(self) -> TooLarge:
        if self._name == PHOTOS:
            index = len(self.photos)
            label = f"photo {index + 1}" + (f" ({self._filename})" if self._filename else "")
            limit = self.limits.max_photo_bytes
            return TooLarge(
                f"{label} is larger than {limit / MIB:g} MiB",
                [
                    FieldProblem(
                        f"{PHOTOS}[{index}]",
                        f"too_large: at most {limit} bytes",
                        "too_large",
                        {"max_bytes": limit},
                    )
                ],
            )
        most = self.limits.max_field_bytes
        return TooLarge(
            f"the part {self._name!r} is larger than {most} bytes",
            [
                FieldProblem(
                    self._name or "body", f"at most {most} bytes", "too_large", {"max_bytes": most}
                )
            ],
        )
