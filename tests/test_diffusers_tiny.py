"""Tiny, randomly initialised diffusers pipelines, built from configs here
(as diffusers' own tests do) and saved to a folder, so the backend loads them
through the same ``from_pretrained(local_path)`` path people use. Nothing is
downloaded: tokenizers are written from a tiny vocabulary with the
``tokenizers`` library.

``python -m tests.test_diffusers_tiny pix2pix|flux DIR`` writes one (the
browser test and a person trying the backend without a GPU use it).

The checks here only prove that each tiny pipeline loads and runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

WORDS = ("a an the and of in on with to make turn add remove change it into red blue green yellow sky dog cat "
         "hat kite dragon style photo picture image ghibli painting bright dark sun night day tree house").split()


def tiny_tokenizer(max_length: int, kind: str):
    """A word-level ``PreTrainedTokenizerFast`` over :data:`WORDS`: CLIP-like
    (start and end tokens) or T5-like (end token only). Returns
    (tokenizer, vocabulary size, vocabulary)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if kind == "clip":
        special = ["<|startoftext|>", "<|endoftext|>", "<|pad|>", "<|unk|>"]
        bos, eos, pad, unk = special
    else:
        special = ["<pad>", "</s>", "<unk>"]
        bos, (pad, eos, unk) = None, special
    vocab = {t: i for i, t in enumerate(special + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = f"{bos} $A {eos}" if bos else f"$A {eos}"
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, vocab[t]) for t in (bos, eos) if t])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   unk_token=unk, model_max_length=max_length)
    return fast, len(vocab), vocab


def _clip(hidden: int, **extra):
    from transformers import CLIPTextConfig, CLIPTextModel

    tok, n, vocab = tiny_tokenizer(77, "clip")
    model = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|pad|>"],
        hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=2, num_hidden_layers=2,
        vocab_size=n, **extra))
    return tok, model


def build_pix2pix(path: Path) -> Path:
    """A tiny ``StableDiffusionInstructPix2PixPipeline`` (VAE scale factor 2)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=8, layers_per_block=1)
    tokenizer, text_encoder = _clip(16)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=EulerAncestralDiscreteScheduler(),
        safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.save_pretrained(path)
    return path


def build_flux_kontext(path: Path) -> Path:
    """A tiny ``FluxKontextPipeline`` (VAE scale factor 2, so sizes are multiples of 4)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    tokenizer, text_encoder = _clip(32, projection_dim=32)
    tokenizer_2, n2, _ = tiny_tokenizer(32, "t5")
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=n2, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                             pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 8), layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                               tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
                               transformer=transformer, image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(path)
    return path


def build_tiny_vae(path: Path, latent_channels: int) -> Path:
    """A tiny ``AutoencoderTiny`` (the TAESD architecture, upsampling 2x) for previews."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).save_pretrained(path)
    return path


BUILDERS = {"pix2pix": build_pix2pix, "flux": build_flux_kontext}


# --------------------------------------------------------------------------- smoke checks of the builders


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_tiny_pipeline_saves_and_loads_from_a_folder(kind, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from diffusers import DiffusionPipeline

    folder = BUILDERS[kind](tmp_path / kind)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] in ("StableDiffusionInstructPix2PixPipeline", "FluxKontextPipeline")
    assert not list(folder.rglob("*.bin")), "weights are written as safetensors"
    pipe = DiffusionPipeline.from_pretrained(folder)
    assert type(pipe).__name__ == index["_class_name"]
    weights = sum(p.numel() for name in ("unet", "transformer") if hasattr(pipe, name)
                  for p in getattr(pipe, name).parameters())
    assert weights < 500_000, "tiny means tiny: the CI budget is minutes on two cores"


if __name__ == "__main__":  # python -m tests.test_diffusers_tiny pix2pix|flux DIR
    kind, where = sys.argv[1], Path(sys.argv[2])
    print(BUILDERS[kind](where))
