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

from text_to_num import alpha2digit

from .phrases import NUM, STRENGTH, percent_in, strength_in
from .registry import NotUnderstood, Operation, ParseContext, Step, operations
from .rx import Phrase

#: Quoted passages, kept exactly. Double quotes of any style ("…", “…”, „…“,
#: ”…”, or mixed when autocorrect changed one end), guillemets and CJK
#: brackets; single quotes ('…', ‘…’) whose closing quote is not followed by
#: a letter, so apostrophes inside words ('Joe's Diner', ‘Don’t stop’) stay
#: inside the quote.
_QUOTE_RE = re.compile(
    r'["“„”](?P<a>[^"“”„]+)["”“]'
    r"|«\s?(?P<b>[^«»]+?)\s?»|‹\s?(?P<c>[^‹›]+?)\s?›|「(?P<d>[^「」]+)」|『(?P<e>[^『』]+)』"
    r"|(?<!\w)'(?P<f>[^']*?\S.*?)'(?!\w)|(?<!\w)‘(?P<g>.*?\S.*?)[’‘](?!\w)"
)
#: Fraction words that text2num would turn into ordinals ("the left third" -> "3rd").
_FRACTION_WORDS_RE = re.compile(r"\b(?:(?:one|two|three|four)\s+)?(?:thirds?|fourths?|fifths?|quarters?|halves|half)\b")
#: "one"/"two" are numbers only next to a unit or another number ("one pixel",
#: "two by three"), not in "the left one" (text2num leaves lone ones alone).
_SMALL_RE = re.compile(
    r"\b(one|two)\b(?=\s*(?:px\b|pixels?\b|pxs?\b|degrees?\b|deg\b|%|percent\b|x\b|by\b|to\s+\w+\s*(?:ratio|aspect)|times\b|"
    r":|levels?\b|colou?rs?\b|stops?\b|points?\b|pt\b))"
    r"|(?:(?<=\bby\s)|(?<=\bx\s)|(?<=\bto\s))(one|two)\b(?=\s*(?:px\b|pixels?\b|ratio\b|aspect\b|crop\b|format\b|$|[,.;!?]|\s+(?:and|then|for|with|please|in|on|at)\b))"
)


def _numbers_to_digits(t: str) -> str:
    """Write number words as digits with ``text2num``: "ninety degrees" -> "90
    degrees", "twenty five px" -> "25 px", "one hundred and eighty" -> "180",
    "two by three" -> "2 by 3". Fraction words ("third", "quarter") stay words."""
    protected: list[str] = []

    def protect(m: re.Match[str]) -> str:
        protected.append(m.group(0))
        return f"\uE000{len(protected) - 1}\uE001"

    t = _FRACTION_WORDS_RE.sub(protect, t)
    t = alpha2digit(t, "en")  # leaves a lone "one" or "two" as a word
    t = _SMALL_RE.sub(lambda m: "1" if (m.group(1) or m.group(2)) == "one" else "2", t)
    return re.sub("\uE000(\\d+)\uE001", lambda m: protected[int(m.group(1))], t)


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


#: Words that only continue a verb ("darken it down", "brighten it up", "blur it out").
_PARTICLES_RE = re.compile(r"(\x00+[\s,]*)((?:up|down|out|off|over|around|away|back)(?:\s+(?:up|down|out|off|over|around|away|back))?)(?!\w)")
#: Verbs of depiction before a style ("draw it as a sketch", "render it as an
#: oil painting", "redo it in watercolour"): harmless when a look follows.
_DEPICTION_RE = re.compile(
    r"(?<!\w)((?:re)?(?:draw|drew|drawn|render|rendered|paint|painted|depict|depicted|show|shown|do|done|redo|redone|"
    r"recreate|recreated|reimagine|reimagined|restyle|restyled|portray|portrayed|present|presented|style|styled|"
    r"interpret|interpreted|reinterpret|remake|remade|treat|treated|process|processed|finish|finished|"
    r"convert|converted|transform|transformed|change|changed|look|looks|looking|appear|seem)"
    r"(?:\s+(?:as|like|into|in|to|with))*(?:\s+(?:if|though)\s+(?:was|were|is|had\s+been))?(?:\s+(?:style|form|manner)\s+of)?)"
    r"(?=[\s,]*\x00)"
)
#: Families whose phrase a verb of depiction may introduce.
_LOOK_FAMILIES = frozenset({"styles", "neural", "tone", "filters"})
#: A number as written in normalised text; ordinals ("30th"), decades ("1900s"),
#: bit depths ("8-bit") and hex colours are not quantities.
_NUMBER_RE = re.compile(r"(?<![#\w.])(\d+(?:\.\d+)?)(?!\d)(?!(?:st|nd|rd|th|s)\b)(?!\s*-?\s*bit\b)")
_HEX_RE = re.compile(r"#[0-9a-f]{3,6}\b")
#: Two numbers with nothing between them ("340 1"): an ambiguity, never guessed at.
_NUMBER_RUN_RE = re.compile(r"(?<![\w.#:])\d+(?:\.\d+)?\s+\d+(?:\.\d+)?(?![\w.:])")


def _absorb_harmless(rest: str, steps: list[Step]) -> str:
    """Blank particles right after an understood phrase, and verbs of
    depiction right before a style, tone or filter phrase."""
    rest = _PARTICLES_RE.sub(lambda m: m.group(1) + _GAP * len(m.group(2)), rest)
    looks = {st.span[0] for st in steps if st.op.family in _LOOK_FAMILIES}

    def depiction(m: re.Match[str]) -> str:
        after = m.end() + len(rest[m.end():]) - len(rest[m.end():].lstrip(" ,"))
        return _GAP * len(m.group(1)) if after in looks else m.group(1)

    return _DEPICTION_RE.sub(depiction, rest)


def numbers_in(text: str) -> list[float]:
    """The quantities written in normalised ``text`` ("crop to 4:5, 10 px" ->
    [4.0, 5.0, 10.0]); ordinals, decades, bit depths and hex colours excluded."""
    text = re.sub(r"⟦\d+⟧", " ", _HEX_RE.sub(" ", text))
    return [float(n) for n in _NUMBER_RE.findall(re.sub(r"(\d)x(\d)", r"\1 x \2", text))]


def unused_numbers(step: Step) -> list[float]:
    """Numbers in the words of ``step`` (its phrase and attached strength
    words) that its parameters do not account for (see
    :meth:`~.registry.Operation.quantities`)."""
    used = step.op.quantities(step.params)
    words = " ".join([step.phrase, *step.extra_words])
    return [n for n in numbers_in(words) if not any(abs(n - u) <= 1e-6 * max(1.0, abs(n)) for u in used)]


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
    t = re.sub(r"(\d)\s*[:∶]\s*(\d)", r"\1:\2", t)
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


Candidate = tuple[int, int, type[Operation], dict, Phrase]


def _candidates(text: str, ops: list[type[Operation]], references: int = 0) -> list[Candidate]:
    found = []
    for op in ops:
        for phrase, defaults in op.compiled:
            if defaults.get("_refs_only") and not references:
                continue
            # overlapping search: a match inside a longer one that loses may still be needed
            found.extend((start, end, op, defaults, phrase) for start, end in phrase.finditer(text))
    return found


def _choose(cands: list[Candidate], text: str) -> list[Candidate]:
    """Longest candidates first (ties: lower ``priority``, then earlier); one
    that runs into a chosen phrase is cut back to its longest match ending
    before it ("says 'OPEN' in red" before "in red on yellow")."""
    chosen: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (-(c[1] - c[0]), c[2].priority, c[0])):
        if all(c[1] <= o[0] or c[0] >= o[1] for o in chosen):
            chosen.append(c)
            continue
        if any(o[0] <= c[0] < o[1] for o in chosen):
            continue  # its start is taken
        limit = min(o[0] for o in chosen if c[0] < o[0] < c[1])
        cut = c[4].longest_within(text, c[0], limit)
        if cut is not None and all(cut <= o[0] or c[0] >= o[1] for o in chosen):
            chosen.append((c[0], cut, c[2], c[3], c[4]))
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
    run = _NUMBER_RUN_RE.search(text)
    if run:  # "rotate 340 1 degrees": two numbers in a row are never guessed at
        raise ParseFailure([], reason=(
            f"I read two numbers in a row, \"{run.group(0)}\", and could not tell what each measures, "
            "so I did not guess. Write each number next to what it measures, e.g. 'rotate 45 degrees'."
        ))
    # Words naming the selection ("this area", "the selected part") are noted, then dropped.
    mentions_region = bool(_REGION_RE.search(text))
    text = re.sub(r"\s+", " ", _REGION_RE.sub(" ", text)).strip()
    ctx = ParseContext(mode=mode, has_mask=has_mask, quotes=quotes, references=references)
    chosen = _choose(_candidates(text, operations(mode), references), text)
    steps = [Step(op, dict(defaults), (s, e), text[s:e]) for s, e, op, defaults, _ in chosen]

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
        nearest.extra_words.append(m.group(0))
        strength_spans.append((m.start(), m.end()))
    rest = _blank(rest, strength_spans)

    understood = []
    for st in steps:
        try:
            st.params = st.op.parse(st.phrase, st.params, ctx)
            understood.append(st.op.describe(st.params))
        except NotUnderstood as exc:
            raise ParseFailure(understood, reason=exc.message) from None

    try:
        for op in dict.fromkeys(st.op for st in steps):
            op.finalize(steps)
    except NotUnderstood as exc:
        raise ParseFailure(understood, reason=exc.message) from None
    # harmless words next to an understood phrase: "darken it down", "draw it as a sketch"
    rest = _absorb_harmless(rest, steps)
    leftover = [w for w in _WORD_RE.findall(rest.replace(_GAP, " ")) if w not in FILLER]
    if leftover:
        raise ParseFailure(understood, unknown=restore_quotes(" ".join(leftover), quotes))
    steps = [st for st in steps if not st.params.pop("_drop", False)]
    understood = [d for d in (st.op.describe(st.params) for st in steps) if d]
    for st in steps:
        unused = unused_numbers(st)
        if unused:
            said = " and ".join(f"{n:g}" for n in unused)
            raise ParseFailure(understood, reason=(
                f"I did not know what to do with the number {said} in \"{restore_quotes(st.phrase, quotes)}\", "
                "so I did not guess. Say it once, next to what it measures, e.g. 'add a 10 px white border'."
            ))
    merged: list[Step] = []
    for st in steps:
        if merged and merged[-1].op is st.op and merged[-1].params == st.params:
            continue
        merged.append(st)
    merged.sort(key=lambda st: st.op.stage)
    return Plan(steps=merged, mentions_region=mentions_region, quotes=quotes)
