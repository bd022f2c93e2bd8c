"""Decoding uploads, reading masks, encoding versions and thumbnails.

Uploads follow the OWASP File Upload Cheat Sheet: only an allow-list of
formats is decoded (``Image.open(..., formats=...)``), size is limited in bytes
and pixels, decompression-bomb warnings are errors, the image is fully loaded
before it is accepted, and it is re-encoded so that no EXIF or GPS data is
kept. EXIF orientation is applied first, so the stored image is upright.

Decoding costs memory and CPU out of proportion to an upload's bytes (a
1.7 KB WebP can be 40 megapixels; a 571 KB progressive JPEG of 10,000 empty
scans took 30 s of CPU). So everything that can be refused is refused from
the file's header, before a pixel is decoded: its byte size, format, pixel
size, animation, the size a mask must have, and a JPEG's number of scans.
Then the decode takes its pixels from the process-wide budget
(:mod:`app.image_budget`), waiting while other decodes use it, runs under
a time limit (``DECODE_SECONDS``), and a reference image is decoded at a
working size (``REFERENCE_SIDE``) rather than in full.
"""
from __future__ import annotations

import io
import logging
import math
import re
import struct
import time
import warnings
import zlib

import imagecodecs
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from app import image_budget

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
THUMBNAIL_SIZE = (256, 256)
#: Longest accepted side of an upload, in pixels. The pixel limit alone lets
#: through 100000x1 strips; 16384 is also WebP's own limit (16383).
MAX_SIDE = 16384

#: Longest side, in pixels, a reference image is decoded to (``working_side``
#: of :func:`decode_image`). A reference only guides the edit: the model
#: looks at it, none of its pixels are kept, and OpenAI's image models work
#: at 1024 to 1536 pixels (and Retouch shrinks what it sends them to their
#: byte limit anyway), so 2048 keeps all the detail they can use. It caps a
#: reference at 4 MP (16 MB decoded) however large the file declares itself.
REFERENCE_SIDE = 2048

#: Most scans (SOS markers) accepted in a JPEG. A baseline JPEG has 1 (3 when
#: its components are not interleaved); libjpeg's standard progressive
#: script has 10 for colour and 6 for greyscale, and optimising encoders
#: (mozjpeg, jpegtran -optimize) stay in the tens. Each scan makes libjpeg
#: pass over every block of the image again, so scans are the CPU cost an
#: attacker controls: 10,000 empty scans in a 571 KB file took 30 s. 100 is
#: well clear of real files. libjpeg-turbo's own tools have the same guard
#: (``djpeg -maxscans N``, "Maximum number of scans to allow in input file";
#: ``jpegtran -maxscans``; TurboJPEG's ``TJPARAM_SCANLIMIT``).
MAX_JPEG_SCANS = 100

#: Seconds one image may spend in its decoder (``load()``), a backstop for
#: costs the header checks do not foresee. Normal decodes of the largest
#: accepted image (40 MP) take under 1 s (measured: PNG 0.47 s, WebP 0.55 s,
#: JPEG 0.14 s) and a 40 MP progressive JPEG at ``MAX_JPEG_SCANS`` about 4 s;
#: 20 s leaves room for a busy machine. The deadline is checked each time
#: the decoder asks for more of the file, every ``DECODE_CHUNK_BYTES``
#: bytes, so it works for JPEG and PNG, whose decoders Pillow feeds in
#: chunks. It cannot stop a WebP: libwebp decodes the whole frame in one
#: call, which Python cannot interrupt (that cost is linear in the pixels,
#: which are limited before it starts).
DECODE_SECONDS = 20.0

#: Bytes of the file handed to the decoder per call (Pillow's default is 64
#: KB), so that the deadline is checked often enough: a 16 KB chunk of
#: empty scans is at most ~1000 scans.
DECODE_CHUNK_BYTES = 16384

#: Peak memory of a decode, in budget pixels (4 bytes) per pixel decoded,
#: by format: what :func:`decode_image` takes from
#: :data:`app.image_budget.BUDGET`. Measured (VmHWM, Pillow 13) while
#: decoding 6320x6320 images: PNG and JPEG 4.0 bytes a pixel during
#: ``load()`` (the image itself), then one conversion at a time (EXIF
#: transpose, ICC transform, mode conversion, reduction) that briefly holds
#: a second copy: 2 (MPO, a JPEG with extra pictures, decodes as a JPEG).
#: WebP 16 bytes a pixel during ``load()``: libwebp's
#: animation decoder keeps two canvases, Pillow gets the frame as a bytes
#: object, then copies it into the image: 4.
PEAK_COPIES = {"PNG": 2, "JPEG": 2, "MPO": 2, "WEBP": 4}

log = logging.getLogger("retouch")


class ImageRejected(ValueError):
    """An upload that cannot be accepted. ``status`` is the HTTP status code
    to answer with (RFC 9110): 413 too large, 415 wrong type, 422 broken or
    unusable content, 503 the server is too busy decoding other images."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ImageSizeMismatch(ImageRejected):
    """The image is not ``expected`` (width, height) pixels: it is ``size``.
    Always 422; callers word their own message from the two sizes."""

    def __init__(self, message: str, size: tuple[int, int], expected: tuple[int, int]) -> None:
        super().__init__(message, 422)
        self.size = size
        self.expected = expected


class _DecodeTimeout(Exception):
    pass


class _DeadlineReader(io.BytesIO):
    """The file as the decoder reads it: once ``deadline`` (a
    ``time.monotonic()`` value) is set and has passed, the next read raises
    :class:`_DecodeTimeout`, which ends ``load()``."""

    deadline: float | None = None

    def read(self, size: int | None = -1) -> bytes:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _DecodeTimeout
        return super().read(size)


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_side: int = MAX_SIDE,
    formats: tuple[str, ...] = ALLOWED_FORMATS,
    what: str = "image",
    to_srgb: bool = True,
    expected_size: tuple[int, int] | None = None,
    working_side: int | None = None,
) -> Image.Image:
    """Decode and normalise an uploaded image.

    Takes the raw file bytes. Returns a fully loaded, upright image in mode
    ``RGB``, or ``RGBA`` when the file has transparency (palette
    transparency, LA, RGBA), in sRGB (an embedded ICC profile is applied,
    then dropped) and with no metadata in ``info``. CMYK and 16-bit images
    are converted. A JPEG with extra pictures (MPO, e.g. a gain map) gives
    its first, main picture. With ``to_srgb=False`` the embedded profile is
    dropped without converting, so the pixel values are exactly the file's
    (``retouch edit`` uses this: an edit of a file must not shift colours
    the edit did not ask for).

    ``expected_size`` (width, height in pixels, upright): the image must be
    that size (masks and drawings match the image they go with); a file
    whose header declares another size, in either orientation, is refused
    before it is decoded. ``working_side`` (pixels): the result is reduced
    to fit in a square of that side (aspect kept; never enlarged). A JPEG
    is then decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (Pillow's
    ``draft()``) when that still covers the working size; PNG and WebP are
    decoded in full and reduced.

    Before any pixel is decoded, the header is checked against every limit
    below, then the decode takes ``width * height * PEAK_COPIES[format]``
    budget pixels from :data:`app.image_budget.BUDGET` (waiting up to
    ``app.image_budget.WAIT_SECONDS`` seconds for them) and gives them back
    when it returns. ``load()`` itself may take ``DECODE_SECONDS`` seconds.

    Raises :class:`ImageRejected`:

    - 413 over ``max_bytes`` bytes, ``max_pixels`` pixels or ``max_side``
      pixels a side, or a decompression bomb;
    - 415 for a file that is not in ``formats`` (the message says what it is);
    - 422 for an empty, truncated, corrupt (a PNG chunk failing its CRC) or
      animated (APNG, animated WebP) file, one with no pixels, a JPEG with
      more than ``MAX_JPEG_SCANS`` scans, or one whose decoding took longer
      than ``DECODE_SECONDS`` seconds;
    - 422 :class:`ImageSizeMismatch` when it is not ``expected_size``;
    - 503 when the pixel budget had no room for it in
      ``app.image_budget.WAIT_SECONDS`` seconds (other decodes are running).
    """
    if not data:
        raise ImageRejected(f"The {what} file is empty.", 422)
    if len(data) > max_bytes:
        raise ImageRejected(
            f"The {what} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.", 413
        )
    names = ", ".join({"WEBP": "WebP"}.get(f, f) for f in formats)
    kind, sniffed = _sniff(data)
    if sniffed not in formats:
        raise ImageRejected(f"The {what} is {kind}, not an image in an accepted format ({names}).", 415)
    damaged = f"The {what} looks like {kind} but is damaged or truncated and cannot be read"
    if sniffed == "PNG":
        _check_png_chunks(data, what, damaged)
    if sniffed == "JPEG" and count_jpeg_scans(data, stop_after=MAX_JPEG_SCANS) > MAX_JPEG_SCANS:
        raise ImageRejected(
            f"The {what} is a JPEG with more than {MAX_JPEG_SCANS} scans (ordinary photos have at most "
            f"about 10), which would take minutes to decode; save it again as an ordinary JPEG or a PNG.",
            422,
        )
    try:
        reader = _DeadlineReader(data)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(reader, formats=list(formats))
            except UnidentifiedImageError:
                raise ImageRejected(f"{damaged}.", 422) from None
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageRejected(f"The {what} has no pixels ({w}x{h}).", 422)
        if max(w, h) > max_side:
            raise ImageRejected(
                f"The {what} is {w}x{h} pixels; the longest side may be at most {max_side} pixels.", 413
            )
        if w * h > max_pixels:
            raise ImageRejected(
                f"The {what} is {w}x{h} pixels ({w * h / 1e6:.1f} megapixels); "
                f"the limit is {max_pixels / 1e6:.1f} megapixels.",
                413,
            )
        if im.format in ("PNG", "WEBP") and getattr(im, "n_frames", 1) > 1:
            raise ImageRejected(
                f"The {what} is animated ({kind} with {im.n_frames} frames); upload a still image.", 422
            )
        if expected_size is not None:
            ew, eh = expected_size
            # The header gives the stored size; EXIF orientation may still
            # swap it, so either way round passes here and the upright size
            # is checked again after decoding.
            if (w, h) != (ew, eh) and (h, w) != (ew, eh):
                if im.format == "PNG" and (broken := _png_stream_error(data)):
                    raise ImageRejected(f"{damaged} ({broken}).", 422)  # damage is reported first, as before
                raise _size_mismatch(what, (w, h), (ew, eh))
        if working_side is not None and im.format in ("JPEG", "MPO") and max(w, h) > working_side:
            im.draft(im.mode, _fit_size((w, h), working_side))  # libjpeg scales by 1/2, 1/4 or 1/8
        cost = im.width * im.height * PEAK_COPIES.get(im.format, max(PEAK_COPIES.values()))
        budget = image_budget.BUDGET
        try:
            granted = budget.acquire(cost, image_budget.WAIT_SECONDS)
        except image_budget.BudgetTimeout:
            log.warning("no room in the pixel budget for a %dx%d %s in %g s", w, h, what, image_budget.WAIT_SECONDS)
            raise ImageRejected(
                f"The server is busy decoding other images and could not start on the {what} within "
                f"{image_budget.WAIT_SECONDS:g} s; try again in a minute.",
                503,
            ) from None
        try:
            im.decodermaxblock = DECODE_CHUNK_BYTES
            reader.deadline = time.monotonic() + DECODE_SECONDS
            im.load()
            reader.deadline = None
            if im.format == "WEBP":
                # A new image: the file object keeps libwebp's two canvases.
                im = ImageOps.exif_transpose(im)
            else:
                # No full-size copy unless the orientation turns the image.
                ImageOps.exif_transpose(im, in_place=True)
            im = normalise_mode(_to_srgb(im) if to_srgb else im)
            if working_side is not None and max(im.size) > working_side:
                # reducing_gap 1.5: a box reduction by an integer factor,
                # then Lanczos over the last 1.5x or less. Measured on a
                # 6320x6320 image: 0.30 s, against 0.79 s for Pillow's 2.0.
                im.thumbnail((working_side, working_side), Image.Resampling.LANCZOS, reducing_gap=1.5)
            if expected_size is not None and im.size != tuple(expected_size):
                raise _size_mismatch(what, im.size, tuple(expected_size))
            return _strip_metadata(im)
        finally:
            if granted >= image_budget.TRIM_PIXELS:
                # The full-size intermediates are freed by now; hand their
                # memory back before the next decode starts in another thread.
                image_budget.give_back_freed_memory()
            budget.release(granted)
    except ImageRejected:
        raise
    except _DecodeTimeout:
        log.warning("decoding a %s (%s) took over %g s", what, kind, DECODE_SECONDS)
        raise ImageRejected(
            f"The {what} took more than {DECODE_SECONDS:g} s to decode, far longer than an ordinary "
            f"image; save it again as an ordinary JPEG or a PNG.",
            422,
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageRejected(f"The {what} declares too many pixels (a decompression bomb).", 413) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if "MAX_TEXT_CHUNK" in str(exc) or "MAX_TEXT_MEMORY" in str(exc):
            raise ImageRejected(
                f"The {what} has metadata that decompresses to too much data (a decompression bomb).", 413
            ) from None
        raise ImageRejected(f"{damaged} ({exc}).", 422) from None
    except Exception as exc:  # a decoder bug on hostile input must not become a 500
        log.warning("could not decode an upload (%s): %r", kind, exc)
        raise ImageRejected(f"{damaged}.", 422) from None


def _size_mismatch(what: str, size: tuple[int, int], expected: tuple[int, int]) -> ImageSizeMismatch:
    return ImageSizeMismatch(
        f"The {what} is {size[0]}x{size[1]} pixels but the image is {expected[0]}x{expected[1]}; "
        f"they must be the same size.",
        size, expected,
    )


def _png_stream_error(data: bytes, sample: int = 65536) -> str | None:
    """Whether the start of a PNG's image data is a valid zlib stream,
    checked without decoding the image: at most ``sample`` bytes of IDAT
    data are inflated, to at most 1 MB (bounded work and memory). Returns
    the zlib error (a phrase), or None when the start looks right. Chunk
    lengths were checked by :func:`_check_png_chunks`."""
    pos, payload = 8, b""
    while pos + 8 <= len(data) and len(payload) < sample:
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if ctype == b"IDAT":
            payload += data[pos + 8:pos + 8 + min(length, sample - len(payload))]
        elif ctype == b"IEND" or payload:
            break
        pos += 12 + length
    try:
        zlib.decompressobj().decompress(payload, 1 << 20)
    except zlib.error as exc:
        return str(exc)
    return None


def _fit_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` (pixels) scaled to fit in ``side`` x ``side``, aspect kept."""
    w, h = size
    scale = min(1.0, side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


#: A marker in entropy-coded data: 0xFF followed by anything but 0x00
#: (a stuffed 0xFF byte), 0xD0-0xD7 (RST markers, which sit inside a scan)
#: or 0xFF (fill bytes, which may precede a marker).
_JPEG_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Markers without a length field (ITU-T T.81, B.1.1.3): TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8), 0xD8))


def count_jpeg_scans(data: bytes, stop_after: int | None = None) -> int:
    """Count the scans (SOS markers, 0xFFDA) of the first picture of a JPEG
    file, without decoding it.

    Walks the marker segments from SOI (ITU-T T.81, annex B): each segment's
    length is skipped, and after an SOS header the entropy-coded data runs
    to the next marker (0xFF00 is a stuffed byte and 0xFFD0-0xFFD7 are
    restart markers, both part of the scan). Bytes where a marker should be
    are skipped up to the next marker, as libjpeg does (``next_marker`` in
    jdmarker.c only warns about them), so junk between scans does not hide
    them. Stops at EOI (the pictures an MPO file appends after it are not
    decoded), at the end of the data (the decoder reports truncation) or
    once the count exceeds ``stop_after``. Returns the number of scans.
    """
    n = len(data)
    pos, scans = 2, 0
    while pos + 1 < n:
        if data[pos] != 0xFF:
            # Not at a marker: libjpeg skips such bytes (a warning, not an
            # error) up to the next marker, so the count must go on there.
            found = _JPEG_MARKER_IN_SCAN.search(data, pos)
            if found is None:
                break
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if marker in _JPEG_STANDALONE or marker == 0x00:
            pos += 2
            continue
        if pos + 4 > n:
            break
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        pos += 2 + max(length, 2)  # libjpeg skips nothing more for a length under 2
        if marker == 0xDA:
            scans += 1
            if stop_after is not None and scans > stop_after:
                break
            found = _JPEG_MARKER_IN_SCAN.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return scans


def _check_png_chunks(data: bytes, what: str, damaged: str) -> None:
    """Walk a PNG's chunks up to IEND: each must fit in the file and pass
    its CRC-32 (Pillow does not check the CRC of image data), the first must
    be IHDR, and an ``acTL`` chunk declaring more than one frame (APNG) is
    refused. Bytes after IEND are ignored: the image is re-encoded anyway."""
    pos, first = 8, True
    while True:
        if pos + 12 > len(data):
            raise ImageRejected(f"{damaged} (it ends before its IEND chunk).", 422)
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        name = ctype.decode("latin-1") if ctype.isalpha() else repr(ctype)
        end = pos + 12 + length
        if end > len(data):
            raise ImageRejected(f"{damaged} (the {name} chunk is cut off or its length is wrong).", 422)
        if first and ctype != b"IHDR":
            raise ImageRejected(f"{damaged} (it does not start with an IHDR chunk).", 422)
        if first and length >= 8:
            w, h = struct.unpack(">II", data[pos + 8:pos + 16])
            if w == 0 or h == 0:
                raise ImageRejected(f"The {what} has no pixels ({w}x{h}).", 422)
        (crc,) = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            raise ImageRejected(f"{damaged} (the {name} chunk fails its checksum).", 422)
        if ctype == b"acTL" and length >= 4 and struct.unpack(">I", data[pos + 8:pos + 12])[0] > 1:
            frames = struct.unpack(">I", data[pos + 8:pos + 12])[0]
            raise ImageRejected(
                f"The {what} is animated (an animated PNG with {frames} frames); upload a still image.", 422
            )
        if ctype == b"IEND":
            return
        pos, first = end, False


_SRGB = None


def _to_srgb(im: Image.Image) -> Image.Image:
    """Apply an embedded ICC profile (convert to sRGB), so that dropping the
    profile keeps the colours. An unusable profile is ignored."""
    global _SRGB
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return im
    try:
        if _SRGB is None:
            _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
        base = im.convert("RGB" if im.mode == "RGBA" else "L") if alpha is not None else im
        out = ImageCms.profileToProfile(base, src, _SRGB, outputMode="RGB")
        if out is None:
            return im
        if alpha is not None:
            out.putalpha(alpha)
        return out
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im


def _strip_metadata(im: Image.Image) -> Image.Image:
    """Drop everything in ``info`` (EXIF, XMP, ICC profile, comments, text
    chunks): Pillow's PNG encoder would otherwise write the ICC profile back."""
    im.info = {}
    return im


def normalise_mode(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``RGB``, or ``RGBA`` when it has alpha."""
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (
        im.mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than clipping.
        im = im.point(lambda v: v / 256).convert("L")
    target = "RGBA" if has_alpha else "RGB"
    return im.convert(target) if im.mode != target else im


def decode_mask(data: bytes, size: tuple[int, int], *, max_bytes: int, max_pixels: int,
                max_side: int = MAX_SIDE) -> Image.Image:
    """Decode a mask upload into mode ``L`` where 255 means "edit here".

    Accepts PNG only. White (>= 128 after converting to greyscale) marks the
    region to edit. An RGBA mask whose alpha channel is not fully opaque uses
    OpenAI's convention instead (images API, ``mask`` parameter): alpha 0
    marks the region to edit. ``size`` is the image's (width, height) in
    pixels; the mask must match it, and a mask whose header declares
    another size is refused before it is decoded. Decoding is limited like
    :func:`decode_image` (pixel budget, time limit). Returns mode ``L``.

    Raises :class:`ImageRejected` (415 not a PNG, 422 wrong size, selects
    nothing or unreadable, 413 too large, 503 server busy).
    """
    raw = _decode_png_of_size(data, size, "mask", "a mask must be a PNG image (white marks the region to edit)",
                              max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side)
    if raw.mode == "RGBA" and raw.getchannel("A").getextrema()[0] < 255:
        alpha = raw.getchannel("A")
        mask = alpha.point(lambda a: 255 if a < 128 else 0)
    else:
        mask = raw.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if mask.getextrema()[1] == 0:
        raise ImageRejected("The mask selects nothing: paint the region to edit in white.", 422)
    return mask


def _decode_png_of_size(data: bytes, size: tuple[int, int], noun: str, must: str, *, max_bytes: int,
                        max_pixels: int, max_side: int) -> Image.Image:
    """Decode a PNG that must be ``size`` (width, height) pixels, like a mask
    or a drawing over the image (``noun`` names it in messages; ``must`` says
    what it must be when it is not a PNG). Raises :class:`ImageRejected`:
    415 not a PNG, 422 another size (from the header, before decoding), and
    whatever :func:`decode_image` raises."""
    try:
        return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side,
                            formats=("PNG",), what=noun, expected_size=tuple(size))
    except ImageRejected as exc:  # ImageSizeMismatch already words it with ``noun``
        if exc.status == 415:
            raise ImageRejected(f"The {noun} is {_sniff(data)[0]}; {must}.", 415) from None
        raise


def decode_markup(data: bytes, size: tuple[int, int], *, max_bytes: int, max_pixels: int,
                  max_side: int = MAX_SIDE) -> Image.Image:
    """Decode a markup upload: strokes drawn over the image to guide an edit.

    Accepts a PNG of ``size`` (the image's (width, height) in pixels) with an
    alpha channel that is transparent where nothing was drawn and has at
    least one opaque stroke: OpenAI's ``markup`` is "a transparent PNG
    overlaid on the first image ... Must match that image's dimensions ...
    and contain transparent pixels" (SDK ``openai/types/image_edit_params.py``).
    Returns mode ``RGBA``. A drawing whose header declares another size is
    refused before it is decoded; decoding is limited like
    :func:`decode_image` (pixel budget, time limit).

    Raises :class:`ImageRejected` (415 not a PNG, 422 wrong size, no
    transparency or nothing drawn, 413 too large, 503 server busy).
    """
    raw = _decode_png_of_size(data, size, "drawing", "it must be a PNG with transparency",
                              max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side)
    low, high = raw.convert("RGBA").getchannel("A").getextrema()
    if low == 255:
        raise ImageRejected("The drawing has no transparent pixels: draw strokes on a transparent PNG.", 422)
    if high == 0:
        raise ImageRejected("The drawing is empty: draw on the image to show where to edit.", 422)
    return raw.convert("RGBA")


#: zlib/libdeflate level of stored PNGs' image data. Measured side by side on a
#: 1024x1024 photo (``bench/bench_turn.py`` prints it): Pillow at level 3 (the
#: first encoder) 90 ms and 1.37 MB; OpenCV's libpng with zlib's RLE strategy
#: (the second) 47-52 ms and 1.24 MB; the "Up" filter plus libdeflate level 1
#: (this one) 14 ms and 1.42 MB. libpng spends most of its time choosing a filter
#: per row; one fixed filter computed by numpy costs under 1 ms. On flat,
#: generated images it is also smaller (19 KB against OpenCV's 24 KB).
PNG_DEFLATE_LEVEL = 1
#: Largest IDAT chunk written, bytes (PNG allows up to 2**31 - 1).
PNG_IDAT_BYTES = 1 << 24
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data
    (W3C PNG Specification, 3rd edition, §5.3)."""
    return struct.pack(">I", len(data)) + kind + bytes(data) + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(im: Image.Image) -> bytes:
    """Encode ``im`` losslessly as PNG: 8-bit RGB (colour type 2), or RGBA
    (colour type 6) when it has alpha; no interlacing, no metadata chunks.
    Returns the bytes.

    Every row uses filter type 2, "Up" (each byte minus the byte above it,
    modulo 256; the first row is unchanged, as the row above it counts as
    zeros: W3C PNG Specification, 3rd edition, §9.2), and the filtered rows are
    compressed as one zlib stream by libdeflate (through ``imagecodecs``) at
    :data:`PNG_DEFLATE_LEVEL` (§10). See :data:`PNG_DEFLATE_LEVEL` for the
    measurements behind the choice. Memory: one filtered copy of the pixels
    (width x height x channels + height bytes) plus the compressed output."""
    im = normalise_mode(im)
    pixels = np.asarray(im)
    height, width = pixels.shape[:2]
    channels = 4 if im.mode == "RGBA" else 3
    pixels = pixels.reshape(height, width, channels)
    rows = np.empty((height, width * channels + 1), dtype=np.uint8)
    rows[:, 0] = 2  # filter type Up
    filtered = rows[:, 1:].reshape(height, width, channels)
    filtered[0] = pixels[0]
    np.subtract(pixels[1:], pixels[:-1], out=filtered[1:])  # uint8 arithmetic wraps modulo 256
    data = memoryview(imagecodecs.deflate_encode(rows, level=PNG_DEFLATE_LEVEL))
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if channels == 4 else 2, 0, 0, 0)
    parts = [_PNG_SIGNATURE, _png_chunk(b"IHDR", header)]
    parts += [_png_chunk(b"IDAT", data[i:i + PNG_IDAT_BYTES]) for i in range(0, len(data), PNG_IDAT_BYTES)]
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


def thumbnail_size(size: tuple[int, int], box: tuple[int, int] = THUMBNAIL_SIZE) -> tuple[int, int]:
    """The size (pixels) Pillow's ``Image.thumbnail(box)`` gives an image of
    ``size``: aspect kept, rounded to the nearer aspect, never enlarged."""
    w, h = size
    x, y = box
    if x >= w and y >= h:
        return w, h
    aspect = w / h

    def round_aspect(number: float, key) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return x, y


def encode_thumbnail(im: Image.Image) -> bytes:
    """A WebP thumbnail of ``im`` that fits in 256x256 pixels. Returns bytes.

    The same pixels as ``im.copy().thumbnail(...)`` without the full-size
    copy (160 MB for a 40-megapixel photo): ``resize`` with Pillow's
    thumbnail settings reads ``im`` and writes only the small image."""
    im = normalise_mode(im)
    size = thumbnail_size(im.size)
    thumb = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0) if size != im.size else im
    buf = io.BytesIO()
    thumb.save(buf, format="WEBP", quality=80, method=4)
    return buf.getvalue()


def open_png(data: bytes) -> Image.Image:
    """Open a PNG that Retouch stored itself; returns a loaded RGB/RGBA image."""
    im = Image.open(io.BytesIO(data), formats=["PNG"])
    im.load()
    return normalise_mode(im)


#: (magic at offset 0, what it is, Pillow format name or None)
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG", "PNG"),
    (b"\xff\xd8\xff", "a JPEG", "JPEG"),
    (b"GIF8", "a GIF", None),
    (b"II*\x00", "a TIFF", None),
    (b"MM\x00*", "a TIFF", None),
    (b"\x00\x00\x01\x00", "an ICO icon", None),
    (b"8BPS", "a Photoshop (PSD) file", None),
    (b"%PDF", "a PDF", None),
    (b"PK\x03\x04", "a ZIP archive", None),
    (b"\x7fELF", "a program (ELF executable)", None),
    (b"\xff\xfe", "a text file (UTF-16)", None),
    (b"\xfe\xff", "a text file (UTF-16)", None),
)


def _sniff(data: bytes) -> tuple[str, str | None]:
    """What the bytes look like: (a phrase for messages, the Pillow format
    name when it is JPEG, PNG or WebP, else None)."""
    for magic, kind, fmt in _MAGIC:
        if data.startswith(magic):
            return kind, fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP", "WEBP"
    if data[:2] == b"BM" and len(data) >= 14 and data[6:10] == b"\x00\x00\x00\x00":
        return "a BMP", None
    if data[:2] == b"MZ":
        return "a program (Windows executable)", None
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "an SVG image", None
    if head.startswith(b"<?xml"):
        return "an XML document", None
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page", None
    try:
        data[:512].decode("utf-8")
        return "a text file", None
    except UnicodeDecodeError as exc:
        if exc.start >= 508:  # a multi-byte character cut at the end of the sample
            return "a text file", None
        return "an unrecognised file", None
