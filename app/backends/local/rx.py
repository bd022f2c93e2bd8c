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
    (overlapping), as ``(start, end)`` pairs in characters.
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
            pos = m.start() + 1
