"""Property-based tests of the offline ``local`` backend (hypothesis).

Instead of listing sentences, these draw values (ratios, angles, sizes,
percentages, border widths, quoted text) and set them inside sentence frames
with filler words, politeness, purposes ("for a story") and orientation
words. The property is always the same: the result matches what was asked,
or the turn is declined. Never another edit.

Runs are derandomized, so a failure repeats; the OCR property keeps its
example count small because tesseract is slow.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.backends import BackendDeclined, EditRequest, get_backend
from app.backends.local.fonts import font_for
from app.backends.local.parser import ParseFailure, parse_instruction
from app.backends.local.registry import EDIT, GENERATE
from tests.test_local_phrasings import CASES

def props(examples: int) -> settings:
    """Derandomized settings with ``examples`` examples and no deadline."""
    return settings(derandomize=True, deadline=None, database=None, max_examples=examples,
                    suppress_health_check=[HealthCheck.too_slow])
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty", "twenty one"]


def _word(n: int) -> str:
    """English words for 0..999 ("two hundred and seventy")."""
    if n < len(WORDS):
        return WORDS[n]
    tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    if n < 100:
        return tens[n // 10] + ("" if n % 10 == 0 else " " + WORDS[n % 10])
    rest = n % 100
    return WORDS[n // 100] + " hundred" + ("" if rest == 0 else " and " + _word(rest))


def _image(w: int, h: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    a = np.dstack([(x * 255 // max(1, w - 1)), (y * 255 // max(1, h - 1)), np.full((h, w), 120)]).astype(np.uint8)
    return Image.fromarray(a)


def _edit(instruction: str, image: Image.Image | None):
    """The result image and message, or None when the turn was declined."""
    try:
        r = get_backend("local").edit(EditRequest(instruction=instruction, image=image))
    except BackendDeclined:
        return None
    return r


def _plan(instruction: str, mode: str = EDIT, has_mask: bool = False):
    try:
        return parse_instruction(instruction, mode=mode, has_mask=has_mask)
    except ParseFailure:
        return None


# ------------------------------------------------------------------ ratios

RATIO_FRAMES = [
    "crop it to {r}{purpose}",
    "crop the photo to {r}{purpose}",
    "{polite}crop this to a {r} aspect ratio{purpose}",
    "could you crop it to {r} {orient}{purpose}?",
    "crop to an aspect ratio of {r}{purpose}",
    "I need a {r} {orient} crop{purpose}, please",
    "make it {r} by cropping{purpose}",
    "reframe it as {r}{purpose}",
    "crop the image to {r} {orient} please",
    "{r} crop{purpose}",
    "{polite}trim it to {r}{purpose}",
    "crop the picture down to {r}, thanks",
]
PURPOSES = ["", " for a story", " for print", " for my instagram post", " for the web", " for a reel",
            " for my phone wallpaper", " for a youtube thumbnail"]
ORIENTS = ["", "landscape", "portrait", "square", "vertical", "horizontal"]
POLITE = ["", "please ", "could you ", "hey, ", "kindly "]


def _ratio_text(a: int, b: int, style: int) -> str:
    return [f"{a}:{b}", f"{a} by {b}", f"{a}x{b}", f"{_word(a)} by {_word(b)}", f"{a} : {b}"][style]


def _within_one_pixel(w: int, h: int, a: float, b: float) -> bool:
    return min(abs(w - h * a / b), abs(h - w * b / a)) <= 1.0 + 1e-9


@props(250)
@given(a=st.integers(1, 21), b=st.integers(1, 21), frame=st.sampled_from(RATIO_FRAMES),
       style=st.integers(0, 4), purpose=st.sampled_from(PURPOSES), orient=st.sampled_from(ORIENTS),
       polite=st.sampled_from(POLITE), w=st.integers(40, 320), h=st.integers(40, 320))
def test_ratio_crop_is_the_ratio_or_declined(a, b, frame, style, purpose, orient, polite, w, h):
    instruction = frame.format(r=_ratio_text(a, b, style), purpose=purpose, orient=orient, polite=polite)
    instruction = re.sub(r"\s+", " ", instruction).replace(" ,", ",").replace(" ?", "?")
    result = _edit(instruction, _image(w, h))
    if result is None:
        return
    ow, oh = result.image.size
    assert ow <= w and oh <= h, instruction
    assert _within_one_pixel(ow, oh, a, b), f"{instruction!r}: {w}x{h} -> {ow}x{oh}, not {a}:{b}"


@props(60)
@given(a=st.integers(1, 21), b=st.integers(1, 21), style=st.integers(0, 4),
       frame=st.sampled_from(["crop it to {r}", "crop the photo to {r} please", "could you crop this to a {r} ratio?",
                              "crop to {r} for print", "I'd like a {r} crop, thanks"]))
def test_plain_ratio_crops_are_done(a, b, style, frame):
    """Liveness: a ratio said plainly is cropped, not declined."""
    assume(max(a, b) / min(a, b) <= 8)
    instruction = frame.format(r=_ratio_text(a, b, style))
    result = _edit(instruction, _image(300, 200))
    assert result is not None, instruction
    assert _within_one_pixel(*result.image.size, a, b)


@pytest.mark.parametrize("instruction", [
    "crop to 3:2 portrait", "crop it to 16:9 for a story", "crop to 4:5 square", "crop to 16:9 and then to 4:3",
    "crop to 9:16 landscape",
])
def test_ratio_and_words_that_disagree_are_declined_saying_what_was_understood(instruction):
    with pytest.raises(BackendDeclined) as info:
        get_backend("local").edit(EditRequest(instruction=instruction, image=_image(200, 150)))
    assert "Nothing was changed" in info.value.message


# ------------------------------------------------------------------ angles

ANGLE_FRAMES = [
    "rotate it {n} degrees{d}", "rotate by {n}°{d}", "turn the photo {n} degrees{d}", "{polite}rotate the image {n} degrees{d}",
    "could you rotate it by {n} degrees{d}, please?", "spin it {n} degrees{d}", "rotate {n} deg{d}",
    "rotate it {n} degrees{d} thanks",
]
DIRECTIONS = {"": 1, " clockwise": 1, " cw": 1, " to the right": 1, " counterclockwise": -1, " counter-clockwise": -1,
              " anticlockwise": -1, " to the left": -1, " ccw": -1}


def _angle_from_message(message: str) -> float | None:
    m = re.search(r"rotated (\d+(?:\.\d+)?)°(?: (counter-clockwise|clockwise))?", message, re.I)
    if not m:
        return None
    a = float(m.group(1))
    return (-a if m.group(2) == "counter-clockwise" else a) % 360


@props(150)
@given(n=st.integers(1, 359), frame=st.sampled_from(ANGLE_FRAMES), d=st.sampled_from(sorted(DIRECTIONS)),
       words=st.booleans(), polite=st.sampled_from(POLITE), w=st.integers(30, 200), h=st.integers(30, 200))
def test_rotation_is_the_angle_or_declined(n, frame, d, words, polite, w, h):
    instruction = frame.format(n=_word(n) if words else n, d=d, polite=polite)
    result = _edit(instruction, _image(w, h))
    if result is None:
        return
    cw = (n * DIRECTIONS[d]) % 360
    want = Image.new("L", (w, h)).rotate(-cw, expand=True).size if cw % 90 else ((h, w) if cw % 180 else (w, h))
    assert result.image.size == want, f"{instruction!r}: {result.image.size} != {want}"
    assert _angle_from_message(result.message) == cw, f"{instruction!r}: {result.message}"


# ------------------------------------------------------------ resize targets


@props(120)
@given(tw=st.integers(1, 900), th=st.integers(1, 900), p=st.integers(1, 300), kind=st.integers(0, 6),
       polite=st.sampled_from(POLITE), w=st.integers(20, 300), h=st.integers(20, 300))
def test_resize_hits_the_target_or_declines(tw, th, p, kind, polite, w, h):
    instruction, check = [
        (f"{polite}resize it to {tw} pixels wide", lambda ow, oh: ow == tw and abs(oh - h * tw / w) <= 1),
        (f"{polite}resize to {tw}x{th}", lambda ow, oh: (ow, oh) == (tw, th)),
        (f"make it {tw} by {th} pixels{', please' if polite else ''}", lambda ow, oh: (ow, oh) == (tw, th)),
        (f"{polite}resize it to a height of {th} px", lambda ow, oh: oh == th and abs(ow - w * th / h) <= 1),
        (f"{polite}scale it to {p}%", lambda ow, oh: abs(ow - w * p / 100) <= 1 and abs(oh - h * p / 100) <= 1),
        (f"scale it down by {min(p, 99)}%",
         lambda ow, oh: abs(ow - w * (1 - min(p, 99) / 100)) <= 1 and abs(oh - h * (1 - min(p, 99) / 100)) <= 1),
        (f"{polite}resize the photo to {tw} px tall", lambda ow, oh: oh == tw and abs(ow - w * tw / h) <= 1),
    ][kind]
    result = _edit(instruction, _image(w, h))
    if result is None:
        return
    assert check(*result.image.size), f"{instruction!r}: {w}x{h} -> {result.image.size}"


# ------------------------------------------------------------- percentages


@props(100)
@given(p=st.integers(1, 120), kind=st.integers(0, 2), w=st.integers(40, 300), h=st.integers(40, 300))
def test_percent_crops_match_or_decline(p, kind, w, h):
    instruction = [f"trim {p}% from each side", f"crop to the centre {p}%", f"crop {p}% off the left"][kind]
    result = _edit(instruction, _image(w, h))
    if result is None:
        return
    ow, oh = result.image.size
    if kind == 0:
        assert (ow, oh) == (w - 2 * round(w * p / 100), h - 2 * round(h * p / 100)), instruction
    elif kind == 1:
        assert abs(ow - w * p / 100) <= 1 and abs(oh - h * p / 100) <= 1, instruction
    else:
        assert oh == h and ow == w - round(w * p / 100), instruction


@props(100)
@given(p=st.integers(1, 100), op=st.sampled_from([
    ("increase the brightness by {p}%", "brightness"), ("boost the contrast by {p}%", "contrast"),
    ("increase saturation by {p}%", "saturation"), ("make it {p}% darker", "brightness"),
    ("reduce the contrast by {p}%", "contrast"), ("warm it up by {p}%", "warmth")]),
       polite=st.sampled_from(POLITE))
def test_tone_percentages_are_used_exactly(p, op, polite):
    template, name = op
    plan = _plan(polite + template.format(p=p))
    if plan is None:
        return
    [step] = [s for s in plan.steps if s.op.name == name]
    assert step.params.get("percent") == p


# ----------------------------------------------------------- border widths

BORDER_FRAMES = ["add a {n} px {c} border", "put a {c} border of {n} pixels around it", "{n}px {c} frame",
                 "surround it with a {n} pixel {c} border", "{polite}add a {c} border, {n} px wide",
                 "could you add a {n} pixel {c} frame please"]
BORDER_COLORS = {"red": (255, 0, 0), "white": (255, 255, 255), "black": (0, 0, 0), "blue": (0, 0, 255)}


@props(100)
@given(n=st.integers(1, 60), frame=st.sampled_from(BORDER_FRAMES), c=st.sampled_from(sorted(BORDER_COLORS)),
       words=st.booleans(), polite=st.sampled_from(POLITE), w=st.integers(20, 200), h=st.integers(20, 200))
def test_border_width_is_exact_or_declined(n, frame, c, words, polite, w, h):
    instruction = frame.format(n=_word(n) if words else n, c=c, polite=polite)
    result = _edit(instruction, _image(w, h))
    if result is None:
        return
    assert result.image.size == (w + 2 * n, h + 2 * n), f"{instruction!r}: {result.image.size}"
    a = np.asarray(result.image.convert("RGB"))
    assert (a[:n, :] == BORDER_COLORS[c]).all() and (a[:, -n:] == BORDER_COLORS[c]).all()


def test_a_number_left_unused_is_declined():
    for instruction in ("add a 10 px border 20", "rotate it 90 degrees 45", "crop to 16:9 3"):
        with pytest.raises(BackendDeclined):
            get_backend("local").edit(EditRequest(instruction=instruction, image=_image(100, 80)))


# ---------------------------------------------------------------- quotes

LATIN_WORDS = ["Joe's", "Café", "Müller", "l'été", "Don't", "naïve", "Straße", "Olá", "São", "Crème", "brûlée",
               "Anna's", "O'Neil", "Zoë", "Ça", "va", "Hello", "Bäckerei", "rock'n'roll", "Señor"]
#: Words the installed OCR models (English, French, German) can read back.
OCR_WORDS = [w for w in LATIN_WORDS if not set(w) & set("áãñ")]
OTHER_SCRIPTS = ["Καλημέρα", "Привет", "你好", "مرحبا", "שלום", "नमस्ते", "こんにちは", "안녕"]
QUOTE_STYLES = ['"{}"', "“{}”", "'{}'", "‘{}’", "„{}“", "«{}»"]
TEXT_FRAMES = ["add the text {q} at the top", "add a sign that says {q} at the top", "put a caption reading {q} at the top",
               "write {q} at the top", "add a banner at the top with the words {q}", "add a title at the top: {q}"]


@props(200)
@given(words=st.lists(st.sampled_from(LATIN_WORDS + OTHER_SCRIPTS), min_size=1, max_size=3),
       quote=st.sampled_from(QUOTE_STYLES), frame=st.sampled_from(TEXT_FRAMES), polite=st.sampled_from(POLITE))
def test_quoted_text_is_kept_exactly_in_the_plan(words, quote, frame, polite):
    text = " ".join(words)
    # a straight single quote cannot close right after an apostrophe-word boundary ambiguity: skip "'s'" endings
    assume(not (quote == "'{}'" and text.endswith("'")))
    plan = _plan(polite + frame.format(q=quote.format(text)))
    if font_for(text) is None:  # no installed font draws it: declined, saying so
        assert plan is None
        return
    assert plan is not None
    texts = [s.params["text"] for s in plan.steps if s.op.name == "text"]
    assert texts == [text], (texts, text)


def _ocr(im: Image.Image) -> list[str]:
    """Tesseract's readings of one line of text, with several language
    models and scales (accents are read differently by each)."""
    readings = []
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.png"
        g = im.convert("L")
        for scale in (1, 2):
            g.resize((g.width * scale, g.height * scale), Image.Resampling.LANCZOS).save(p)
            for lang in ("fra+deu+eng", "fra", "deu", "eng"):
                out = subprocess.run(["tesseract", str(p), "-", "-l", lang, "--psm", "7"],
                                     capture_output=True, text=True, timeout=60)
                readings.append(out.stdout)
    return readings


def _norm(s: str) -> str:
    return re.sub(r"[^\w]", "", unicodedata.normalize("NFC", s).lower())


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract for OCR")
@props(6)
@given(words=st.lists(st.sampled_from(OCR_WORDS), min_size=1, max_size=2), quote=st.sampled_from(QUOTE_STYLES),
       frame=st.sampled_from(TEXT_FRAMES))
def test_ocr_reads_the_quote_or_the_turn_is_declined(words, quote, frame):
    text = " ".join(words)
    assume(not (quote == "'{}'" and text.endswith("'")))
    instruction = frame.format(q=quote.format(text)).replace(" at the top", " in black at the top")
    result = _edit(instruction, Image.new("RGB", (900, 300), (255, 255, 255)))
    if result is None:
        return
    readings = _ocr(result.image.crop((0, 0, 900, 150)))
    assert any(_norm(r) == _norm(text) for r in readings), (instruction, readings)


@props(16)
@given(word=st.sampled_from(OTHER_SCRIPTS), quote=st.sampled_from(QUOTE_STYLES))
def test_other_scripts_are_drawn_with_real_glyphs_or_declined(word, quote):
    """OCR here reads Latin scripts only; for others the drawn text must come
    from a font with a glyph for every character (no missing-glyph boxes)."""
    result = _edit(f"add the text {quote.format(word)} in black at the top", Image.new("RGB", (600, 200), "white"))
    if result is None:
        return
    assert font_for(word) is not None
    ink = np.asarray(result.image.convert("L")) < 128
    assert ink[:100].any() and not ink[120:].any()


# --------------------------------------------------------------- politeness

PREFIXES = ["", "please ", "could you ", "could you please ", "would you ", "can you ", "kindly ", "hey, ", "hi! "]
SUFFIXES = ["", " please", ", thanks", " thank you!", ", cheers", " please?", ". Thanks!"]


@props(300)
@given(case=st.sampled_from(CASES), prefix=st.sampled_from(PREFIXES), suffix=st.sampled_from(SUFFIXES))
def test_politeness_does_not_change_the_plan(case, prefix, suffix):
    mode = GENERATE if case.image is None and not case.photo else EDIT
    has_mask = case.mask is not None

    def plan_of(text: str):
        try:
            p = parse_instruction(text, mode=mode, has_mask=has_mask, references=len(case.refs))
        except ParseFailure as f:
            return ("declined", f.reason or f.unknown)
        return [(s.op.name, sorted((k, repr(v)) for k, v in s.params.items())) for s in p.steps]

    plain = plan_of(case.phrase)
    polite = plan_of(prefix + case.phrase + suffix)
    assert polite == plain, (prefix + case.phrase + suffix)


# ------------------------------------------------------------ harmless words

@pytest.mark.parametrize("instruction,op", [
    ("darken it down a bit", "brightness"), ("brighten it up", "brightness"), ("tone it down", None),
    ("draw it as a pencil sketch", "sketch"), ("render it as an oil painting", "oil_painting"),
    ("make it look like a watercolour", "watercolor"), ("paint it as a cartoon", "cartoon"),
    ("redo it in the style of stained glass", "neural_style"), ("blur it out", "blur"),
])
def test_harmless_words_do_not_cause_a_decline(instruction, op):
    plan = _plan(instruction)
    if op is None:
        return
    assert plan is not None and [s.op.name for s in plan.steps] == [op]


@pytest.mark.parametrize("instruction", [
    "draw a cat", "darken the sky", "make it black and white except the red", "crop to 16:9 but keep the top",
    "render a dragon", "rotate it 90 degrees twice",
])
def test_words_that_change_the_plan_cause_a_decline(instruction):
    assert _plan(instruction) is None
