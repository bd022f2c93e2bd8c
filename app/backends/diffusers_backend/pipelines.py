"""What each supported diffusers pipeline takes, with its documented defaults.

Nothing here imports torch or diffusers: the table is read to set the
backend's capability flags and to check options before any model loads.

Sources (diffusers 0.42.1):

- ``instruct-pix2pix``: ``StableDiffusionInstructPix2PixPipeline``
  (``diffusers/pipelines/stable_diffusion/pipeline_stable_diffusion_instruct_pix2pix.py``).
  ``image`` is required (no text-to-image), no inpaint variant, no reference
  images; ``guidance_scale`` 7.5 and ``image_guidance_scale`` 1.5 are the
  call's defaults; width and height must be multiples of 8 (the VAE's scale
  factor). Masks are honoured by compositing only (:meth:`ImageBackend.edit`).
- ``flux-kontext``: ``FluxKontextPipeline`` and ``FluxKontextInpaintPipeline``
  (``diffusers/pipelines/flux/pipeline_flux_kontext.py`` and
  ``pipeline_flux_kontext_inpaint.py``). ``image`` is optional (without it the
  pipeline makes an image from text); sizes are multiples of
  ``vae_scale_factor * 2`` (16) and are rescaled to ``max_area`` (default
  1024²) unless that is passed; ``_auto_resize`` snaps the input image to
  Kontext's trained resolutions. The diffusers docs' example uses
  ``guidance_scale=2.5`` and 28 steps.
- ``qwen-image-edit``: ``QwenImageEditPlusPipeline`` (Qwen-Image-Edit-2509,
  several input images) and ``QwenImageEditInpaintPipeline``
  (``diffusers/pipelines/qwenimage/pipeline_qwenimage_edit_plus.py`` and
  ``pipeline_qwenimage_edit_inpaint.py``). ``image`` may be a list (the model
  card recommends one to three images); guidance is "true CFG"
  (``true_cfg_scale``, 4.0 in the docs' example, with ``negative_prompt=" "``:
  without a negative prompt no guidance is applied); 40 steps in the example.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineSpec:
    """One supported pipeline.

    - ``name``: the ``RETOUCH_DIFFUSERS_PIPELINE`` value.
    - ``classes``: diffusers class names (``model_index.json``'s ``_class_name``)
      that this pipeline loads; the first is the one Retouch loads.
    - ``inpaint_class``: the inpaint variant built from the loaded pipeline
      with ``from_pipe`` (shares its weights), or None.
    - ``can_generate``: makes an image from text alone.
    - ``max_references``: reference images it takes besides the current image.
    - ``steps``: denoising steps at quality ``medium``.
    - ``guidance``: the default guidance scale; ``guidance_arg`` is the call
      argument it goes to (``guidance_scale`` or ``true_cfg_scale``).
    - ``multiple``: width and height must be multiples of this, in pixels.
    - ``max_pixels``: the default largest working size (width x height).
    - ``cuda_dtype``: the dtype used on CUDA with ``RETOUCH_DIFFUSERS_DTYPE=auto``.
    - ``memory``: what it needs, estimated from the parameter counts (not
      measured here), for the README.
    """

    name: str
    label: str
    classes: tuple[str, ...]
    inpaint_class: str | None
    can_generate: bool
    max_references: int
    steps: int
    guidance: float
    guidance_arg: str
    multiple: int
    max_pixels: int
    cuda_dtype: str
    memory: str


PIPELINES: dict[str, PipelineSpec] = {
    spec.name: spec for spec in (
        PipelineSpec(
            name="qwen-image-edit", label="Qwen-Image-Edit",
            classes=("QwenImageEditPlusPipeline", "QwenImageEditPipeline"),
            inpaint_class="QwenImageEditInpaintPipeline", can_generate=False, max_references=2,
            steps=40, guidance=4.0, guidance_arg="true_cfg_scale", multiple=16, max_pixels=1024 * 1024,
            cuda_dtype="bfloat16", memory=("about 58 GB of weights in bf16 (20B-parameter transformer 41 GB, Qwen2.5-VL text encoder 17 GB): "
                    "an 80 GB GPU, or 48 GB with CPU offload (the transformer alone must fit) and 64 GB of RAM"),
        ),
        PipelineSpec(
            name="flux-kontext", label="FLUX.1 Kontext",
            classes=("FluxKontextPipeline",),
            inpaint_class="FluxKontextInpaintPipeline", can_generate=True, max_references=0,
            steps=28, guidance=2.5, guidance_arg="guidance_scale", multiple=16, max_pixels=1024 * 1024,
            cuda_dtype="bfloat16", memory=("about 34 GB of weights in bf16 (12B-parameter transformer 24 GB, T5-XXL text encoder 9.5 GB): "
                    "a 48 GB GPU, or 32 GB with CPU offload and 48 GB of RAM"),
        ),
        PipelineSpec(
            name="instruct-pix2pix", label="InstructPix2Pix",
            classes=("StableDiffusionInstructPix2PixPipeline",),
            inpaint_class=None, can_generate=False, max_references=0,
            steps=20, guidance=7.5, guidance_arg="guidance_scale", multiple=8, max_pixels=512 * 512,
            cuda_dtype="float16", memory="about 2 GB of weights in fp16 (UNet 860M parameters): a 6 GB GPU",
        ),
    )
}

#: Steps at each quality, as a fraction of the ``medium`` steps.
QUALITY_STEPS = {"low": 0.5, "medium": 1.0, "high": 1.5}


def spec_for_class(class_name: str) -> PipelineSpec | None:
    """The pipeline whose ``classes`` include ``class_name``, or None."""
    return next((s for s in PIPELINES.values() if class_name in s.classes), None)


def steps_for(spec: PipelineSpec, quality: str | None, steps: int | None) -> int:
    """Denoising steps for ``quality`` (None = ``medium``), from ``steps``
    (``RETOUCH_DIFFUSERS_STEPS``) or the pipeline's default; at least 1."""
    base = steps or spec.steps
    return max(1, round(base * QUALITY_STEPS.get(quality or "medium", 1.0)))


def working_size(size: tuple[int, int], multiple: int, max_pixels: int) -> tuple[int, int]:
    """The size the pipeline runs at for an output of ``size`` (width,
    height) pixels: scaled down (never up) to at most ``max_pixels``, keeping
    the aspect ratio, then each side rounded down to a multiple of
    ``multiple`` (at least one multiple)."""
    w, h = size
    scale = min(1.0, (max_pixels / float(w * h)) ** 0.5)
    w, h = w * scale, h * scale
    return max(multiple, int(w) // multiple * multiple), max(multiple, int(h) // multiple * multiple)
