"""The ``diffusers`` backend's configuration, without torch: it registers,
is offered only when its extra is installed and a model is set, says what is
wrong in sentences, and the main install stays free of torch."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from app.backends import get_backend, offered_backends, register_backend
from app.backends import diffusers_backend as db
from app.backends.diffusers_backend import DiffusersBackend
from app.backends.diffusers_backend.pipelines import PIPELINES, steps_for, working_size

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_builtin():
    yield
    register_backend("diffusers", DiffusersBackend)


def test_offered_only_with_the_extra_and_a_model(monkeypatch, restore_builtin):
    register_backend("diffusers", lambda: DiffusersBackend(model="someone/model", pipeline="flux-kontext"))
    monkeypatch.setattr(db, "extra_installed", lambda: True)
    assert "diffusers" in offered_backends("local")
    monkeypatch.setattr(db, "extra_installed", lambda: False)
    assert "diffusers" not in offered_backends("local")
    register_backend("diffusers", lambda: DiffusersBackend(model="", pipeline="flux-kontext"))
    monkeypatch.setattr(db, "extra_installed", lambda: True)
    assert "diffusers" not in offered_backends("local")


def test_capabilities_follow_the_pipeline():
    qwen = DiffusersBackend(model="Qwen/Qwen-Image-Edit-2509", pipeline="qwen-image-edit")
    flux = DiffusersBackend(model="black-forest-labs/FLUX.1-Kontext-dev", pipeline="flux-kontext")
    p2p = DiffusersBackend(model="timbrooks/instruct-pix2pix", pipeline="instruct-pix2pix")
    assert (qwen.can_generate, qwen.accepts_mask, qwen.accepts_references) == (False, True, True)
    assert (flux.can_generate, flux.accepts_mask, flux.accepts_references) == (True, True, False)
    assert (p2p.can_generate, p2p.accepts_mask, p2p.accepts_references) == (False, True, False)
    assert qwen.offered_models()[0]["name"] == "Qwen/Qwen-Image-Edit-2509"
    assert flux.max_pixels == 1024 * 1024 and p2p.max_pixels == 512 * 512
    qwen.check_options(reference_count=2, size="1024x1024")
    with pytest.raises(db.OptionRejected, match="at most 2 reference images"):
        qwen.check_options(reference_count=3)
    with pytest.raises(db.OptionRejected, match="1,572,864 pixels"):
        flux.check_options(size="1536x1024")


def test_problems_are_sentences(tmp_path):
    unset = DiffusersBackend(model="", pipeline="")
    assert "RETOUCH_DIFFUSERS_MODEL is not set" in " ".join(unset.problems())
    assert not unset.available()
    wrong = DiffusersBackend(model="x/y", pipeline="sdxl")
    assert any("must be one of: qwen-image-edit, flux-kontext, instruct-pix2pix" in p for p in wrong.problems())
    hub_id = DiffusersBackend(model="x/y", pipeline="")
    assert any("Set RETOUCH_DIFFUSERS_PIPELINE" in p for p in hub_id.problems())
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    other = DiffusersBackend(model=str(tmp_path), pipeline="")
    assert any("is a StableDiffusionXLPipeline" in p for p in other.problems())
    with pytest.raises(db.BackendFailed, match="is a StableDiffusionXLPipeline"):
        other.run(db.EditRequest(instruction="make it blue"))


def test_the_registry_builds_it_from_settings():
    assert isinstance(get_backend("diffusers"), DiffusersBackend)
    assert get_backend("diffusers").label


def test_steps_and_working_sizes():
    flux = PIPELINES["flux-kontext"]
    assert steps_for(flux, None, None) == 28 and steps_for(flux, "low", None) == 14
    assert steps_for(flux, "high", 10) == 15 and steps_for(flux, "low", 1) == 1
    assert working_size((1024, 768), 16, 1024 * 1024) == (1024, 768)
    assert working_size((4000, 3000), 16, 1024 * 1024) == (1168, 880)  # scaled down, multiples of 16
    assert working_size((5, 5), 8, 512 * 512) == (8, 8)


def test_main_install_is_free_of_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = " ".join(project["dependencies"]).lower()
    assert "torch" not in main and "diffusers" not in main
    extra = project["optional-dependencies"]["diffusers"]
    assert all("==" in req for req in extra), "the extra pins exact versions"
    assert any(req.startswith("torch==") for req in extra)
