"""The offline ``local`` backend, through its public interface.

Every operation is tried with several phrasings, and the resulting pixels are
checked. Images are synthetic (built here with numpy/Pillow), except for
face detection, which needs a real face and uses the shared evaluation photo
when it is present.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.backends import BackendDeclined, EditRequest, get_backend

SHARED_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "eval" / "images"


# ---------------------------------------------------------------- helpers


def photo(w: int = 160, h: int = 120, seed: int = 0) -> Image.Image:
    """A colourful, textured RGB test picture (gradients, shapes, noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.dstack([60 + 150 * x / w, 50 + 140 * y / h, 170 - 100 * x / w])
    base += rng.normal(0, 12, base.shape)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    draw.ellipse((w * 0.2, h * 0.2, w * 0.5, h * 0.6), fill=(220, 40, 40))
    draw.rectangle((w * 0.6, h * 0.3, w * 0.9, h * 0.8), fill=(30, 160, 60))
    draw.line((0, h - 1, w - 1, 0), fill=(250, 250, 250), width=3)
    return im


def subject_on_background(size: int = 128) -> Image.Image:
    """A red disc (the subject) in the middle of a textured green-gray backdrop."""
    rng = np.random.default_rng(1)
    bg = np.clip(rng.normal((90, 140, 100), 10, (size, size, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(bg)
    r = size * 0.28
    c = size / 2
    ImageDraw.Draw(im).ellipse((c - r, c - r, c + r, c + r), fill=(210, 30, 40))
    return im


def edit(instruction: str, image: Image.Image | None = None, mask: Image.Image | None = None, size: str | None = None):
    return get_backend("local").edit(EditRequest(instruction=instruction, image=image, mask=mask, size=size))


def arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB")).astype(np.int16)


def luma(a: np.ndarray) -> np.ndarray:
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def lap_var(a: np.ndarray) -> float:
    g = luma(a)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def sat(a: np.ndarray) -> float:
    mx, mn = a.max(axis=2).astype(float), a.min(axis=2).astype(float)
    return float(np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0).mean())


def declined(instruction: str, image: Image.Image | None = None, mask: Image.Image | None = None) -> str:
    with pytest.raises(BackendDeclined) as info:
        edit(instruction, image, mask)
    return info.value.message


IMG = photo()
IN = arr(IMG)


def test_backend_flags():
    b = get_backend("local")
    assert b.name == "local"
    assert (b.can_generate, b.accepts_mask, b.accepts_references) == (True, True, True)


# ---------------------------------------------------------------- tone


@pytest.mark.parametrize("instruction", [
    "make it black and white", "convert it to grayscale", "desaturate it completely", "make the photo monochrome",
    "please turn it into a greyscale image", "remove all colour",
])
def test_grayscale(instruction):
    out = arr(edit(instruction, IMG).image)
    assert out.shape == IN.shape
    assert (out.max(axis=2) - out.min(axis=2)).max() == 0
    assert np.abs(luma(out) - luma(IN)).mean() < 1.0


@pytest.mark.parametrize("instruction", ["give it a sepia tone", "apply a sepia filter", "sepia please"])
def test_sepia_is_a_tint_of_luminance(instruction):
    out = arr(edit(instruction, IMG).image)
    r, g, b = (out[..., i].mean() for i in range(3))
    assert r > g + 5 and g > b + 5
    lum = luma(out).ravel()
    design = np.vstack([lum, np.ones_like(lum)]).T
    for i in range(3):
        ch = out[..., i].ravel().astype(float)
        fit = design @ np.linalg.lstsq(design, ch, rcond=None)[0]
        assert 1 - ((ch - fit) ** 2).sum() / ((ch - ch.mean()) ** 2).sum() > 0.99
    assert np.corrcoef(luma(out).ravel(), luma(IN).ravel())[0, 1] > 0.95


@pytest.mark.parametrize("instruction", ["invert the colors", "make it a negative", "invert it"])
def test_invert(instruction):
    assert np.array_equal(arr(edit(instruction, IMG).image), 255 - IN)


@pytest.mark.parametrize("instruction,sign", [
    ("make it brighter", 1), ("brighten the picture", 1), ("increase the brightness", 1), ("it's too dark", 1),
    ("make the photo darker", -1), ("darken it", -1), ("reduce the brightness", -1),
])
def test_brightness(instruction, sign):
    d = luma(arr(edit(instruction, IMG).image)).mean() - luma(IN).mean()
    assert d * sign >= 8


def test_strength_words_scale_the_effect():
    slight = luma(arr(edit("make it slightly brighter", IMG).image)).mean()
    normal = luma(arr(edit("make it brighter", IMG).image)).mean()
    much = luma(arr(edit("make it much brighter", IMG).image)).mean()
    pct = luma(arr(edit("increase the brightness by 50%", IMG).image)).mean()
    assert luma(IN).mean() < slight < normal < much
    assert pct > normal


@pytest.mark.parametrize("instruction,up", [
    ("increase the contrast", True), ("boost the contrast", True), ("more contrast", True),
    ("lower the contrast", False), ("reduce contrast a bit", False), ("make it look washed out", False),
])
def test_contrast(instruction, up):
    ratio = luma(arr(edit(instruction, IMG).image)).std() / luma(IN).std()
    assert ratio >= 1.1 if up else ratio <= 0.9


@pytest.mark.parametrize("instruction,up", [
    ("make the colors more vivid", True), ("make the colours pop", True), ("boost the saturation", True),
    ("make the colors less saturated", False), ("mute the colours", False), ("desaturate it slightly", False),
])
def test_saturation(instruction, up):
    out = arr(edit(instruction, IMG).image)
    ratio = sat(out) / sat(IN)
    if up:
        assert ratio >= 1.15
    else:
        assert ratio <= 0.85
        assert (out.max(axis=2) - out.min(axis=2)).mean() > 8  # never all the way to gray


@pytest.mark.parametrize("instruction,sign", [
    ("make it warmer", 1), ("warm it up", 1), ("give it a golden hour look", 1),
    ("give it a cooler, bluer tone", -1), ("cool it down", -1), ("make it colder", -1),
])
def test_warmth(instruction, sign):
    out = arr(edit(instruction, IMG).image)
    d = (out[..., 0].mean() - out[..., 2].mean()) - (IN[..., 0].mean() - IN[..., 2].mean())
    assert d * sign >= 5


@pytest.mark.parametrize("instruction,channel", [("give it a red tint", 0), ("tint it green", 1), ("add a blue tint", 2)])
def test_tint(instruction, channel):
    out = arr(edit(instruction, IMG).image)
    share_out = out[..., channel].mean() / out.mean()
    assert share_out > IN[..., channel].mean() / IN.mean() + 0.05


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("instruction,k", [
    ("rotate it 90 degrees clockwise", -1), ("rotate right", -1), ("turn it 90° to the right", -1),
    ("rotate it 90 degrees counter-clockwise", 1), ("rotate left", 1), ("rotate by -90", 1),
    ("rotate it 180 degrees", 2), ("turn it upside down", 2), ("rotate 270 degrees clockwise", 1),
])
def test_rotate_exact(instruction, k):
    assert np.array_equal(arr(edit(instruction, IMG).image), np.rot90(IN, k))


def test_rotate_other_angle_expands_canvas():
    out = edit("rotate it 30 degrees", IMG).image
    assert out.width > IMG.width and out.height > IMG.height
    assert arr(out)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("instruction,axis", [
    ("mirror the image horizontally", 1), ("flip it left to right", 1), ("mirror it", 1),
    ("flip it vertically", 0), ("flip it upside down", 0), ("flip top to bottom", 0),
])
def test_flip(instruction, axis):
    assert np.array_equal(arr(edit(instruction, IMG).image), np.flip(IN, axis=axis))


@pytest.mark.parametrize("instruction,ratio", [
    ("crop it to a square", 1.0), ("make it square", 1.0), ("crop to 16:9", 16 / 9),
    ("crop it to 4:3 aspect ratio", 4 / 3), ("crop to portrait", 3 / 4), ("make it 1:2", 0.5),
])
def test_crop_aspect_is_centred(instruction, ratio):
    out = arr(edit(instruction, IMG).image)
    h, w = out.shape[:2]
    assert abs(w / h - ratio) < 0.02 and w <= IN.shape[1] and h <= IN.shape[0]
    y0, x0 = (IN.shape[0] - h) // 2, (IN.shape[1] - w) // 2
    assert np.array_equal(out, IN[y0:y0 + h, x0:x0 + w])


@pytest.mark.parametrize("instruction,size", [
    ("resize it to 80 pixels wide", (80, 60)), ("make it 60px tall", (80, 60)), ("resize to 64x48", (64, 48)),
    ("scale it down by 50%", (80, 60)), ("make it half the size", (80, 60)), ("double the size", (320, 240)),
    ("scale it up 1.5x", (240, 180)), ("shrink it to 25%", (40, 30)), ("make it 50% bigger", (240, 180)),
])
def test_resize(instruction, size):
    assert edit(instruction, IMG).image.size == size


def test_crop_pixels_and_trim():
    assert edit("crop to 100x50", IMG).image.size == (100, 50)
    assert edit("trim 10 pixels from each side", IMG).image.size == (140, 100)
    declined("crop to 1000x1000", IMG)


@pytest.mark.parametrize("instruction,color,width", [
    ("add a 10 pixel red border", (255, 0, 0), 10),
    ("put a 5px black frame around it", (0, 0, 0), 5),
    ("add a thin navy blue border of 3 px", (0, 0, 128), 3),
    ("add a #00ff00 border, 4 pixels wide", (0, 255, 0), 4),
])
def test_border(instruction, color, width):
    out = arr(edit(instruction, IMG).image)
    assert out.shape == (IN.shape[0] + 2 * width, IN.shape[1] + 2 * width, 3)
    ring = np.concatenate([out[:width].reshape(-1, 3), out[-width:].reshape(-1, 3),
                           out[:, :width].reshape(-1, 3), out[:, -width:].reshape(-1, 3)])
    assert (ring == color).all()
    assert np.array_equal(out[width:-width, width:-width], IN)


def test_border_thickness_words():
    thin = edit("add a thin white border", IMG).image.width
    thick = edit("add a thick white border", IMG).image.width
    assert IMG.width < thin < thick


# ---------------------------------------------------------------- text


def _changed_rows(out: np.ndarray) -> np.ndarray:
    return np.abs(out - IN).max(axis=(1, 2)) > 0


@pytest.mark.parametrize("instruction,where", [
    ("add the text 'HELLO WORLD' at the top in white", "top"),
    ("write 'Fresh Coffee' at the bottom", "bottom"),
    ("add the caption 'Grüße aus München'", "bottom"),
    ("put “Привет мир” in the middle", "center"),
    ('at the top, write "Καλημέρα"', "top"),
])
def test_text_position(instruction, where):
    out = arr(edit(instruction, IMG).image)
    rows = _changed_rows(out)
    h = IN.shape[0]
    top, middle, bottom = rows[: h // 3].any(), rows[h // 3: 2 * h // 3].any(), rows[2 * h // 3:].any()
    assert {"top": (True, False, False), "bottom": (False, False, True), "center": (False, True, False)}[where] == (top, middle, bottom)


def test_text_colour_and_legibility_aids():
    out = arr(edit("add 'SALE' in big red letters at the bottom", IMG).image)
    red = (out[..., 0] > 200) & (out[..., 1] < 40) & (out[..., 2] < 40)
    assert red[IN.shape[0] // 2:].sum() > 50 and red[: IN.shape[0] // 3].sum() == 0
    # mid-tone text gets a light band behind it, so it reads on any photo
    assert luma(out[-20:]).mean() > luma(IN[-20:]).mean() + 30
    white = arr(edit("add the text 'HI' at the top", IMG).image)
    new_black = (white.max(axis=2) < 30) & (IN.max(axis=2) >= 30)
    new_white = (white.min(axis=2) == 255) & (IN.min(axis=2) < 255)
    darker_band = luma(white[:20]).mean() < luma(IN[:20]).mean() - 20
    assert new_white.sum() > 20 and (new_black.sum() > 20 or darker_band)  # white letters, dark outline or band


def test_meme_top_and_bottom():
    out = arr(edit("make it a meme with 'WHEN IT IS MONDAY' on top and 'AGAIN' at the bottom", IMG).image)
    rows = _changed_rows(out)
    h = IN.shape[0]
    assert rows[: h // 3].any() and rows[2 * h // 3:].any() and not rows[h // 3 + 5: 2 * h // 3 - 5].any()


def test_text_without_quotes_is_declined_with_hint():
    assert "quotes" in declined("add the text hello at the top", IMG)


# ---------------------------------------------------------------- filters and styles


@pytest.mark.parametrize("instruction", ["blur the image", "make it blurry", "add a strong gaussian blur"])
def test_blur(instruction):
    assert lap_var(arr(edit(instruction, IMG).image)) < 0.5 * lap_var(IN)


def test_blur_strength_and_radius():
    slight = lap_var(arr(edit("blur it slightly", IMG).image))
    heavy = lap_var(arr(edit("blur it heavily", IMG).image))
    assert heavy < slight < lap_var(IN)
    assert lap_var(arr(edit("apply a 6px blur", IMG).image)) < lap_var(arr(edit("apply a 2px blur", IMG).image))


@pytest.mark.parametrize("instruction", ["sharpen it", "make it sharper", "enhance the details"])
def test_sharpen(instruction):
    assert lap_var(arr(edit(instruction, IMG).image)) > 1.2 * lap_var(IN)


@pytest.mark.parametrize("instruction,block", [("pixelate it", 4), ("pixelate it with 8 pixel blocks", 8), ("mosaic effect", 4)])
def test_pixelate(instruction, block):
    out = arr(edit(instruction, IMG).image)
    assert out.shape == IN.shape
    same_h = (np.abs(out[:, 1:] - out[:, :-1]).max(axis=2) == 0).mean()
    same_v = (np.abs(out[1:] - out[:-1]).max(axis=2) == 0).mean()
    assert same_h >= 1 - 1 / block - 0.02 and same_v >= 1 - 1 / block - 0.02


@pytest.mark.parametrize("instruction,min_diff", [
    ("make it look like a pencil sketch", 20), ("turn it into a drawing", 20), ("cartoonify it", 8),
    ("give it a comic book style", 8), ("make it look like an oil painting", 3), ("watercolour painting", 5),
    ("make it look vintage", 20), ("add a vignette", 3), ("posterize it", 5), ("emboss it", 20),
])
def test_styles_change_the_image(instruction, min_diff):
    out = arr(edit(instruction, IMG).image)
    assert out.shape == IN.shape
    assert np.abs(out - IN).mean() >= min_diff


def test_pencil_sketch_is_gray_and_light():
    out = arr(edit("pencil sketch", IMG).image)
    assert (out.max(axis=2) - out.min(axis=2)).max() == 0 and luma(out).mean() > luma(IN).mean()


# ---------------------------------------------------------------- faces and background


@pytest.mark.skipif(not (SHARED_IMAGES / "astronaut.png").is_file(), reason="needs the shared evaluation photo")
@pytest.mark.parametrize("instruction", ["blur the face", "anonymize the people", "pixelate the faces"])
def test_faces_only_inside_face_box(instruction):
    im = Image.open(SHARED_IMAGES / "astronaut.png").convert("RGB")
    src = arr(im)
    out = arr(edit(instruction, im).image)
    face = (slice(66, 161), slice(177, 272))
    if "pixelate" in instruction:
        same = (np.abs(out[face][:, 1:] - out[face][:, :-1]).max(axis=2) == 0).mean()
        assert same > 0.8
    else:
        assert lap_var(out[face]) < 0.3 * lap_var(src[face])
    keep = np.ones(src.shape[:2], bool)
    keep[30:200, 140:310] = False
    assert (np.abs(out - src).max(axis=2)[keep] == 0).all()


def test_faces_declined_when_none_found():
    assert "face" in declined("blur the faces", IMG)


def test_remove_background_white_and_transparent():
    im = subject_on_background()
    out = arr(edit("remove the background", im).image)
    assert (out[:6, :6] == 255).all() and (out[-6:, -6:] >= 250).all()
    assert np.abs(out[64, 64] - (210, 30, 40)).max() < 20
    res = edit("make the background transparent", im).image
    assert res.mode == "RGBA"
    alpha = np.asarray(res)[..., 3]
    assert alpha[0, 0] == 0 and alpha[64, 64] == 255


def test_background_colour_and_blur():
    im = subject_on_background()
    out = arr(edit("replace the background with blue", im).image)
    assert out[2, 2].tolist() == [0, 0, 255]
    blurred = arr(edit("blur the background", im).image)
    assert lap_var(blurred[:20, :20]) < 0.5 * lap_var(arr(im)[:20, :20])


# ---------------------------------------------------------------- masks


def _mask(w: int = 160, h: int = 120) -> Image.Image:
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).rectangle((40, 30, 100, 80), fill=255)
    return m


@pytest.mark.parametrize("instruction", ["remove this", "erase the selected object", "get rid of the spoon"])
def test_mask_remove_inpaints_inside_only(instruction):
    im = IMG.copy()
    ImageDraw.Draw(im).rectangle((50, 40, 90, 70), fill=(255, 255, 0))
    src = arr(im)
    m = _mask()
    out = arr(edit(instruction, im, m).image)
    inside = np.asarray(m) > 0
    assert (out[~inside] == src[~inside]).all()
    yellow = (out[..., 0] > 230) & (out[..., 1] > 230) & (out[..., 2] < 40)
    assert yellow.sum() < 20


@pytest.mark.parametrize("instruction,check", [
    ("make this area black and white", "gray"), ("blur the selected part", "blur"), ("pixelate this region", "changed"),
    ("fill the selection with white", "white"), ("brighten the selected area", "changed"),
])
def test_mask_ops_stay_inside(instruction, check):
    m = _mask()
    out = arr(edit(instruction, IMG, m).image)
    inside = np.asarray(m) > 0
    assert (out[~inside] == IN[~inside]).all()
    region = out[inside]
    if check == "gray":
        assert (region.max(axis=1) - region.min(axis=1)).max() == 0
    elif check == "white":
        assert (region == 255).all()
    else:
        assert np.abs(region - IN[inside]).mean() > 2


@pytest.mark.parametrize("instruction", ["rotate it 90 degrees", "crop it to a square", "flip it", "add a red border", "resize to 50 pixels wide"])
def test_geometry_declined_with_mask(instruction):
    assert "selected area" in declined(instruction, IMG, _mask())


def test_region_words_without_mask_are_declined():
    assert "select" in declined("remove this", IMG).lower()
    assert "selected" in declined("make this area black and white", IMG)


def test_rgba_input_keeps_alpha():
    rgba = IMG.convert("RGBA")
    a = np.asarray(rgba).copy()
    a[:10, :, 3] = 0
    rgba = Image.fromarray(a, "RGBA")
    out = edit("make it black and white and rotate it 180 degrees", rgba).image
    assert out.mode == "RGBA"
    assert (np.asarray(out)[-10:, :, 3] == 0).all() and (np.asarray(out)[:-10, :, 3] == 255).all()
    assert edit("invert it", IMG).image.mode == "RGB"


# ---------------------------------------------------------------- several operations


def test_operations_apply_in_order():
    out = arr(edit("crop to a square, flip it horizontally and add a 4 pixel red border", IMG).image)
    square = IN[:, 20:140]
    expected = np.full((128, 128, 3), (255, 0, 0), np.int16)
    expected[4:-4, 4:-4] = square[:, ::-1]
    assert np.array_equal(out, expected)


def test_gray_then_rotate_and_message():
    res = edit("convert it to grayscale, then rotate it 180 degrees", IMG)
    out = arr(res.image)
    assert (out.max(axis=2) == out.min(axis=2)).all()
    assert np.abs(luma(out) - np.rot90(luma(IN), 2)).mean() < 1
    assert "black and white" in res.message and "180" in res.message


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("instruction,size,color", [
    ("a solid red square image, 64 by 64 pixels", (64, 64), (255, 0, 0)),
    ("a 200x100 image with a navy background", (200, 100), (0, 0, 128)),
    ("create a light blue canvas 90x40", (90, 40), (173, 216, 230)),
    ("a square with a pink background", (1024, 1024), (255, 192, 203)),
])
def test_generate_solid(instruction, size, color):
    im = edit(instruction).image
    assert im.size == size
    assert (arr(im) == color).all()


@pytest.mark.parametrize("instruction,direction,start,end", [
    ("a horizontal gradient from red to blue, 200x100", "h", (255, 0, 0), (0, 0, 255)),
    ("a vertical gradient from navy to white, 100x200", "v", (0, 0, 128), (255, 255, 255)),
    ("100x100 gradient background fading from black to yellow", "h", (0, 0, 0), (255, 255, 0)),
])
def test_generate_gradient(instruction, direction, start, end):
    out = arr(edit(instruction).image)
    first, last = (out[:, 0], out[:, -1]) if direction == "h" else (out[0], out[-1])
    assert (first == start).all() and (last == end).all()


def test_generate_poster_with_text():
    im = edit("a 400x300 poster with a blue background and the title 'SUMMER SALE' in white").image
    out = arr(im)
    assert im.size == (400, 300)
    assert ((out == (0, 0, 255)).all(axis=2)).mean() > 0.8
    assert ((out == 255).all(axis=2)).sum() > 200


def test_generate_uses_request_size_and_declines_nothing_to_draw():
    assert edit("a green background", size="300x200").image.size == (300, 200)
    declined("a poster")


# ---------------------------------------------------------------- declines


@pytest.mark.parametrize("instruction", [
    "add a dragon flying over the launch pad", "make the sky bluer", "put a hat on the cat",
    "make it black and white and add a dragon", "don't make it brighter", "rotate it",
    "replace the background with a beach", "remove the person on the left",
])
def test_declines_whole_instruction(instruction):
    message = declined(instruction, IMG)
    assert "Nothing was changed" in message and "instead" in message


def test_decline_message_is_helpful():
    message = declined("make it black and white and add a dragon", IMG)
    assert "I understood: converted to black and white" in message
    assert "dragon" in message and "OpenAI key" in message and "backend" not in message


@pytest.mark.parametrize("instruction", [
    "a photorealistic portrait of a cyberpunk woman with blue LED tattoos under neon rain", "a cat sitting on a sofa",
])
def test_generate_declines_subjects(instruction):
    assert "OpenAI key" in declined(instruction)


# ---------------------------------------------------------------- command line


def test_cli_edit_and_decline(tmp_path):
    src = tmp_path / "in.png"
    IMG.save(src)
    out = tmp_path / "out.png"
    cmd = [sys.executable, "-m", "app.cli", "edit", "--backend", "local", "--input", str(src), "--output", str(out)]
    ok = subprocess.run(cmd + ["--instruction", "flip it vertically"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert np.array_equal(arr(Image.open(out)), IN[::-1])
    out.unlink()
    no = subprocess.run(cmd + ["--instruction", "add a unicorn"], capture_output=True, text=True, timeout=60)
    assert no.returncode == 3 and not out.exists() and "unicorn" in no.stderr


def test_generated_canvas_keeps_its_size_with_border():
    im = edit("a 120x80 navy image with a 5 pixel white border").image
    out = arr(im)
    assert im.size == (120, 80)
    assert (out[:5] == 255).all() and (out[40, 60] == (0, 0, 128)).all()


def test_text_with_mask_goes_inside_selection():
    m = _mask()
    out = arr(edit("write 'OK' here", IMG, m).image)
    inside = np.asarray(m) > 0
    assert (out[~inside] == IN[~inside]).all() and np.abs(out[inside] - IN[inside]).mean() > 5


@pytest.mark.parametrize("instruction", ["add a mirror", "make it look cool", "soften the edges", "increase the size of the text"])
def test_ambiguous_phrases_are_declined_not_guessed(instruction):
    declined(instruction, IMG)
