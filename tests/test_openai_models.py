"""The OpenAI model catalogue (app/backends/openai_models.py): it covers
exactly the SDK's image models, its default is live, and the size rules and
the shape-keeping edit size hold for any image (hypothesis)."""
from __future__ import annotations

import typing
from datetime import date

from hypothesis import given
from hypothesis import strategies as st
from openai.types import ImageModel

from app.backends import openai_models as cat
from app.config import Settings

#: The pinned SDK's image models when the catalogue was last reviewed. When an
#: SDK upgrade changes this list, review every entry of the catalogue against the
#: new docstrings (openai/types/image_edit_params.py, image_generate_params.py),
#: then update this tuple.
REVIEWED_SDK_MODELS = (
    "gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-flare", "gpt-image-2.5-flare-2026-09-08",
    "gpt-image-2.6-sunburst", "gpt-image-2.6-flare", "gpt-image-1", "gpt-image-1-mini",
    "chatgpt-image-latest", "dall-e-2", "dall-e-3",
)


def test_an_sdk_upgrade_that_changes_the_image_models_forces_a_review():
    assert typing.get_args(ImageModel) == REVIEWED_SDK_MODELS, (
        "openai.types.ImageModel changed: review app/backends/openai_models.py against the new SDK docstrings")


def test_the_catalogue_has_exactly_the_sdk_models():
    assert set(cat.CATALOGUE) == set(typing.get_args(ImageModel))


def test_the_defaults_are_live_models():
    settings = Settings()
    assert cat.model_problem(Settings.model_fields["openai_model"].default) is None
    assert cat.DEFAULT_MODEL == Settings.model_fields["openai_model"].default
    for name in Settings.model_fields["openai_models"].default.split(","):
        assert cat.model_problem(name) is None, name
    assert settings is not None


def test_shut_down_models_by_the_sdk_and_by_the_deprecations_page():
    assert cat.CATALOGUE["gpt-image-1"].shutdown == date(2026, 10, 23)
    assert cat.CATALOGUE["dall-e-3"].shutdown == date(2026, 5, 12)
    for name in ("gpt-image-1-mini", "gpt-image-1.5", "chatgpt-image-latest"):
        info = cat.CATALOGUE[name]
        assert info.shutdown == date(2026, 12, 1) and "SDK" in info.note  # the two sources disagree


def test_problem_messages_name_the_setting_and_the_live_models():
    for name in ("gpt-image-1", "gpt-image-2.5-sunburts"):
        message = cat.model_problem(name)
        assert "RETOUCH_OPENAI_MODEL" in message and "gpt-image-2.5-sunburst" in message and name in message


def test_unknown_capabilities_are_none_not_guesses():
    for name in ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare"):
        info = cat.CATALOGUE[name]
        assert None in (info.arbitrary_sizes, info.extra_qualities, info.transparent, info.markup)
        assert info.summary()["qualities"] == ["low", "medium", "high"]
        assert "transparent" not in info.summary()["backgrounds"]
    assert cat.CATALOGUE["gpt-image-2.5-flare"].input_fidelity is None


def test_size_rules_state_the_rule():
    info = cat.CATALOGUE["gpt-image-2.5-sunburst"]
    assert cat.size_problem(info, "1000x100") == "1000x100: the ratio must be between 1:3 and 3:1."
    assert "multiples of 16" in cat.size_problem(info, "1000x1000")
    assert "3840" in cat.size_problem(info, "8192x8192")
    assert "at least" in cat.size_problem(info, "16x16")
    assert cat.size_problem(info, "3840x2160") is None and cat.size_problem(info, "auto") is None
    assert "only" in cat.size_problem(cat.CATALOGUE["gpt-image-2.6-flare"], "1920x1088")


sides = st.integers(min_value=1, max_value=20000)


@given(sides, sides)
def test_the_edit_size_keeps_the_shape_and_obeys_the_rules(width, height):
    for name in ("gpt-image-2.5-sunburst", "gpt-image-2"):
        info = cat.CATALOGUE[name]
        size = cat.matching_size(info, width, height)
        assert cat.size_problem(info, size) is None, size
        w, h = cat.parse_size(size)
        ratio = min(max(width / height, 1 / 3), 3)
        assert abs(w / h / ratio - 1) < 0.03, (width, height, size)  # within 3% of the shape
        assert w * h <= cat.STABLE_PIXELS  # never an "experimental" size on its own


@given(sides, sides)
def test_standard_size_models_get_the_nearest_standard_shape(width, height):
    size = cat.matching_size(cat.CATALOGUE["gpt-image-2.6-flare"], width, height)
    assert size in cat.STANDARD_SIZES
    w, h = cat.parse_size(size)
    if width > 1.3 * height:
        assert w > h
    if height > 1.3 * width:
        assert h > w
