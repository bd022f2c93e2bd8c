"""The ``local`` backend in its three parts, tested apart.

- Pixel tests call the pure functions of :mod:`app.backends.local.functions`
  directly with typed parameters: no language.
- Grammar tests map phrases to parameters: no pixels.
- Registry tests: every operation has a unique name, a family, and (where
  migrated) typed parameters and a function.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.backends.local.functions import ParamError
from app.backends.local.functions import background as bg
from app.backends.local.functions import faces as fc
from app.backends.local.functions import geometry as g
from app.backends.local.functions import neural as nn
from app.backends.local.functions import regions as rg
from app.backends.local.functions import text as tx
from app.backends.local.functions import tone as t
from app.backends.local.operations.background import subject_confidence
from app.backends.local.parser import ParseFailure, normalize, numbers_in, parse_instruction
from app.backends.local.registry import EDIT, GENERATE, entries


def _img(w: int = 40, h: int = 30, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    a = np.dstack([x * 6 % 256, y * 8 % 256, (x + y) % 256]).astype(np.uint8)
    im = Image.fromarray(a)
    return im.convert(mode) if mode != "RGB" else im


# ------------------------------------------------------------------ pixels


def test_rotate_quarter_turns_are_exact_and_keep_alpha():
    im = _img(mode="RGBA")
    out = g.rotate(im, g.RotateParams(90))
    assert out.size == (30, 40) and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), np.rot90(np.asarray(im), -1))
    assert g.rotate(im, g.RotateParams(45)).size == g.rotated_size(40, 30, 45)


@pytest.mark.parametrize("ratio", [(1, 1), (16, 9), (4, 5), (21, 1), (1, 21), (3, 2)])
def test_crop_aspect_within_one_pixel(ratio):
    out = g.crop_aspect(_img(97, 61), g.CropAspectParams(ratio))
    w, h = out.size
    assert min(abs(w - h * ratio[0] / ratio[1]), abs(h - w * ratio[1] / ratio[0])) <= 1


def test_crop_pixels_margins_sides_region():
    im = _img(40, 30)
    assert g.crop_pixels(im, g.CropPixelsParams((20, 10))).size == (20, 10)
    with pytest.raises(g.SizeError):
        g.crop_pixels(im, g.CropPixelsParams((50, 10)))
    assert g.crop_margins(im, g.CropMarginsParams(px=5)).size == (30, 20)
    assert g.crop_sides(im, g.CropSidesParams(("left",), 10, "px")).size == (30, 30)
    out = g.crop_region(im, g.CropRegionParams((0, 0, 0.5, 1)))
    assert np.array_equal(np.asarray(out), np.asarray(im)[:, :20])


def test_resize_border_pad():
    im = _img(40, 30)
    assert g.resize(im, g.ResizeParams(width=20)).size == (20, 15)
    assert g.resize(im, g.ResizeParams(factor=0.5)).size == (20, 15)
    out = g.border(im, g.BorderParams((255, 0, 0), px=3))
    assert out.size == (46, 36) and out.getpixel((0, 0)) == (255, 0, 0)
    assert g.border(im, g.BorderParams((255, 0, 0), px=3, inside=True)).size == (40, 30)
    padded = g.pad(im, g.PadParams(ratio=(1, 1), transparent=True))
    assert padded.size == (40, 40) and padded.mode == "RGBA" and padded.getpixel((0, 0))[3] == 0


@pytest.mark.parametrize("make", [
    lambda: g.RotateParams(360), lambda: g.CropAspectParams((0, 1)), lambda: g.CropMarginsParams(percent=60),
    lambda: g.ResizeParams(), lambda: g.ResizeParams(width=10, factor=2), lambda: g.BorderParams(px=0),
    lambda: g.FlipParams("diagonal"), lambda: t.Amount(direction=2), lambda: t.TintParams(color=(300, 0, 0)),
])
def test_parameters_out_of_bounds_are_refused(make):
    with pytest.raises(ParamError):
        make()


def test_tone_functions_keep_size_and_alpha():
    im = _img(mode="RGBA")
    for fn, p in ((t.grayscale, t.NoParams()), (t.invert, t.NoParams()), (t.brightness, t.Amount(1)),
                  (t.saturation, t.Amount(-1, percent=100)), (t.tint, t.TintParams(color=(0, 0, 255)))):
        out = fn(im, p)
        assert out.size == im.size and out.mode == "RGBA"
        assert np.array_equal(np.asarray(out)[..., 3], np.asarray(im)[..., 3])
    gray = np.asarray(t.saturation(_img(), t.Amount(-1, percent=100))).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1
    assert np.array_equal(np.asarray(t.invert(_img(), t.NoParams())), 255 - np.asarray(_img()))


def _plain(w: int = 200, h: int = 120, color=(40, 90, 160), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (w, h), color if mode == "RGB" else (*color, 200))


def test_draw_text_places_the_words_and_keeps_size_and_alpha():
    im = _plain(mode="RGBA")
    out = tx.draw_text(im, tx.TextParams("Hello", position="top-center", color=(255, 255, 0)))
    assert out.size == im.size and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(im)[..., 3])
    changed = np.any(np.asarray(out)[..., :3] != np.asarray(im)[..., :3], axis=2)
    ys = np.nonzero(changed)[0]
    assert len(ys) and ys.max() < 60  # in the top half
    bottom = tx.draw_text(_plain(), tx.TextParams("Hello", position="bottom-right", meme=True))
    ys, xs = np.nonzero(np.any(np.asarray(bottom) != np.asarray(_plain()), axis=2))
    assert ys.min() > 60 and xs.min() > 100


def test_draw_text_opacity_banner_and_canvas():
    im = _plain()
    faint = np.asarray(tx.draw_text(im, tx.TextParams("Hi", opacity=0.4))).astype(int)
    assert 0 < np.abs(faint - np.asarray(im).astype(int)).max() <= round(0.4 * 255) + 1
    banded = np.asarray(tx.draw_text(im, tx.TextParams("Hi", position="top-center", banner=(255, 255, 255))))
    assert tuple(banded[1, 0]) == (255, 255, 255)  # the band spans the width
    # on a generated canvas the letters contrast with the backdrop: dark on white
    white = tx.draw_text(Image.new("RGB", (200, 120), "white"), tx.TextParams("Hi", generated=True))
    assert np.asarray(white).min() < 60


def test_draw_text_in_mask_stays_in_the_box():
    im = _plain()
    mask = np.zeros((120, 200), np.uint8)
    mask[30:90, 50:150] = 255
    out = np.asarray(tx.draw_text_in_mask(im, tx.TextParams("Hi"), mask))
    ys, xs = np.nonzero(np.any(out != np.asarray(im), axis=2))
    assert len(xs) and ys.min() >= 30 and ys.max() < 90 and xs.min() >= 50 and xs.max() < 150
    assert tx.draw_text_in_mask(im, tx.TextParams("Hi"), np.zeros((120, 200), np.uint8)) is im


def test_draw_text_refuses_what_it_cannot_draw_exactly():
    with pytest.raises(tx.TextError):
        tx.draw_text(_plain(20, 10), tx.TextParams("A sentence far too long to fit on this image"))
    with pytest.raises(ParamError):
        tx.TextParams("x", position="middle-top")
    with pytest.raises(ParamError):
        tx.TextParams("x", opacity=0)
    with pytest.raises(ParamError):
        tx.TextParams("x", color=(0, 0, 256))


def test_obscure_faces_changes_only_the_padded_boxes():
    im = _img(120, 100, mode="RGBA")
    box = (40, 30, 30, 30)  # padded: x 36..74, y 25..65
    for method in ("blur", "pixelate"):
        out = fc.obscure_faces(im, fc.FacesParams(method), [box])
        a, b = np.asarray(out), np.asarray(im)
        assert out.size == im.size and out.mode == "RGBA" and np.array_equal(a[..., 3], b[..., 3])
        ys, xs = np.nonzero(np.any(a != b, axis=2))
        assert len(xs) and xs.min() >= 36 and xs.max() < 74 and ys.min() >= 25 and ys.max() < 65
    assert np.array_equal(np.asarray(fc.obscure_faces(im, fc.FacesParams(), [])), np.asarray(im))
    with pytest.raises(ParamError):
        fc.FacesParams("swirl")
    with pytest.raises(ParamError):
        fc.FacesParams(strength=0)


def test_inpaint_fills_the_selection_from_its_surroundings():
    im = Image.new("RGB", (80, 60), (200, 100, 50))
    im.paste((0, 0, 0), (30, 20, 50, 40))  # a black blot
    mask = np.zeros((60, 80), np.uint8)
    mask[20:40, 30:50] = 255
    out = np.asarray(rg.inpaint(im, rg.InpaintParams(), mask)).astype(int)
    assert np.abs(out[30, 40] - (200, 100, 50)).max() < 30  # the blot is gone
    assert np.array_equal(out[:5], np.asarray(im)[:5])  # far from the selection: unchanged
    big = Image.new("RGBA", (300, 200), (10, 200, 10, 128))
    hole = np.zeros((200, 300), np.uint8)
    hole[90:110, 140:160] = 255
    small = rg.inpaint(big, rg.InpaintParams(work_side=100), hole)  # inpainted on a 100 x 67 copy
    assert small.size == (300, 200) and small.mode == "RGBA"
    with pytest.raises(ParamError):
        rg.InpaintParams(work_side=10)


def test_neural_styles_keep_size_and_alpha_and_blend():
    im = _img(96, 64, mode="RGBA")
    out = nn.neural_style(im, nn.NeuralStyleParams(style=19))
    assert out.size == im.size and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(im)[..., 3])
    full = np.asarray(out)[..., :3].astype(int)
    faint = np.asarray(nn.neural_style(im, nn.NeuralStyleParams(style=19, percent=5))).astype(int)[..., :3]
    orig = np.asarray(im)[..., :3].astype(int)
    assert np.abs(faint - orig).mean() < np.abs(full - orig).mean() / 4
    ref = Image.new("RGBA", (60, 60), (255, 0, 0, 0))  # transparent: painted over white
    like = nn.reference_style(_img(96, 64), nn.StyleAmount(), ref)
    assert like.size == (96, 64) and like.mode == "RGB"
    with pytest.raises(g.SizeError):
        nn.neural_style(_img(40, 20), nn.NeuralStyleParams(style=0))
    with pytest.raises(g.SizeError):
        nn.reference_style(_img(96, 64), nn.StyleAmount(), Image.new("RGB", (20, 20)))


@pytest.mark.parametrize("make", [lambda: nn.NeuralStyleParams(style=26), lambda: nn.NeuralStyleParams(style=-1),
                                  lambda: nn.StyleAmount(percent=-5), lambda: nn.StyleAmount(strength=0)])
def test_neural_parameters_out_of_bounds_are_refused(make):
    with pytest.raises(ParamError):
        make()


def test_style_amount_blend():
    assert nn.StyleAmount().blend() == 1.0 and nn.StyleAmount(strength=0.5).blend() == 0.5
    assert nn.StyleAmount(strength=0.05).blend() == 0.15 and nn.StyleAmount(percent=150).blend() == 1.0
    assert nn.StyleAmount(percent=40, strength=0.5).blend() == 0.4 and nn.StyleAmount(percent=1).blend() == 0.05


def test_replace_background_keeps_the_given_subject():
    im = _img(60, 40)
    subject = np.zeros((40, 60), np.float32)
    subject[10:30, 20:40] = 1.0
    inside = (slice(10, 30), slice(20, 40))
    for action, corner in (("remove", (255, 255, 255)), ("color", (0, 0, 255))):
        out = np.asarray(bg.replace_background(im, bg.BackgroundParams(action, corner), subject))
        assert tuple(out[0, 0]) == corner and np.array_equal(out[inside], np.asarray(im)[inside])
    gray = np.asarray(bg.replace_background(im, bg.BackgroundParams("gray"), subject)).astype(int)
    assert np.abs(gray[0, 5, 0] - gray[0, 5, 2]) <= 1 and np.array_equal(gray[inside], np.asarray(im)[inside])
    blurred = bg.replace_background(im, bg.BackgroundParams("blur"), subject)
    assert blurred.mode == "RGB" and np.array_equal(np.asarray(blurred)[inside], np.asarray(im)[inside])
    clear = bg.replace_background(im, bg.BackgroundParams("transparent"), subject)
    assert clear.mode == "RGBA" and clear.getpixel((0, 0))[3] == 0 and clear.getpixel((30, 20))[3] == 255
    half = bg.replace_background(_img(60, 40, mode="RGBA"), bg.BackgroundParams("transparent"), subject * 0.5)
    assert half.getpixel((30, 20))[3] == 128
    with pytest.raises(ParamError):
        bg.replace_background(im, bg.BackgroundParams(), subject[:20])
    with pytest.raises(ParamError):
        bg.BackgroundParams("swap")


def test_background_confidence_scores():
    assert subject_confidence(0.3, 0.95, 0.2) == 1.0  # a clear subject
    assert subject_confidence(0.5, 0.6, 0.5) < 0.5  # an outline through the sky
    assert subject_confidence(0.6, 0.95, 0.82) < 0.5  # a subject of the background's own colours
    assert subject_confidence(0.005, 1.0, 0.0) == 0.0  # nothing found


# ------------------------------------------------------------------ grammar


def _params(instruction: str, mode: str = EDIT) -> list[tuple[str, dict]]:
    plan = parse_instruction(instruction, mode=mode, has_mask=False)
    return [(s.op.name, s.params) for s in plan.steps if s.op.describe(s.params)]


@pytest.mark.parametrize("instruction,name,expected", [
    ("rotate it ninety degrees anticlockwise", "rotate", {"degrees": 270.0}),
    ("rotate it by two hundred and seventy degrees", "rotate", {"degrees": 270.0}),
    ("rotate three quarters of a turn", "rotate", {"degrees": 270.0}),
    ("crop to sixteen by nine", "crop_aspect", {"ratio": (16.0, 9.0)}),
    ("crop it to a 3:2 landscape", "crop_aspect", {"ratio": (3.0, 2.0)}),
    ("crop to 4:5 for an instagram post", "crop_aspect", {"ratio": (4.0, 5.0)}),
    ("crop it for a story", "crop_aspect", {"ratio": (9, 16)}),
    ("crop to 16x9", "crop_aspect", {"ratio": (16.0, 9.0)}),
    ("crop to 60x40", "crop_pixels", {"size": (60, 40)}),
    ("resize to 300 wide for the web", "resize", {"width": 300}),
    ("scale it down by 30%", "resize", {"factor": 0.7}),
    ("add a twenty five pixel red border", "border", {"px": 25, "color": (255, 0, 0)}),
    ("increase the brightness by 30%", "brightness", {"percent": 30.0, "direction": 1}),
    ("darken it down a little", "brightness", {"direction": -1}),
])
def test_phrases_map_to_parameters(instruction, name, expected):
    steps = _params(instruction)
    assert [n for n, _ in steps] == [name]
    params = steps[0][1]
    assert {k: params[k] for k in expected} == expected


@pytest.mark.parametrize("instruction,quote", [
    ("add the text \"Joe's Diner\" at the top", "Joe's Diner"),
    ("add the text 'Joe's Diner' at the top", "Joe's Diner"),
    ("add a caption reading “Don’t stop” at the bottom", "Don’t stop"),
    ("put a sign at the bottom which says ‘Mum’s kitchen’", "Mum’s kitchen"),
    ("add a banner at the top with the words \"Happy birthday, Anna!\"", "Happy birthday, Anna!"),
    ("add a sign in the top left corner that says 'OPEN'", "OPEN"),
    ("add a title at the top: 'Summer 2026'", "Summer 2026"),
    ("write „Grüße“ at the top", "Grüße"),
    ("write «Ça va» at the top", "Ça va"),
    ("add the text \"Hello” at the top", "Hello"),
])
def test_quotes_are_kept_exactly(instruction, quote):
    steps = _params(instruction)
    assert [p["text"] for n, p in steps if n == "text"] == [quote]


@pytest.mark.parametrize("instruction", [
    "crop to 3:2 portrait", "crop to 16:9 and 4:3", "crop to 4:5 square", "crop it to 16:9 for a story",
    "add a 10 pixel border 20", "rotate it 340 1 degrees", "rotate it 3 times", "resize to 1080x1920 landscape",
    "posterize to 100 levels", "resize to 1920x1080 for my phone wallpaper", "crop to 1920x1080 for a story",
    "make it smaller and 800 wide and 300 wide",
])
def test_numbers_and_words_that_disagree_are_declined(instruction):
    with pytest.raises(ParseFailure):
        parse_instruction(instruction, mode=EDIT, has_mask=False)


def test_number_words_go_through_text2num():
    assert normalize("rotate it one hundred and eighty degrees")[0] == "rotate 180 degrees"
    assert normalize("crop to the left third")[0] == "crop to left third"
    assert normalize("make the left one red")[0] == "make left one red"
    assert normalize("a one-by-one crop")[0] == "1 by 1 crop"
    assert numbers_in("crop 800x600, #ff0000, 8 bit, 30th, 1900s") == [800.0, 600.0]


def test_generate_mode_maps_canvas_phrases():
    steps = _params("a 300x200 red image with the title 'Hi'", mode=GENERATE)
    names = [n for n, _ in steps]
    assert "canvas_fill" in names and "canvas_text" in names


# ------------------------------------------------------------------ registry


def test_every_operation_has_a_unique_name_and_a_family():
    reg = entries()
    assert len(reg) >= 50
    assert all(e.family for e in reg.values())
    families = {e.family for e in reg.values()}
    assert {"canvas", "background", "faces", "geometry", "tone"} <= families
    assert reg["canvas_fill"].family == "canvas" and reg["fill_selection"].family == "regions"
    assert reg["background"].family == "background" and reg["faces"].family == "faces"


@pytest.mark.parametrize("name", ["rotate", "flip", "crop_aspect", "crop_pixels", "crop_margins", "crop_sides",
                                  "crop_region", "resize", "border", "pad", "grayscale", "sepia", "invert",
                                  "brightness", "contrast", "saturation", "warmth", "tint", "auto_enhance",
                                  "blur", "motion_blur", "sharpen", "pixelate", "denoise", "grain", "vignette",
                                  "posterize", "solarize", "emboss", "edges", "sketch", "cartoon", "oil_painting",
                                  "watercolor", "vintage", "canvas_fill", "gradient", "pattern",
                                  "text_colors", "fill_selection", "text", "canvas_text", "details", "faces", "remove", "neural_style",
                                  "reference_style", "background"])
def test_migrated_operations_have_typed_parameters_and_a_function(name):
    e = entries()[name]
    assert e.params is not None and hasattr(e.params, "__dataclass_fields__") and callable(e.function)
    assert e.params.__doc__ and e.function.__doc__ and e.description


def test_only_plan_markers_lack_typed_parameters():
    untyped = {name for name, e in entries().items() if e.params is None or e.function is None}
    assert untyped == {"canvas", "purpose", "meme"}
    for name in untyped:
        assert "on purpose" in (entries()[name].op.__doc__ or "")


@pytest.mark.parametrize("instruction,expected", [
    ("add the text 'A' at the top, 'B' at the bottom and 'C' in the middle",
     [("A", "top-center"), ("B", "bottom-center"), ("C", "center-center")]),
    ("add 'A' at the top and 'B' at the bottom", [("A", "top-center"), ("B", "bottom-center")]),
    ("at the top write 'Hello'", [("Hello", "top-center")]),
    ("add a sign in the top left corner that says 'OPEN'", [("OPEN", "top-left")]),
])
def test_each_quote_keeps_its_own_position(instruction, expected):
    steps = _params(instruction)
    assert [(p["text"], p["position"]) for n, p in steps if n == "text"] == expected


@pytest.mark.parametrize("instruction", ["a red square 100x200", "a portrait poster 1000x500 in green",
                                         "a 300x200 and 400x400 red image"])
def test_canvas_size_and_shape_words_that_disagree_are_declined(instruction):
    with pytest.raises(ParseFailure):
        parse_instruction(instruction, mode=GENERATE, has_mask=False)


def test_canvas_ratio():
    steps = parse_instruction("a 16:9 image in dark blue", mode=GENERATE, has_mask=False).steps
    assert [s.params["size"] for s in steps if s.op.name == "canvas"] == [(1536, 864)]


def _scene_without_subject() -> Image.Image:
    """Sky, hills and a lake: no one subject to keep."""
    from PIL import ImageDraw

    rng = np.random.default_rng(0)
    im = Image.new("RGB", (300, 200), (120, 170, 235))
    d = ImageDraw.Draw(im)
    d.polygon([(0, 110), (80, 70), (160, 100), (240, 60), (300, 90), (300, 200), (0, 200)], fill=(60, 120, 50))
    d.rectangle((0, 150, 300, 200), fill=(50, 90, 160))
    return Image.fromarray(np.clip(np.asarray(im) + rng.normal(0, 6, (200, 300, 3)), 0, 255).astype(np.uint8))


def test_background_removal_without_one_clear_subject_is_declined():
    from app.backends import BackendDeclined, EditRequest, get_backend

    with pytest.raises(BackendDeclined) as info:
        get_backend("local").edit(EditRequest(instruction="remove the background", image=_scene_without_subject()))
    assert "one clear subject" in info.value.message and "I understood" in info.value.message
