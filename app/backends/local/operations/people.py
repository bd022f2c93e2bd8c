"""Faces and backgrounds: blur/pixelate faces (Haar cascades bundled with
OpenCV) and remove, recolour, blur or desaturate the background (GrabCut
at reduced resolution, edges refined with a guided filter)."""
from __future__ import annotations

import re
import time
from typing import Any

import cv2
import numpy as np

from app.backends.base import BackendDeclined

from ..colors import COLOR, color_name, find_colors
from ..picture import Picture, luminance
from ..registry import EDIT, ApplyContext, Operation, ParseContext, register
from .filters import gaussian_blur, pixelate_rgb

#: Longer side, in pixels, of the copy faces are searched in.
DETECT_SIDE = 640
#: Longer side, in pixels, of the copy GrabCut segments.
SEGMENT_SIDE = 200
#: GrabCut iterations at most, and the time after which no new one starts (seconds).
SEGMENT_ITERATIONS = 5
SEGMENT_BUDGET_S = 0.3

_cascades: dict[str, cv2.CascadeClassifier] = {}


def _cascade(name: str) -> cv2.CascadeClassifier:
    if name not in _cascades:
        _cascades[name] = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    return _cascades[name]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / max(1, min(aw * ah, bw * bh))


def detect_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Find faces in ``(H, W, 3)`` uint8 RGB. Returns boxes ``(x, y, w, h)`` in
    pixels of the input, frontal and profile, overlapping detections merged."""
    h, w = rgb.shape[:2]
    f = min(1.0, DETECT_SIDE / max(h, w))
    gray = luminance(rgb).astype(np.uint8)
    if f < 1.0:
        gray = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(20, int(min(gray.shape) * 0.04))
    found: list[tuple[int, int, int, int]] = []
    for name, neighbours in (("haarcascade_frontalface_default.xml", 6), ("haarcascade_frontalface_alt2.xml", 4)):
        for box in _cascade(name).detectMultiScale(gray, 1.15, neighbours, minSize=(min_side, min_side)):
            found.append(tuple(int(v) for v in box))
        if found:
            break
    if not found:  # no frontal face: look for faces in profile, both ways
        profile = _cascade("haarcascade_profileface.xml")
        for flipped in (False, True):
            g = np.ascontiguousarray(gray[:, ::-1]) if flipped else gray
            for x, y, bw, bh in profile.detectMultiScale(g, 1.15, 6, minSize=(min_side, min_side)):
                found.append((int(g.shape[1] - x - bw) if flipped else int(x), int(y), int(bw), int(bh)))
    merged: list[tuple[int, int, int, int]] = []
    for box in sorted(found, key=lambda b: -b[2] * b[3]):
        if all(_overlap(box, m) < 0.3 for m in merged):
            merged.append(box)
    return [tuple(round(v / f) for v in b) for b in merged]  # type: ignore[misc]


_FACE = (
    r"(?:(?:all|every|each|any|people's|person's|their|his|her|everyone's|everybody's|visible|persons|peoples)\s+)?"
    r"(?:faces?|heads?|identities|identity)"
    r"(?:\s+(?:of|in)\s+(?:all\s+)?(?:people|persons?|everyone|everybody|kids|children|man|woman|men|women|subjects?|crowd|group))?"
)
_FACE_VERB = r"(?:blur|blurred|pixelate|pixelated|pixelise|pixelize|pixellate|anonymi[sz]e|hide|obscure|censor|cover|redact|disguise|mosaic|blot\s+out|protect)"


@register
class FaceBlur(Operation):
    """Blur or pixelate every detected face; pixels outside the face boxes stay unchanged."""

    name = "faces"
    modes = frozenset({EDIT})
    takes_strength = True
    phrases = {
        rf"{_FACE_VERB}(?:\s+out)?\s+{_FACE}|{_FACE}\s+(?:blurred|pixelated|hidden|anonymi[sz]ed|censored|obscured|blur|pixelation|anonymi[sz]ation)|"
        rf"anonymi[sz]e\s+(?:people|persons|everyone|everybody)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        params["method"] = "pixelate" if re.search(r"pixel|censor|mosaic", phrase) else "blur"
        return params

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        faces = detect_faces(pic.rgb)
        if not faces:
            raise BackendDeclined(
                "I could not find a face in this image, so nothing was changed. Select the area "
                "yourself and say 'blur this' or 'pixelate this', or try 'blur the background'."
            )
        out = pic.rgb.copy()
        for x, y, w, h in faces:
            pad_x, pad_y = round(w * 0.12), round(h * 0.18)
            x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
            x1, y1 = min(pic.width, x + w + pad_x), min(pic.height, y + h + pad_y)
            region = pic.rgb[y0:y1, x0:x1]
            if params["method"] == "pixelate":
                block = max(4, round(max(w, h) / (10 / params.get("strength", 1.0))))
                out[y0:y1, x0:x1] = pixelate_rgb(region, block)
            else:
                sigma = max(3.0, max(w, h) / 7.0 * params.get("strength", 1.0))
                out[y0:y1, x0:x1] = gaussian_blur(region, sigma)
        params["count"] = len(faces)
        return Picture(out, pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        verb = "pixelated" if params["method"] == "pixelate" else "blurred"
        n = params.get("count")
        return f"{verb} {n} face{'s' if n != 1 else ''}" if n else f"{verb} the faces"


def foreground_alpha(rgb: np.ndarray) -> np.ndarray:
    """Estimate the main subject of ``(H, W, 3)`` uint8 RGB.

    GrabCut runs on a copy at most ``SEGMENT_SIDE`` px on its longer side
    (iterations stop after ``SEGMENT_BUDGET_S`` seconds), seeded with the top, left and right edges as background; the result is
    upscaled and its edges refined with a guided filter. Returns ``(H, W)``
    float32 in 0..1 (1 = subject). Raises ``BackendDeclined`` if no subject
    separates from the background.
    """
    h, w = rgb.shape[:2]
    f = min(1.0, SEGMENT_SIDE / max(h, w))
    sw, sh = max(16, round(w * f)), max(16, round(h * f))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    mask = np.full((sh, sw), cv2.GC_PR_FGD, np.uint8)
    mx, my = max(2, round(sw * 0.04)), max(2, round(sh * 0.04))
    mask[:, :mx] = cv2.GC_BGD
    mask[:, -mx:] = cv2.GC_BGD
    mask[:my, :] = cv2.GC_BGD
    mask[-my:, :] = cv2.GC_PR_BGD
    mask[-my:, :mx] = cv2.GC_BGD
    mask[-my:, -mx:] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    start = time.perf_counter()
    cv2.grabCut(bgr, mask, None, bgd, fgd, 1, cv2.GC_INIT_WITH_MASK)
    for _ in range(SEGMENT_ITERATIONS - 1):
        if time.perf_counter() - start > SEGMENT_BUDGET_S:
            break
        cv2.grabCut(bgr, mask, None, bgd, fgd, 1, cv2.GC_EVAL)
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        raise BackendDeclined(
            "I could not separate a subject from the background in this image. Select the area "
            "to change and describe the edit, e.g. 'make this area white'."
        )
    biggest = int(stats[1:, cv2.CC_STAT_AREA].max())
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.15 * biggest]
    fg = np.isin(labels, keep).astype(np.uint8)
    # fill holes: background not connected to the border becomes subject
    inv = (1 - fg).astype(np.uint8)
    n2, lab2, _, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border = set(np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]])).tolist())
    holes = ~np.isin(lab2, list(border)) & (inv == 1)
    fg[holes] = 1
    alpha = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    guide = luminance(rgb) / 255.0
    radius = max(2, round(max(h, w) / 200))
    alpha = cv2.ximgproc.guidedFilter(guide.astype(np.float32), alpha, radius, 1e-3)
    alpha = np.clip((alpha - 0.5) * 1.6 + 0.5, 0.0, 1.0)
    bx, by = max(1, round(w * 0.02)), max(1, round(h * 0.02))
    alpha[:by, :] = 0
    alpha[:, :bx] = 0
    alpha[:, -bx:] = 0
    return alpha.astype(np.float32)


_BG = r"(?:background|backdrop|bg|surroundings)"
_REMOVE = r"(?:remove|removed|delete|erase|cut\s+out|cut|drop|get\s+rid\s+of|take\s+out|take\s+away|clear|strip|knock\s+out|lose|eliminate|white\s+out|blank\s+out)"
_COLOR_TAIL = rf"(?:\s+(?:and\s+)?(?:make\s+|leave\s+|set\s+|replace\s+)?(?:to\s+|with\s+)?(?:transparent|see\s+through|(?:solid\s+|plain\s+|pure\s+)?{COLOR}))?"


@register
class Background(Operation):
    """Replace the background: white (default), a colour, transparent, blurred
    or black and white, keeping the estimated subject."""

    name = "background"
    modes = frozenset({EDIT})
    priority = 30
    phrases = {
        rf"{_REMOVE}\s+(?:whole\s+|entire\s+)?{_BG}{_COLOR_TAIL}|{_BG}\s+(?:removal|removed|remover){_COLOR_TAIL}|(?:no|without)\s+{_BG}|"
        rf"(?:cut\s+out|isolate|extract|separate)\s+(?:main\s+)?(?:subject|person|foreground|animal|product)(?:\s+from\s+{_BG})?{_COLOR_TAIL}": {"action": "remove"},
        rf"(?:transparent|see\s+through|clear|alpha)\s+{_BG}|{_BG}\s+(?:to\s+|be\s+|is\s+)?(?:transparent|see\s+through)": {"action": "transparent"},
        rf"(?:(?:solid|plain|pure|flat|clean)\s+)*{COLOR}\s+{_BG}|{_BG}\s+(?:to\s+|into\s+|with\s+|in\s+|be\s+|is\s+|color\s+)?(?:(?:solid|plain|pure|flat)\s+)?{COLOR}|"
        rf"(?:replace|change|swap|set|paint|fill|turn)\s+{_BG}\s+(?:with|to|into|for|in)\s+(?:(?:solid|plain|pure|flat)\s+)?{COLOR}(?:\s+(?:one|color))?": {"action": "color"},
        rf"(?:blur|blurred|blurry|soften|defocus)\s+{_BG}|{_BG}\s+(?:blur|blurred|blurry|out\s+of\s+focus|soft|bokeh)|bokeh(?:\s+effect)?|"
        rf"portrait\s+(?:mode|effect)|(?:shallow|fake)\s+depth\s+of\s+field": {"action": "blur"},
        rf"{_BG}\s+(?:black\s+and\s+white|gray\s*scale|monochrome|gray)|(?:black\s+and\s+white|gray\s*scale|monochrome|desaturate)\s+{_BG}|"
        rf"color\s+splash|selective\s+color": {"action": "gray"},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        action = params["action"]
        if action == "remove" and re.search(r"transparent|see\s+through", phrase):
            action = "transparent"
        colors = find_colors(phrase)
        if action in ("remove", "color") and colors:
            return {"action": "color", "color": colors[0]}
        if action == "color":
            return {"action": "color", "color": (255, 255, 255)}
        return {"action": action}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        a = foreground_alpha(pic.rgb)
        action = params["action"]
        if action == "transparent":
            base = np.full(a.shape, 255, np.uint8) if pic.alpha is None else pic.alpha
            return Picture(pic.rgb, np.rint(a * base).astype(np.uint8))
        f = pic.rgb.astype(np.float32)
        if action == "blur":
            back = gaussian_blur(pic.rgb, max(4.0, 0.012 * max(pic.width, pic.height))).astype(np.float32)
        elif action == "gray":
            back = np.repeat(luminance(pic.rgb)[..., None], 3, axis=2)
        else:
            back = np.empty_like(f)
            back[:] = params.get("color", (255, 255, 255))
        return pic.with_rgb(back + (f - back) * a[..., None])

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        action = params["action"]
        if action == "transparent":
            return "made the background transparent"
        if action == "blur":
            return "blurred the background"
        if action == "gray":
            return "made the background black and white"
        color = params.get("color", (255, 255, 255))
        if color == (255, 255, 255):
            return "removed the background (now white)"
        return f"replaced the background with {color_name(color)}"
