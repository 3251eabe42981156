"""Make a home nurse's phone photo safe to store and to show.

`sanitize` turns uploaded bytes into a display JPEG and thumbnails that carry pixels, the colour
profile and nothing else: no EXIF (GPS, device), no XMP, no comments, no foreign bytes, because
every derivative is re-encoded from decoded pixels. The original bytes are kept apart under their
SHA-256 and must never be served inline: a valid JPEG can also be an HTML page (markup in a COM
segment or after the EOI marker), so whoever serves an original sends it as an attachment with
`X-Content-Type-Options: nosniff` and the sniffed MIME type, never the declared one.

Pure CPU work on bytes; callers run it in a worker thread.

Memory: a JPEG is decoded scaled down by its decoder (draft). PNG, WebP and HEIC decoders give
the full image, so the full decode is the one large allocation: every conversion after it
(transparency flattened onto white, palettes and 16-bit grey expanded) and the reduction to
about the display size run band by band into a small image, never as a full-size copy. A 7000 x
7000 transparent PNG costs its 187 MiB of decoded RGBA and little more (docs/benchmarks.md).
After a large decode the freed memory is handed back to the system (glibc's malloc_trim), so
that the process does not keep the peak.
"""

import ctypes
import ctypes.util
import hashlib
import io
import logging
import re
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo

import msgspec
import pillow_heif
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from wounds import pngbands

log = logging.getLogger("telemed.wounds")

# Embedded HEIF thumbnails, depth maps and auxiliary images are never wanted: Pillow's draft would
# otherwise be allowed to decode an embedded preview, which need not show what the image shows.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

MIB: Final = 1024 * 1024
MIME: Final[dict[str, str]] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "heic": "image/heic",
}
# Opening with only the sniffed plugin means bytes that sniff as PNG are decoded by the PNG
# decoder and nothing else; Pillow would otherwise try every plugin it has (EPS runs Ghostscript).
_PILLOW_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "jpeg": ("JPEG",),
    "png": ("PNG",),
    "webp": ("WEBP",),
    "heic": ("HEIF",),
}
_HEVC_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS: Final = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
_AV1_BRANDS: Final = frozenset({b"avif", b"avis"})

DISPLAY_QUALITY: Final = 85
THUMB_QUALITY: Final = 80
# The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding, at a fraction of the cost of a full
# decode and resample (a 4000 px photo: ~50 ms for 2000 px instead of ~65 + ~130 ms for 2048 px).
# We take that when it lands within this fraction below display_max.
DRAFT_SLACK: Final = 0.9
_RESAMPLE: Final = Image.Resampling.BICUBIC
_REDUCING_GAP: Final = 2.0
# Rows converted at a time (times the reduction factor): 16 rows of 7000 RGBA pixels are 0.4 MiB.
BAND_ROWS: Final = 16
# Decodes at least this large return their memory to the system afterwards.
TRIM_BYTES: Final = 32 * MIB
# PNGs that would decode to at least this much are decoded band by band (wounds.pngbands).
BANDED_PNG_BYTES: Final = 16 * MIB
# What a whole decode may cost, so that the API's peak for one photo stays under 300 MiB (about
# 90 MiB idle, docs/benchmarks.md). Bytes per pixel of a whole decode, measured with Pillow 13
# and pillow-heif 1.9: libwebp's frame and canvas (a 12 MP WebP: 184 MiB), libheif's planes and
# RGB (a 24 MP HEIC: 172 MiB), a PNG Pillow decodes whole (16-bit or interlaced) 1.15 x its
# pixels. A JPEG is decoded scaled down and an 8-bit PNG in bands: neither needs a budget.
DECODE_BUDGET: Final = 200 * MIB
_WHOLE_DECODE_BYTES: Final = {"webp": 16.1, "heic": 7.5}
_PNG_WHOLE_OVERHEAD: Final = 1.15
COPENHAGEN: Final = ZoneInfo("Europe/Copenhagen")

# ImageOps.exif_transpose's table; applied to the small display copy rather than to the original,
# which would rotate every decoded pixel (and exif_transpose keeps GPS in info["exif"] anyway).
_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_DECODE_ERRORS: Final = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    RuntimeError,
)

PhotoErrorCode = Literal["empty", "too_large", "unsupported_format", "too_many_pixels", "corrupt"]


class PhotoError(Exception):
    """A photo refused, with a stable code for clients and the HTTP status it maps to."""

    def __init__(self, code: PhotoErrorCode, detail: str, http_status: int) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: PhotoErrorCode = code
        self.detail = detail
        self.http_status = http_status


class SanitizedPhoto(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str  # of the original bytes, for content-addressed storage of the original
    format: str
    mime: str
    width: int  # after orientation
    height: int
    taken_at: datetime | None
    taken_at_zone_assumed: bool  # the camera wrote no offset; the time was read in `camera_tz`
    display: bytes  # JPEG, no metadata but the ICC profile
    display_width: int
    display_height: int
    thumbnails: dict[int, bytes]  # long side in px -> JPEG


def _unsupported(detail: str) -> PhotoError:
    return PhotoError("unsupported_format", detail, 415)


def sniff(data: bytes) -> str:
    """The image format from the leading bytes alone: "jpeg", "png", "webp" or "heic".

    Raises PhotoError for anything else, including files whose first bytes are markup or text
    (a browser could take them for a page) and AVIF: no camera writes it, it would expose one
    more decoder to uploaded bytes, and Danish messaging takes only JPEG and PNG anyway.
    """
    if not data:
        raise PhotoError("empty", "the upload is empty", 400)
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if len(data) >= 16 and data[4:8] == b"ftyp":
        return _sniff_heif(data)
    raise _unsupported("not a JPEG, PNG, WebP or HEIC image")


def _sniff_heif(data: bytes) -> str:
    (box_size,) = struct.unpack(">I", data[:4])
    if box_size < 16 or box_size > min(len(data), 4096) or box_size % 4:
        raise _unsupported("malformed ISO-BMFF ftyp box")
    major = data[8:12]
    brands = {major} | {data[i : i + 4] for i in range(16, box_size, 4)}
    if major in _AV1_BRANDS:
        raise _unsupported("AVIF is not accepted; send JPEG or HEIC")
    if brands & _HEVC_BRANDS:
        return "heic"
    if major in _HEIF_BRANDS and not brands & _AV1_BRANDS:
        return "heic"  # generic HEIF: libheif decides whether it can decode the coded image
    raise _unsupported(f"ISO-BMFF brand {major!r} is not a HEIC image")


def sanitize(
    data: bytes,
    *,
    max_bytes: int = 15 * MIB,
    max_pixels: int = 50_000_000,
    decode_budget: int = DECODE_BUDGET,
    display_max: int = 2048,
    thumb_sizes: tuple[int, ...] = (240, 100),
    camera_tz: tzinfo = COPENHAGEN,
) -> SanitizedPhoto:
    """Check, decode and re-encode a photo; see the module docstring for what survives.

    `camera_tz` is the zone assumed for DateTimeOriginal when the camera wrote no offset
    (the nurse's phone is in Denmark).
    """
    if not data:
        raise PhotoError("empty", "the upload is empty", 400)
    if len(data) > max_bytes:
        raise PhotoError("too_large", f"{len(data)} bytes, at most {max_bytes} accepted", 413)
    fmt = sniff(data)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide switch; with it on, a cut-off upload decodes "successfully" as grey.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay off")
    image = _open(data, fmt, max_pixels)
    width, height = image.size  # as stored; a draft decode changes image.size
    try:  # PhotoError passes through: it is not one of _DECODE_ERRORS
        decoded_bytes = _bytes_of(image)
        banded = fmt == "png" and decoded_bytes >= BANDED_PNG_BYTES
        rows = BAND_ROWS * _factor(image.size, display_max)
        bands = pngbands.bands(data, rows) if banded else None
        if bands is None:
            _check_decode_cost(image, fmt, decode_budget)
            _decode(image, display_max)
            decoded_bytes = _bytes_of(image)
        # Pillow would decode a PNG whole to look for an eXIf chunk after the image data
        # (the PNG standard puts it before); a banded PNG goes without one there.
        if bands is None or "exif" in image.info:
            orientation, taken_at, zone_assumed = _metadata(image, camera_tz)
        else:
            orientation, taken_at, zone_assumed = 1, None, False
        icc = image.info.get("icc_profile")
        plain = _plain_reduced(image, display_max, bands)
        display = _fit(image, display_max) if plain is image else None
    except _DECODE_ERRORS as exc:
        # The decoder's own words (which may name its objects) go to the log only.
        log.info("a %s photo could not be decoded: %r", fmt, exc)
        raise PhotoError(
            "corrupt", "the image cannot be decoded: it is cut off or damaged", 422
        ) from exc
    finally:
        image.close()  # the decoded pixels go now (leaving a `with` keeps them)
    if display is None:  # the last resize needs only the reduced pixels
        display = _fit(plain, display_max, shape=(width, height))
    del plain
    if decoded_bytes >= TRIM_BYTES:
        give_memory_back()
    if orientation in _TRANSPOSE:
        display = display.transpose(_TRANSPOSE[orientation])
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    icc = icc if _icc_matches(icc, display.mode) else None
    thumbnails = {size: _encode(_fit(display, size), icc, THUMB_QUALITY) for size in thumb_sizes}
    return SanitizedPhoto(
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        mime=MIME[fmt],
        width=width,
        height=height,
        taken_at=taken_at,
        taken_at_zone_assumed=zone_assumed,
        display=_encode(display, icc, DISPLAY_QUALITY, progressive=True),
        display_width=display.width,
        display_height=display.height,
        thumbnails=thumbnails,
    )


def _open(data: bytes, fmt: str, max_pixels: int) -> ImageFile.ImageFile:
    """Open lazily: this parses the header only, so the pixel count is known before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception only where warnings are errors; we do not turn
        # it into one with warnings.catch_warnings, which is process-wide and not thread-safe.
        # The default max_pixels is below Pillow's warning threshold: the refusal is the same.
        log.info("a %s photo is a decompression bomb: %s", fmt, exc)
        raise PhotoError(
            "too_many_pixels", f"the image has more than {max_pixels} pixels", 413
        ) from exc
    except _DECODE_ERRORS as exc:
        log.info("a %s photo's header could not be read: %r", fmt, exc)
        raise PhotoError(
            "corrupt", f"the {fmt} header cannot be read: the file is cut off or damaged", 422
        ) from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise PhotoError(
            "too_many_pixels", f"{width}x{height} pixels, at most {max_pixels} accepted", 413
        )
    return image


def _check_decode_cost(image: Image.Image, fmt: str, budget: int) -> None:
    """Refuse a photo whose whole decode would cost more than `budget` bytes (413)."""
    if fmt == "jpeg":
        return
    pixels = image.width * image.height
    cost = pixels * _WHOLE_DECODE_BYTES.get(fmt, 0) or _bytes_of(image) * _PNG_WHOLE_OVERHEAD
    if cost > budget:
        largest = int(budget / (cost / pixels)) // 100_000 / 10
        raise PhotoError(
            "too_many_pixels",
            f"{image.width}x{image.height} pixels: a {fmt.upper()} photo may have at most "
            f"{largest} megapixels (a JPEG up to the general limit)",
            413,
        )


def _decode(image: ImageFile.ImageFile, display_max: int) -> None:
    """Decode every byte of image data, scaled down by the JPEG decoder when that is enough.

    A scaled JPEG decode still entropy-decodes the whole scan, so with LOAD_TRUNCATED_IMAGES off
    Pillow raises on a truncated file at any scale, a missing EOI marker included (checked for
    every cut point in the tests). No separate EOI search is needed, and it would be wrong:
    the EXIF thumbnail has its own EOI, and phones append motion-photo video after the image's
    EOI, which we tolerate because derivatives are re-encoded and the trailer never reaches them.
    """
    if image.format in ("JPEG", "MPO"):
        scale = _draft_scale(image.size, display_max)
        if scale > 1:
            image.draft("RGB", (image.width // scale, image.height // scale))
    image.load()


def _draft_scale(size: tuple[int, int], display_max: int) -> int:
    long_side = max(size)
    for scale in (8, 4, 2):
        if long_side / scale >= display_max * DRAFT_SLACK:
            return scale
    return 1


def _metadata(image: Image.Image, camera_tz: tzinfo) -> tuple[int, datetime | None, bool]:
    """Orientation and time taken. A broken EXIF block costs these, never the photo."""
    try:
        exif = image.getexif()
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        taken, assumed = _taken_at(
            sub.get(ExifTags.Base.DateTimeOriginal),
            sub.get(ExifTags.Base.OffsetTimeOriginal),
            camera_tz,
        )
    except Exception:
        return 1, None, False
    return (orientation if isinstance(orientation, int) else 1), taken, assumed


def _taken_at(raw: object, offset: object, camera_tz: tzinfo) -> tuple[datetime | None, bool]:
    if not isinstance(raw, str):
        return None, False
    try:
        local = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None, False  # cameras write "0000:00:00 00:00:00" or blanks when unset
    match = _OFFSET.match(offset.strip("\x00 ")) if isinstance(offset, str) else None
    if match is None:
        return local.replace(tzinfo=camera_tz), True
    sign = -1 if match[1] == "-" else 1
    delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
    if delta > timedelta(hours=14):
        return local.replace(tzinfo=camera_tz), True
    return local.replace(tzinfo=timezone(sign * delta)), False


def _bytes_of(image: Image.Image) -> int:
    bands = len(image.getbands())
    depth = 4 if image.mode in ("I", "F", "I;16", "I;16B", "I;16L", "I;16N") else 1
    return image.width * image.height * max(bands * depth, 1)


def _factor(size: tuple[int, int], display_max: int) -> int:
    """The whole factor that scales an image down to no less than display_max."""
    return max(1, max(size) // display_max)


def _plain_reduced(
    image: Image.Image, display_max: int, bands: Iterator[Image.Image] | None = None
) -> Image.Image:
    """Plain pixels (see _plain_pixels) scaled down by a whole factor to no less than
    display_max, converted and reduced band by band: no full-size copy is ever made. The bands
    are crops of the decoded image, or those of wounds.pngbands (which decodes no more
    than a band); an RGB or grey image decoded whole needs no conversion and is returned."""
    width, height = image.size
    factor = _factor(image.size, display_max)
    rows = BAND_ROWS * factor
    if bands is None:
        if image.mode in ("RGB", "L"):
            return image  # _fit's resize reads it in place
        bands = (
            image.crop((0, top, width, min(top + rows, height))) for top in range(0, height, rows)
        )
    out: Image.Image | None = None
    top = 0
    for band in bands:
        plain = _plain_band(band, factor)
        if out is None:
            out = Image.new(plain.mode, (-(-width // factor), -(-height // factor)))
        out.paste(plain, (0, top // factor))
        top += band.height
    if out is None or top != height:
        raise ValueError(f"{top} of {height} rows decoded")
    return out


def _plain_band(band: Image.Image, factor: int) -> Image.Image:
    """A band's plain pixels reduced by `factor`; transparency is flattened after reducing
    (Pillow's reduce weighs colours by their alpha), on a ninth of the pixels at factor 3."""
    if factor == 1:
        return _plain_pixels(band)
    if band.mode == "P" and "transparency" in band.info:
        band = band.convert("RGBA")
    if band.mode in ("RGBA", "LA"):
        return _plain_pixels(band.reduce(factor))
    return _plain_pixels(band).reduce(factor)


def give_memory_back() -> bool:
    """Return freed heap memory to the system (glibc keeps it otherwise: after one large
    decode the process would stay at its peak). False where there is no malloc_trim."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


def _find_malloc_trim() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None  # not glibc (musl has no malloc_trim)


_malloc_trim = _find_malloc_trim()


def _plain_pixels(image: Image.Image) -> Image.Image:
    """RGB or L pixels: transparency flattened onto white, palettes and CMYK expanded."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _fit(
    image: Image.Image, long_side: int, *, shape: tuple[int, int] | None = None
) -> Image.Image:
    """Scaled down so that the longer side is at most `long_side`; never scaled up. `shape` is
    the size of the picture that `image` is a reduction of, whose proportions are kept."""
    width, height = shape or image.size
    if max(width, height) <= long_side and shape is None:
        return image.copy()
    ratio = min(1.0, long_side / max(width, height))
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    if size == image.size:
        return image.copy()
    return image.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)


def _icc_matches(icc: object, mode: str) -> bool:
    """An ICC profile is kept only when its colour space is that of the pixels we write."""
    if not isinstance(icc, bytes) or len(icc) < 128:
        return False
    return icc[16:20] == (b"RGB " if mode == "RGB" else b"GRAY")


def _encode(
    image: Image.Image, icc: bytes | None, quality: int, *, progressive: bool = False
) -> bytes:
    # Everything the encoder writes is named here; info is empty, so Pillow's fallback to
    # info["comment"] (a COM segment of the upload, where polyglot markup hides) has nothing.
    image.info = {}
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=quality,
        progressive=progressive,
        icc_profile=icc,
        exif=b"",
    )
    return out.getvalue()
