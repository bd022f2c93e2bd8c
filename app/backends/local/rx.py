"""Phrase patterns with leftmost-longest matching (the ``regex`` package's POSIX mode).

Python's ``re`` takes the first alternative that matches, not the longest
("crop to 4:5" would stop at "crop" when "crop" is listed first). The grammar
needs the longest: POSIX mode gives it, for nested alternatives too.

Compiling a large pattern with ``regex`` takes a tenth of a second or more,
so :class:`Phrase` first searches with an ``re`` twin of the same pattern (the
same language, compiled fast) and builds the POSIX pattern only when the twin
finds something. A one-shot command (``retouch edit``) so compiles only the
few phrases the instruction can contain.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import regex

#: Left and right guards: a phrase starts and ends at word boundaries, never
#: inside a quoted-text placeholder (``⟦0⟧``).
LEFT = r"(?<![\w#⟧])"
RIGHT = r"(?![\w⟦])"


@functools.lru_cache(maxsize=4096)
def posix(pattern: str) -> regex.Pattern[str]:
    """``pattern`` compiled for leftmost-longest matching (cached)."""
    return regex.compile(pattern, flags=regex.POSIX)


class Phrase:
    """One grammar rule's pattern (a regular expression on normalised text).

    :meth:`finditer` yields the longest match at every start position
    (overlapping), and the first-alternative match there when it is
    shorter, as ``(start, end)`` pairs in characters.
    """

    def __init__(self, pattern: str) -> None:
        self.source = pattern
        self.guarded = f"{LEFT}(?:{pattern}){RIGHT}"
        self._quick = re.compile(self.guarded)

    def finditer(self, text: str) -> Iterator[tuple[int, int]]:
        """Every start position where the rule matches, with its longest end."""
        if self._quick.search(text) is None:
            return
        longest = posix(self.guarded)
        pos = 0
        while (m := longest.search(text, pos)) is not None:
            if m.end() > m.start():
                yield m.start(), m.end()
                # also the first-alternative match at the same start: when the
                # longest loses to an overlapping phrase, a shorter one may fit
                quick = self._quick.match(text, m.start())
                if quick is not None and m.start() < quick.end() < m.end():
                    yield m.start(), quick.end()
            pos = m.start() + 1

    def longest_within(self, text: str, start: int, limit: int) -> int | None:
        """The end of the longest match starting at ``start`` and ending at a
        word boundary at or before ``limit``, or None."""
        longest = posix(self.guarded)
        end = limit
        while end > start:
            while end > start and (text[end - 1].isspace() or text[end - 1] == ","):
                end -= 1
            if end <= start:
                return None
            if (end == len(text) or not (text[end].isalnum() or text[end] in "_⟦")) and \
                    longest.fullmatch(text, start, end) is not None:
                return end
            # back to the previous word boundary
            while end > start and not text[end - 1].isspace():
                end -= 1
        return None
