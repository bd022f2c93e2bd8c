"""The torch side of the ``diffusers`` backend: one resident pipeline and one
job at a time per device, step callbacks (previews, stop), out-of-memory.

Imported only when a turn runs (it imports torch and diffusers).

- **One job per device, first come first served.** :class:`DeviceQueue` is a
  FIFO: jobs wait in arrival order, so a long queue of one thread cannot
  overtake another's turn that came earlier (the worker already takes turns
  fairly between owners; this keeps that order on the GPU). A job stopped
  while it waits leaves the queue without running.
- **The loaded pipeline stays resident** (:func:`resident`); loading another
  model (or the same one with other settings) on the device unloads the old
  one first and frees its memory.
- **Stopping between steps.** ``callback_on_step_end`` is called by the
  pipelines after every denoising step with ``(pipe, step_index, timestep,
  callback_kwargs)`` and must return ``callback_kwargs``. Flux Kontext and
  Qwen-Image-Edit also check ``pipe._interrupt`` in their loops, but only to
  ``continue`` (they still run the VAE decode afterwards), and InstructPix2Pix
  has no ``_interrupt`` at all (see the pipeline files named in
  :mod:`.pipelines`). So the callback sets ``pipe._interrupt`` where it exists
  and raises :class:`Stopped`, which ends the call at once on every pipeline.
- **Out of memory.** ``torch.OutOfMemoryError`` (CUDA) or a ``RuntimeError``
  whose text says "out of memory" (MPS, older builds) becomes
  :class:`app.backends.BackendFailed` with :data:`OOM_MESSAGE`, after the
  caching allocator's memory is released; the worker lives on.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from PIL import Image

from .pipelines import PipelineSpec

log = logging.getLogger("retouch.diffusers")

OOM_MESSAGE = ("The GPU ran out of memory; try a smaller size or RETOUCH_DIFFUSERS_CPU_OFFLOAD=true. "
               "The memory was freed and the model is still loaded.")
#: Longest side of a step preview, in pixels (decoded at this size, then shown).
PREVIEW_SIDE = 256


class Stopped(Exception):
    """The job was stopped; ``step`` is the last step done (0 = none)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped after step {step}")
        self.step = step


class DeviceQueue:
    """A first-come-first-served lock: :meth:`turn` waits until every job
    that arrived earlier has finished. ``cancelled`` is polled while waiting
    (every 0.2 s); when it returns True the job leaves the queue and
    :class:`Stopped` is raised."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[object] = collections.deque()

    def waiting(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._queue)

    @contextlib.contextmanager
    def turn(self, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._queue[0] is not me:
                if cancelled():
                    self._queue.remove(me)
                    self._cond.notify_all()
                    raise Stopped(0)
                self._cond.wait(0.2)
        try:
            yield
        finally:
            with self._cond:
                self._queue.remove(me)
                self._cond.notify_all()


_queues: dict[str, DeviceQueue] = {}
_queues_lock = threading.Lock()


def queue_for(device: str) -> DeviceQueue:
    """The process-wide queue of ``device`` (``cuda`` and ``cuda:0`` are one)."""
    key = "cuda:0" if device == "cuda" else device
    with _queues_lock:
        return _queues.setdefault(key, DeviceQueue())


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``mps``, else ``cpu``."""
    if setting and setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(setting: str, device: str, spec: PipelineSpec) -> torch.dtype:
    """``auto`` → the pipeline's CUDA dtype on CUDA, float32 elsewhere."""
    name = spec.cuda_dtype if setting in ("", "auto") and device.startswith("cuda") else (
        "float32" if setting in ("", "auto") else setting)
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise ValueError(f"RETOUCH_DIFFUSERS_DTYPE must be auto, bfloat16, float16 or float32, not {name!r}.") from None


@dataclass
class Loaded:
    """A resident pipeline: ``key`` says what was loaded and how."""

    key: tuple
    pipe: object
    spec: PipelineSpec
    device: str
    offload: bool
    _inpaint: object | None = field(default=None, repr=False)
    #: The tiny VAE that decodes previews (``RETOUCH_DIFFUSERS_PREVIEW_VAE``), or None.
    preview_vae: object | None = field(default=None, repr=False)

    def inpaint(self):
        """The pipeline's inpaint variant sharing its weights (``from_pipe``), or None."""
        if self.spec.inpaint_class is None:
            return None
        if self._inpaint is None:
            import diffusers

            self._inpaint = getattr(diffusers, self.spec.inpaint_class).from_pipe(self.pipe)
            self._inpaint.set_progress_bar_config(disable=True)
        return self._inpaint


_resident: dict[str, Loaded] = {}


def resident(model: str, spec: PipelineSpec, device: str, dtype: torch.dtype, offload: bool,
             preview_vae: str | None = None) -> Loaded:
    """The loaded pipeline for these settings, loading it (and unloading
    whatever else this device held) when needed; ``preview_vae`` is an
    ``AutoencoderTiny`` folder or model id for previews (kept on the device:
    a few MB). Call with the device's queue held. Raises what
    ``from_pretrained`` raises (``OSError`` for a missing folder or model id,
    ``ValueError`` for a wrong one)."""
    import diffusers

    key = (model, spec.name, str(dtype), offload, preview_vae)
    current = _resident.get(device)
    if current is not None and current.key == key:
        return current
    if current is not None:
        unload(device)
    cls = getattr(diffusers, spec.classes[0])
    log.info("loading %s (%s) on %s as %s%s", model, cls.__name__, device, dtype,
             " with CPU offload" if offload else "")
    pipe = cls.from_pretrained(model, dtype=dtype)
    if offload and device != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    tiny = diffusers.AutoencoderTiny.from_pretrained(preview_vae, dtype=dtype).to(device).eval() if preview_vae else None
    loaded = Loaded(key, pipe, spec, device, offload, preview_vae=tiny)
    _resident[device] = loaded
    return loaded


def unload(device: str) -> bool:
    """Drop the pipeline resident on ``device`` and free its memory."""
    loaded = _resident.pop(device, None)
    if loaded is None:
        return False
    loaded.pipe = loaded._inpaint = loaded.preview_vae = None
    free_memory(device)
    return True


def free_memory(device: str) -> None:
    """Collect garbage and return the caching allocator's free blocks."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch running out of device memory."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@torch.no_grad()
def decode_preview(pipe, spec: PipelineSpec, latents: torch.Tensor, width: int, height: int,
                   tiny=None) -> Image.Image:
    """Decode the current ``latents`` of a run at ``width`` x ``height``
    pixels into a small RGB image (long side at most :data:`PREVIEW_SIDE`).

    The latents are unpacked the way each pipeline's final decode does
    (``_unpack_latents`` for Flux and Qwen; Qwen's VAE also un-normalises with
    ``latents_mean``/``latents_std`` and decodes one video frame), shrunk in
    latent space and decoded by the pipeline's own VAE: the full VAE at low
    resolution, so a preview costs a fraction of the final decode.

    With ``tiny`` (an ``AutoencoderTiny``: TAESD, TAEF1) the unpacked latents
    are decoded by it as they are: a tiny VAE takes the pipeline's scaled
    latents (its ``scaling_factor`` is 1 and ``shift_factor`` 0, so the
    pipelines' own decode formula leaves them unchanged;
    ``diffusers/models/autoencoders/autoencoder_tiny.py``) and returns
    values in [-1, 1] like the full VAE.
    """
    vae = pipe.vae
    factor = pipe.vae_scale_factor
    if tiny is not None:
        lat = pipe._unpack_latents(latents, height, width, factor) if spec.name != "instruct-pix2pix" else latents
        lat = lat[:, :, 0] if lat.dim() == 5 else lat
        up = tiny.config.upsampling_scaling_factor ** (len(tiny.config.decoder_block_out_channels) - 1)
        lat = lat[:1]
        h, w = lat.shape[-2:]
        scale = min(1.0, PREVIEW_SIDE / float(max(h, w) * up))
        if scale < 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            lat = torch.nn.functional.interpolate(lat.float(), size=size, mode="bilinear")
        param = next(tiny.parameters())
        image = tiny.decode(lat.to(param.device, param.dtype), return_dict=False)[0]
        array = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(array, "RGB")
    if spec.name == "flux-kontext":
        lat = pipe._unpack_latents(latents, height, width, factor)
        lat = lat / vae.config.scaling_factor + vae.config.shift_factor
    elif spec.name == "qwen-image-edit":
        lat = pipe._unpack_latents(latents, height, width, factor)[:, :, 0]
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1).to(lat.device, lat.dtype)
        std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1).to(lat.device, lat.dtype)
        lat = lat * std + mean
    else:
        lat = latents / vae.config.scaling_factor
    lat = lat[:1]
    h, w = lat.shape[-2:]
    scale = min(1.0, PREVIEW_SIDE / float(max(h, w) * factor))
    if scale < 1.0:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        lat = torch.nn.functional.interpolate(lat.float(), size=size, mode="bilinear").to(lat.dtype)
    vae_dtype = next(vae.parameters()).dtype
    vae_device = next(vae.parameters()).device
    lat = lat.to(vae_device, vae_dtype)
    if spec.name == "qwen-image-edit":
        image = vae.decode(lat.unsqueeze(2), return_dict=False)[0][:, :, 0]
    else:
        image = vae.decode(lat, return_dict=False)[0]
    array = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")
