"""Accessibility checks in the browser tests: axe-core (vendored under
``tests/vendor/axe-core/``, never served by the app) run on a Playwright page
with the WCAG 2.0/2.1 level A and AA rules.

- :func:`axe_violations` runs axe and returns its violations;
- :func:`check_axe` fails the test with a readable list (rule id, impact,
  target selectors, help URL) when there is any;
- :func:`check_axe_both_schemes` checks the page in the colour scheme it is
  in and in the other one (``prefers-color-scheme`` emulated), then puts the
  scheme back. ``tests.test_browser.shot`` calls it at every screenshot.

Injection: the app's Content-Security-Policy has ``script-src 'self'`` and
no ``'unsafe-inline'``, so ``page.add_script_tag(content=...)`` (an inline
``<script>``) is refused and reported as a console error, which fails every
browser test. Instead the source is evaluated through the DevTools protocol
(``page.evaluate``), which CSP does not govern, and axe is told not to look
into frames (there are none on our pages). Nothing is added to the DOM, so the
check leaves no trace that could change what the test sees next.
"""
from __future__ import annotations

import json
from pathlib import Path

AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


class AxeViolations(AssertionError):
    """axe found violations; ``violations`` holds axe's raw objects."""

    def __init__(self, message: str, violations: list[dict]) -> None:
        super().__init__(message)
        self.violations = violations


_source: str | None = None


def _axe_source() -> str:
    global _source
    if _source is None:
        # Wrapped so that axe's `var`s and UMD header do not leak into the page's globals but
        # window.axe is still set.
        _source = "(() => {\n" + AXE_JS.read_text(encoding="utf-8") + "\n; return typeof axe; })()"
    return _source


def _inject(page) -> None:
    if page.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        return
    kind = page.evaluate(_axe_source())
    if kind != "object":  # pragma: no cover - a broken vendored file
        raise RuntimeError(f"axe-core did not load from {AXE_JS} (typeof axe: {kind})")


_RUN = """async (tags) => {
    const result = await window.axe.run(document, {
        runOnly: {type: 'tag', values: tags},
        iframes: false,
        resultTypes: ['violations'],
    });
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary, html: n.html})),
    }));
}"""


def axe_violations(page, tags: list[str] | None = None) -> list[dict]:
    """axe's violations on ``page`` as it is now (WCAG 2.1 A/AA unless ``tags``)."""
    _inject(page)
    last: Exception | None = None
    for _ in range(3):  # a swap in the middle of a run (htmx, polling) can make axe throw; run it again
        try:
            return page.evaluate(_RUN, tags or WCAG_TAGS)
        except Exception as exc:  # noqa: BLE001 - playwright.Error; a navigation also lands here
            last = exc
            page.wait_for_timeout(200)
            _inject(page)
    raise RuntimeError(f"axe could not run on {page.url}: {last}")


def format_violations(violations: list[dict], label: str, url: str = "") -> str:
    count = sum(len(v["nodes"]) for v in violations)
    lines = [f"axe: {len(violations)} accessibility rule(s) violated, {count} element(s), on {label}"
             + (f" ({url})" if url else "") + ":"]
    for v in violations:
        lines.append(f"- {v['id']} [{v['impact']}] {v['help']} <{v['helpUrl']}>")
        for n in v["nodes"][:8]:
            summary = " ".join((n.get("summary") or "").split())
            lines.append(f"    {json.dumps(n['target'])}: {summary[:300]}")
        if len(v["nodes"]) > 8:
            lines.append(f"    ... and {len(v['nodes']) - 8} more")
    return "\n".join(lines)


def check_axe(page, label: str, tags: list[str] | None = None) -> None:
    """Fail (:class:`AxeViolations`, an AssertionError) on any axe violation on ``page``."""
    violations = axe_violations(page, tags)
    if violations:
        raise AxeViolations(format_violations(violations, label, page.url), violations)


def current_scheme(page) -> str:
    return "dark" if page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") else "light"


def check_axe_both_schemes(page, label: str) -> None:
    """:func:`check_axe` in the page's colour scheme and in the other; the
    page is left in the scheme it was in. Failures of both are reported together."""
    first = current_scheme(page)
    other = "light" if first == "dark" else "dark"
    messages, found = [], []
    for scheme in (first, other):
        if scheme != first:
            page.emulate_media(color_scheme=scheme)
        try:
            assert current_scheme(page) == scheme, f"could not switch {page.url} to the {scheme} scheme"
            violations = axe_violations(page)
        finally:
            if scheme != first:
                page.emulate_media(color_scheme=first)
        if violations:
            found += violations
            messages.append(format_violations(violations, f"{label} ({scheme})", page.url))
    if messages:
        raise AxeViolations("\n".join(messages), found)
