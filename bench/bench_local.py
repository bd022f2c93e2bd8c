"""Time each operation of the ``local`` backend on a 1024x1024 photo-like image.

Run: ``.venv/bin/python bench/bench_local.py [--runs N]`` (``make bench``).

Each instruction goes through the public interface (parse + apply +
mask compositing, not PNG encoding); the median of N runs is reported in
milliseconds and compared with its budget: 150 ms for tone, geometry, text,
filter and generation operations, 1 s for styles and segmentation (faces,
backgrounds, neural styles, inpainting). PNG encoding of each result
(``app.imaging.encode_png``) is timed separately: it is the floor every
edit pays on top. Exits 1 when an operation is over its budget. The photo is
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

#: Budget per category, in milliseconds (median of the runs).
BUDGET_MS = {"tone": 150, "geometry": 150, "text": 150, "filter": 150, "generate": 150, "style": 1000, "segment": 1000}
_CATEGORY = {
    **dict.fromkeys(("grayscale", "sepia", "invert", "brightness", "contrast", "saturation", "warmth", "tint",
                     "auto enhance", "posterize", "mask: grayscale"), "tone"),
    **dict.fromkeys(("rotate 90", "rotate 30", "flip", "crop 16:9", "crop region", "crop sides", "resize", "border",
                     "pad 16:9", "pad side"), "geometry"),
    **dict.fromkeys(("text", "meme", "watermark", "banner"), "text"),
    **dict.fromkeys(("pencil sketch", "cartoon", "oil painting", "watercolour", "vintage", "neural: starry night",
                     "neural: mosaic", "neural: reference"), "style"),
    **dict.fromkeys(("blur faces", "remove background", "blur background", "mask: remove"), "segment"),
}
REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "eval" / "images" / "coffee.png"


def category(label: str) -> str:
    """The budget category of a benchmark label (default "filter")."""
    if label.startswith("generate"):
        return "generate"
    return _CATEGORY.get(label, "filter")


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
    ("crop region", "crop to the top-right quarter", False),
    ("crop sides", "cut 100 px off the left and right", False),
    ("pad 16:9", "extend the canvas to 16:9 with black bars", False),
    ("pad side", "add 100 px of white space on the right", False),
    ("watermark", "add a watermark '© Anna 2026' in the bottom right corner", False),
    ("banner", "add a red banner at the bottom saying 'SALE'", False),
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
    ("neural: starry night", "make it look like Van Gogh's Starry Night", False),
    ("neural: mosaic", "in the style of a mosaic", False),
    ("neural: reference", "paint it in the style of this", False),
    ("blur faces", "blur the faces", False),
    ("remove background", "remove the background", False),
    ("blur background", "blur the background", False),
    ("mask: remove", "remove this", True),
    ("mask: grayscale", "make this area black and white", True),
    ("generate poster", "a 1024x1024 poster with a blue background and the title 'SUMMER SALE' in white", False),
    ("generate gradient", "a vertical gradient from navy to white, 1024x1024", False),
    ("generate pattern", "white polka dots on a navy background, 1024x1024", False),
    ("generate invitation", "an invitation card for 'Anna's 30th birthday' on Saturday 12 June, gold on navy", False),
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
    reference = Image.open(REFERENCE).convert("RGB") if REFERENCE.is_file() else photo().rotate(90)
    backend.edit(EditRequest(instruction="make it black and white", image=image))  # warm-up (imports, fonts)
    print(f"local backend, {SIZE}x{SIZE} input, median of {args.runs} runs (ms); PNG = encode_png of the result")
    print(f"{'operation':<22} {'category':<9} {'edit ms':>8} {'budget':>7} {'result':>6} {'png ms':>8}  output")
    failures, png_times = 0, []
    for label, instruction, masked in CASES:
        times, result = [], None
        gen = label.startswith("generate")
        refs = (reference,) if "reference" in label else ()
        request = EditRequest(instruction=instruction, image=None if gen else image,
                              mask=mask if masked else None, references=refs)
        backend.edit(request)  # first call loads models/caches; not timed
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = backend.edit(request)
            times.append((time.perf_counter() - t0) * 1000)
        assert result is not None
        t0 = time.perf_counter()
        encode_png(result.image)
        png_ms = (time.perf_counter() - t0) * 1000
        png_times.append(png_ms)
        cat = category(label)
        median = statistics.median(times)
        ok = median <= BUDGET_MS[cat]
        failures += not ok
        size = "{}x{} {}".format(*result.image.size, result.image.mode)
        print(f"{label:<22} {cat:<9} {median:8.1f} {BUDGET_MS[cat]:7d} {'pass' if ok else 'FAIL':>6} {png_ms:8.1f}  {size}")
    print(f"PNG encoding (floor, not in the edit times): median {statistics.median(png_times):.1f} ms, "
          f"max {max(png_times):.1f} ms")
    print(f"{len(CASES) - failures}/{len(CASES)} operations within budget")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
