"""Real image bytes for the photo tests and the benchmark, made with Pillow (and pillow-heif).

Every helper returns what a phone or an attacker would really upload, never a mock: EXIF with a
GPS position, an orientation tag, a decompression bomb that is a complete valid PNG, and so on.
"""

import io
import random
import struct
import tempfile
import zlib
from functools import cache
from pathlib import Path

import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageDraw

pillow_heif.register_heif_opener()

TAKEN = "2024:05:17 10:42:13"
TAKEN_OFFSET = "+02:00"
MAKE = "Apple"
MODEL = "iPhone 13"
# Rigshospitalet, roughly: a position that must never reach a stored derivative.
LATITUDE = (55.0, 41.0, 43.2)
LONGITUDE = (12.0, 34.0, 2.4)

UPRIGHT_SIZE = (320, 200)
MARKER = 60
RED = (220, 20, 20)
BLUE = (20, 20, 220)
BACKGROUND = (128, 128, 128)

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"

# The inverse of what a viewer does for each EXIF orientation (ImageOps.exif_transpose's table).
_STORE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def phone_exif(
    *, orientation: int | None = None, taken: str | None = TAKEN, offset: str | None = TAKEN_OFFSET
) -> Image.Exif:
    """EXIF as a phone writes it: make, model, time taken with its offset, and a GPS fix."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Model] = MODEL
    exif[ExifTags.Base.Software] = "17.4.1"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: LATITUDE,
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: LONGITUDE,
            ExifTags.GPS.GPSAltitude: 14.5,
        }
    )
    return exif


@cache
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def picture(width: int, height: int, *, seed: int = 1) -> Image.Image:
    """A wound-photo-like RGB picture: smooth colour with some texture, not a flat fill."""
    rnd = random.Random(seed)
    base = Image.new("RGB", (width, height), (180, 90, 80))
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x, y = rnd.randrange(width), rnd.randrange(height)
        r = rnd.randrange(max(2, min(width, height) // 8), max(3, min(width, height) // 3))
        colour = (rnd.randrange(120, 255), rnd.randrange(30, 160), rnd.randrange(30, 140))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return base


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg_with_gps(
    width: int = 640,
    height: int = 480,
    *,
    taken: str | None = TAKEN,
    offset: str | None = TAKEN_OFFSET,
    quality: int = 90,
) -> bytes:
    """A JPEG with EXIF (Make/Model, DateTimeOriginal, OffsetTimeOriginal, GPS IFD) and sRGB ICC."""
    exif = phone_exif(taken=taken, offset=offset)
    return _encode(
        picture(width, height), "JPEG", exif=exif, icc_profile=srgb_icc(), quality=quality
    )


def upright_picture() -> Image.Image:
    """Landscape, red square top-left and blue square top-right: rotation and mirroring show."""
    image = Image.new("RGB", UPRIGHT_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    width = UPRIGHT_SIZE[0]
    draw.rectangle((0, 0, MARKER - 1, MARKER - 1), fill=RED)
    draw.rectangle((width - MARKER, 0, width - 1, MARKER - 1), fill=BLUE)
    return image


def stored_for_orientation(orientation: int) -> Image.Image:
    """The pixels a camera stores so that applying `orientation` shows `upright_picture()`."""
    image = upright_picture()
    return image.transpose(_STORE[orientation]) if orientation in _STORE else image


def rotated_jpeg(orientation: int = 6) -> bytes:
    """A JPEG whose pixels are stored rotated/mirrored, with the EXIF orientation that undoes it."""
    exif = phone_exif(orientation=orientation)
    return _encode(stored_for_orientation(orientation), "JPEG", exif=exif, quality=95)


def png(width: int = 400, height: int = 300, *, mode: str = "RGB") -> bytes:
    """A PNG with an eXIf chunk (GPS included) and a text chunk."""
    from PIL import PngImagePlugin

    image = picture(width, height)
    if mode == "RGBA":
        # Transparent at the left edge, opaque at the right.
        image.putalpha(Image.linear_gradient("L").rotate(90).resize((width, height)))
    elif mode != "RGB":
        image = image.convert(mode)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "Patient Jensen, left heel")
    return _encode(image, "PNG", exif=phone_exif(), pnginfo=text)


def webp(width: int = 400, height: int = 300) -> bytes:
    """A lossy WebP with EXIF (GPS included)."""
    return _encode(picture(width, height), "WEBP", exif=phone_exif(), quality=85)


def heic(width: int = 400, height: int = 300, *, orientation: int | None = None) -> bytes:
    """A real HEIC (HEVC in HEIF) encoded by pillow-heif's libheif/x265, EXIF with GPS.

    With an orientation, the pixels are stored rotated and the file says so twice, as an iPhone
    writes it: an `irot`/`imir` property (what HEIF readers apply) and the EXIF tag.
    """
    image = picture(width, height) if orientation is None else stored_for_orientation(orientation)
    # pillow-heif reads the orientation for `irot` only from EXIF given as bytes.
    exif = phone_exif(orientation=orientation).tobytes()
    return _encode(image, "HEIF", exif=exif, quality=80)


def avif(width: int = 64, height: int = 48) -> bytes:
    """An AVIF (AV1 in HEIF), encoded by Pillow's own AVIF plugin."""
    return _encode(picture(width, height), "AVIF", quality=60)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@cache
def decompression_bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A complete, valid 1-bit PNG of width x height black pixels: ~100 kB on disk, while a
    decoder would allocate width*height bytes (900 MB by default)."""
    row = b"\x00" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    chunks = [packer.compress(row * 256) for _ in range(height // 256)]
    chunks.append(packer.compress(row * (height % 256)))
    chunks.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(chunks))
        + _png_chunk(b"IEND", b"")
    )


def truncated_jpeg(keep: float = 0.6) -> bytes:
    """A phone JPEG cut short, as an interrupted upload leaves it."""
    data = jpeg_with_gps()
    return data[: int(len(data) * keep)]


def text_as_jpg() -> bytes:
    """A text file a user renamed to wound.jpg."""
    return b"Saar paa venstre hael, 3 x 2 cm. Se vedhaeftet.\r\n" * 20


def html_jpeg_polyglot() -> bytes:
    """A JPEG that is also HTML: the markup in a COM segment and again after the EOI marker.
    Browsers that sniff would run the script if the original were served inline."""
    data = jpeg_with_gps(320, 240)
    comment = b"\xff\xfe" + struct.pack(">H", len(HTML) + 2) + HTML
    return data[:2] + comment + data[2:] + HTML


def html_first_polyglot() -> bytes:
    """Markup first, a JPEG after it: what a sniffing browser would take for a web page."""
    return HTML + b"<!--" + jpeg_with_gps(320, 240)


def motion_photo_jpeg() -> bytes:
    """A JPEG followed by a video trailer, as Android 'motion photos' and iPhone Live exports do."""
    trailer = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)
    return jpeg_with_gps() + trailer


def phone_picture_12mp(width: int = 4000, height: int = 3000) -> Image.Image:
    """Gradients with fine noise, so the JPEG of it is as large as a real phone photo (~4 MB)."""
    rnd = random.Random(12)
    noise = Image.frombytes("L", (width // 2, height // 2), rnd.randbytes(width * height // 4))
    noise = noise.resize((width, height), Image.Resampling.BILINEAR)
    grad = Image.linear_gradient("L")
    base = Image.merge(
        "RGB",
        (
            grad.resize((width, height)),
            grad.rotate(90).resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
        ),
    )
    texture = Image.merge(
        "RGB",
        (
            noise,
            noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            noise.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        ),
    )
    return Image.blend(base, texture, 0.3)


def phone_jpeg_12mp(folder: Path | None = None) -> bytes:
    """A 4000x3000 JPEG of about 4 MB with EXIF, GPS and an sRGB profile, cached on disk in
    `folder` (default: the system temp folder) because making it takes about a second."""
    folder = folder or Path(tempfile.gettempdir()) / "telemed-photos"
    path = folder / "phone-12mp.jpg"
    if path.exists():
        return path.read_bytes()
    data = _encode(
        phone_picture_12mp(), "JPEG", exif=phone_exif(), icc_profile=srgb_icc(), quality=90
    )
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{random.randrange(1 << 30)}.part")
    partial.write_bytes(data)
    partial.replace(path)
    return data


def transparent_png(size: int = 7000) -> bytes:
    """A square RGBA PNG, transparent but for an opaque disc and a half-transparent band: a
    few hundred KB that decode to size x size x 4 bytes (7000: 187 MiB), under the 50 MP limit."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size // 7, size // 7, size * 6 // 7, size * 6 // 7), fill=(*RED, 255))
    draw.rectangle((0, size * 3 // 7, size, size * 4 // 7), fill=(*BLUE, 128))
    return _encode(image, "PNG")
