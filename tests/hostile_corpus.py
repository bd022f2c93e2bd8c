"""A corpus of hostile, broken and unusual upload files, made in code.

Every file is built deterministically here (no binary fixtures): PNG chunks
are assembled by hand with correct (or deliberately wrong) CRCs, JPEG and
WebP headers are patched, and "not an image" files are written as bytes.

``BAD`` files must be refused with a 4xx whose message names the problem;
``GOOD`` files are unusual but legitimate and must be accepted and
normalised. Each :class:`Sample` says, per upload kind (``photo`` = the
thread image, ``reference`` = a turn's reference image, ``mask`` = a turn's
mask), which status to expect and which words the message must contain.

The thread the reference and mask uploads go to has a ``HEAD_SIZE`` head
image, so masks of that size are the right size.
"""
from __future__ import annotations

import base64
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageCms

#: Size in pixels of the head image of the thread references and masks go to.
HEAD_SIZE = (40, 30)
#: Upload limits the hostile-upload app runs with (small, so they are cheap to hit).
MAX_BYTES = 300_000
MAX_PIXELS = 1_000_000

KINDS = ("photo", "reference", "mask")
#: How each kind is called in the messages.
WHAT = {"photo": "photo", "reference": "reference image", "mask": "mask"}

PAYLOAD = b"<script>alert('retouch-xss')</script><?php system($_GET['c']); ?>"
MARKER = b"RETOUCH-GPS-MARKER"


@dataclass(frozen=True)
class Expect:
    status: int
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    filename: str
    content_type: str
    expect: dict[str, Expect]
    #: good samples: a check of the stored, decoded image (PIL image) -> None
    check: Callable[[Image.Image], None] | None = None
    #: byte strings that must not appear in anything stored or served
    forbidden: tuple[bytes, ...] = field(default_factory=tuple)

    @property
    def good(self) -> bool:
        """Accepted as an image (it may still be refused as a mask)."""
        return self.expect.get("photo", Expect(400)).status < 400


# ------------------------------------------------------------------ helpers


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    value = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", value & 0xFFFFFFFF)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ihdr(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))


def raw_png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0, rows: bytes | None = None,
            idat: bytes | None = None, before_idat: bytes = b"", after_iend: bytes = b"") -> bytes:
    """A PNG assembled by hand. ``rows`` are the unfiltered scanlines (filter
    byte 0 is added); ``idat`` replaces the compressed data entirely."""
    if idat is None:
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
        stride = (width * channels * bit_depth + 7) // 8
        rows = rows if rows is not None else bytes(stride * height)
        raw = b"".join(b"\x00" + rows[i * stride:(i + 1) * stride] for i in range(height))
        idat = zlib.compress(raw, 9)
    return PNG_MAGIC + ihdr(width, height, bit_depth, color_type) + before_idat + chunk(b"IDAT", idat) \
        + chunk(b"IEND", b"") + after_iend


def pil_bytes(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def picture(size=HEAD_SIZE, mode="RGB") -> Image.Image:
    """A small picture with a red body and a blue left quarter."""
    im = Image.new("RGB", size, (220, 30, 30))
    im.paste((20, 40, 230), (0, 0, max(1, size[0] // 4), size[1]))
    return im.convert(mode) if mode != "RGB" else im


def white_mask(size=HEAD_SIZE) -> Image.Image:
    return Image.new("L", size, 255)


def patch_jpeg_sof(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame size in a JPEG's SOF0/SOF2 marker."""
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC2):
            return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]
        i += 2 + length
    raise AssertionError("no SOF marker")


def jpeg_with_segment(marker: int, payload: bytes, base: bytes | None = None) -> bytes:
    """A JPEG with one extra marker segment right after SOI."""
    base = base or pil_bytes(picture(), "JPEG", quality=90)
    return base[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + base[2:]


def jpeg_with_exif(orientation: int | None = None, gps: bool = False, size=(60, 20)) -> bytes:
    im = Image.new("RGB", size, (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, size[0] // 6, size[1]))  # blue stripe on the left
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0),
                        18: MARKER.decode()}  # 18 = GPSMapDatum, an ASCII field
    return pil_bytes(im, "JPEG", quality=95, exif=exif)


def webp_vp8x(width: int, height: int) -> bytes:
    """A WebP with only a VP8X header declaring a ``width`` x ``height`` canvas."""
    vp8x = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def noise(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------------ checks of good files


def pixel_close(got, want, tol=12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(got, want))


def looks_like_picture(im: Image.Image, size=HEAD_SIZE) -> None:
    assert im.size == size and im.mode in ("RGB", "RGBA"), (im.size, im.mode)
    assert pixel_close(im.getpixel((size[0] - 2, size[1] // 2))[:3], (220, 30, 30), 30), im.getpixel((size[0] - 2, 1))
    assert pixel_close(im.getpixel((1, size[1] // 2))[:3], (20, 40, 230), 40), im.getpixel((1, 1))


def upright_stripe_on_top(im: Image.Image) -> None:
    """The EXIF-rotated JPEG (60x20, blue stripe left, orientation 6) stored upright: 20x60, blue on top."""
    assert im.size == (20, 60) and im.mode == "RGB", (im.size, im.mode)
    r, g, b = im.getpixel((10, 2))
    assert b > 200 and r < 60, (r, g, b)
    r, g, b = im.getpixel((10, 55))
    assert r > 200 and b < 60, (r, g, b)


def rgb_of(color):
    def check(im: Image.Image) -> None:
        assert im.mode == "RGB", im.mode
        assert pixel_close(im.getpixel((3, 3)), color, 14), im.getpixel((3, 3))
    return check


def palette_transparency(im: Image.Image) -> None:
    assert im.mode == "RGBA", im.mode
    assert im.getpixel((0, 0))[3] == 0  # palette index 0 is transparent
    assert im.getpixel((HEAD_SIZE[0] - 1, HEAD_SIZE[1] - 1)) == (30, 200, 90, 255)


def grey16(im: Image.Image) -> None:
    assert im.mode == "RGB", im.mode
    assert im.getpixel((0, 0)) == (40000 // 256,) * 3  # scaled, not clipped to 255


def rgb48(im: Image.Image) -> None:
    assert im.mode == "RGB", im.mode
    assert im.getpixel((0, 0)) == (0xF0, 0x80, 0xF0)  # the high bytes of each 16-bit sample


def grey_alpha(im: Image.Image) -> None:
    assert im.mode == "RGBA" and im.getpixel((0, 0)) == (90, 90, 90, 100), (im.mode, im.getpixel((0, 0)))


def rgba_half(im: Image.Image) -> None:
    assert im.mode == "RGBA", im.mode
    r, g, b, a = im.getpixel((5, 5))
    assert pixel_close((r, g, b), (10, 120, 240), 6) and abs(a - 128) <= 2, (r, g, b, a)


# ------------------------------------------------------------------ the corpus


def _not_png_mask(*words: str) -> Expect:
    return Expect(415, ("mask", "png", *words))


def _bad(name, data, status, words, *, filename="upload.png", ctype="image/png", mask: Expect | None = None):
    """A file every kind refuses. As a mask, a file that is not a PNG gets 415
    "must be a PNG" naming what it is; a broken PNG gets the same answer as
    an image."""
    expect = {k: Expect(status, (WHAT[k], *words)) for k in ("photo", "reference")}
    expect["mask"] = mask or Expect(status, ("mask", *words))
    return Sample(name, data, filename, ctype, expect)


def _good(name, data, check, *, filename="upload.png", ctype="image/png", mask: Expect | None = None,
          forbidden=()):
    expect = {"photo": Expect(201), "reference": Expect(202)}
    if mask is not None:
        expect["mask"] = mask
    return Sample(name, data, filename, ctype, expect, check=check, forbidden=tuple(forbidden))


def build() -> list[Sample]:
    """Make the whole corpus (about 60 files). Deterministic."""
    png = pil_bytes(picture((300, 200)), "PNG")
    jpeg = pil_bytes(picture((300, 200)), "JPEG", quality=90)
    webp = pil_bytes(picture((300, 200)), "WEBP", quality=80)
    grey_png = raw_png(40, 30, rows=bytes(range(40)) * 30)
    frames = [picture((40, 30)), Image.new("RGB", (40, 30), (0, 255, 0)), Image.new("RGB", (40, 30), (0, 0, 255))]
    animated = dict(save_all=True, append_images=frames[1:], duration=100, loop=0)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("photo.png", png)
    zbomb = zlib.compress(b"A" * (8 * 1024 * 1024), 9)  # 8 MiB of text in ~8 KB

    s: list[Sample] = [
        # --- not images at all
        _bad("zero bytes", b"", 422, ("empty",)),
        _bad("text named .png", b"hello, I am only text\n" * 10, 415, ("text",), mask=_not_png_mask("text")),
        _bad("UTF-16 text", "hello, I am UTF-16 text\n".encode("utf-16"), 415, ("text",),
             mask=_not_png_mask("text")),
        _bad("HTML with script", b"<!DOCTYPE html><html><body>" + PAYLOAD + b"</body></html>", 415, ("html",),
             mask=_not_png_mask("html")),
        _bad("HTML named .jpg, sent as image/jpeg", b"<html><script>alert(1)</script></html>", 415, ("html",),
             filename="photo.jpg", ctype="image/jpeg", mask=_not_png_mask("html")),
        _bad("SVG with script",
             b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
             415, ("svg",), filename="x.svg", ctype="image/svg+xml", mask=_not_png_mask("svg")),
        _bad("SVG with XML prolog",
             b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
             415, ("svg",), mask=_not_png_mask("svg")),
        _bad("data: URL text", b"data:image/png;base64," + base64.b64encode(png[:200]), 415,
             ("text",), mask=_not_png_mask("text")),
        _bad("PDF", pil_bytes(picture(), "PDF"), 415, ("pdf",), filename="x.pdf", mask=_not_png_mask("pdf")),
        _bad("ZIP archive", zbuf.getvalue(), 415, ("zip",), mask=_not_png_mask("zip")),
        _bad("Windows EXE", b"MZ\x90\x00" + bytes(56) + b"PE\x00\x00" + noise(512, 1), 415, ("program",),
             mask=_not_png_mask("program")),
        _bad("ELF executable", b"\x7fELF\x02\x01\x01" + noise(512, 2), 415, ("program",),
             mask=_not_png_mask("program")),
        _bad("random bytes", b"\x01\x02" + noise(4096, 3), 415, ("unrecognised",),
             mask=_not_png_mask("unrecognised")),
        _bad("PSD header", b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 30, 40, 8, 3) + bytes(3600), 415,
             ("photoshop",), mask=_not_png_mask("photoshop")),
        # --- images in formats that are not allowed
        _bad("GIF (animated)", pil_bytes(frames[0], "GIF", **animated), 415, ("gif",), mask=_not_png_mask("gif")),
        _bad("GIF/JS polyglot", b"GIF89a/*\x0a\x00\x0a\x00\x00\x00\x00*/=1;alert(document.domain)//" + bytes(20),
             415, ("gif",), mask=_not_png_mask("gif")),
        _bad("TIFF", pil_bytes(picture(), "TIFF"), 415, ("tiff",), mask=_not_png_mask("tiff")),
        _bad("BMP", pil_bytes(picture(), "BMP"), 415, ("bmp",), mask=_not_png_mask("bmp")),
        _bad("ICO", pil_bytes(picture((32, 32)), "ICO"), 415, ("ico",), mask=_not_png_mask("ico")),
        # --- broken PNGs
        _bad("truncated PNG", png[:200], 422, ("damaged", "png")),
        _bad("PNG cut inside the header", png[:20], 422, ("damaged", "png")),
        _bad("PNG with wrong magic", b"\x89PNX\r\n\x1a\n" + png[8:], 415, ("unrecognised",),
             mask=_not_png_mask("unrecognised")),
        _bad("PNG with a bad IHDR CRC", PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 30, 8, 0, 0, 0, 0),
                                                          crc=0xDEADBEEF) + grey_png[33:], 422, ("damaged", "png")),
        _bad("PNG with a bad IDAT CRC", grey_png[:-13] + bytes([grey_png[-13] ^ 0xFF]) + grey_png[-12:], 422,
             ("damaged", "checksum")),
        _bad("PNG chunk length overflow", PNG_MAGIC + ihdr(40, 30) + b"\xff\xff\xff\xf0IDAT" + bytes(64), 422,
             ("damaged", "png")),
        _bad("PNG IDAT of garbage", raw_png(40, 30, idat=noise(300, 4)), 422, ("damaged", "png")),
        _bad("PNG with 1000 IDAT chunks of garbage",
             PNG_MAGIC + ihdr(200, 200) + b"".join(chunk(b"IDAT", noise(64, i)) for i in range(1000))
             + chunk(b"IEND", b""), 422, ("damaged", "png")),
        _bad("PNG without IHDR", PNG_MAGIC + chunk(b"IDAT", zlib.compress(bytes(31 * 30))) + chunk(b"IEND", b""),
             422, ("damaged", "png")),
        _bad("PNG with bit depth 3", PNG_MAGIC + ihdr(40, 30, bit_depth=3) + chunk(b"IDAT", zlib.compress(bytes(400)))
             + chunk(b"IEND", b""), 422, ("damaged", "png")),
        _bad("PNG 0x0", raw_png(0, 0, idat=zlib.compress(b"")), 422, ("no pixels",)),
        _bad("PNG 1x0", raw_png(1, 0, idat=zlib.compress(b"")), 422, ("no pixels",)),
        _bad("PNG decompression bomb 30000x30000", raw_png(30000, 30000, idat=zlib.compress(bytes(30001 * 4))),
             413, ("decompression bomb",)),
        _bad("PNG 100000x1", raw_png(100000, 1), 413, ("100000x1", "side")),
        _bad("PNG 1x100000", raw_png(1, 100000), 413, ("1x100000", "side")),
        _bad("PNG zTXt bomb", raw_png(40, 30, before_idat=chunk(b"zTXt", b"Comment\x00\x00" + zbomb)), 413,
             ("metadata", "decompression bomb")),
        _bad("APNG (animated PNG)", pil_bytes(frames[0], "PNG", **animated), 422, ("animated",)),
        _bad("PNG too many pixels", pil_bytes(Image.new("RGB", (1200, 1000)), "PNG"), 413, ("megapixels",)),
        _bad("PNG too many bytes", pil_bytes(Image.frombytes("RGB", (400, 400), noise(480_000, 5)), "PNG",
                                             compress_level=0), 413, ("mb",)),
        # --- broken JPEGs
        _bad("truncated JPEG", jpeg[:300], 422, ("damaged", "jpeg"), mask=_not_png_mask("jpeg")),
        _bad("JPEG SOI+EOI only", b"\xff\xd8\xff\xd9", 422, ("damaged", "jpeg"), mask=_not_png_mask("jpeg")),
        _bad("JPEG with bad markers", b"\xff\xd8\xff\x12\x34\x56" + noise(600, 6), 422, ("damaged", "jpeg"),
             mask=_not_png_mask("jpeg")),
        _bad("JPEG declaring 65000x65000", patch_jpeg_sof(jpeg, 65000, 65000), 413, ("decompression bomb",),
             filename="x.jpg", ctype="image/jpeg", mask=_not_png_mask("jpeg")),
        _bad("JPEG declaring 65000x2", patch_jpeg_sof(jpeg, 65000, 2), 413, ("65000x2", "side"),
             filename="x.jpg", ctype="image/jpeg", mask=_not_png_mask("jpeg")),
        # --- broken WebPs
        _bad("truncated WebP", webp[:60], 422, ("damaged", "webp"), mask=_not_png_mask("webp")),
        _bad("WebP with a garbage VP8 chunk",
             b"RIFF" + struct.pack("<I", 4 + 8 + 200) + b"WEBPVP8 " + struct.pack("<I", 200) + noise(200, 7),
             422, ("damaged", "webp"), mask=_not_png_mask("webp")),
        _bad("WebP declaring 16777216x16777216 (header only)", webp_vp8x(1 << 24, 1 << 24), 413,
             ("decompression bomb",), mask=_not_png_mask("webp")),
        _bad("animated WebP", pil_bytes(frames[0], "WEBP", **animated), 422, ("animated",),
             mask=_not_png_mask("webp")),
    ]

    # --- masks only: files that are fine as images but wrong as a mask
    def mask_only(name, data, status, words, filename="mask.png", ctype="image/png"):
        return Sample(name, data, filename, ctype, {"mask": Expect(status, ("mask", *words))})

    s += [
        mask_only("mask of the wrong size", pil_bytes(white_mask((10, 10)), "PNG"), 422, ("10x10", "same size")),
        mask_only("JPEG mask", pil_bytes(white_mask(), "JPEG"), 415, ("png", "jpeg"), "mask.jpg", "image/jpeg"),
        mask_only("WebP mask", pil_bytes(white_mask(), "WEBP", lossless=True), 415, ("png", "webp"), "mask.webp",
                  "image/webp"),
        mask_only("mask that selects nothing", pil_bytes(Image.new("L", HEAD_SIZE, 0), "PNG"), 422,
                  ("selects nothing",)),
    ]

    # --- good but unusual: accepted and normalised
    ok_mask = Expect(202)
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = pil_bytes(Image.new("RGB", HEAD_SIZE, (10, 120, 240)).convert("CMYK"), "JPEG", quality=95)
    pal = Image.new("P", HEAD_SIZE, 1)
    pal.putpalette([0, 0, 0, 30, 200, 90] + [0] * 762)
    pal.paste(0, (0, 0, 10, 10))
    rgb48_rows = struct.pack(">HHH", 0xF012, 0x80FF, 0xF000) * (HEAD_SIZE[0] * HEAD_SIZE[1])
    s += [
        _good("CMYK JPEG", cmyk, rgb_of((10, 120, 240)), filename="cmyk.jpg", ctype="image/jpeg",
              mask=_not_png_mask("jpeg")),
        _good("16-bit greyscale PNG", pil_bytes(Image.new("I;16", HEAD_SIZE, 40000), "PNG"), grey16, mask=ok_mask),
        _good("16-bit RGB PNG (48 bits a pixel)",
              raw_png(*HEAD_SIZE, bit_depth=16, color_type=2, rows=rgb48_rows), rgb48, mask=ok_mask),
        _good("palette PNG with transparency", pil_bytes(pal, "PNG", transparency=0), palette_transparency,
              mask=ok_mask),
        _good("greyscale+alpha PNG", pil_bytes(Image.new("LA", HEAD_SIZE, (90, 100)), "PNG"), grey_alpha,
              mask=ok_mask),
        _good("1-bit PNG", pil_bytes(Image.new("1", HEAD_SIZE, 1), "PNG"), rgb_of((255, 255, 255)), mask=ok_mask),
        _good("WebP with alpha", pil_bytes(Image.new("RGBA", HEAD_SIZE, (10, 120, 240, 128)), "WEBP",
                                           lossless=True), rgba_half, ctype="image/webp",
              mask=_not_png_mask("webp")),
        _good("progressive JPEG", pil_bytes(picture(), "JPEG", quality=95, progressive=True), looks_like_picture,
              ctype="image/jpeg", mask=_not_png_mask("jpeg")),
        _good("EXIF-rotated JPEG (orientation 6)", jpeg_with_exif(orientation=6), upright_stripe_on_top,
              filename="cam.jpg", ctype="image/jpeg", forbidden=[b"TestCam"], mask=_not_png_mask("jpeg")),
        _good("JPEG with GPS EXIF", jpeg_with_exif(gps=True), lambda im: None, filename="gps.jpg",
              ctype="image/jpeg", forbidden=[MARKER, b"TestCam", b"Exif\x00\x00"], mask=_not_png_mask("jpeg")),
        _good("JPEG with broken EXIF", jpeg_with_segment(0xE1, b"Exif\x00\x00" + b"XX" + noise(60, 8)),
              looks_like_picture, ctype="image/jpeg", mask=_not_png_mask("jpeg")),
        _good("JPEG with script in a COM segment", jpeg_with_segment(0xFE, PAYLOAD), looks_like_picture,
              ctype="image/jpeg", forbidden=[PAYLOAD[:20]], mask=_not_png_mask("jpeg")),
        _good("JPEG with an ICC profile carrying a script", jpeg_with_segment(
            0xE2, b"ICC_PROFILE\x00\x01\x01" + PAYLOAD * 4), looks_like_picture, ctype="image/jpeg",
            forbidden=[PAYLOAD[:20]], mask=_not_png_mask("jpeg")),
        _good("PNG+HTML polyglot (script after IEND)", pil_bytes(white_mask().convert("RGB"), "PNG")
              + b"<html>" + PAYLOAD + b"</html>", rgb_of((255, 255, 255)), forbidden=[PAYLOAD[:20]], mask=ok_mask),
        _good("PNG with script in tEXt and zTXt", raw_png(*HEAD_SIZE, rows=b"\xff" * (HEAD_SIZE[0] * HEAD_SIZE[1]),
                                                         before_idat=chunk(b"tEXt", b"Comment\x00" + PAYLOAD)
                                                         + chunk(b"zTXt", b"Title\x00\x00" + zlib.compress(PAYLOAD))),
              rgb_of((255, 255, 255)), forbidden=[PAYLOAD[:20], b"tEXt", b"zTXt"], mask=ok_mask),
        _good("PNG named .txt, sent as text/html", pil_bytes(picture(), "PNG"), looks_like_picture,
              filename="notes.txt", ctype="text/html"),
        _good("JPEG with a valid sRGB ICC profile", jpeg_with_segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + srgb_icc),
              looks_like_picture, ctype="image/jpeg", forbidden=[b"iCCP", srgb_icc[:64]], mask=_not_png_mask("jpeg")),
        _good("MPO (a JPEG with a second picture)", pil_bytes(picture(), "MPO", save_all=True,
                                                              append_images=[Image.new("RGB", HEAD_SIZE, (0, 255, 0))]),
              looks_like_picture, ctype="image/jpeg", mask=_not_png_mask("jpeg")),
    ]
    names = [x.name for x in s]
    assert len(names) == len(set(names)), "sample names must be unique"
    return s


CORPUS = build()
BAD = [x for x in CORPUS if not x.good]
GOOD = [x for x in CORPUS if x.good]
