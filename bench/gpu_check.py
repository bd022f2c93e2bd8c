"""GPU check of the ``diffusers`` backend's heaviest model, Qwen-Image-Edit,
without downloading anything: the real-size components are built from their
default configs with random weights in bf16, and timed.

Reports, at 1024x1024 (an edit: 4096 output tokens plus 4096 tokens of the
input image, and about 200 prompt tokens, as QwenImageEditPlusPipeline sends;
``diffusers/pipelines/qwenimage/pipeline_qwenimage_edit_plus.py``):

- seconds per denoising step (two transformer passes: true CFG);
- peak GPU memory with every model resident, and with the models offloaded
  to the CPU between uses (``accelerate.cpu_offload_with_hook``, what
  ``enable_model_cpu_offload`` installs);
- the time of one step preview (``app.backends.diffusers_backend.runtime.
  decode_preview``'s method: latents shrunk to 32x32, the full VAE) and of
  the final 1024x1024 decode.

Components: ``QwenImageTransformer2DModel()`` (its defaults are the 20B
Qwen-Image transformer: 60 layers, 24 heads of 128, joint dim 3584),
``AutoencoderKLQwenImage()`` (defaults: the released VAE), and the
Qwen2.5-VL-7B text encoder from its published sizes (the config class's own
defaults are the 72B model's).

Usage, one command, under 10 minutes on one GPU with at least 80 GB (48 GB
with ``--skip-resident``)::

    .venv/bin/python bench/gpu_check.py --out bench/results-gpu.md

``--tiny`` runs the same code with tiny configs on the CPU (a check of the
script itself; its figures mean nothing).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT_TOKENS = 200


def build(tiny: bool, device: str, dtype):
    """(transformer, vae, text_encoder), built on ``device`` in ``dtype``."""
    import torch
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    if tiny:
        t_kw = dict(num_layers=2, attention_head_dim=32, num_attention_heads=2, joint_attention_dim=64,
                    axes_dims_rope=(8, 12, 12))
        v_kw = dict(base_dim=16)
        text = dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=2,
                    num_key_value_heads=1, vocab_size=1000,
                    rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]})
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
    else:
        t_kw, v_kw = {}, {}
        # Qwen2.5-VL-7B-Instruct's config.json (the text encoder of Qwen-Image-Edit).
        text = dict(hidden_size=3584, num_hidden_layers=28, intermediate_size=18944, num_attention_heads=28,
                    num_key_value_heads=4, vocab_size=152064,
                    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            transformer = QwenImageTransformer2DModel(**t_kw).eval()
            vae = AutoencoderKLQwenImage(**v_kw).eval()
            config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **text)
            text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    finally:
        torch.set_default_dtype(previous)
    return transformer, vae, text_encoder


def params_gb(module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / 1e9


class Run:
    """The work of one edit at ``size`` px: prompt encoding, denoising steps, decodes."""

    def __init__(self, transformer, vae, text_encoder, size: int, device: str, dtype) -> None:
        import torch

        self.t, self.vae, self.te = transformer, vae, text_encoder
        self.device, self.dtype = device, dtype
        self.side = size // 8 // 2  # VAE scale factor 8, then 2x2 patches
        channels = transformer.config.in_channels
        g = torch.Generator(device="cpu").manual_seed(0)
        self.latents = torch.randn(1, self.side * self.side, channels, generator=g).to(device, dtype)
        self.image_latents = torch.randn(1, self.side * self.side, channels, generator=g).to(device, dtype)
        self.ids = torch.randint(0, text_encoder.config.text_config.vocab_size, (1, PROMPT_TOKENS), generator=g)
        self.embeds = None

    def sync(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def encode_prompt(self):
        import torch

        with torch.no_grad():  # the whole model, so that an offload hook on it moves it in
            out = self.te(input_ids=self.ids.to(self.device), output_hidden_states=True)
        self.embeds = out.hidden_states[-1].to(self.dtype)
        self.sync()

    def step(self):
        """One denoising step: a conditional and an unconditional pass (true CFG)."""
        import torch

        hidden = torch.cat([self.latents, self.image_latents], dim=1)
        mask = torch.ones(1, self.embeds.shape[1], dtype=torch.long, device=self.embeds.device)
        shapes = [[(1, self.side, self.side), (1, self.side, self.side)]]
        timestep = torch.tensor([0.5], device=self.latents.device, dtype=self.dtype)
        with torch.no_grad():
            for _ in range(2):
                out = self.t(hidden_states=hidden, encoder_hidden_states=self.embeds, encoder_hidden_states_mask=mask,
                             timestep=timestep, img_shapes=shapes, return_dict=False)[0]
        self.sync()
        return out[:, : self.latents.shape[1]]

    def decode(self, latent_side: int | None):
        """Decode the latents, shrunk to ``latent_side`` (a preview) or full size."""
        import torch

        z = self.vae.config.z_dim
        lat = self.latents.view(1, self.side, self.side, z, 2, 2).permute(0, 3, 1, 4, 2, 5)
        lat = lat.reshape(1, z, self.side * 2, self.side * 2)
        if latent_side:
            lat = torch.nn.functional.interpolate(lat.float(), size=(latent_side, latent_side)).to(self.dtype)
        with torch.no_grad():
            image = self.vae.decode(lat.unsqueeze(2), return_dict=False)[0]
        self.sync()
        return image


def timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def measure(run: Run, device: str, steps: int) -> dict:
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    out = {"encode_prompt_s": timed(run.encode_prompt)}
    out["first_step_s"] = timed(run.step)  # includes moving the transformer in, with offload
    out["step_s"] = timed(run.step, steps)
    out["preview_decode_s"] = timed(lambda: run.decode(32), 3)
    out["final_decode_s"] = timed(lambda: run.decode(None))
    if cuda:
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        out["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
    return out


def offload(modules, device: str):
    """What ``enable_model_cpu_offload`` does: each model waits on the CPU
    and moves to ``device`` when called, sending the previous one back."""
    from accelerate import cpu_offload_with_hook

    hook = None
    for m in modules:
        m.to("cpu")
        _, hook = cpu_offload_with_hook(m, device, prev_module_hook=hook)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny configs on the CPU: checks the script only")
    p.add_argument("--size", type=int, default=None, help="edit size in px (default 1024, 256 with --tiny)")
    p.add_argument("--steps", type=int, default=3, help="timed denoising steps (after one warm-up)")
    p.add_argument("--skip-resident", action="store_true", help="measure with CPU offload only (GPUs under 80 GB)")
    p.add_argument("--out", type=Path, help="append a Markdown report to this file")
    args = p.parse_args(argv)

    import torch

    if args.tiny:
        device, dtype = "cpu", torch.float32
    elif not torch.cuda.is_available():
        print("No CUDA GPU: this check needs one (or --tiny to check the script on the CPU).", file=sys.stderr)
        return 2
    else:
        device, dtype = "cuda", torch.bfloat16
    size = args.size or (256 if args.tiny else 1024)
    started = time.perf_counter()
    info = {"size": f"{size}x{size}", "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor()
            or "cpu", "torch": torch.__version__, "tiny": args.tiny}
    import diffusers

    info["diffusers"] = diffusers.__version__
    build_device = "cpu" if args.skip_resident else device
    t0 = time.perf_counter()
    transformer, vae, text_encoder = build(args.tiny, build_device, dtype)
    info["build_s"] = time.perf_counter() - t0
    info["weights_gb"] = {"transformer": params_gb(transformer), "vae": params_gb(vae),
                          "text_encoder": params_gb(text_encoder)}
    print(json.dumps(info), flush=True)
    run = Run(transformer, vae, text_encoder, size, device, dtype)
    results = {}
    if not args.skip_resident:
        results["resident"] = measure(run, device, args.steps)
        print(json.dumps({"resident": results["resident"]}), flush=True)
    if device != "cpu":
        offload([text_encoder, transformer, vae], device)
        run.latents, run.image_latents = run.latents.to(device), run.image_latents.to(device)
        results["cpu_offload"] = measure(run, device, args.steps)
        print(json.dumps({"cpu_offload": results["cpu_offload"]}), flush=True)
    info["total_s"] = time.perf_counter() - started
    report = render(info, results)
    print(report)
    if args.out:
        with open(args.out, "a") as f:
            f.write(report + "\n")
    return 0


def render(info: dict, results: dict) -> str:
    lines = [f"## Qwen-Image-Edit, random bf16 weights, {info['size']} edit on {info['device']}",
             "", f"torch {info['torch']}, diffusers {info['diffusers']}; weights (GB): "
             + ", ".join(f"{k} {v:.1f}" for k, v in info["weights_gb"].items())
             + f"; built in {info['build_s']:.0f} s; whole check {info['total_s']:.0f} s."
             + (" **--tiny: a check of the script, not figures.**" if info["tiny"] else ""), "",
             "| setting | s per step (2 passes) | first step s | prompt encode s | preview decode s | final decode s "
             "| peak GPU GB (allocated / reserved) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        peak = f"{r['peak_gb']:.1f} / {r['peak_reserved_gb']:.1f}" if "peak_gb" in r else "n/a (CPU)"
        lines.append(f"| {name} | {r['step_s']:.2f} | {r['first_step_s']:.2f} | {r['encode_prompt_s']:.2f} | "
                     f"{r['preview_decode_s']:.3f} | {r['final_decode_s']:.2f} | {peak} |")
    return "\n".join(lines)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
