"""The stored-PNG encoder (``app.imaging.encode_png``: the Up filter plus
libdeflate) against two independent decoders, Pillow and libpng (through
``imagecodecs.png_decode``, which checks every chunk's CRC and the zlib
stream's Adler-32), over generated pixels of every shape and mode it takes;
and the thumbnail a turn's result gets after its version is committed."""
from __future__ import annotations

import io
import struct
import zlib

import imagecodecs
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from app.imaging import PNG_IDAT_BYTES, encode_png
from tests.conftest import png_bytes, wait_for_turn

sides = st.integers(min_value=1, max_value=48)


@st.composite
def images(draw):
    """A Pillow image in a mode encode_png takes, with arbitrary pixels
    (noise, flat runs and wrap-around differences alike)."""
    mode = draw(st.sampled_from(["RGB", "RGBA", "L", "LA", "P"]))
    w, h = draw(sides), draw(sides)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2, "P": 1}[mode]
    pixels = draw(arrays(np.uint8, (h, w, channels)))
    if channels == 1:
        im = Image.fromarray(pixels[:, :, 0], "L")
        if mode == "P":
            im = im.convert("P")
        return im
    return Image.fromarray(pixels, mode)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk, checking each CRC (PNG spec §5.3)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + length]
        (crc,) = struct.unpack(">I", data[i + 8 + length:i + 12 + length])
        assert crc == zlib.crc32(kind + body)
        out.append((kind, body))
        i += 12 + length
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images())
def test_any_image_round_trips_through_two_decoders(im):
    data = encode_png(im)
    expected_mode = "RGBA" if im.mode in ("RGBA", "LA") else "RGB"
    expected = np.asarray(im.convert(expected_mode))
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    assert decoded.mode == expected_mode and decoded.size == im.size
    assert np.array_equal(np.asarray(decoded), expected)
    assert np.array_equal(imagecodecs.png_decode(data).reshape(expected.shape), expected)
    kinds = [k for k, _ in chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}  # no metadata


def test_large_images_split_their_data_into_chunks_and_stay_lossless():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (2400, 2400, 3), dtype=np.uint8)  # noise: ~17 MB of compressed data
    data = encode_png(Image.fromarray(pixels, "RGB"))
    idats = [body for kind, body in chunks(data) if kind == b"IDAT"]
    assert len(idats) > 1 and all(len(b) <= PNG_IDAT_BYTES for b in idats)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_a_turn_result_gets_its_thumbnail(client):
    """The worker stores a result's thumbnail just after committing its
    version; asked for at any moment after the turn ends, the thumbnail is
    the WebP at most 256 px, never the whole PNG."""
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((600, 400)), "image/png")}).json()
    for i in range(3):
        turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": f"edit {i}"}).json()
        done = wait_for_turn(client, turn["id"])
        assert done["status"] == "succeeded"
        r = client.get(f"/api/v1/threads/{thread['id']}/versions/{done['result_version']}/image?size=thumb")
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        assert max(Image.open(io.BytesIO(r.content)).size) <= 256
