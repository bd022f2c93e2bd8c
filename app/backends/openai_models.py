"""The OpenAI image model catalogue: which models are live, and what each takes.

One entry per model the pinned SDK lists in ``openai.types.ImageModel``
(``openai/types/image_model.py``); ``tests/test_openai_models.py`` fails when
that list changes, so an SDK upgrade forces a review of this file.

Sources, by file of the pinned ``openai`` package (3.52.0):

- ``types/image_model.py``: the model names, and the deprecation notes
  ("gpt-image-1 ... shut down on October 23, 2026"; "dall-e-2", "dall-e-3"
  "retired on May 12, 2026").
- ``types/image_edit_params.py`` and ``types/image_generate_params.py``
  (the same text is in the docstrings of ``resources/images.py``
  ``Images.edit`` / ``Images.generate``):

  - ``size``: "For gpt-image-2, gpt-image-2-2026-04-21,
    gpt-image-2.5-sunburst, gpt-image-2.5-sunburst-2026-09-08,
    gpt-image-2.5-flare, and gpt-image-2.5-flare-2026-09-08, arbitrary
    resolutions are supported as WIDTHxHEIGHT strings ... Width and height
    must both be divisible by 16 and the requested aspect ratio must be
    between 1:3 and 3:1. Resolutions above 2560x1440 are experimental, and
    the maximum supported resolution is 3840x2160 ... The standard sizes
    1024x1024, 1536x1024, and 1024x1536 are supported by the GPT image
    models; auto is supported for models that allow automatic sizing."
  - ``quality``: "The GPT image models support low, medium, and high.
    gpt-image-2.5-sunburst and gpt-image-2.5-flare, including their
    2026-09-08 snapshots, also support xhigh and max. Defaults to auto."
  - ``background``: "gpt-image-2.5-sunburst and gpt-image-2.5-flare,
    including their 2026-09-08 snapshots, support opaque and transparent
    backgrounds ... For gpt-image-2 and gpt-image-2-2026-04-21, this support
    is in preview."
  - ``input_fidelity``: "Supports high and low on gpt-image-1.5;
    gpt-image-1-mini supports only low. For gpt-image-2, omit this
    parameter."
  - ``markup``: "Supports GPT Image 2.5. Cannot be combined with mask."
  - ``stream``: "This parameter is only supported for the GPT image models."
  - ``output_format``: png (default), webp, jpeg for the GPT image models;
    "SVG output requires a supported image model and project access" and GIF
    "Requires access to the GIF preview for the selected model".
  - ``image``: at most 16 images, each a png, webp or jpg under 50 MB;
    ``mask``: a PNG under 4 MB with the first image's dimensions; ``prompt``:
    at most 32000 characters; ``n``: 1 to 10; ``partial_images``: 0 to 3.

- OpenAI's deprecations page (https://platform.openai.com/docs/deprecations,
  announced 2026-06-02): ``gpt-image-1-mini``, ``gpt-image-1.5`` and
  ``chatgpt-image-latest`` were shut down on 2026-12-01. The pinned SDK still
  lists them as supported; the catalogue follows the later news and records
  the disagreement in :attr:`ModelInfo.note`.

- The smallest arbitrary size is not in the SDK, which only says "the
  model's current pixel and edge limits". :data:`MIN_PIXELS` (655,360 pixels)
  is the lower pixel limit OpenAI's image-generation guide gives for
  gpt-image-2 (https://developers.openai.com/api/docs/guides/image-generation);
  the upper limits follow from the SDK's "maximum supported resolution is
  3840x2160".

A capability the sources do not state is ``None`` (unknown), never a guess.
Retouch treats unknown as "not offered": the composer does not show it, the
service layer refuses it with a 422 that says it is not documented, and the
fake OpenAI server (``tests/fake_openai.py``) refuses it too.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from datetime import date

from openai.types import ImageModel

#: The image models of the pinned SDK, in its order (``openai/types/image_model.py``).
SDK_IMAGE_MODELS: tuple[str, ...] = typing.get_args(ImageModel)

#: The standard sizes every GPT image model takes, in pixels (SDK ``size`` docstring).
STANDARD_SIZES: tuple[str, ...] = ("1024x1024", "1536x1024", "1024x1536")
#: Width and height of an arbitrary size must be multiples of this (pixels).
SIZE_MULTIPLE = 16
#: The aspect ratio (long side / short side) may be at most this: "between 1:3 and 3:1".
MAX_RATIO = 3.0
#: Longest side of an arbitrary size, pixels ("maximum supported resolution is 3840x2160").
MAX_EDGE = 3840
#: Most pixels of an arbitrary size (3840 x 2160).
MAX_PIXELS = 3840 * 2160
#: Fewest pixels of an arbitrary size (OpenAI image-generation guide, not the SDK).
MIN_PIXELS = 655_360
#: Sizes above this many pixels (2560 x 1440) are "experimental" (SDK); Retouch
#: never picks more on its own when matching an image's shape.
STABLE_PIXELS = 2560 * 1440

#: Limits on what an edit sends (SDK ``image``, ``mask``, ``prompt`` docstrings).
MAX_INPUT_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1000 * 1000
MAX_MASK_BYTES = 4 * 1000 * 1000
MAX_PROMPT_CHARS = 32_000
MAX_PARTIAL_IMAGES = 3

GPT_QUALITIES = ("low", "medium", "high")
EXTRA_QUALITIES = ("xhigh", "max")
GPT_FORMATS = ("png", "webp", "jpeg")


@dataclass(frozen=True)
class ModelInfo:
    """What one image model takes. ``None`` in a capability means unknown.

    - ``name``: the model id sent as ``model``.
    - ``shutdown``: the date the model stopped working, or None while live.
    - ``replacement``: what the source recommends instead, for shut-down models.
    - ``arbitrary_sizes``: True when any ``WIDTHxHEIGHT`` within
      :func:`size_problem`'s rules is accepted; False for the three
      :data:`STANDARD_SIZES` (and ``auto``) only; None unknown (only the
      standard sizes are offered).
    - ``qualities``: the ``quality`` values known to work besides ``auto``.
    - ``extra_qualities``: whether ``xhigh``/``max`` work (None unknown).
    - ``transparent``: whether ``background="transparent"`` works.
    - ``input_fidelity``: the ``input_fidelity`` values it takes; ``()``
      means "omit this parameter"; None unknown.
    - ``markup``: whether it takes a ``markup`` image.
    - ``streaming``: whether ``stream=True`` (partial images) works.
    - ``output_formats``: known ``output_format`` values (gif and svg need
      project access and are not used by Retouch).
    - ``source``: where the entry comes from; ``note``: disagreements.
    """

    name: str
    shutdown: date | None = None
    replacement: str | None = None
    arbitrary_sizes: bool | None = False
    qualities: tuple[str, ...] = GPT_QUALITIES
    extra_qualities: bool | None = False
    transparent: bool | None = None
    input_fidelity: tuple[str, ...] | None = None
    markup: bool | None = False
    streaming: bool | None = True
    output_formats: tuple[str, ...] = GPT_FORMATS
    source: str = "openai/types/image_edit_params.py, image_generate_params.py"
    note: str | None = None

    @property
    def live(self) -> bool:
        return self.shutdown is None

    @property
    def all_qualities(self) -> tuple[str, ...]:
        """The ``quality`` values known to work, best last, without ``auto``."""
        return self.qualities + (EXTRA_QUALITIES if self.extra_qualities else ())

    @property
    def backgrounds(self) -> tuple[str, ...]:
        """The ``background`` values known to work."""
        return ("auto", "opaque", "transparent") if self.transparent else ("auto", "opaque")

    def summary(self) -> dict:
        """A JSON-able description for the composer and the API."""
        return {"name": self.name, "live": self.live, "arbitrary_sizes": bool(self.arbitrary_sizes),
                "standard_sizes": list(STANDARD_SIZES), "qualities": list(self.all_qualities),
                "backgrounds": list(self.backgrounds), "markup": bool(self.markup),
                "streaming": bool(self.streaming)}


_25 = dict(arbitrary_sizes=True, extra_qualities=True, transparent=True, markup=True,
           input_fidelity=None, source="openai/types/image_edit_params.py (size, quality, background, markup)")
_2 = dict(arbitrary_sizes=True, transparent=True, input_fidelity=(),
          source="openai/types/image_edit_params.py (size; background 'in preview'; "
                 "input_fidelity 'omit this parameter')")
_26 = dict(arbitrary_sizes=None, extra_qualities=None, transparent=None, markup=None, input_fidelity=None,
           source="openai/types/image_model.py and the model lists of images.edit/generate; "
                  "size, quality, background and markup name only the 2 and 2.5 families")
_SHUT_2026_12_01 = dict(shutdown=date(2026, 12, 1), replacement="gpt-image-2",
                        note="The pinned SDK still lists this model as supported; OpenAI's "
                             "deprecations page says it was shut down on 2026-12-01.")

CATALOGUE: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("gpt-image-2.5-sunburst", **_25),
    ModelInfo("gpt-image-2.5-sunburst-2026-09-08", **_25),
    ModelInfo("gpt-image-2.5-flare", **_25),
    ModelInfo("gpt-image-2.5-flare-2026-09-08", **_25),
    ModelInfo("gpt-image-2.6-sunburst", **_26),
    ModelInfo("gpt-image-2.6-flare", **_26),
    ModelInfo("gpt-image-2", **_2),
    ModelInfo("gpt-image-2-2026-04-21", **_2),
    ModelInfo("gpt-image-1.5", input_fidelity=("high", "low"), **_SHUT_2026_12_01),
    ModelInfo("gpt-image-1-mini", input_fidelity=("low",), **_SHUT_2026_12_01),
    ModelInfo("chatgpt-image-latest", **_SHUT_2026_12_01),
    ModelInfo("gpt-image-1", shutdown=date(2026, 10, 23), replacement="gpt-image-2.5-sunburst",
              source="openai/types/image_model.py (deprecated values)"),
    ModelInfo("dall-e-2", shutdown=date(2026, 5, 12), replacement="a GPT image model", streaming=False,
              source="openai/types/image_model.py (deprecated values)"),
    ModelInfo("dall-e-3", shutdown=date(2026, 5, 12), replacement="a GPT image model", streaming=False,
              source="openai/types/image_model.py (deprecated values)"),
)}

#: The default model: the SDK's own advice for gpt-image-1 is "Use
#: gpt-image-2.5-sunburst or gpt-image-2.5-flare instead"; Sunburst is the
#: editing-precision tier, and every capability of it is documented.
DEFAULT_MODEL = "gpt-image-2.5-sunburst"
#: The models the composer offers by default (``RETOUCH_OPENAI_MODELS``).
DEFAULT_OFFERED = ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare", "gpt-image-2")


def live_models() -> list[str]:
    """Names of the catalogue's live models, in catalogue order."""
    return [m.name for m in CATALOGUE.values() if m.live]


def model_problem(name: str, setting: str = "RETOUCH_OPENAI_MODEL") -> str | None:
    """Why ``name`` cannot be used, as a sentence naming ``setting`` and the
    live models, or None when it is a live model of the catalogue."""
    info = CATALOGUE.get(name)
    live = ", ".join(live_models())
    if info is None:
        return (f"The OpenAI image model {name!r} ({setting}) is not one Retouch knows. "
                f"Set {setting} to a live model: {live}.")
    if not info.live:
        return (f"The OpenAI image model {name!r} ({setting}) was shut down on "
                f"{info.shutdown.isoformat()}; OpenAI recommends {info.replacement} instead. "
                f"Set {setting} to a live model: {live}.")
    return None


def parse_size(size: str) -> tuple[int, int] | None:
    """``"WIDTHxHEIGHT"`` as (width, height) pixels, or None when it does not parse."""
    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        return None
    w, h = int(parts[0]), int(parts[1])
    return (w, h) if w > 0 and h > 0 else None


def size_problem(info: ModelInfo, size: str) -> str | None:
    """Why ``size`` (``"WIDTHxHEIGHT"`` or ``"auto"``) is refused for the
    model, as a sentence stating the rule, or None when it is accepted.

    Standard-size models (and those whose size rule is unknown) take
    ``auto`` and :data:`STANDARD_SIZES`. Arbitrary-size models take any size
    with both sides multiples of 16, a ratio between 1:3 and 3:1, at most
    3840 pixels on the long side and between :data:`MIN_PIXELS` and
    :data:`MAX_PIXELS` pixels in all.
    """
    if size == "auto" or size in STANDARD_SIZES:
        return None
    parsed = parse_size(size)
    if parsed is None:
        return f"{size}: the size must look like 1536x1024 (width x height in pixels) or 'auto'."
    if not info.arbitrary_sizes:
        return (f"{size}: {info.name} takes only {', '.join(STANDARD_SIZES)} or auto"
                + (" (other sizes are not documented for it)." if info.arbitrary_sizes is None else "."))
    w, h = parsed
    if max(w, h) > MAX_RATIO * min(w, h):
        return f"{size}: the ratio must be between 1:3 and 3:1."
    if w % SIZE_MULTIPLE or h % SIZE_MULTIPLE:
        return f"{size}: width and height must both be multiples of {SIZE_MULTIPLE} pixels."
    if max(w, h) > MAX_EDGE:
        return f"{size}: the longest side may be at most {MAX_EDGE} pixels."
    if w * h > MAX_PIXELS:
        return f"{size}: at most {MAX_PIXELS:,} pixels (3840x2160) in all."
    if w * h < MIN_PIXELS:
        return f"{size}: at least {MIN_PIXELS:,} pixels in all (for example 1024x640)."
    return None


def quality_problem(info: ModelInfo, quality: str) -> str | None:
    """Why ``quality`` is refused for the model, or None."""
    if quality == "auto" or quality in info.all_qualities:
        return None
    return f"quality {quality!r}: {info.name} takes {', '.join(info.all_qualities)} or auto."


def background_problem(info: ModelInfo, background: str) -> str | None:
    """Why ``background`` is refused for the model, or None."""
    if background in info.backgrounds:
        return None
    if background == "transparent":
        why = "is not documented for" if info.transparent is None else "is not available on"
        return f"A transparent background {why} {info.name}."
    return f"background {background!r}: choose {', '.join(info.backgrounds)}."


def matching_size(info: ModelInfo, width: int, height: int) -> str:
    """The output size to request so an edit of a ``width`` x ``height``
    image keeps its shape.

    For arbitrary-size models: the image's aspect ratio (clamped to 1:3 ..
    3:1), at about the image's own pixel count clamped to
    [:data:`MIN_PIXELS`, :data:`STABLE_PIXELS`], both sides rounded to
    multiples of 16 and the result checked against :func:`size_problem`.
    For standard-size models: the standard size nearest in ratio. Returns
    ``"WIDTHxHEIGHT"``.
    """
    ratio = min(max(width / height, 1 / MAX_RATIO), MAX_RATIO)
    if not info.arbitrary_sizes:
        return min(STANDARD_SIZES, key=lambda s: abs(math.log(ratio * _h(s) / _w(s))))
    pixels = min(max(width * height, MIN_PIXELS), STABLE_PIXELS)
    h = math.sqrt(pixels / ratio)
    w = h * ratio
    best = None
    # Try the roundings around the ideal size; keep the valid one nearest in ratio.
    widths = {math.floor(w / 16) * 16 + d for d in (-16, 0, 16, 32)}
    heights = {math.floor(h / 16) * 16 + d for d in (-16, 0, 16, 32)}
    for rw in widths:
        for rh in heights:
            if rw <= 0 or rh <= 0 or rw * rh > STABLE_PIXELS or size_problem(info, f"{rw}x{rh}"):
                continue
            score = abs(math.log(rw / rh / ratio))
            if best is None or score < best[0]:
                best = (score, f"{rw}x{rh}")
    return best[1] if best else "auto"


def _w(size: str) -> int:
    return int(size.split("x")[0])


def _h(size: str) -> int:
    return int(size.split("x")[1])
