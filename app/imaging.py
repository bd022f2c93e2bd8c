"""Decoding uploads, reading masks, encoding versions and thumbnails.

Uploads follow the OWASP File Upload Cheat Sheet: only an allow-list of
formats is decoded (``Image.open(..., formats=...)``), size is limited in bytes
and pixels, decompression-bomb warnings are errors, the image is fully loaded
before it is accepted, and it is re-encoded so that no EXIF or GPS data is
kept. EXIF orientation is applied first, so the stored image is upright.
"""
from __future__ import annotations

import io
import logging
import struct
import warnings
import zlib

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
THUMBNAIL_SIZE = (256, 256)
#: Longest accepted side of an upload, in pixels. The pixel limit alone lets
#: through 100000x1 strips; 16384 is also WebP's own limit (16383).
MAX_SIDE = 16384

log = logging.getLogger("retouch")


class ImageRejected(ValueError):
    """An upload that cannot be accepted. ``status`` is the HTTP status code
    to answer with (RFC 9110): 413 too large, 415 wrong type, 422 broken or
    unusable content."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_side: int = MAX_SIDE,
    formats: tuple[str, ...] = ALLOWED_FORMATS,
    what: str = "image",
    to_srgb: bool = True,
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

    Raises :class:`ImageRejected`:

    - 413 over ``max_bytes`` bytes, ``max_pixels`` pixels or ``max_side``
      pixels a side, or a decompression bomb;
    - 415 for a file that is not in ``formats`` (the message says what it is);
    - 422 for an empty, truncated, corrupt (a PNG chunk failing its CRC) or
      animated (APNG, animated WebP) file, or one with no pixels.
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(io.BytesIO(data), formats=list(formats))
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
            im.load()
            im = ImageOps.exif_transpose(im)
            return _strip_metadata(normalise_mode(_to_srgb(im) if to_srgb else im))
    except ImageRejected:
        raise
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
    pixels; the mask must match it.

    Raises :class:`ImageRejected` (415 not a PNG, 422 wrong size or
    unreadable, 413 too large).
    """
    try:
        raw = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side,
                           formats=("PNG",), what="mask")
    except ImageRejected as exc:
        if exc.status == 415:
            raise ImageRejected(
                f"The mask is {_sniff(data)[0]}; a mask must be a PNG image (white marks the region to edit).",
                415,
            ) from None
        raise
    if raw.size != tuple(size):
        raise ImageRejected(
            f"The mask is {raw.size[0]}x{raw.size[1]} pixels but the image is "
            f"{size[0]}x{size[1]}; they must be the same size.",
            422,
        )
    if raw.mode == "RGBA" and raw.getchannel("A").getextrema()[0] < 255:
        alpha = raw.getchannel("A")
        mask = alpha.point(lambda a: 255 if a < 128 else 0)
    else:
        mask = raw.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if mask.getextrema()[1] == 0:
        raise ImageRejected("The mask selects nothing: paint the region to edit in white.", 422)
    return mask


def decode_markup(data: bytes, size: tuple[int, int], *, max_bytes: int, max_pixels: int,
                  max_side: int = MAX_SIDE) -> Image.Image:
    """Decode a markup upload: strokes drawn over the image to guide an edit.

    Accepts a PNG of ``size`` (the image's (width, height) in pixels) with an
    alpha channel that is transparent where nothing was drawn and has at
    least one opaque stroke: OpenAI's ``markup`` is "a transparent PNG
    overlaid on the first image ... Must match that image's dimensions ...
    and contain transparent pixels" (SDK ``openai/types/image_edit_params.py``).
    Returns mode ``RGBA``.

    Raises :class:`ImageRejected` (415 not a PNG, 422 wrong size, no
    transparency or nothing drawn, 413 too large).
    """
    try:
        raw = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, max_side=max_side,
                           formats=("PNG",), what="drawing (markup)")
    except ImageRejected as exc:
        if exc.status == 415:
            raise ImageRejected(f"The drawing is {_sniff(data)[0]}; it must be a PNG with transparency.", 415) from None
        raise
    if raw.size != tuple(size):
        raise ImageRejected(
            f"The drawing is {raw.size[0]}x{raw.size[1]} pixels but the image is "
            f"{size[0]}x{size[1]}; they must be the same size.",
            422,
        )
    low, high = raw.convert("RGBA").getchannel("A").getextrema()
    if low == 255:
        raise ImageRejected("The drawing has no transparent pixels: draw strokes on a transparent PNG.", 422)
    if high == 0:
        raise ImageRejected("The drawing is empty: draw on the image to show where to edit.", 422)
    return raw.convert("RGBA")


#: zlib level for stored PNGs. Measured on a 1024x1024 photo: level 6
#: (Pillow's default) 342 ms and 1.21 MB, level 3 99 ms and 1.31 MB, level 1
#: 66 ms and 1.37 MB. Level 3 makes every turn ~0.25 s faster for 8% more disk.
PNG_COMPRESS_LEVEL = 3


def encode_png(im: Image.Image) -> bytes:
    """Encode ``im`` losslessly as PNG, with no metadata. Returns the bytes."""
    im = normalise_mode(im)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def encode_thumbnail(im: Image.Image) -> bytes:
    """A WebP thumbnail of ``im`` that fits in 256x256 pixels. Returns bytes."""
    thumb = normalise_mode(im).copy()
    thumb.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
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
