"""The ``diffusers`` backend: open-weights image editing on this server's GPU.

An optional extra (``pip install -e ".[diffusers]"``, torch first: see the
README). It runs Qwen-Image-Edit, FLUX.1 Kontext or InstructPix2Pix through
Hugging Face ``diffusers``, loaded from ``RETOUCH_DIFFUSERS_MODEL`` (a local
folder, or a model id that ``from_pretrained`` downloads once into the
Hugging Face cache) as the pipeline ``RETOUCH_DIFFUSERS_PIPELINE`` names (or
``model_index.json``'s ``_class_name`` says). What each pipeline takes, and
the diffusers source each rule comes from, is in :mod:`.pipelines`; the
torch side (one job per device, resident pipeline, previews, stop,
out-of-memory) is in :mod:`.runtime`, imported only when a turn runs, so
this module loads without torch.

- **Masks**: with an inpaint variant (Flux Kontext, Qwen) the masked edit
  runs it (``mask_image``, white = repaint, as Retouch's masks);
  InstructPix2Pix edits the whole image. Either way
  :meth:`ImageBackend.edit` composites the result through the mask, so
  pixels outside it stay exact.
- **Previews**: every ``RETOUCH_DIFFUSERS_PREVIEW_EVERY`` steps the current
  latents are decoded small (:func:`.runtime.decode_preview`: the model's VAE
  at low resolution, or the tiny VAE ``RETOUCH_DIFFUSERS_PREVIEW_VAE``) and sent through
  ``request.on_partial`` (index 0, 1, …), the path OpenAI's partial images
  take; "Step k of n" is sent after every step through ``request.on_text``,
  which the pending bubble shows.
- **Seeds**: each run draws a new seed (``secrets``), uses a CPU
  ``torch.Generator`` (the same seed gives the same image on any device
  with the same settings) and reports it in ``EditResult.output["seed"]``
  and the message; :meth:`DiffusersBackend.run_with_seed` reproduces one.
- **Stop**: :meth:`DiffusersBackend.stop` ends a waiting or running job
  before its next step; the turn fails with "Stopped at step k of n".
"""
from __future__ import annotations

import importlib.util
import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from app.backends.base import (
    BackendDeclined,
    BackendFailed,
    EditRequest,
    EditResult,
    ImageBackend,
    OptionRejected,
)
from app.config import get_settings

from .pipelines import PIPELINES, PipelineSpec, spec_for_class, steps_for, working_size

log = logging.getLogger("retouch.diffusers")

__all__ = ["DiffusersBackend", "extra_installed"]

_SIZE = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")
#: Qwen-Image-Edit's call needs a negative prompt for true CFG to apply (docs example: " ").
QWEN_NEGATIVE_PROMPT = " "


def extra_installed() -> bool:
    """Whether torch and diffusers can be imported (the ``diffusers`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "diffusers", "transformers"))


@dataclass
class _Job:
    """One run: its cancel flag and progress (``step`` of ``steps``)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    step: int = 0
    steps: int = 0


class DiffusersBackend(ImageBackend):
    """Edits (and, with Flux Kontext, generates) with a diffusers pipeline.

    Constructor arguments default to the ``RETOUCH_DIFFUSERS_*`` settings
    (tests pass their own): ``model`` (folder or model id), ``pipeline``
    (a key of :data:`.pipelines.PIPELINES`, or None to read
    ``model_index.json``), ``device``, ``dtype``, ``steps`` (at quality
    ``medium``), ``guidance``, ``cpu_offload``, ``preview_every`` (steps
    between previews, 0 = none), ``max_pixels`` (largest working size) and
    ``preview_vae`` (a tiny VAE for previews, or None for the model's own).

    The capability flags are set per instance from the pipeline, so the
    composer and :meth:`ImageBackend.edit` see what this model takes.
    """

    name = "diffusers"
    label = "Open weights (diffusers)"
    called = "The open-weights model"
    takes_size = takes_quality = takes_model = True  # quality: the number of denoising steps
    takes_background = True  # always opaque; transparent is refused (check_options)

    def __init__(self, *, model: str | None = None, pipeline: str | None = None, device: str | None = None,
                 dtype: str | None = None, steps: int | None = None, guidance: float | None = None,
                 cpu_offload: bool | None = None, preview_every: int | None = None,
                 max_pixels: int | None = None, preview_vae: str | None = None) -> None:
        s = get_settings()
        self.model = model if model is not None else s.diffusers_model
        self.pipeline_setting = pipeline if pipeline is not None else s.diffusers_pipeline
        self.device_setting = device or s.diffusers_device
        self.dtype_setting = dtype or s.diffusers_dtype
        self.steps = steps if steps is not None else s.diffusers_steps
        self.guidance = guidance if guidance is not None else s.diffusers_guidance
        self.cpu_offload = cpu_offload if cpu_offload is not None else s.diffusers_cpu_offload
        self.preview_every = preview_every if preview_every is not None else s.diffusers_preview_every
        self._max_pixels = max_pixels if max_pixels is not None else s.diffusers_max_pixels
        self.preview_vae = preview_vae if preview_vae is not None else s.diffusers_preview_vae
        self.spec, self._spec_problem = self._find_spec()
        spec = self.spec
        # Instance attributes shadow the ClassVar defaults of ImageBackend.
        self.can_generate = bool(spec and spec.can_generate)
        self.accepts_mask = spec is not None
        self.accepts_references = bool(spec and spec.max_references)
        self._jobs: dict[int, _Job] = {}
        self._jobs_lock = threading.Lock()

    # ------------------------------------------------------------------ configuration

    def _find_spec(self) -> tuple[PipelineSpec | None, str | None]:
        if self.pipeline_setting:
            spec = PIPELINES.get(self.pipeline_setting.strip().lower())
            if spec is None:
                return None, (f"RETOUCH_DIFFUSERS_PIPELINE is {self.pipeline_setting!r}; "
                              f"it must be one of: {', '.join(PIPELINES)}.")
            return spec, None
        if not self.model:
            return None, None
        index = Path(self.model) / "model_index.json"
        if not index.is_file():
            return None, ("Set RETOUCH_DIFFUSERS_PIPELINE (one of: " + ", ".join(PIPELINES) + ") for "
                          f"{self.model}: it is not a local folder with a model_index.json to read it from.")
        try:
            class_name = json.loads(index.read_text()).get("_class_name", "")
        except (OSError, ValueError):
            return None, f"{index} could not be read as JSON."
        spec = spec_for_class(class_name)
        if spec is None:
            return None, (f"{self.model} is a {class_name or 'pipeline of unknown class'}; the diffusers backend "
                          "runs " + ", ".join(c for s in PIPELINES.values() for c in s.classes) + ".")
        return spec, None

    @property
    def max_pixels(self) -> int:
        """The largest working size, in pixels (width x height)."""
        return self._max_pixels or (self.spec.max_pixels if self.spec else 1024 * 1024)

    def available(self) -> bool:
        """True when the extra is installed and ``RETOUCH_DIFFUSERS_MODEL`` is set."""
        return bool(self.model) and extra_installed()

    def problems(self) -> list[str]:
        out = []
        if not extra_installed():
            out.append('The diffusers backend needs its extra: pip install torch, then pip install -e ".[diffusers]" '
                       "(see the README).")
        if not self.model:
            out.append("RETOUCH_DIFFUSERS_MODEL is not set: the diffusers backend has no model to run.")
        if self._spec_problem:
            out.append(self._spec_problem)
        return out

    def offered_models(self) -> list[dict]:
        if not self.model or self.spec is None:
            return []
        return [{"name": self.model, "live": True, "arbitrary_sizes": True,
                 "standard_sizes": ["1024x1024", "1536x1024", "1024x1536"],
                 "qualities": ["low", "medium", "high"], "backgrounds": ["opaque"],
                 "markup": False, "streaming": self.preview_every > 0}]

    def check_options(self, *, model: str | None = None, size: str | None = None, quality: str | None = None,
                      background: str | None = None, image_size: tuple[int, int] | None = None,
                      has_mask: bool = False, has_markup: bool = False, reference_count: int = 0) -> None:
        """Refuse what this pipeline does not take: another model than
        ``RETOUCH_DIFFUSERS_MODEL``, markup, a transparent background,
        qualities other than low/medium/high, more references than the
        pipeline takes, and sizes over ``max_pixels`` or under the pipeline's
        size multiple. Raises :class:`OptionRejected`."""
        if model and model != self.model:
            raise OptionRejected(f"The diffusers backend runs {self.model}; {model!r} is not loaded on this server.")
        if has_markup:
            raise OptionRejected("The open-weights model cannot use drawing to guide an edit (markup); "
                                 "select a region instead.")
        if background == "transparent":
            raise OptionRejected("The open-weights model cannot make a transparent background.")
        if quality and quality not in ("low", "medium", "high"):
            raise OptionRejected(f"The diffusers backend takes quality low, medium or high, not {quality}.")
        spec = self.spec
        if spec is not None and reference_count > spec.max_references:
            raise OptionRejected(f"{spec.label} takes at most {spec.max_references} reference images besides "
                                 f"the photo; {reference_count} were attached." if spec.max_references else
                                 f"{spec.label} cannot use reference images.")
        if size and size != "auto":
            match = _SIZE.match(size)
            if not match:
                raise OptionRejected(f"{size}: the size must be WIDTHxHEIGHT in pixels, such as 1024x1024.")
            w, h = int(match[1]), int(match[2])
            smallest = spec.multiple if spec else 16
            if w < smallest or h < smallest:
                raise OptionRejected(f"{size}: each side must be at least {smallest} pixels.")
            if w * h > self.max_pixels:
                raise OptionRejected(f"{size} is {w * h:,} pixels; this server's diffusers backend makes at most "
                                     f"{self.max_pixels:,} (RETOUCH_DIFFUSERS_MAX_PIXELS).")

    # ------------------------------------------------------------------ stop

    def stop(self, request: EditRequest | None = None) -> bool:
        """Stop the run of ``request`` (the very object passed to
        :meth:`edit`), or every run of this backend when None, before its
        next denoising step; a run still waiting for the device leaves the
        queue. Safe from any thread. Returns whether a run was found; the
        stopped run raises :class:`BackendFailed` ("Stopped at step k of n")."""
        with self._jobs_lock:
            jobs = list(self._jobs.values()) if request is None else [self._jobs.get(id(request))]
        found = False
        for job in jobs:
            if job is not None:
                job.cancel.set()
                found = True
        return found

    def progress(self, request: EditRequest) -> tuple[int, int] | None:
        """(step done, steps) of ``request``'s run, or None when not running."""
        with self._jobs_lock:
            job = self._jobs.get(id(request))
        return (job.step, job.steps) if job is not None else None

    # ------------------------------------------------------------------ running

    def run(self, request: EditRequest) -> EditResult:
        return self.run_with_seed(request, secrets.randbelow(2**31))

    def run_with_seed(self, request: EditRequest, seed: int) -> EditResult:
        """Run ``request`` with ``seed`` (0 to 2³¹-1): the same seed, request
        and settings give the same image. Raises :class:`BackendFailed` (not
        configured, extra missing, model not loadable, out of memory,
        stopped) or :class:`BackendDeclined`."""
        if not self.model:
            raise BackendFailed("The diffusers backend has no model: set RETOUCH_DIFFUSERS_MODEL to a local "
                                "folder or a Hugging Face model id.")
        if self.spec is None:
            raise BackendFailed(self._spec_problem or "The diffusers backend does not know this model's pipeline.")
        if not extra_installed():
            raise BackendFailed('The diffusers backend is not installed on this server: pip install torch, '
                                'then pip install -e ".[diffusers]".')
        if request.image is None and not self.can_generate:  # edit() checks this too; run() may be called alone
            raise BackendDeclined(f"{self.spec.label} edits a photo; it cannot make an image from text alone. "
                                  "Upload a photo first.")
        job = _Job()
        with self._jobs_lock:
            self._jobs[id(request)] = job
        try:
            return self._run(request, seed, job)
        finally:
            with self._jobs_lock:
                self._jobs.pop(id(request), None)

    def _run(self, request: EditRequest, seed: int, job: _Job) -> EditResult:
        from . import runtime

        spec = self.spec
        assert spec is not None
        try:
            device = runtime.resolve_device(self.device_setting)
            dtype = runtime.resolve_dtype(self.dtype_setting, device, spec)
        except (ValueError, RuntimeError) as exc:
            raise BackendFailed(f"The diffusers backend is misconfigured: {exc}") from None
        target = self._target_size(request)
        width, height = working_size(target, spec.multiple, self.max_pixels)
        steps = steps_for(spec, request.quality, self.steps)
        job.steps = steps
        out_of_memory = False
        try:
            with runtime.queue_for(device).turn(job.cancel.is_set):
                try:
                    loaded = runtime.resident(self.model, spec, device, dtype, self.cpu_offload,
                                              self.preview_vae or None)
                except Exception as exc:
                    if runtime.is_out_of_memory(exc):
                        raise
                    log.exception("could not load %s", self.model)
                    raise BackendFailed(f"The model {self.model} could not be loaded as {spec.label}: "
                                        f"{_first_line(exc)}") from None
                image = self._call(loaded, request, seed, job, width, height, steps)
        except runtime.Stopped as stopped:
            raise BackendFailed(f"Stopped at step {stopped.step} of {steps}; no version was made.") from None
        except BackendFailed:
            raise
        except Exception as exc:
            if not runtime.is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:
            # Out here the exception is gone, and with its traceback the pipeline's frames and the
            # tensors they held, so the caching allocator can hand their memory back.
            runtime.free_memory(device)
            raise BackendFailed(runtime.OOM_MESSAGE)
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        quality = request.quality or "medium"
        return EditResult(
            image=image,
            message=f"Made in {steps} denoising steps on {device} with seed {seed}.",
            output={"model": self.model, "size": f"{target[0]}x{target[1]}", "quality": quality,
                    "background": None, "seed": seed, "steps": steps, "pipeline": spec.name},
        )

    def _target_size(self, request: EditRequest) -> tuple[int, int]:
        """The output size: ``request.size`` (not ``auto``), else the image's
        size, else (generation) the largest square within ``max_pixels``."""
        if request.size and request.size != "auto":
            match = _SIZE.match(request.size)
            if match:
                return int(match[1]), int(match[2])
        if request.image is not None:
            return request.image.size
        side = int(self.max_pixels ** 0.5)
        return side, side

    def _call(self, loaded, request: EditRequest, seed: int, job: _Job, width: int, height: int,
              steps: int) -> Image.Image:
        """One pipeline call; returns its image (``width`` x ``height``)."""
        import torch

        from . import runtime

        spec = loaded.spec
        pipe = loaded.pipe
        image = request.image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS) \
            if request.image is not None else None
        mask = request.mask.convert("L").resize((width, height), Image.Resampling.LANCZOS) \
            if request.mask is not None else None
        refs = [r.convert("RGB") for r in request.references][: spec.max_references]
        guidance = self.guidance if self.guidance is not None else spec.guidance
        kwargs: dict = {"prompt": request.instruction, "num_inference_steps": steps,
                        "generator": torch.Generator(device="cpu").manual_seed(seed),
                        spec.guidance_arg: guidance}
        if spec.name == "instruct-pix2pix":
            kwargs.update(image=image)
        elif spec.name == "flux-kontext":
            kwargs.update(image=image, width=width, height=height, max_area=width * height, _auto_resize=False)
            if mask is not None:
                pipe = loaded.inpaint()
                kwargs.update(mask_image=mask, strength=1.0)
        else:  # qwen-image-edit
            kwargs.update(width=width, height=height, negative_prompt=QWEN_NEGATIVE_PROMPT)
            if mask is not None and not refs and loaded.inpaint() is not None:
                pipe = loaded.inpaint()
                kwargs.update(image=image, mask_image=mask, strength=1.0)
            elif spec.classes[0] == "QwenImageEditPlusPipeline":
                kwargs.update(image=[image, *refs])
            else:
                kwargs.update(image=image)

        previews = [0]
        preview_failed = [False]

        def on_step_end(p, i: int, t, callback_kwargs: dict) -> dict:
            step = i + 1
            job.step = step
            if job.cancel.is_set():
                if hasattr(p, "_interrupt"):
                    p._interrupt = True
                raise runtime.Stopped(step)
            if request.on_text is not None:
                request.on_text(f"Step {step} of {steps}")
            every = self.preview_every
            if (request.on_partial is not None and every and step % every == 0 and step < steps
                    and not preview_failed[0]):
                try:
                    frame = runtime.decode_preview(p, spec, callback_kwargs["latents"], width, height,
                                                   loaded.preview_vae)
                except Exception as exc:  # a preview must never fail the turn
                    if runtime.is_out_of_memory(exc):
                        raise
                    log.warning("step preview failed; no more previews this turn: %s", _first_line(exc))
                    preview_failed[0] = True
                else:
                    request.on_partial(previews[0], frame)
                    previews[0] += 1
            return callback_kwargs

        if job.cancel.is_set():
            raise runtime.Stopped(0)
        out = pipe(**kwargs, callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        return out.images[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if text.endswith(".") else text + "."
