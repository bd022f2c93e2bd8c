"""Faces: find them (Haar cascades bundled with OpenCV) and blur or pixelate
them; pixels outside the face boxes stay unchanged.

Detection (:func:`detect_faces`) is here; the grammar maps phrases to the
typed :class:`~..functions.faces.FacesParams`, and the pure function
:func:`~..functions.faces.obscure_faces` takes the detected boxes as an
explicit argument."""
from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

from app.backends.base import BackendDeclined

from ..functions import ParamError
from ..functions import faces as fn
from ..picture import Picture, luminance
from ..registry import EDIT, ApplyContext, Operation, ParseContext, register

#: Longer side, in pixels, of the copy faces are searched in.
DETECT_SIDE = 640

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
    Params = fn.FacesParams
    function = staticmethod(fn.obscure_faces)
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
        try:
            out = fn.obscure_faces(pic.to_pil(), cls.typed(params), faces)
        except ParamError as exc:
            raise BackendDeclined(str(exc)[:1].upper() + str(exc)[1:] + ".") from None
        params["count"] = len(faces)
        return Picture.from_pil(out)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        verb = "pixelated" if params["method"] == "pixelate" else "blurred"
        n = params.get("count")
        return f"{verb} {n} face{'s' if n != 1 else ''}" if n else f"{verb} the faces"
