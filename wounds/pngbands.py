"""A large PNG decoded a band of rows at a time, so that its full image never sits in memory.

Pillow decodes a PNG only whole: a 7000 x 7000 RGBA picture is 187 MiB before anything else
happens. Here the image data (the zlib stream of the IDAT chunks) is inflated as it is needed,
and each band of rows is handed to Pillow as a small PNG of its own, which Pillow decodes and
unfilters as usual. A row's filter may refer to the row above it, so a band starts with the
row above it, unfiltered (filter type 0) as decoded from the previous band, and that row is
dropped again after decoding.

Only what it can decode exactly: 8 bits per sample, not interlaced (greyscale, RGB, palette,
grey with alpha, RGBA). Everything else returns None, and the caller decodes the PNG whole.
Every chunk's CRC is checked, and a stream that ends early, runs on, or fails its checksum is
an error, as in Pillow's own decoder.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Final

from PIL import Image

SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_BYTES_PER_PIXEL: Final = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> bytes, at 8 bits
_COPIED: Final = (b"PLTE", b"tRNS")  # what a band needs besides the header and its rows
_INFLATE_STEP: Final = 1 << 20


class PngError(ValueError):
    """The PNG is malformed (a caller maps it to a corrupt photo)."""


class _Png:
    def __init__(self, data: bytes) -> None:
        if not data.startswith(SIGNATURE):
            raise PngError("not a PNG")
        self.header = b""
        self.copied: list[bytes] = []
        self.idat: list[memoryview] = []
        view = memoryview(data)
        pos, ended = len(SIGNATURE), False
        while pos + 12 <= len(data) and not ended:
            (length,) = struct.unpack(">I", view[pos : pos + 4])
            kind = bytes(view[pos + 4 : pos + 8])
            body = view[pos + 8 : pos + 8 + length]
            if len(body) != length or pos + 12 + length > len(data):
                raise PngError(f"the {kind!r} chunk is cut off")
            (crc,) = struct.unpack(">I", view[pos + 8 + length : pos + 12 + length])
            if zlib.crc32(body, zlib.crc32(kind)) != crc:
                raise PngError(f"the {kind!r} chunk fails its CRC")
            if kind == b"IHDR":
                self.header = bytes(body)
            elif kind == b"IDAT":
                self.idat.append(body)
            elif kind in _COPIED:
                self.copied.append(_chunk(kind, bytes(body)))
            ended = kind == b"IEND"
            pos += 12 + length
        if not ended or len(self.header) != 13 or not self.idat:
            raise PngError("the PNG has no header, no image data or no end")
        fields = struct.unpack(">IIBBBBB", self.header)
        self.width, self.height, self.depth, self.colour, _, _, self.interlace = fields


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
    )


def _rows(png: _Png, row_bytes: int, per_band: int) -> Iterator[bytes]:
    """The filtered rows, `per_band` at a time, inflated as they are needed."""
    inflate = zlib.decompressobj()
    pending = bytearray()
    want = row_bytes * per_band
    left = png.height
    for part in png.idat:
        data = bytes(part)
        while data:
            pending += inflate.decompress(data, _INFLATE_STEP)
            data = inflate.unconsumed_tail
            while len(pending) >= min(want, row_bytes * left) > 0:
                take = min(want, row_bytes * left)
                yield bytes(pending[:take])
                del pending[:take]
                left -= take // row_bytes
            if left == 0 and (pending or data):
                raise PngError("the image data runs past the last row")
    pending += inflate.flush()
    if left or pending or not inflate.eof:
        raise PngError("the image data ends early or without its checksum")


def bands(data: bytes, rows: int) -> Iterator[Image.Image] | None:
    """The PNG's pixels as Pillow images of `rows` rows each (the last may have fewer), or
    None when this PNG is not one this module decodes (the caller decodes it whole)."""
    png = _Png(data)
    if png.depth != 8 or png.interlace or png.colour not in _BYTES_PER_PIXEL:
        return None
    return _bands(png, rows)


def _bands(png: _Png, rows: int) -> Iterator[Image.Image]:
    row_bytes = 1 + png.width * _BYTES_PER_PIXEL[png.colour]
    above = b""  # the row above the band, unfiltered, with its filter byte 0
    for filtered in _rows(png, row_bytes, rows):
        count = len(filtered) // row_bytes + (1 if above else 0)
        header = png.header[:4] + struct.pack(">I", count) + png.header[8:]
        band_png = b"".join(
            [
                SIGNATURE,
                _chunk(b"IHDR", header),
                *png.copied,
                _chunk(b"IDAT", zlib.compress(above + filtered, 0)),
                _chunk(b"IEND", b""),
            ]
        )
        band = Image.open(io.BytesIO(band_png), formats=("PNG",))
        band.load()
        if above:
            band = band.crop((0, 1, png.width, count))
        above = b"\x00" + band.crop((0, band.height - 1, png.width, band.height)).tobytes()
        yield band
