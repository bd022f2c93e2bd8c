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
SEGMENT_SIDE = 320
#: GrabCut iterations at most, and the time after which no new one starts (seconds).
SEGMENT_ITERATIONS = 6
SEGMENT_BUDGET_S = 0.35
#: Longer side, in pixels, of the copy searched for a face to anchor a person prior.
SEGMENT_FACE_SIDE = 400

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


def detect_faces(rgb: np.ndarray, side: int = DETECT_SIDE, profile: bool = True) -> list[tuple[int, int, int, int]]:
    """Find faces in ``(H, W, 3)`` uint8 RGB, searched on a copy at most ``side``
    px on its longer side. Returns boxes ``(x, y, w, h)`` in pixels of the
    input, frontal (and profile, when ``profile`` and no frontal face was
    found), overlapping detections merged."""
    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
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
    if not found and profile:  # no frontal face: look for faces in profile, both ways
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
    r"(?:(?:all|every|each|any|people|person|their|his|her|everyone|everybody|visible|persons|peoples|man|woman|kid|child|astronaut)(?:'s)?\s+)?"
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
        rf"{_FACE_VERB}(?:\s+out)?\s+{_FACE}(?:\s+(?:with|using|by|via)\s+(?:(?:strong|heavy|light|soft|gaussian)\s+)?(?:blur|blurring|pixelation|pixelating|pixels|mosaic))?|{_FACE}\s+(?:blurred|pixelated|hidden|anonymi[sz]ed|censored|obscured|blur|pixelation|anonymi[sz]ation)|"
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


def _person_seeds(mask: np.ndarray, faces: list[tuple[int, int, int, int]], f: float) -> None:
    """Mark a person prior under each face (boxes in full-size pixels, ``f`` the
    scale of ``mask``): the inner face and a core of neck and chest as sure
    subject, the head with hair and a torso widening to the bottom edge as
    probable subject."""
    sh = mask.shape[0]
    for bx, by, bw, bh in faces:
        x, y, w, h = bx * f, by * f, bw * f, bh * f
        cx = x + w / 2
        cv2.ellipse(mask, (round(cx), round(y + h * 0.45)), (round(w * 0.8), round(h * 0.85)), 0, 0, 360, cv2.GC_PR_FGD, -1)
        shoulders = y + h * 1.6
        torso = np.array([[cx - w * 0.55, y + h * 1.05], [cx + w * 0.55, y + h * 1.05], [cx + w * 2.0, shoulders],
                          [cx + w * 2.6, sh], [cx - w * 2.6, sh], [cx - w * 2.0, shoulders]], np.int32)
        cv2.fillPoly(mask, [torso], cv2.GC_PR_FGD)
        cv2.ellipse(mask, (round(cx), round(y + h * 0.55)), (round(w * 0.3), round(h * 0.38)), 0, 0, 360, cv2.GC_FGD, -1)
        bottom = min(sh, y + h * 3.5)
        core = np.array([[cx - w * 0.25, y + h], [cx + w * 0.25, y + h], [cx + w * 0.25, shoulders],
                         [cx + w * 0.9, y + h * 2.0], [cx + w * 0.9, bottom], [cx - w * 0.9, bottom],
                         [cx - w * 0.9, y + h * 2.0], [cx - w * 0.25, shoulders]], np.int32)
        cv2.fillPoly(mask, [core], cv2.GC_FGD)


def _saliency(small: np.ndarray) -> np.ndarray:
    """Fine-grained static saliency of ``(h, w, 3)`` uint8 RGB, smoothed, 0..1."""
    ok, m = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    m = cv2.GaussianBlur(m.astype(np.float32), (0, 0), max(2.0, small.shape[1] / 60))
    return (m - m.min()) / max(1e-6, float(m.max() - m.min()))


def _seed_mask(rgb: np.ndarray, small: np.ndarray, f: float) -> np.ndarray:
    """GrabCut seeds at the size of ``small``.

    With a face (at least 0.4% of the picture): a person prior under it, the
    top, left and right edges sure background. Without: a central region and
    salient parts are probable subject, the middle sure subject, the top
    corners sure background and the frame edges probable background (a
    close-up subject may touch them)."""
    h, w = rgb.shape[:2]
    sh, sw = small.shape[:2]
    mx, my = max(2, round(sw * 0.03)), max(2, round(sh * 0.03))
    mask = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    faces = [b for b in detect_faces(rgb, side=SEGMENT_FACE_SIDE, profile=False) if b[2] * b[3] >= 0.004 * w * h]
    if faces:
        mask[:, :mx] = cv2.GC_BGD
        mask[:, -mx:] = cv2.GC_BGD
        _person_seeds(mask, faces, f)
        mask[:my] = np.where(mask[:my] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_BGD)
        return mask
    sal = _saliency(small)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    r2 = ((xx - sw / 2) / (sw / 2)) ** 2 + ((yy - sh / 2) / (sh / 2)) ** 2
    score = 0.5 * sal + 0.5 * np.exp(-r2 / 0.5)
    mask[(r2 < 0.75) | (score >= np.percentile(score, 70))] = cv2.GC_PR_FGD
    middle = r2 < 0.04
    mask[middle & (sal >= np.percentile(sal[middle], 30))] = cv2.GC_FGD
    mask[:my] = cv2.GC_PR_BGD
    mask[:, :mx] = cv2.GC_PR_BGD
    mask[:, -mx:] = cv2.GC_PR_BGD
    cx, cy = max(3, round(sw * 0.08)), max(3, round(sh * 0.08))
    mask[:cy, :cx] = cv2.GC_BGD
    mask[:cy, -cx:] = cv2.GC_BGD
    return mask


def foreground_alpha(rgb: np.ndarray) -> np.ndarray:
    """Estimate the main subject of ``(H, W, 3)`` uint8 RGB.

    GrabCut runs on a copy at most ``SEGMENT_SIDE`` px on its longer side
    (iterations stop after ``SEGMENT_BUDGET_S`` seconds), seeded by
    :func:`_seed_mask` (a person prior under a detected face, else saliency
    and a centre prior). The mask is cleaned (opening and closing, small
    components dropped, holes filled), upscaled, and its edges refined with a
    guided filter, so only the boundary is feathered. Returns ``(H, W)``
    float32 in 0..1 (1 = subject). Raises ``BackendDeclined`` if no subject
    separates from the background.
    """
    h, w = rgb.shape[:2]
    f = min(1.0, SEGMENT_SIDE / max(h, w))
    sw, sh = max(16, round(w * f)), max(16, round(h * f))
    f = sw / w
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    mask = _seed_mask(rgb, small, f)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    start = time.perf_counter()
    cv2.grabCut(bgr, mask, None, bgd, fgd, 1, cv2.GC_INIT_WITH_MASK)
    for _ in range(SEGMENT_ITERATIONS - 1):
        if time.perf_counter() - start > SEGMENT_BUDGET_S:
            break
        cv2.grabCut(bgr, mask, None, bgd, fgd, 1, cv2.GC_EVAL)
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    k = max(3, round(max(sw, sh) / 100)) | 1
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    share = float(fg.mean())
    if n <= 1 or share < 0.01 or share > 0.95:
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
    # the top corners were sure background: keep them clean of feathering
    cx, cy = max(1, round(w * 0.05)), max(1, round(h * 0.05))
    alpha[:cy, :cx] = 0
    alpha[:cy, -cx:] = 0
    return alpha.astype(np.float32)


_BG = r"(?:background|backdrop|bg|surroundings)"
_REMOVE = r"(?:remove|removed|delete|erase|cut\s+out|cut|drop|get\s+rid\s+of|take\s+out|take\s+away|clear|strip|knock\s+out|lose|eliminate|white\s+out|blank\s+out)"
_COLOR_TAIL = (
    rf"(?:\s+(?:and\s+)?(?:make\s+|leave\s+|set\s+|replace\s+|(?:put|place|set|paste|drop)\s+(?:them|him|her|subject|person)?\s*)?"
    rf"(?:to\s+|with\s+|on\s+|onto\s+|against\s+)?(?:transparent|see\s+through|(?:solid\s+|plain\s+|pure\s+)?{COLOR})"
    rf"(?:\s+(?:background|backdrop|bg))?)?"
)


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
