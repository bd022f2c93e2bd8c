"""Backgrounds: remove, recolour, blur or desaturate what is behind the main
subject. The subject is estimated with GrabCut at reduced resolution (seeded
by a person prior under a detected face, else saliency and a centre prior),
edges refined with a guided filter; :func:`subject_confidence` measures how
clearly one subject separates, and the edit is declined below
:data:`MIN_CONFIDENCE`.

Finding the subject (:func:`segment`, :func:`foreground_alpha`) is here,
with the grammar; the typed :class:`~..functions.background.BackgroundParams`
and the pure :func:`~..functions.background.replace_background` (the
subject's soft mask an explicit argument) do the pixel work."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.backends.base import BackendDeclined

from ..colors import COLOR, color_name, find_colors
from ..functions import ParamError
from ..functions import background as fn
from ..picture import Picture, luminance
from ..registry import EDIT, ApplyContext, Operation, ParseContext, register
from .faces import detect_faces

#: Longer side, in pixels, of the copy GrabCut segments.
SEGMENT_SIDE = 320
#: GrabCut iterations at most, and the time after which no new one starts (seconds).
SEGMENT_ITERATIONS = 6
SEGMENT_BUDGET_S = 0.35
#: Longer side, in pixels, of the copy searched for a face to anchor a person prior.
SEGMENT_FACE_SIDE = 400

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


def _seed_mask(rgb: np.ndarray, small: np.ndarray, f: float) -> tuple[np.ndarray, int]:
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
        return mask, len(faces)
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
    return mask, 0


@dataclass(frozen=True)
class Segmentation:
    """The estimated subject of a picture and how sure the estimate is.

    - ``alpha``: ``(H, W)`` float32, 0..1 (1 = subject).
    - ``share``: the subject's share of the picture, 0..1.
    - ``edge_alignment``: share of the subject's outline (frame excluded)
      lying within 2 px of an image edge, 0..1. A cut through sky or a
      wall scores low.
    - ``color_overlap``: overlap of the subject's and the background's colour
      histograms (CIELAB, 8x8x8 bins), 0..1. A subject of the background's
      own colours scores high.
    - ``frame_touch``: share of the top, left and right frame edges covered by
      the subject, 0..1 (reported, not scored: close-ups touch the frame).
    - ``faces``: faces that anchored a person prior.
    - ``confidence``: 0..1, see :func:`subject_confidence`.
    """

    alpha: np.ndarray
    share: float
    edge_alignment: float
    color_overlap: float
    frame_touch: float
    faces: int
    confidence: float


#: Below this confidence "remove the background" is declined (see :func:`subject_confidence`).
MIN_CONFIDENCE = 0.5


def subject_confidence(share: float, edge_alignment: float, color_overlap: float, faces: int = 0) -> float:
    """How sure a subject estimate is, 0..1: the weakest of three scores.

    - outline on image edges: 0 at an edge alignment of 0.65 or less, 1 at
      0.9 or more (0.5 and 0.75 with a face anchoring a person prior);
    - colours apart from the background: 1 at a colour overlap of 0.55 or
      less, 0 at 0.85 or more;
    - size: 1 for a share of 3% to 90% of the picture, 0 outside 1%..95%.

    Measured on the shared evaluation photos and synthetic scenes: clear
    subjects (a cup, a person, a disc) score 0.9 to 1; a launch pad with
    sky, a landscape, a sky-and-slab scene and a close-up cat whose fur
    matches the background score 0 to 0.4.
    """
    low, high = (0.5, 0.75) if faces else (0.65, 0.9)
    s_edge = float(np.clip((edge_alignment - low) / (high - low), 0.0, 1.0))
    s_color = float(np.clip((0.85 - color_overlap) / 0.30, 0.0, 1.0))
    if share < 0.03:
        s_share = max(0.0, (share - 0.01) / 0.02)
    elif share > 0.9:
        s_share = max(0.0, (0.95 - share) / 0.05)
    else:
        s_share = 1.0
    return min(s_edge, s_color, s_share)


def segment(rgb: np.ndarray) -> Segmentation:
    """Estimate the main subject of ``(H, W, 3)`` uint8 RGB, with measurements.

    GrabCut runs on a copy at most ``SEGMENT_SIDE`` px on its longer side
    (iterations stop after ``SEGMENT_BUDGET_S`` seconds), seeded by
    :func:`_seed_mask` (a person prior under a detected face, else saliency
    and a centre prior). The mask is cleaned (opening and closing, small
    components dropped, holes filled), upscaled, and its edges refined with a
    guided filter, so only the boundary is feathered. Raises
    ``BackendDeclined`` if nothing separates from the background at all.
    """
    h, w = rgb.shape[:2]
    f = min(1.0, SEGMENT_SIDE / max(h, w))
    sw, sh = max(16, round(w * f)), max(16, round(h * f))
    f = sw / w
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    mask, faces = _seed_mask(rgb, small, f)
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
        raise BackendDeclined(NO_SUBJECT)
    biggest = int(stats[1:, cv2.CC_STAT_AREA].max())
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.15 * biggest]
    fg = np.isin(labels, keep).astype(np.uint8)
    # fill holes: background not connected to the border becomes subject
    inv = (1 - fg).astype(np.uint8)
    n2, lab2, _, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border = set(np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]])).tolist())
    holes = ~np.isin(lab2, list(border)) & (inv == 1)
    fg[holes] = 1
    measures = _measure(small, fg)
    alpha = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    guide = luminance(rgb) / 255.0
    radius = max(2, round(max(h, w) / 200))
    alpha = cv2.ximgproc.guidedFilter(guide.astype(np.float32), alpha, radius, 1e-3)
    alpha = np.clip((alpha - 0.5) * 1.6 + 0.5, 0.0, 1.0)
    # the top corners were sure background: keep them clean of feathering
    cx, cy = max(1, round(w * 0.05)), max(1, round(h * 0.05))
    alpha[:cy, :cx] = 0
    alpha[:cy, -cx:] = 0
    conf = subject_confidence(measures[0], measures[1], measures[2], faces)
    return Segmentation(alpha.astype(np.float32), *measures, faces=faces, confidence=conf)


def _measure(small: np.ndarray, fg: np.ndarray) -> tuple[float, float, float, float]:
    """(share, edge alignment, colour overlap, frame touch) of mask ``fg`` on ``small``."""
    share = float(fg.mean())
    gray = luminance(small).astype(np.uint8)
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.0), 40, 120)
    near_edge = cv2.dilate(edges, np.ones((5, 5), np.uint8)) > 0
    outline = cv2.morphologyEx(fg, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    # the frame is not an outline the picture has to explain
    outline[:2] = outline[-2:] = False
    outline[:, :2] = outline[:, -2:] = False
    alignment = float(near_edge[outline].mean()) if outline.any() else 0.0
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB) // 32
    bins = lab[..., 0].astype(np.int32) * 64 + lab[..., 1].astype(np.int32) * 8 + lab[..., 2].astype(np.int32)
    inside = fg.astype(bool)
    p_fg = np.bincount(bins[inside], minlength=512).astype(np.float64)
    p_bg = np.bincount(bins[~inside], minlength=512).astype(np.float64)
    overlap = float(np.minimum(p_fg / max(1.0, p_fg.sum()), p_bg / max(1.0, p_bg.sum())).sum())
    frame = np.concatenate([fg[0], fg[:, 0], fg[:, -1]]).astype(bool)
    return share, alignment, overlap, float(frame.mean())


def foreground_alpha(rgb: np.ndarray) -> np.ndarray:
    """The estimated subject of ``(H, W, 3)`` uint8 RGB as ``(H, W)`` float32
    in 0..1 (1 = subject); see :func:`segment`. Raises ``BackendDeclined``
    when no subject separates, or the estimate's confidence is below
    :data:`MIN_CONFIDENCE`.

Finding the subject (:func:`segment`, :func:`foreground_alpha`) is here,
with the grammar; the typed :class:`~..functions.background.BackgroundParams`
and the pure :func:`~..functions.background.replace_background` (the
subject's soft mask an explicit argument) do the pixel work."""
    seg = segment(rgb)
    if seg.confidence < MIN_CONFIDENCE:
        raise BackendDeclined(NO_SUBJECT)
    return seg.alpha


#: What a decline for an unclear subject says.
NO_SUBJECT = (
    "I could not find one clear subject in this picture, so I did not change the background: "
    "the result would have kept parts of the background or cut off parts of the subject. "
    "Nothing was changed. Select the area to change and describe the edit, e.g. 'make this area white'."
)


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
    Params = fn.BackgroundParams
    function = staticmethod(fn.replace_background)
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
        try:
            return Picture.from_pil(fn.replace_background(pic.to_pil(), cls.typed(params), a))
        except ParamError as exc:
            raise BackendDeclined(str(exc)[:1].upper() + str(exc)[1:] + ".") from None

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
