"""The ``diffusers`` backend running the real pipeline code on the CPU, on
tiny randomly initialised pipelines (tests/test_diffusers_tiny.py) saved to a
temporary folder and loaded with ``from_pretrained`` like a real model.

Covered: generate (Flux Kontext), edit (InstructPix2Pix, Flux Kontext), a
masked edit with the pixels outside the mask exact (both: compositing, and
Flux Kontext's inpaint variant), reference images refused where the pipeline
takes none, step previews arriving as partial images with "Step k of n",
stopping mid-denoise and while queued, an injected out-of-memory error
(the turn fails clearly, the pipeline stays usable), seeds, one job at a time
per device, and switching models. Skipped when torch or diffusers is absent.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from app.backends import BackendDeclined, BackendFailed, EditRequest, OptionRejected  # noqa: E402
from app.backends.diffusers_backend import DiffusersBackend, runtime  # noqa: E402
from tests.test_diffusers_tiny import build_flux_kontext, build_pix2pix  # noqa: E402

#: Working sizes stay tiny: the whole module must run in well under a minute on two cores.
MAX_PIXELS = 48 * 40


@pytest.fixture(scope="module", autouse=True)
def _offline(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")  # a from_pretrained that tried the network would fail, not hang
    mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
    torch.set_num_threads(1)
    yield
    mp.undo()
    for device in list(runtime._resident):
        runtime.unload(device)


@pytest.fixture(scope="module")
def pix2pix_dir(tmp_path_factory):
    return build_pix2pix(tmp_path_factory.mktemp("tiny") / "instruct-pix2pix")


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    return build_flux_kontext(tmp_path_factory.mktemp("tiny") / "flux-kontext")


def backend(folder, **kw) -> DiffusersBackend:
    kw.setdefault("device", "cpu")
    kw.setdefault("steps", 4)
    kw.setdefault("preview_every", 2)
    kw.setdefault("max_pixels", MAX_PIXELS)
    return DiffusersBackend(model=str(folder), **kw)


def photo(w: int = 60, h: int = 44) -> Image.Image:
    rng = np.random.default_rng(7)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    ImageDraw.Draw(im).ellipse((10, 8, 40, 36), fill=(230, 40, 40))
    return im


def box_mask(size, box) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


class Collect:
    """Records partial images and step texts, as the worker's callbacks would."""

    def __init__(self):
        self.partials: list[tuple[int, Image.Image]] = []
        self.texts: list[str] = []

    def request(self, instruction="make it blue", **kw) -> EditRequest:
        return EditRequest(instruction=instruction, on_partial=lambda i, im: self.partials.append((i, im)),
                           on_text=self.texts.append, **kw)


def assert_outside_exact(original, result, mask):
    a = np.asarray(original.convert("RGB"))
    b = np.asarray(result.convert("RGB"))
    outside = np.asarray(mask) == 0
    assert a.shape == b.shape
    assert np.array_equal(a[outside], b[outside]), "a pixel outside the mask changed"
    assert not np.array_equal(a[~outside], b[~outside]), "nothing changed inside the mask"


# --------------------------------------------------------------------------- InstructPix2Pix


def test_pix2pix_edit_with_step_previews(pix2pix_dir):
    b = backend(pix2pix_dir, pipeline="instruct-pix2pix")
    assert (b.can_generate, b.accepts_mask, b.accepts_references) == (False, True, False)
    got = Collect()
    src = photo()
    result = b.edit(got.request(image=src))
    assert result.image.size == src.size and result.image.mode == "RGB"
    assert result.output["steps"] == 4 and result.output["pipeline"] == "instruct-pix2pix"
    assert isinstance(result.output["seed"], int) and str(result.output["seed"]) in result.message
    # Previews after steps 2 (not 4: the final image follows at once), indices from 0.
    assert [i for i, _ in got.partials] == [0]
    frame = got.partials[0][1]
    assert frame.mode == "RGB" and 0 < frame.width <= runtime.PREVIEW_SIDE
    assert got.texts == ["Step 1 of 4", "Step 2 of 4", "Step 3 of 4", "Step 4 of 4"]


def test_pipeline_is_read_from_model_index(pix2pix_dir):
    b = backend(pix2pix_dir)  # no RETOUCH_DIFFUSERS_PIPELINE
    assert b.spec.name == "instruct-pix2pix" and b.problems() == []


def test_pix2pix_masked_edit_keeps_outside_pixels_exact(pix2pix_dir):
    b = backend(pix2pix_dir, preview_every=0)
    src = photo()
    mask = box_mask(src.size, (5, 5, 30, 25))
    result = b.edit(EditRequest(instruction="add a hat", image=src, mask=mask))
    assert_outside_exact(src, result.image, mask)


def test_pix2pix_cannot_generate_or_take_references(pix2pix_dir):
    b = backend(pix2pix_dir)
    with pytest.raises(BackendDeclined, match="text alone"):
        b.edit(EditRequest(instruction="a red kite"))
    with pytest.raises(BackendDeclined, match="reference"):
        b.edit(EditRequest(instruction="like this", image=photo(), references=(photo(),)))
    with pytest.raises(OptionRejected, match="cannot use reference images"):
        b.check_options(reference_count=1)


def test_same_seed_same_image_new_seed_each_run(pix2pix_dir):
    b = backend(pix2pix_dir, preview_every=0, steps=2)
    req = EditRequest(instruction="make it green", image=photo())
    one, two = b.run_with_seed(req, 1234), b.run_with_seed(req, 1234)
    assert one.image.tobytes() == two.image.tobytes() and one.output["seed"] == 1234
    seeds = {b.run(req).output["seed"] for _ in range(2)}
    assert len(seeds) == 2


def test_quality_sets_the_steps_and_options_are_checked(pix2pix_dir):
    b = backend(pix2pix_dir, preview_every=0, steps=4)
    texts = []
    b.edit(EditRequest(instruction="make it green", image=photo(), quality="low", on_text=texts.append))
    assert texts[-1] == "Step 2 of 2"
    with pytest.raises(OptionRejected, match="RETOUCH_DIFFUSERS_MAX_PIXELS"):
        b.check_options(size="1024x1024")
    with pytest.raises(OptionRejected, match="low, medium or high"):
        b.check_options(quality="max")
    with pytest.raises(OptionRejected, match="markup"):
        b.check_options(has_markup=True)
    with pytest.raises(OptionRejected, match="not loaded"):
        b.check_options(model="someone/else")
    b.check_options(model=str(pix2pix_dir), size="40x32", quality="high")


def test_stop_mid_denoise(pix2pix_dir):
    b = backend(pix2pix_dir, steps=6, preview_every=0)
    holder = {}

    def on_text(text):
        if text == "Step 2 of 6":
            assert b.progress(holder["req"]) == (2, 6)
            assert b.stop(holder["req"]) is True  # what a Stop button would call, from any thread

    holder["req"] = req = EditRequest(instruction="make it blue", image=photo(), on_text=on_text)
    with pytest.raises(BackendFailed, match=r"Stopped at step 3 of 6; no version was made"):
        b.edit(req)
    assert b.progress(req) is None and b.stop(req) is False
    assert b.edit(EditRequest(instruction="make it blue", image=photo())).image is not None  # still usable


def test_stop_while_waiting_for_the_device(pix2pix_dir):
    """One job at a time per device, first come first served; a queued job
    that is stopped leaves the queue without running."""
    b = backend(pix2pix_dir, preview_every=0, steps=2)
    b.edit(EditRequest(instruction="warm up", image=photo()))  # load once
    queue = runtime.queue_for("cpu")
    release = threading.Event()
    holding = threading.Event()

    def hold():
        with queue.turn():
            holding.set()
            release.wait(10)

    holder_thread = threading.Thread(target=hold)
    holder_thread.start()
    holding.wait(5)
    waiting = EditRequest(instruction="make it blue", image=photo())
    errors = []
    t = threading.Thread(target=lambda: errors.append(_catch(b.edit, waiting)))
    t.start()
    deadline = time.monotonic() + 5
    while queue.waiting() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queue.waiting() == 2
    assert b.stop(waiting) is True
    t.join(5)
    release.set()
    holder_thread.join(5)
    assert isinstance(errors[0], BackendFailed) and "Stopped at step 0 of 2" in errors[0].message
    assert queue.waiting() == 0


def _catch(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None


def test_out_of_memory_fails_the_turn_clearly_and_the_model_stays(pix2pix_dir, monkeypatch):
    b = backend(pix2pix_dir, preview_every=0, steps=2)
    b.edit(EditRequest(instruction="warm up", image=photo()))
    loaded = runtime._resident["cpu"]
    unet = loaded.pipe.unet
    freed = []
    monkeypatch.setattr(runtime, "free_memory", lambda device: freed.append(device))

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total)")

    monkeypatch.setattr(unet, "forward", boom)
    with pytest.raises(BackendFailed) as caught:
        b.edit(EditRequest(instruction="make it blue", image=photo()))
    assert caught.value.message.startswith("The GPU ran out of memory; try a smaller size or "
                                           "RETOUCH_DIFFUSERS_CPU_OFFLOAD=true.")
    assert caught.value.retryable is False and freed == ["cpu"]
    monkeypatch.undo()
    assert runtime._resident["cpu"] is loaded  # still resident: the next turn does not reload
    assert b.edit(EditRequest(instruction="make it blue", image=photo())).image is not None


def test_missing_model_folder_is_a_clear_failure(tmp_path):
    b = backend(tmp_path / "nowhere", pipeline="instruct-pix2pix")
    with pytest.raises(BackendFailed, match="could not be loaded as InstructPix2Pix"):
        b.edit(EditRequest(instruction="make it blue", image=photo()))


# --------------------------------------------------------------------------- FLUX.1 Kontext


def test_flux_generate_edit_and_inpaint(flux_dir, pix2pix_dir):
    b = backend(flux_dir, steps=3, preview_every=1)
    assert (b.can_generate, b.accepts_mask, b.accepts_references) == (True, True, False)
    # Switching models on a device unloads the old one.
    backend(pix2pix_dir, steps=1, preview_every=0).edit(EditRequest(instruction="warm up", image=photo()))
    assert runtime._resident["cpu"].spec.name == "instruct-pix2pix"

    got = Collect()
    made = b.edit(got.request("a red kite in the sky"))
    assert runtime._resident["cpu"].spec.name == "flux-kontext"
    side = int(MAX_PIXELS ** 0.5)
    assert made.image.size == (side, side) and made.output["size"] == f"{side}x{side}"
    assert [i for i, _ in got.partials] == [0, 1]  # after steps 1 and 2 of 3
    assert got.texts[-1] == "Step 3 of 3"

    src = photo()
    edited = b.edit(EditRequest(instruction="make it night", image=src, size="42x34"))  # runs at 40x32
    assert edited.image.size == (42, 34)

    mask = box_mask(src.size, (20, 10, 50, 40))
    inpainted = b.edit(EditRequest(instruction="add a dragon", image=src, mask=mask))
    assert_outside_exact(src, inpainted.image, mask)
    with pytest.raises(BackendDeclined, match="reference"):
        b.edit(EditRequest(instruction="like this", image=src, references=(photo(),)))


# --------------------------------------------------------------------------- Qwen-Image-Edit (wiring only)
# Qwen2VLProcessor (transformers 5.23) requires a video processor, which needs torchvision, and PyPI's
# torchvision does not import beside the CPU build of torch CI uses; so no tiny Qwen pipeline is built.
# What can be checked without it: the arguments sent match the real pipelines' signatures, references
# go in as the image list, masks go to the inpaint variant, and previews decode with Qwen's real VAE class.


class _SignaturePipe:
    """Stands in for a Qwen pipeline: checks the call against ``cls.__call__``'s
    real signature, runs the step callback like the pipeline loop, returns an image."""

    def __init__(self, cls, vae, calls):
        self.cls, self.vae, self.calls = cls, vae, calls
        self.vae_scale_factor = 2 ** len(vae.temperal_downsample)
        self._unpack_latents = cls._unpack_latents
        self._interrupt = False

    def __call__(self, **kwargs):
        import inspect

        inspect.signature(self.cls.__call__).bind(self, **kwargs)  # TypeError on an unknown argument
        self.calls.append((self.cls.__name__, kwargs))
        w, h = kwargs["width"], kwargs["height"]
        tokens = (h // (self.vae_scale_factor * 2)) * (w // (self.vae_scale_factor * 2))
        latents = torch.randn(1, tokens, self.vae.config.z_dim * 4)
        for i in range(kwargs["num_inference_steps"]):
            kwargs["callback_on_step_end"](self, i, None, {"latents": latents})
        return type("Out", (), {"images": [Image.new("RGB", (w, h), (0, 90, 200))]})()


def test_qwen_arguments_references_masks_and_previews(monkeypatch):
    from diffusers import AutoencoderKLQwenImage, QwenImageEditInpaintPipeline, QwenImageEditPlusPipeline

    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    calls = []
    b = DiffusersBackend(model="Qwen/Qwen-Image-Edit-2509", pipeline="qwen-image-edit", device="cpu", steps=2,
                         preview_every=1, max_pixels=MAX_PIXELS)
    loaded = runtime.Loaded(("fake",), _SignaturePipe(QwenImageEditPlusPipeline, vae, calls), b.spec, "cpu", False,
                            _inpaint=_SignaturePipe(QwenImageEditInpaintPipeline, vae, calls))
    monkeypatch.setattr(runtime, "resident", lambda *a, **k: loaded)
    assert (b.can_generate, b.accepts_mask, b.accepts_references) == (False, True, True)

    src, ref1, ref2 = photo(), photo(30, 30), photo(20, 40)
    got = Collect()
    result = b.edit(got.request("put the hat from picture 2 on the cat", image=src, references=(ref1, ref2)))
    name, kwargs = calls[-1]
    assert name == "QwenImageEditPlusPipeline" and len(kwargs["image"]) == 3  # the photo first, then references
    assert kwargs["negative_prompt"] == " " and kwargs["true_cfg_scale"] == 4.0 and "guidance_scale" not in kwargs
    assert (kwargs["width"], kwargs["height"]) == (48, 32) and result.image.size == src.size
    assert [i for i, _ in got.partials] == [0]  # a preview after step 1 of 2, decoded by Qwen's VAE
    assert got.partials[0][1].size == (48, 32)

    mask = box_mask(src.size, (10, 10, 40, 30))
    masked = b.edit(EditRequest(instruction="add a dragon", image=src, mask=mask))
    name, kwargs = calls[-1]
    assert name == "QwenImageEditInpaintPipeline" and kwargs["mask_image"].size == (48, 32)
    assert kwargs["strength"] == 1.0
    assert_outside_exact(src, masked.image, mask)

    b.edit(EditRequest(instruction="like this", image=src, mask=mask, references=(ref1,)))
    assert calls[-1][0] == "QwenImageEditPlusPipeline"  # the inpaint variant takes one image: composited instead
    with pytest.raises(BackendDeclined, match="text alone"):
        b.edit(EditRequest(instruction="a red kite"))


# --------------------------------------------------------------------------- tiny preview VAE (TAESD family)


@pytest.mark.parametrize("kind", ["pix2pix", "flux"])
def test_previews_through_a_tiny_vae(kind, pix2pix_dir, flux_dir, tmp_path):
    from tests.test_diffusers_tiny import build_tiny_vae

    folder, channels = (pix2pix_dir, 4) if kind == "pix2pix" else (flux_dir, 1)
    taesd = build_tiny_vae(tmp_path / "taesd", channels)
    b = backend(folder, steps=3, preview_every=1, preview_vae=str(taesd))
    b.edit(EditRequest(instruction="warm up", image=photo()))  # loads the pipeline and the tiny VAE
    loaded = runtime._resident["cpu"]
    assert type(loaded.preview_vae).__name__ == "AutoencoderTiny"
    full_decodes = []
    real_decode = loaded.pipe.vae.decode
    loaded.pipe.vae.decode = lambda *a, **k: (full_decodes.append(1), real_decode(*a, **k))[1]
    try:
        got = Collect()
        b.edit(got.request(image=photo()))
    finally:
        del loaded.pipe.vae.decode
    assert [i for i, _ in got.partials] == [0, 1]
    assert len(full_decodes) == 1, "previews must not use the full VAE"
    # The 60x44 photo runs at 48x32 (1,920 pixels at most, multiples of 8 or 16); the latents are half
    # that (VAE scale factor 2), and the tiny VAE upsamples them 2x.
    assert got.partials[0][1].size == (48, 32)
