"""Large photos without their full-size copies: a PNG decoded band by band gives exactly
Pillow's pixels (every row filter, every colour type), a malformed one is still corrupt, the
banded reduction matches flattening at full size, and memory is handed back where glibc is.
(How much memory: bench/wound_upload.py, docs/benchmarks.md.)"""

from __future__ import annotations

import ctypes.util
import io
import struct
import zlib

import pytest
from PIL import Image

from tests import photos
from wounds import images, pngbands
from wounds.images import PhotoError, sanitize

# colour type -> (Pillow mode, bytes per pixel)
COLOURS = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered(row: bytes, above: bytes, bpp: int, kind: int) -> bytes:
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b, c = above[i], above[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((x - predictor) % 256)
    return bytes([kind]) + bytes(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(kind))
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def handmade_png(width: int, height: int, colour: int, *, seed: int = 3) -> bytes:
    """A PNG whose rows use every filter type in turn (None, Sub, Up, Average, Paeth)."""
    bpp = COLOURS[colour][1]
    pixels = bytes(
        (i * 37 + seed * (i // 7) + (i * i) % 251) % 256 for i in range(width * height * bpp)
    )
    if colour == 3:
        pixels = bytes(p % 16 for p in pixels)
    rows, above = [], bytes(width * bpp)
    for y in range(height):
        row = pixels[y * width * bpp : (y + 1) * width * bpp]
        rows.append(_filtered(row, above, bpp, y % 5))
        above = row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    extra = b""
    if colour == 3:
        extra = _chunk(b"PLTE", bytes(range(48))) + _chunk(b"tRNS", bytes([0, 128] + [255] * 14))
    return (
        pngbands.SIGNATURE
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _rechunked(data: bytes, size: int) -> bytes:
    """The same PNG with its image data in IDAT chunks of `size` bytes."""
    first, end = data.index(b"IDAT") - 4, data.index(b"IEND") - 4
    stream, pos = b"", first
    while pos < end:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        stream += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    idat = b"".join(_chunk(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size))
    return data[:first] + idat + data[end:]


def _whole(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _stacked(data: bytes, rows: int) -> bytes:
    found = pngbands.bands(data, rows)
    assert found is not None
    return b"".join(band.tobytes() for band in found)


@pytest.mark.parametrize("colour", sorted(COLOURS))
@pytest.mark.parametrize("rows", [1, 4, 7, 100])
def test_bands_give_pillows_pixels_for_every_filter_and_colour_type(colour: int, rows: int) -> None:
    data = handmade_png(29, 23, colour)
    whole = _whole(data)
    assert whole.mode == COLOURS[colour][0]
    assert _stacked(data, rows) == whole.tobytes()


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA", "P"])
def test_bands_of_pillow_written_pngs_split_across_idat_chunks(mode: str) -> None:
    out = io.BytesIO()
    photos.picture(301, 207).convert(mode).save(out, "PNG")
    data = _rechunked(out.getvalue(), 100)  # as some encoders write: many small IDAT chunks
    assert data.count(b"IDAT") > 10
    assert _stacked(data, 16) == _whole(data).tobytes()


def test_what_bands_cannot_decode_exactly_is_left_to_the_whole_decode() -> None:
    sixteen = io.BytesIO()
    Image.new("I;16", (40, 30), 1000).save(sixteen, "PNG")
    assert pngbands.bands(sixteen.getvalue(), 8) is None
    interlaced = io.BytesIO()
    photos.picture(40, 30).save(interlaced, "PNG", interlace=1)
    assert b"IHDR" in interlaced.getvalue()
    header = interlaced.getvalue()[16:29]
    if header[-1] == 1:  # Pillow wrote it interlaced
        assert pngbands.bands(interlaced.getvalue(), 8) is None


def _corruptions(data: bytes) -> dict[str, bytes]:
    idat = data.index(b"IDAT")
    return {
        "cut in the image data": data[: idat + 200],
        "a flipped byte": data[: idat + 50] + bytes([data[idat + 50] ^ 0xFF]) + data[idat + 51 :],
        "no end chunk": data[: data.index(b"IEND") - 4],
    }


@pytest.mark.parametrize("case", ["cut in the image data", "a flipped byte", "no end chunk"])
def test_a_malformed_large_png_is_corrupt_on_the_banded_path(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "BANDED_PNG_BYTES", 0)
    data = _corruptions(photos.png(300, 200, mode="RGBA"))[case]
    with pytest.raises(PhotoError) as refused:
        sanitize(data)
    assert refused.value.code == "corrupt"


def test_rows_past_the_image_are_refused() -> None:
    data = handmade_png(20, 10, 2)
    header = struct.pack(">IIBBBBB", 20, 5, 8, 2, 0, 0, 0)  # says 5 rows, carries 10
    start = data.index(b"IHDR") - 4
    shorter = data[:start] + _chunk(b"IHDR", header) + data[start + 25 :]
    found = pngbands.bands(shorter, 4)
    assert found is not None
    with pytest.raises(pngbands.PngError):
        list(found)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB"])
def test_the_banded_display_matches_flattening_at_full_size(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = photos.picture(1500, 1100)
    picture.putalpha(Image.linear_gradient("L").rotate(90).resize(picture.size))
    picture = picture.convert(mode) if mode != "P" else picture.convert("RGBA").quantize(64)
    out = io.BytesIO()
    picture.save(out, "PNG")
    data = out.getvalue()

    monkeypatch.setattr(images, "BANDED_PNG_BYTES", 0)
    banded = Image.open(io.BytesIO(sanitize(data, display_max=400).display))
    reference = images._fit(images._plain_pixels(_whole(data)), 400)
    assert banded.size == reference.size == (400, 293)
    difference = [abs(a - b) for a, b in zip(banded.tobytes(), reference.tobytes(), strict=True)]
    assert sum(difference) / len(difference) < 3  # resampling differs a little, JPEG too
    assert max(difference) < 60


def test_a_banded_png_keeps_its_orientation_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "BANDED_PNG_BYTES", 0)
    photo = sanitize(photos.png(300, 200, mode="RGBA"))
    assert (photo.width, photo.height) == (300, 200)
    assert photo.display_width == 300


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to ask")
def test_memory_is_handed_back_where_glibc_is() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "malloc_trim"):
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert images.give_memory_back() is True


def test_a_large_png_is_decoded_in_bands_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = pngbands.bands

    def spy(data: bytes, rows: int):
        calls.append(rows)
        return real(data, rows)

    monkeypatch.setattr(pngbands, "bands", spy)
    out = io.BytesIO()
    Image.new("RGBA", (2100, 2100), (10, 200, 10, 128)).save(out, "PNG")  # 17.6 MB decoded
    photo = sanitize(out.getvalue())
    assert calls == [images.BAND_ROWS]  # reduced by 1: 2100 // 2048
    display = Image.open(io.BytesIO(photo.display))
    assert display.size == (2048, 2048)
    pixel = display.getpixel((1000, 1000))
    assert all(abs(a - b) < 6 for a, b in zip(pixel, (133, 228, 133), strict=True))


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (lambda: photos.webp(400, 300), "WEBP"),
        (lambda: photos.heic(400, 300), "HEIC"),
        (lambda: _sixteen_bit_png(400, 300), "PNG"),
    ],
)
def test_a_photo_whose_whole_decode_would_cost_too_much_is_refused(make, fmt: str) -> None:
    data = make()
    assert sanitize(data).width == 400  # within the budget as shipped
    with pytest.raises(PhotoError) as refused:
        sanitize(data, decode_budget=400 * 300)  # one byte a pixel: every whole decode is more
    assert (refused.value.code, refused.value.http_status) == ("too_many_pixels", 413)
    assert f"a {fmt} photo may have at most" in refused.value.detail


def test_what_is_decoded_scaled_or_in_bands_needs_no_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(images, "BANDED_PNG_BYTES", 0)
    assert sanitize(photos.jpeg_with_gps(), decode_budget=1).width > 0
    assert sanitize(photos.png(400, 300, mode="RGBA"), decode_budget=1).width == 400


def test_the_budget_takes_a_24_megapixel_heic_and_refuses_a_48_megapixel_one() -> None:
    """The iPhone's default HEIC (5712 x 4284) fits; its 48 MP mode (8064 x 6048) does not.
    Measured costs behind the numbers: docs/benchmarks.md."""
    cost = images._WHOLE_DECODE_BYTES["heic"]
    assert 5712 * 4284 * cost <= images.DECODE_BUDGET < 8064 * 6048 * cost
    assert 4000 * 3000 * images._WHOLE_DECODE_BYTES["webp"] <= images.DECODE_BUDGET


def _sixteen_bit_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (width, height), 30000).save(out, "PNG")
    return out.getvalue()
