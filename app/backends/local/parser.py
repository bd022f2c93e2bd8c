"""Instruction -> list of :class:`~.registry.Step`.

How it works:

1. :func:`normalize` pulls out quoted text (kept exactly, replaced by
   placeholders ``⟦0⟧``), lower-cases the rest and removes articles and words
   that only name the picture ("the", "it", "image", "photo"...).
2. Every registered operation's phrases are searched; overlapping matches are
   resolved longest-first (ties by ``priority``), then ordered by position.
3. Strength words ("slightly", "a lot", "by 20%") attach to the nearest
   operation that takes a strength; words naming a selection ("this area",
   "the selected part") are noted.
4. Any word left that is not filler ("please", "and", "then"...) makes the
   whole instruction not understood: nothing is done rather than part of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .phrases import NUM, STRENGTH, percent_in, strength_in
from .registry import NotUnderstood, Operation, ParseContext, Step, operations

_QUOTE_RE = re.compile(
    r'"(?P<a>[^"]+)"|“(?P<b>[^”“]+)[”“]|„(?P<c>[^“”]+)[“”]|«\s?(?P<d>[^»]+?)\s?»'
    r"|(?<!\w)'(?P<e>.+?)'(?!\w)|(?<!\w)‘(?P<f>.+?)[’‘](?!\w)|”(?P<g>[^”]+)”"
)
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_NUMWORD = "|".join(sorted([*_UNITS, *_TENS, "hundred", "thousand"], key=len, reverse=True))
_NUMRUN_RE = re.compile(rf"\b(?:{_NUMWORD})(?:(?:\s+and)?\s+(?:{_NUMWORD}))*\b")
#: A lone "one" is only a number before a unit ("one pixel"), not in "the left one".
_ONE_UNIT_RE = re.compile(r"\s*(?:px|pixels?|degrees?|%|percent|x\b|by\b|times\b)")


def _number_values(words: list[str]) -> list[int]:
    """Values of a run of number words ("one hundred and twenty five" -> [125];
    "five ten" -> [5, 10]): a new number starts where the words cannot continue one."""
    values: list[int] = []
    total = current = 0
    last = None  # kind of the previous word: unit, teen, ten, hundred, thousand
    started = False

    def flush() -> None:
        nonlocal total, current, last, started
        if started:
            values.append(total + current)
        total = current = 0
        last = None
        started = False

    for w in words:
        if w == "and":
            continue
        if w in _TENS:
            if last in ("unit", "teen", "ten"):
                flush()
            current += _TENS[w]
            last = "ten"
        elif w in _UNITS:
            v = _UNITS[w]
            if last in ("unit", "teen") or (last == "ten" and v >= 10):
                flush()
            current += v
            last = "teen" if v >= 10 else "unit"
        elif w == "hundred":
            if last == "hundred":
                flush()
            current = max(current, 1) * 100
            last = "hundred"
        else:  # thousand
            if last == "thousand":
                flush()
            total += max(current, 1) * 1000
            current = 0
            last = "thousand"
        started = True
    flush()
    return values


def _numbers_to_digits(t: str) -> str:
    """Write number words as digits: "ninety degrees" -> "90 degrees", "twenty five
    px" -> "25 px", "one hundred and eighty" -> "180"."""

    def repl(m: re.Match[str]) -> str:
        words = m.group(0).split()
        if words == ["one"] and not _ONE_UNIT_RE.match(t, m.end()):
            return m.group(0)
        return " ".join(str(v) for v in _number_values(words))

    return _NUMRUN_RE.sub(repl, t)


_CONTRACTIONS = {
    "that's": "that is", "what's": "what is", "there's": "there is", "here's": "here is", "i've": "i have",
    "i'm": "i am", "you've": "you have", "we'd": "we would", "don't": "do not", "doesn't": "does not",
    "can't": "cannot", "won't": "will not", "isn't": "is not", "aren't": "are not", "let's": "let us",
}
_DROP_WORDS = re.compile(
    r"\b(?:the|a|an|it's|it|its|this|that|these|those|image|photo|photograph|picture|pic|img|"
    r"shot|snapshot|snap|selfie|photos|pictures|images|pics|"
    r"please|pls|kindly|only|just)\b"
)
#: Words that may remain unconsumed without changing the meaning.
FILLER = frozenset(
    """
    can could would will you kindly i i'd id want wanna need like love let's lets let me my we us our
    make made turn give apply do just now and then also plus after afterwards finally next first
    second lastly to of with so for look looks looking effect style filter version tone toned is be
    as too whole entire everything all add adding convert change transform set use put into in on
    some thanks thank okay ok hey hi but get overall should please go have bit little slightly
    create generate produce design empty blank
    color colors tones hues feel feeling vibe mood appearance fix was were been render rendered their
    mind possible possibly maybe perhaps quickly cheers how about am are
    """.split()
)
_REGION_RE = re.compile(
    r"(?<!\w)(?:(?:in|inside|within|on|of|for|to)\s+)?(?:only\s+)?"
    r"(?:(?:selected|masked|marked|highlighted|chosen|painted|circled)\s+)?"
    r"(?:area|part|region|portion|section|spot|zone|selection|object|thing)s?"
    r"(?:\s+(?:i|you)\s+(?:selected|marked|painted|highlighted|circled))?"
    r"|(?<!\w)(?:(?:what|where|bit|part|area|bits|parts|spot|region|stuff|thing)\s+)?(?:that\s+)?(?:i|you)\s+(?:have\s+|just\s+|already\s+)*"
    r"(?:selected|marked|painted|highlighted|circled|brushed|masked|outlined|drew\s+on|drawn\s+on|colored\s+in)(?:\s+(?:over|in|on|out))?(?!\w)"
    r"|(?<!\w)(?:here|selected|only\s+selection|masked|selection)(?!\w)"
)
_STRENGTH_MOD_RE = re.compile(rf"(?<!\w)(?:(?:by\s+)?{NUM}\s*%|(?:by\s+)?{STRENGTH}(?:\s+more)?)(?!\w)")
_WORD_RE = re.compile(r"⟦\d+⟧|[#\w][\w'%:.#-]*")
_GAP = "\x00"


@dataclass
class Plan:
    """A parsed instruction: ``steps`` in order, whether a selected region was
    mentioned, and the quoted strings."""

    steps: list[Step]
    mentions_region: bool = False
    quotes: list[str] = field(default_factory=list)


class ParseFailure(Exception):
    """The instruction could not be understood in full.

    ``understood`` lists summaries of the operations found, ``unknown`` the
    words not understood (original quoting restored), ``reason`` an optional
    specific explanation.
    """

    def __init__(self, understood: list[str], unknown: str = "", reason: str = "") -> None:
        super().__init__(reason or unknown)
        self.understood = understood
        self.unknown = unknown
        self.reason = reason


def normalize(instruction: str) -> tuple[str, list[str]]:
    """Normalise ``instruction`` for matching.

    Returns ``(text, quotes)``: ``text`` is lower case with quoted passages
    replaced by ``⟦i⟧`` (``quotes[i]`` holds the exact original), units and
    spellings unified ("pixels" -> "px", "colour" -> "color", "grey" -> "gray",
    "50 percent" -> "50%", "800 x 600" -> "800x600"), punctuation turned into
    " , " separators and articles/picture nouns removed.
    """
    quotes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        quotes.append(next(g for g in m.groups() if g is not None).strip())
        return f" ⟦{len(quotes) - 1}⟧ "

    t = _QUOTE_RE.sub(keep, instruction)
    t = t.lower().replace("’", "'").replace("`", "'")
    t = re.sub(r"\bb\s*[&/]\s*w\b", " black and white ", t)
    t = t.replace("&", " and ").replace("°", " degrees ").replace("×", "x")
    t = t.replace("colour", "color").replace("grey", "gray").replace("centre", "center")
    t = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", t)
    for word, full in _CONTRACTIONS.items():
        t = re.sub(rf"\b{word}\b", full, t)
    t = re.sub(r"(?<=[a-z])'s\b", "", t)  # possessives: "the artwork's style" -> "the artwork style"
    t = _numbers_to_digits(t)
    t = re.sub(r"(\d)\s*[x*]\s*(\d)", r"\1x\2", t)
    t = re.sub(r"(\d)\s*(?:%|percent\b|per\s+cent\b|pct\b)", r"\1% ", t)
    t = re.sub(r"(\d)\s*(?:pixels?|pxs?|pix)\b", r"\1 px", t)
    t = re.sub(r"\bpixels\b", "px", t)
    t = re.sub(r"(\d)\s*(?:degrees?|degs?)\b", r"\1 degrees", t)
    t = re.sub(r"[,;!?()\[\]{}]|\.(?!\d)|:(?!\d)|\s-+\s", " , ", t)
    t = _DROP_WORDS.sub(" ", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t, quotes


def restore_quotes(text: str, quotes: list[str]) -> str:
    """Put the quoted passages back into normalised ``text`` (for messages)."""
    return re.sub(r"⟦(\d+)⟧", lambda m: f"'{quotes[int(m.group(1))]}'", text)


def _candidates(text: str, ops: list[type[Operation]], references: int = 0) -> list[tuple[int, int, type[Operation], dict]]:
    found = []
    for op in ops:
        for pattern, defaults in op.compiled:
            if defaults.get("_refs_only") and not references:
                continue
            # overlapping search: a match inside a longer one that loses may still be needed
            pos = 0
            while (m := pattern.search(text, pos)) is not None:
                if m.end() > m.start():
                    found.append((m.start(), m.end(), op, defaults))
                pos = m.start() + 1
    return found


def _choose(cands: list[tuple[int, int, type[Operation], dict]]) -> list[tuple[int, int, type[Operation], dict]]:
    chosen: list[tuple[int, int, type[Operation], dict]] = []
    for c in sorted(cands, key=lambda c: (-(c[1] - c[0]), c[2].priority, c[0])):
        if all(c[1] <= o[0] or c[0] >= o[1] for o in chosen):
            chosen.append(c)
    return sorted(chosen, key=lambda c: c[0])


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for s, e in spans:
        for i in range(s, e):
            chars[i] = _GAP
    return "".join(chars)


def parse_instruction(instruction: str, *, mode: str, has_mask: bool, references: int = 0) -> Plan:
    """Parse ``instruction`` into a :class:`Plan` for ``mode`` ("edit"/"generate");
    ``references`` is the number of attached reference images.

    Raises :class:`ParseFailure` when any part is not understood, and
    :class:`~.registry.NotUnderstood` is converted into a ``ParseFailure``.
    """
    text, quotes = normalize(instruction)
    # Words naming the selection ("this area", "the selected part") are noted, then dropped.
    mentions_region = bool(_REGION_RE.search(text))
    text = re.sub(r"\s+", " ", _REGION_RE.sub(" ", text)).strip()
    ctx = ParseContext(mode=mode, has_mask=has_mask, quotes=quotes, references=references)
    chosen = _choose(_candidates(text, operations(mode), references))
    steps = [Step(op, dict(defaults), (s, e), text[s:e]) for s, e, op, defaults in chosen]

    # Strength words attach to the nearest operation that takes a strength.
    rest = _blank(text, [st.span for st in steps])
    strength_spans = []
    for m in _STRENGTH_MOD_RE.finditer(rest):
        takers = [st for st in steps if st.op.takes_strength]
        if not takers:
            continue
        nearest = min(takers, key=lambda st: min(abs(m.start() - st.span[1]), abs(st.span[0] - m.end())))
        pct = percent_in(m.group(0))
        if pct is not None:
            nearest.params["percent"] = pct
        else:
            nearest.params["strength"] = nearest.params.get("strength", 1.0) * strength_in(m.group(0))
        nearest.extra_spans.append((m.start(), m.end()))
        strength_spans.append((m.start(), m.end()))
    rest = _blank(rest, strength_spans)

    understood = []
    for st in steps:
        try:
            st.params = st.op.parse(st.phrase, st.params, ctx)
            understood.append(st.op.describe(st.params))
        except NotUnderstood as exc:
            raise ParseFailure(understood, reason=exc.message) from None

    for op in dict.fromkeys(st.op for st in steps):
        op.finalize(steps)
    leftover = [w for w in _WORD_RE.findall(rest.replace(_GAP, " ")) if w not in FILLER]
    if leftover:
        raise ParseFailure(understood, unknown=restore_quotes(" ".join(leftover), quotes))
    merged: list[Step] = []
    for st in steps:
        if merged and merged[-1].op is st.op and merged[-1].params == st.params:
            continue
        merged.append(st)
    merged.sort(key=lambda st: st.op.stage)
    return Plan(steps=merged, mentions_region=mentions_region, quotes=quotes)
