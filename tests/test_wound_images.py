import hashlib
import io
import resource
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from tests import photos
from wounds.images import COPENHAGEN, PhotoError, SanitizedPhoto, sanitize, sniff

# JPEG markers a clean derivative may have: SOI, APP0 (JFIF), APP2 (ICC), DQT, SOFn, DHT, DRI, SOS.
_ALLOWED_MARKERS = {0xD8, 0xE0, 0xE2, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD, 0xDA}


def jpeg_markers(data: bytes) -> list[int]:
    """The segment markers of a JPEG up to its first scan."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [0xD8], 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"not a marker at {pos}"
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    raise AssertionError("no scan")


def assert_clean(data: bytes, *, icc: bytes | None = None) -> Image.Image:
    """A derivative: a JPEG with pixels and at most the given ICC profile, nothing else."""
    assert set(jpeg_markers(data)) <= _ALLOWED_MARKERS
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert len(image.getexif()) == 0
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "mp"):
        assert key not in image.info
    assert image.info.get("icc_profile") == icc
    for needle in (b"Exif\x00\x00", b"ns.adobe.com", photos.MAKE.encode(), photos.MODEL.encode()):
        assert needle not in data
    image.load()
    return image


def icc_of(original: bytes) -> bytes:
    return Image.open(io.BytesIO(original)).info["icc_profile"]


def all_derivatives(photo: SanitizedPhoto) -> list[bytes]:
    return [photo.display, *photo.thumbnails.values()]


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (photos.jpeg_with_gps, "jpeg"),
        (photos.png, "png"),
        (photos.webp, "webp"),
        (photos.heic, "heic"),
        (photos.html_jpeg_polyglot, "jpeg"),
    ],
)
def test_sniff_reads_the_format_from_the_bytes(make, expected) -> None:
    assert sniff(make()) == expected


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", len(body) + 8) + b"ftyp" + body + bytes(64)


@pytest.mark.parametrize(
    "data",
    [
        _ftyp(b"heic", b"mif1", b"heic"),
        _ftyp(b"heix", b"mif1"),
        _ftyp(b"mif1", b"heic", b"miaf"),
        _ftyp(b"msf1", b"hevc"),
        _ftyp(b"mif1", b"miaf"),
    ],
)
def test_sniff_takes_hevc_and_generic_heif_brands(data: bytes) -> None:
    assert sniff(data) == "heic"


@pytest.mark.parametrize(
    "data",
    [
        _ftyp(b"avif", b"mif1", b"miaf"),
        _ftyp(b"mif1", b"avif", b"miaf"),
        _ftyp(b"isom", b"mp42"),  # a video
        _ftyp(b"qt  "),
        b"\x00\x00\x00\x09ftypheic" + bytes(16),  # box size not a whole number of brands
        b"\xff\xff\xff\xf0ftypheic" + bytes(16),  # box larger than the file
        photos.text_as_jpg(),
        photos.html_first_polyglot(),
        b"\xef\xbb\xbf<!DOCTYPE html><html>",
        b"GIF89a" + bytes(32),
        b"BM" + bytes(64),
        b"%PDF-1.7\n",
        b"\xff\xd8",  # too short to be a JPEG
    ],
)
def test_sniff_refuses_everything_else(data: bytes) -> None:
    with pytest.raises(PhotoError) as caught:
        sniff(data)
    assert (caught.value.code, caught.value.http_status) == ("unsupported_format", 415)


def test_real_avif_is_refused() -> None:
    with pytest.raises(PhotoError) as caught:
        sanitize(photos.avif())
    assert caught.value.code == "unsupported_format"
    assert "AVIF" in caught.value.detail


# --- what survives ------------------------------------------------------------------------


def test_jpeg_loses_exif_and_gps_keeps_icc_and_time_taken() -> None:
    original = photos.jpeg_with_gps(640, 480)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the GPS is there
    photo = sanitize(original)
    assert (photo.format, photo.mime) == ("jpeg", "image/jpeg")
    assert (photo.width, photo.height) == (640, 480)
    assert (photo.display_width, photo.display_height) == (640, 480)
    assert photo.taken_at == datetime(2024, 5, 17, 10, 42, 13, tzinfo=timezone(timedelta(hours=2)))
    assert photo.taken_at_zone_assumed is False
    for data in all_derivatives(photo):
        assert_clean(data, icc=icc_of(original))
    display = Image.open(io.BytesIO(photo.display))
    assert display.info.get("progressive") == 1
    assert display.size == (640, 480)


def test_sha256_is_of_the_original_bytes() -> None:
    original = photos.jpeg_with_gps()
    assert sanitize(original).sha256 == hashlib.sha256(original).hexdigest()


def test_time_taken_without_offset_is_read_in_the_camera_zone() -> None:
    photo = sanitize(photos.jpeg_with_gps(offset=None))
    assert photo.taken_at == datetime(2024, 5, 17, 10, 42, 13, tzinfo=COPENHAGEN)
    assert photo.taken_at.utcoffset() == timedelta(hours=2)  # summer time
    assert photo.taken_at_zone_assumed is True
    utc = sanitize(photos.jpeg_with_gps(offset=None), camera_tz=UTC)
    assert utc.taken_at == datetime(2024, 5, 17, 10, 42, 13, tzinfo=UTC)


@pytest.mark.parametrize("taken", [None, "0000:00:00 00:00:00", "    :  :     :  :  ", "yesterday"])
def test_missing_or_unset_time_taken_is_none(taken: str | None) -> None:
    photo = sanitize(photos.jpeg_with_gps(taken=taken))
    assert photo.taken_at is None
    assert photo.taken_at_zone_assumed is False


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_costs_the_metadata_not_the_photo() -> None:
    data = photos.jpeg_with_gps()
    garbage = b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff" + bytes(40)
    broken = data[:2] + b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage + data[2:]
    photo = sanitize(broken)
    assert photo.taken_at is None
    assert_clean(photo.display, icc=icc_of(data))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied(orientation: int) -> None:
    original = photos.rotated_jpeg(orientation)
    stored = Image.open(io.BytesIO(original)).size
    photo = sanitize(original)
    assert (photo.width, photo.height) == photos.UPRIGHT_SIZE
    assert stored == (photos.UPRIGHT_SIZE[::-1] if orientation >= 5 else photos.UPRIGHT_SIZE)
    display = assert_clean(photo.display).convert("RGB")
    assert display.size == photos.UPRIGHT_SIZE
    half = photos.MARKER // 2
    assert near(display.getpixel((half, half)), photos.RED)
    assert near(display.getpixel((display.width - half, half)), photos.BLUE)
    assert near(display.getpixel((half, display.height - half)), photos.BACKGROUND)
    for size, data in photo.thumbnails.items():
        thumb = assert_clean(data).convert("RGB")
        assert thumb.width == size and thumb.width > thumb.height
        assert near(thumb.getpixel((2, 2)), photos.RED, tolerance=60)


def test_heic_from_an_iphone_is_accepted() -> None:
    photo = sanitize(photos.heic(400, 300))
    assert (photo.format, photo.mime) == ("heic", "image/heic")
    assert (photo.width, photo.height) == (400, 300)
    assert photo.taken_at == datetime(2024, 5, 17, 10, 42, 13, tzinfo=timezone(timedelta(hours=2)))
    for data in all_derivatives(photo):
        assert_clean(data)


def test_heic_orientation_is_applied() -> None:
    photo = sanitize(photos.heic(orientation=6))
    assert (photo.width, photo.height) == photos.UPRIGHT_SIZE
    display = assert_clean(photo.display).convert("RGB")
    half = photos.MARKER // 2
    assert near(display.getpixel((half, half)), photos.RED)
    assert near(display.getpixel((display.width - half, half)), photos.BLUE)


@pytest.mark.parametrize("make", [photos.png, photos.webp])
def test_png_and_webp_lose_exif_and_text(make) -> None:
    original = make()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    photo = sanitize(original)
    assert photo.taken_at is not None
    for data in all_derivatives(photo):
        assert_clean(data)
        assert b"Jensen" not in data


def test_transparency_is_flattened_onto_white() -> None:
    photo = sanitize(photos.png(200, 100, mode="RGBA"))
    display = assert_clean(photo.display)
    assert display.mode == "RGB"
    assert near(display.getpixel((0, 50)), (255, 255, 255), tolerance=8)  # alpha 0 at the left
    assert not near(display.getpixel((199, 50)), (255, 255, 255), tolerance=30)


def test_sixteen_bit_grey_keeps_its_brightness() -> None:
    out = io.BytesIO()
    Image.new("I;16", (300, 200), 32768).save(out, "PNG")
    display = assert_clean(sanitize(out.getvalue()).display)
    assert display.mode == "L"
    assert abs(display.getpixel((150, 100)) - 128) <= 2


def test_cmyk_jpeg_becomes_rgb() -> None:
    out = io.BytesIO()
    Image.new("CMYK", (300, 200), (0, 255, 255, 0)).save(out, "JPEG")
    display = assert_clean(sanitize(out.getvalue()).display)
    assert display.mode == "RGB"
    assert near(display.getpixel((150, 100)), (255, 0, 0), tolerance=30)


def test_large_png_is_scaled_to_the_display_size_and_thumbnails() -> None:
    photo = sanitize(photos.png(3000, 1000))
    assert (photo.width, photo.height) == (3000, 1000)
    assert (photo.display_width, photo.display_height) == (2048, 683)
    assert Image.open(io.BytesIO(photo.display)).size == (2048, 683)
    assert sorted(photo.thumbnails) == [100, 240]
    assert Image.open(io.BytesIO(photo.thumbnails[240])).size == (240, 80)
    assert Image.open(io.BytesIO(photo.thumbnails[100])).size == (100, 33)


def test_thumb_sizes_are_the_callers() -> None:
    photo = sanitize(photos.jpeg_with_gps(800, 600), display_max=500, thumb_sizes=(320, 64))
    assert (photo.display_width, photo.display_height) == (500, 375)
    assert {size: Image.open(io.BytesIO(d)).size for size, d in photo.thumbnails.items()} == {
        320: (320, 240),
        64: (64, 48),
    }


# --- what is refused ----------------------------------------------------------------------


def _refused(data: bytes, **limits: int) -> PhotoError:
    with pytest.raises(PhotoError) as caught:
        sanitize(data, **limits)
    return caught.value


def test_empty_upload_is_refused() -> None:
    error = _refused(b"")
    assert (error.code, error.http_status) == ("empty", 400)


def test_too_large_is_refused_before_anything_is_read() -> None:
    original = photos.jpeg_with_gps()
    assert sanitize(original, max_bytes=len(original)).sha256
    error = _refused(original, max_bytes=len(original) - 1)
    assert (error.code, error.http_status) == ("too_large", 413)
    assert _refused(b"x" * (15 * 1024 * 1024 + 1)).code == "too_large"


@pytest.mark.parametrize("make", [photos.text_as_jpg, photos.html_first_polyglot])
def test_text_and_markup_are_unsupported(make) -> None:
    error = _refused(make())
    assert (error.code, error.http_status) == ("unsupported_format", 415)


def _max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_decompression_bomb_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = photos.decompression_bomb_png()
    assert len(bomb) < 200_000
    assert struct.unpack(">II", bomb[16:24]) == (30_000, 30_000)  # what IHDR declares
    _no_decoding(monkeypatch)
    before = _max_rss_kib()
    error = _refused(bomb)
    assert (error.code, error.http_status) == ("too_many_pixels", 413)
    assert _max_rss_kib() - before < 100_000  # decoding would have taken 900 MB


def test_pixel_limit_is_ours_below_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = photos.decompression_bomb_png(8000, 7000)  # 56 Mpx: Pillow would not even warn
    _no_decoding(monkeypatch)
    error = _refused(bomb)
    assert error.code == "too_many_pixels"
    assert "8000x7000" in error.detail
    assert _refused(photos.jpeg_with_gps(640, 480), max_pixels=640 * 480 - 1).code == (
        "too_many_pixels"
    )


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_as_error_is_too_many_pixels() -> None:
    error = _refused(photos.decompression_bomb_png(10_000, 10_000), max_pixels=200_000_000)
    assert error.code == "too_many_pixels"


def test_truncated_jpeg_is_corrupt() -> None:
    error = _refused(photos.truncated_jpeg())
    assert (error.code, error.http_status) == ("corrupt", 422)


_SMALL_JPEG = photos.jpeg_with_gps(160, 120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=3, max_value=len(_SMALL_JPEG) - 1))
def test_jpeg_cut_anywhere_is_corrupt(keep: int) -> None:
    assert _refused(_SMALL_JPEG[:keep]).code == "corrupt"


@pytest.mark.parametrize("cut", [1, 2, 64, 5000])
def test_truncation_is_caught_when_the_decoder_scales_down(cut: int) -> None:
    original = photos.jpeg_with_gps(1600, 1200)
    photo = sanitize(original, display_max=400)
    assert (photo.display_width, photo.display_height) == (400, 300)  # decoded at 1/4
    assert _refused(original[:-cut], display_max=400).code == "corrupt"


@pytest.mark.parametrize("make", [photos.png, photos.webp, photos.heic])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_other_truncated_formats_are_corrupt(make, keep: float) -> None:
    data = make()
    assert _refused(data[: int(len(data) * keep)]).code == "corrupt"


def test_truncated_images_switched_on_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        sanitize(photos.truncated_jpeg())


# --- polyglots and trailers ---------------------------------------------------------------


def test_html_jpeg_polyglot_leaves_no_markup_in_derivatives() -> None:
    original = photos.html_jpeg_polyglot()
    assert original.count(b"<script") == 2
    assert "<script" in Image.open(io.BytesIO(original)).info["comment"].decode()
    photo = sanitize(original)
    for data in all_derivatives(photo):
        assert_clean(data, icc=icc_of(original))
        lowered = data.lower()
        assert b"<script" not in lowered
        assert b"<html" not in lowered


def test_motion_photo_trailer_is_tolerated_and_dropped() -> None:
    original = photos.motion_photo_jpeg()
    photo = sanitize(original)
    assert photo.sha256 == hashlib.sha256(original).hexdigest()
    for data in all_derivatives(photo):
        assert b"ftypmp42" not in data
        assert_clean(data, icc=icc_of(original))


# --- a real phone photo -------------------------------------------------------------------


@pytest.fixture(scope="session")
def phone_photo(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder: Path = tmp_path_factory.getbasetemp().parent / "photos"
    return photos.phone_jpeg_12mp(folder)


def test_twelve_megapixel_phone_photo(phone_photo: bytes) -> None:
    assert 3_500_000 < len(phone_photo) < 5_000_000
    photo = sanitize(phone_photo)
    assert (photo.width, photo.height) == (4000, 3000)
    # The decoder's 1/2 scale lands within 10 % of display_max, so no resample is needed.
    assert (photo.display_width, photo.display_height) == (2000, 1500)
    assert Image.open(io.BytesIO(photo.display)).size == (2000, 1500)
    assert {size: Image.open(io.BytesIO(d)).size for size, d in photo.thumbnails.items()} == {
        240: (240, 180),
        100: (100, 75),
    }
    for data in all_derivatives(photo):
        assert_clean(data, icc=icc_of(phone_photo))
