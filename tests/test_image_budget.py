"""Decoding is bounded before it starts (the attacker's report of 2026-12):

- images over the limits, masks and drawings of the wrong size, and JPEGs
  with thousands of scans are refused from their header and byte stream,
  before any pixel is decoded (the decoder is counted, not timed);
- reference images are decoded at a working size (JPEG: by libjpeg itself,
  through ``draft()``), photos and masks at full size;
- a process-wide pixel budget makes decodes beyond it wait, and refuses
  with 503 when the wait is too long;
- a time limit stops a decode that runs too long;
- through the HTTP API, the scan bomb gets 422 and leaves no row and no blob.

Every attack file is generated here.
"""
from __future__ import annotations

import functools
import io
import struct
import threading
import time

import pytest
from PIL import Image, ImageFile, JpegImagePlugin, WebPImagePlugin
from sqlalchemy import func, select

from app import image_budget, imaging
from app.image_budget import BudgetTimeout, PixelBudget
from app.imaging import (
    MAX_JPEG_SCANS,
    REFERENCE_SIDE,
    ImageRejected,
    count_jpeg_scans,
    decode_image,
    decode_markup,
    decode_mask,
    encode_thumbnail,
    thumbnail_size,
)
from app.models import ShareLink, Thread, Turn, Version

BIG = {"max_bytes": 50_000_000, "max_pixels": 40_000_000}


# ------------------------------------------------------------------ generators


def encode(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)  # encoding 40 MP takes a while; the bytes are immutable
def webp_bomb(side: int = 6320) -> bytes:
    """A lossless WebP of one colour: a couple of KB, ``side``² pixels."""
    return encode(Image.new("RGB", (side, side), (40, 90, 160)), "WEBP", lossless=True)


def png_of(size, color=(200, 60, 30), mode="RGB") -> bytes:
    return encode(Image.new(mode, size, color), "PNG")


def jpeg_of(size) -> bytes:
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    return encode(im, "JPEG", quality=85)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment of a well-formed JPEG, a scan's
    end including its entropy-coded data; the last is EOI."""
    out, pos = [], 2
    while True:
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            return out
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, pos, end))
        pos = end


def scan_bomb(extra_scans: int, side: int = 256) -> bytes:
    """Pillow's own progressive JPEG of one colour with its last scan (a
    luma AC refinement of a few bytes) repeated ``extra_scans`` times before
    EOI. libjpeg accepts it (a repeated refinement is only a warning) and
    passes over every block once per scan: unchecked, 10,000 extra scans
    at 2048x2048 took 46 s to answer 201 (measured once, bench/bench_memory.py
    before the fix)."""
    data = encode(Image.new("RGB", (side, side), (128, 128, 128)), "JPEG", progressive=True, quality=90)
    segments = jpeg_segments(data)
    _, start, end = [s for s in segments if s[0] == 0xDA][-1]
    eoi = segments[-1][1]
    return data[:eoi] + data[start:end] * extra_scans + data[eoi:]


# ------------------------------------------------------------------ decoder spy


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[str, tuple[int, int]]]:
    """Every pixel decode that starts: (format, size at load time)."""
    calls: list[tuple[str, tuple[int, int]]] = []
    file_load = ImageFile.ImageFile.load
    webp_load = WebPImagePlugin.WebPImageFile.load

    def counting_file_load(self):
        if self.tile:
            calls.append((self.format, self.size))
        return file_load(self)

    def counting_webp_load(self):
        calls.append(("WEBP", self.size))  # libwebp decodes here, before ImageFile.load
        return webp_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_file_load)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", counting_webp_load)
    return calls


@pytest.fixture
def budget(monkeypatch) -> PixelBudget:
    """A fresh process budget of the default size, to read what was charged."""
    b = PixelBudget(image_budget.TOTAL_PIXELS)
    monkeypatch.setattr(image_budget, "BUDGET", b)
    return b


# ------------------------------------------------------------------ JPEG scans


def test_scan_count_of_ordinary_jpegs():
    photo = Image.effect_noise((300, 200), 60).convert("RGB")  # noise: many stuffed 0xFF00 bytes
    assert count_jpeg_scans(encode(photo, "JPEG")) == 1
    assert count_jpeg_scans(encode(photo, "JPEG", progressive=True)) == 10  # libjpeg's script for colour
    assert count_jpeg_scans(encode(photo.convert("L"), "JPEG", progressive=True)) == 6
    with_rst = encode(photo, "JPEG", progressive=True, restart_marker_blocks=4)
    assert with_rst.count(b"\xff\xd0") > 10  # RST markers inside the scans are not scans
    assert count_jpeg_scans(with_rst) == 10


def test_scan_count_walks_segments_rather_than_searching_bytes():
    photo = Image.effect_noise((64, 64), 60).convert("RGB")
    sneaky = encode(photo, "JPEG", progressive=True, comment=b"\xff\xda" * 500)
    assert sneaky.count(b"\xff\xda") > 500
    assert count_jpeg_scans(sneaky) == 10
    decode_image(sneaky, **BIG)  # and it is an ordinary image
    # pictures after the first EOI (an MPO's second frame, trailing junk) are not counted
    assert count_jpeg_scans(sneaky + scan_bomb(300)) == 10


def test_scan_count_stops_early_and_survives_broken_files():
    bomb = scan_bomb(5000)
    assert count_jpeg_scans(bomb) == 5010
    assert count_jpeg_scans(bomb, stop_after=MAX_JPEG_SCANS) == MAX_JPEG_SCANS + 1
    for cut in (3, 10, 200, 700, len(bomb) // 2):
        count_jpeg_scans(bomb[:cut])  # no exception: the decoder reports damage
    count_jpeg_scans(b"\xff\xd8\xff\xda\x00\x01")  # a length under 2
    count_jpeg_scans(b"\xff\xd8" + bytes(100))  # no marker at all


def test_junk_between_scans_does_not_hide_them():
    """libjpeg skips bytes where a marker should be (only a warning), so the
    count resynchronises on the next marker as libjpeg does."""
    data = encode(Image.new("RGB", (256, 256), (128, 128, 128)), "JPEG", progressive=True, quality=90)
    segments = jpeg_segments(data)
    _, start, end = [s for s in segments if s[0] == 0xDA][-1]
    eoi = segments[-1][1]
    junky = data[:eoi] + (b"junk\x00\xff\x00" + data[start:end]) * 50 + data[eoi:]
    assert decode_image(junky, **BIG).size == (256, 256)  # libjpeg decodes all 60 scans
    assert count_jpeg_scans(junky) == 60
    with pytest.raises(ImageRejected) as exc:
        decode_image(data[:eoi] + (b"junk" + data[start:end]) * 500 + data[eoi:], **BIG)
    assert "scans" in exc.value.message


def test_a_few_extra_scans_are_still_decoded():
    """The synthetic bomb is a valid JPEG: under the limit it is accepted."""
    im = decode_image(scan_bomb(MAX_JPEG_SCANS - 10), **BIG)
    assert im.size == (256, 256)


def test_scan_bomb_is_refused_before_decoding(decoded):
    bomb = scan_bomb(10_000)
    assert len(bomb) < 300_000
    with pytest.raises(ImageRejected) as exc:
        decode_image(bomb, **BIG, what="photo")
    assert exc.value.status == 422
    assert f"more than {MAX_JPEG_SCANS} scans" in exc.value.message
    assert decoded == []


# ------------------------------------------------------------------ header checks


def test_webp_bomb_over_the_pixel_limit_is_refused_before_decoding(decoded):
    data = webp_bomb()
    assert len(data) < 5000
    with pytest.raises(ImageRejected) as exc:
        decode_image(data, max_bytes=25_000_000, max_pixels=20_000_000, what="reference image")
    assert exc.value.status == 413 and "6320x6320" in exc.value.message
    assert decoded == []


def test_40_megapixel_png_is_refused_from_its_header_under_a_lower_limit(decoded):
    data = png_of((6320, 6320))
    assert len(data) < 200_000
    with pytest.raises(ImageRejected) as exc:
        decode_image(data, max_bytes=25_000_000, max_pixels=1_000_000)
    assert exc.value.status == 413 and "megapixels" in exc.value.message
    assert decoded == []


def test_wrong_size_mask_and_drawing_are_refused_before_decoding(decoded):
    mask = png_of((2000, 1500), 255, "L")
    with pytest.raises(ImageRejected) as exc:
        decode_mask(mask, (40, 30), **BIG)
    assert exc.value.status == 422
    assert exc.value.message == ("The mask is 2000x1500 pixels but the image is 40x30; "
                                 "they must be the same size.")
    drawing = png_of((2000, 1500), (255, 0, 0, 0), "RGBA")
    with pytest.raises(ImageRejected) as exc:
        decode_markup(drawing, (40, 30), **BIG)
    assert exc.value.status == 422
    assert exc.value.message.startswith("The drawing is 2000x1500 pixels but the image is 40x30")
    assert decoded == []


def test_mask_turned_by_exif_is_checked_upright():
    """A header size the other way round may be turned upright by EXIF, so
    it is decoded, and the upright size is what must match."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    mask = encode(Image.new("L", (30, 40), 255), "PNG", exif=exif)
    assert decode_mask(mask, (40, 30), **BIG).size == (40, 30)
    with pytest.raises(ImageRejected) as exc:
        decode_mask(mask, (30, 40), **BIG)
    assert exc.value.message.startswith("The mask is 40x30 pixels but the image is 30x40")


def test_decode_image_expected_size(decoded):
    with pytest.raises(imaging.ImageSizeMismatch) as exc:
        decode_image(png_of((400, 300)), **BIG, expected_size=(40, 30), what="overlay")
    assert exc.value.size == (400, 300) and exc.value.expected == (40, 30)
    assert exc.value.message.startswith("The overlay is 400x300 pixels")
    assert decoded == []
    assert decode_image(png_of((40, 30)), **BIG, expected_size=(40, 30)).size == (40, 30)


# ------------------------------------------------------------------ working size


def test_jpeg_reference_is_reduced_with_draft(decoded, monkeypatch):
    drafts = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append((self.size, size))
        return draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    im = decode_image(jpeg_of((4000, 3000)), **BIG, working_side=REFERENCE_SIDE)
    assert im.size == (2048, 1536)
    assert drafts[0] == ((4000, 3000), (2048, 1536))  # before load (thumbnail() calls it again: a no-op)
    # 4000 is under twice 2048: libjpeg's 1/2 scale would undershoot, so it decodes in full
    assert decoded == [("JPEG", (4000, 3000))]

    decoded.clear()
    im = decode_image(jpeg_of((8000, 6000)), max_bytes=50_000_000, max_pixels=50_000_000,
                      working_side=REFERENCE_SIDE)
    assert im.size == (2048, 1536)
    assert decoded == [("JPEG", (4000, 3000))]  # libjpeg decoded it at 1/2 scale

    decoded.clear()  # a JPEG with a second picture (MPO, as phones write) is a JPEG too
    main = Image.linear_gradient("L").resize((4200, 3000)).convert("RGB")
    mpo = encode(main, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48))])
    im = decode_image(mpo, **BIG, working_side=REFERENCE_SIDE)
    assert im.size == (2048, 1463)
    assert decoded == [("MPO", (2100, 1500))]


def test_webp_and_png_references_are_reduced_and_charged_in_full(budget, monkeypatch):
    charged = []
    acquire = budget.acquire
    monkeypatch.setattr(budget, "acquire", lambda pixels, timeout: charged.append(pixels) or acquire(pixels, timeout))
    trims = []
    monkeypatch.setattr(image_budget, "give_back_freed_memory", lambda: trims.append(1) or True)
    im = decode_image(webp_bomb(), **BIG, what="reference image", working_side=REFERENCE_SIDE)
    assert im.size == (2048, 2048) and im.mode == "RGB" and type(im) is Image.Image
    im = decode_image(png_of((4000, 3000)), **BIG, working_side=REFERENCE_SIDE)
    assert im.size == (2048, 1536)
    assert charged == [6320 * 6320 * imaging.PEAK_COPIES["WEBP"], 4000 * 3000 * imaging.PEAK_COPIES["PNG"]]
    assert budget.in_use == 0 and trims == [1, 1]


def test_photo_and_mask_keep_their_full_size():
    assert decode_image(png_of((3000, 2000)), **BIG).size == (3000, 2000)
    assert decode_image(jpeg_of((3000, 2000)), **BIG).size == (3000, 2000)
    assert decode_mask(png_of((2600, 2100), 255, "L"), (2600, 2100), **BIG).size == (2600, 2100)


def test_thumbnail_matches_pillow_without_a_full_copy():
    photo = Image.effect_noise((900, 600), 50).convert("RGB")
    old = photo.copy()
    old.thumbnail(imaging.THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    new = Image.open(io.BytesIO(encode_thumbnail(photo)))
    assert new.size == old.size == (256, 171)
    for size in [(1, 5000), (5000, 1), (257, 256), (1000, 999), (300, 301), (100, 50), (2560, 1707)]:
        probe = Image.new("1", size)
        probe.thumbnail((256, 256))
        assert thumbnail_size(size) == probe.size


# ------------------------------------------------------------------ pixel budget


def test_pixel_budget_is_fifo_and_caps_large_requests():
    b = PixelBudget(100)
    assert b.acquire(500, timeout=0) == 100  # larger than the budget: runs alone
    with pytest.raises(BudgetTimeout):
        b.acquire(1, timeout=0.01)
    assert b.waiting == 0  # a timed-out caller leaves the queue
    b.release(100)
    order = []
    b.acquire(60, timeout=0)
    big = threading.Thread(target=lambda: (b.acquire(80, timeout=5), order.append("big")))
    big.start()
    while b.waiting < 1:
        time.sleep(0.001)
    small = threading.Thread(target=lambda: (b.acquire(10, timeout=5), order.append("small")))
    small.start()
    while b.waiting < 2:
        time.sleep(0.001)
    assert order == []  # small would fit (60 + 10) but waits behind big: first come, first served
    b.release(60)
    big.join(5)
    small.join(5)
    assert order == ["big", "small"] and b.in_use == 90


def test_decode_beyond_the_budget_waits(monkeypatch):
    data = png_of((1000, 1000))
    cost = 1000 * 1000 * imaging.PEAK_COPIES["PNG"]
    b = PixelBudget(2 * cost)  # room for two such decodes
    monkeypatch.setattr(image_budget, "BUDGET", b)
    gate, inside, lock = threading.Event(), [], threading.Lock()
    real_load = ImageFile.ImageFile.load

    def held_load(self):
        if self.tile:
            with lock:
                inside.append(self.size)
            assert gate.wait(10)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", held_load)
    results, errors = [], []

    def work():
        try:
            results.append(decode_image(data, **BIG).size)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while (len(inside) < 2 or b.waiting < 1) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(inside) == 2 and b.waiting == 1 and b.in_use == 2 * cost  # the third waits for pixels
    gate.set()
    for t in threads:
        t.join(10)
    assert errors == [] and results == [(1000, 1000)] * 3
    assert len(inside) == 3 and b.in_use == 0 and b.waiting == 0


def test_no_room_in_time_is_503_before_decoding(decoded, monkeypatch):
    b = PixelBudget(1000)
    monkeypatch.setattr(image_budget, "BUDGET", b)
    monkeypatch.setattr(image_budget, "WAIT_SECONDS", 0.05)
    b.acquire(1000, timeout=0)
    with pytest.raises(ImageRejected) as exc:
        decode_image(png_of((100, 100)), **BIG, what="reference image")
    assert exc.value.status == 503
    assert "busy decoding other images" in exc.value.message and "try again" in exc.value.message
    assert decoded == []
    b.release(1000)
    assert decode_image(png_of((100, 100)), **BIG).size == (100, 100)
    assert b.in_use == 0


def test_budget_is_released_when_decoding_fails(budget):
    broken = png_of((300, 300))
    broken = broken[:60] + bytes(len(broken) - 60)  # IDAT and IEND zeroed: fails while decoding
    with pytest.raises(ImageRejected):
        decode_image(broken, **BIG)
    with pytest.raises(ImageRejected):
        decode_image(jpeg_of((500, 400))[:3000], **BIG)  # truncated: fails in load()
    assert budget.in_use == 0


# ------------------------------------------------------------------ time limit


def test_decode_time_limit_stops_a_slow_decode(monkeypatch):
    """With the scan check off, the time limit alone stops the bomb: it is
    checked each time the decoder asks for more of the file. Unchecked, this
    file takes about 1.2 ms a scan here (some 24 s)."""
    monkeypatch.setattr(imaging, "MAX_JPEG_SCANS", 10**9)
    monkeypatch.setattr(imaging, "DECODE_SECONDS", 0.3)
    monkeypatch.setattr(imaging, "DECODE_CHUNK_BYTES", 1024)
    bomb = scan_bomb(20_000, side=1024)
    t0 = time.monotonic()
    with pytest.raises(ImageRejected) as exc:
        decode_image(bomb, **BIG)
    assert exc.value.status == 422 and "took more than 0.3 s to decode" in exc.value.message
    assert time.monotonic() - t0 < 8


def test_deadline_reader_refuses_reads_after_the_deadline():
    reader = imaging._DeadlineReader(b"abcdef")
    assert reader.read(2) == b"ab"
    reader.deadline = time.monotonic() - 1
    with pytest.raises(imaging._DecodeTimeout):
        reader.read(2)


# ------------------------------------------------------------------ through HTTP


def counts(client) -> dict[str, int]:
    with client.app.state.ctx.sessions() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Thread, Turn, Version, ShareLink)}


def blob_files(settings) -> set:
    return {p for p in settings.blob_dir.rglob("*") if p.is_file()}


def test_scan_bomb_gets_422_through_the_api_and_leaves_nothing(client, settings):
    r = client.post("/api/v1/threads", files={"image": ("head.png", png_of((64, 48)), "image/png")})
    assert r.status_code == 201
    tid = r.json()["id"]
    before_counts, before_blobs = counts(client), blob_files(settings)
    bomb = scan_bomb(10_000)

    r = client.post("/api/v1/threads", files={"image": ("scans.jpg", bomb, "image/jpeg")})
    assert r.status_code == 422, r.text
    assert f"more than {MAX_JPEG_SCANS} scans" in r.json()["detail"]

    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "use this"},
                    files=[("image", ("ref.webp", webp_bomb(3000), "image/webp")),
                           ("image", ("scans.jpg", bomb, "image/jpeg"))])
    assert r.status_code == 422, r.text
    assert "reference image" in r.json()["detail"] and "scans" in r.json()["detail"]

    assert counts(client) == before_counts
    assert blob_files(settings) == before_blobs
    assert len(client.get("/api/v1/threads").json()["threads"]) == 1
    assert client.get("/healthz").status_code == 200


def test_large_reference_is_stored_at_the_working_size(client, settings):
    r = client.post("/api/v1/threads", files={"image": ("head.png", png_of((64, 48)), "image/png")})
    tid = r.json()["id"]
    before = blob_files(settings)
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "use this"},
                    files=[("image", ("ref.webp", webp_bomb(4000), "image/webp"))])
    assert r.status_code == 202, r.text
    new_pngs = [p for p in blob_files(settings) - before if not p.name.endswith(".thumb.webp")]
    sizes = {Image.open(p).size for p in new_pngs}
    assert (2048, 2048) in sizes and all(max(s) <= REFERENCE_SIDE for s in sizes)
