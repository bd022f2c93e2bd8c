"""Time each operation of the ``local`` backend on a 1024x1024 photo-like image.

Run: ``.venv/bin/python bench/bench_local.py [--runs N]``

Each instruction goes through the public interface (parse + apply +
mask compositing, not PNG encoding); the median of N runs is reported in
milliseconds. PNG encoding of each result is timed separately. The photo is
``../shared/eval/images/astronaut.png`` scaled to 1024x1024 when present
(so face detection has a face), else a synthetic scene.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.backends import EditRequest, get_backend  # noqa: E402
from app.imaging import encode_png  # noqa: E402

SIZE = 1024
PHOTO = Path(__file__).resolve().parents[1] / ".." / "shared" / "eval" / "images" / "astronaut.png"

CASES: list[tuple[str, str, bool]] = [
    # (label, instruction, with a mask)
    ("grayscale", "make it black and white", False),
    ("sepia", "give it a sepia tone", False),
    ("invert", "invert the colors", False),
    ("brightness", "make it brighter", False),
    ("contrast", "increase the contrast", False),
    ("saturation", "make the colors more vivid", False),
    ("warmth", "make it warmer", False),
    ("tint", "give it a blue tint", False),
    ("auto enhance", "auto enhance", False),
    ("rotate 90", "rotate it 90 degrees clockwise", False),
    ("rotate 30", "rotate it 30 degrees", False),
    ("flip", "flip it horizontally", False),
    ("crop 16:9", "crop to 16:9", False),
    ("resize", "resize to 512 pixels wide", False),
    ("border", "add a 20 pixel white border", False),
    ("text", "add the text 'HELLO WORLD' at the top", False),
    ("meme", "make it a meme with 'TOP TEXT' on top and 'BOTTOM TEXT' at the bottom", False),
    ("blur", "blur the image", False),
    ("blur strong", "blur it heavily", False),
    ("motion blur", "add motion blur", False),
    ("sharpen", "sharpen it", False),
    ("pixelate", "pixelate it", False),
    ("denoise", "reduce noise", False),
    ("grain", "add film grain", False),
    ("vignette", "add a vignette", False),
    ("posterize", "posterize it", False),
    ("emboss", "emboss it", False),
    ("edges", "edge detection", False),
    ("pencil sketch", "make it look like a pencil sketch", False),
    ("cartoon", "cartoonify it", False),
    ("oil painting", "make it look like an oil painting", False),
    ("watercolour", "make it look like a watercolor painting", False),
    ("vintage", "make it look vintage", False),
    ("blur faces", "blur the faces", False),
    ("remove background", "remove the background", False),
    ("blur background", "blur the background", False),
    ("mask: remove", "remove this", True),
    ("mask: grayscale", "make this area black and white", True),
    ("generate poster", "a 1024x1024 poster with a blue background and the title 'SUMMER SALE' in white", False),
    ("generate gradient", "a vertical gradient from navy to white, 1024x1024", False),
]


def photo() -> Image.Image:
    """A 1024x1024 RGB photo: the astronaut test image if available, else a synthetic scene."""
    if PHOTO.is_file():
        return Image.open(PHOTO).convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    base = np.dstack([120 + 100 * x, 80 + 120 * y, 200 - 120 * x * y])
    im = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(40):
        x0, y0 = rng.integers(0, SIZE, 2)
        r = int(rng.integers(20, 160))
        draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im.filter(ImageFilter.GaussianBlur(1.5))


def central_mask() -> Image.Image:
    """An ``L`` mask selecting a 300x200 ellipse in the middle."""
    m = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(m).ellipse((362, 412, 662, 612), fill=255)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    backend = get_backend("local")
    image, mask = photo(), central_mask()
    backend.edit(EditRequest(instruction="make it black and white", image=image))  # warm-up (imports, fonts)
    print(f"local backend, {SIZE}x{SIZE} input, median of {args.runs} runs (ms)")
    print(f"{'operation':<20} {'edit':>8} {'png':>8}  output")
    for label, instruction, masked in CASES:
        times, result = [], None
        gen = label.startswith("generate")
        request = EditRequest(instruction=instruction, image=None if gen else image, mask=mask if masked else None)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = backend.edit(request)
            times.append((time.perf_counter() - t0) * 1000)
        assert result is not None
        t0 = time.perf_counter()
        encode_png(result.image)
        png_ms = (time.perf_counter() - t0) * 1000
        size = "{}x{} {}".format(*result.image.size, result.image.mode)
        print(f"{label:<20} {statistics.median(times):8.1f} {png_ms:8.1f}  {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
