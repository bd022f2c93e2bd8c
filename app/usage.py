"""Token usage and, when the owner of the server configures prices, cost.

OpenAI reports token usage per image request (``ImagesResponse.usage`` in the
SDK's ``openai/types/images_response.py``: ``input_tokens`` with
``input_tokens_details.{text_tokens,image_tokens}``, ``output_tokens`` with
``output_tokens_details.{text_tokens,image_tokens}``, ``total_tokens``).
Retouch stores that dict on the turn as it came. Prices change and differ
per account, so Retouch ships none: a cost is shown only when
``RETOUCH_OPENAI_PRICES`` holds a JSON table of US dollars per million
tokens, per model, for example::

    {"gpt-image-2.5-sunburst": {"text_input": 5, "image_input": 8, "image_output": 30}}

Keys: ``text_input``, ``image_input``, ``text_output``, ``image_output``.

Turns of the conversational backend (``openai-chat``) store the image
tool's usage (``tool_usage.image_gen``, the same shape) at the top level and
the chat model's (``Response.usage``, ``openai/types/responses/response_usage.py``)
under ``"chat"``, with its ``"model"``; the chat part is priced as text by
that model's entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

PRICE_KEYS = ("text_input", "image_input", "text_output", "image_output")


class PricesInvalid(ValueError):
    """``RETOUCH_OPENAI_PRICES`` is not a table of the documented shape."""


def parse_prices(text: str | None) -> dict[str, dict[str, float]]:
    """Read ``RETOUCH_OPENAI_PRICES`` (JSON; see the module docstring).
    Returns {model: {key: USD per 1M tokens}}; {} when unset. Raises
    :class:`PricesInvalid` with what is wrong."""
    if not text or not text.strip():
        return {}
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise PricesInvalid(f"RETOUCH_OPENAI_PRICES is not valid JSON: {exc}") from None
    if not isinstance(table, dict):
        raise PricesInvalid("RETOUCH_OPENAI_PRICES must be a JSON object of models.")
    out: dict[str, dict[str, float]] = {}
    for model, prices in table.items():
        if not isinstance(prices, dict) or not prices:
            raise PricesInvalid(f"RETOUCH_OPENAI_PRICES[{model!r}] must be an object such as "
                                '{"text_input": 5, "image_input": 8, "image_output": 30}.')
        for key, value in prices.items():
            if key not in PRICE_KEYS:
                raise PricesInvalid(f"RETOUCH_OPENAI_PRICES[{model!r}] has {key!r}; use {', '.join(PRICE_KEYS)}.")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise PricesInvalid(f"RETOUCH_OPENAI_PRICES[{model!r}][{key!r}] must be a number of dollars >= 0.")
        out[str(model)] = {k: float(v) for k, v in prices.items()}
    return out


def tokens_by_kind(usage: dict | None) -> dict[str, int]:
    """Split a stored usage dict into {text_input, image_input, text_output,
    image_output} token counts. Without details, all input counts as text
    input and all output as image output (the image models' output is the
    image)."""
    if not usage:
        return {}
    ind = usage.get("input_tokens_details") or {}
    outd = usage.get("output_tokens_details") or {}
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    image_in = int(ind.get("image_tokens") or 0)
    text_out = int(outd.get("text_tokens") or 0)
    return {"text_input": int(ind.get("text_tokens", input_tokens - image_in) or 0), "image_input": image_in,
            "text_output": text_out, "image_output": int(outd.get("image_tokens", output_tokens - text_out) or 0)}


def cost_of(turn, prices: dict[str, dict[str, float]]) -> float | None:
    """A turn's cost in US dollars by ``prices``: its usage priced for the
    model it reports having used (``output["model"]``), else the one it asked
    for, plus the chat model's part (``usage["chat"]``) priced for that
    model. None when nothing of it is priced or there is no usage."""
    usage = turn.usage or {}
    image = turn_cost(usage, (turn.output or {}).get("model") or turn.model, prices)
    chat = usage.get("chat") if isinstance(usage.get("chat"), dict) else None
    chat_cost = None
    if chat:
        table = prices.get(str(chat.get("model") or ""))
        if table:
            counts = {"text_input": int(chat.get("input_tokens") or 0),
                      "text_output": int(chat.get("output_tokens") or 0)}
            chat_cost = sum(n * table.get(k, 0.0) for k, n in counts.items()) / 1_000_000
    if image is None and chat_cost is None:
        return None
    return (image or 0.0) + (chat_cost or 0.0)


def total_tokens(usage: dict | None) -> int:
    """All tokens of a stored usage dict: the image model's and the chat model's."""
    if not usage:
        return 0
    chat = usage.get("chat") if isinstance(usage.get("chat"), dict) else {}
    return int(usage.get("total_tokens") or 0) + int(chat.get("total_tokens") or 0)


def turn_cost(usage: dict | None, model: str | None, prices: dict[str, dict[str, float]]) -> float | None:
    """The turn's cost in US dollars by ``prices``, or None when the model
    has no price or the turn reported no usage."""
    table = prices.get(model or "")
    if not table or not usage:
        return None
    counts = tokens_by_kind(usage)
    return sum(counts.get(k, 0) * table.get(k, 0.0) for k in PRICE_KEYS) / 1_000_000


@dataclass
class UsageTotal:
    """A thread's total: ``tokens`` summed over its turns, and ``cost`` in
    US dollars (None when no turn had a price)."""

    tokens: int = 0
    cost: float | None = None


def thread_usage(turns, prices: dict[str, dict[str, float]]) -> UsageTotal:
    """Sum the tokens (:func:`total_tokens`) and the cost, where priced, over ``turns``."""
    total = UsageTotal()
    for turn in turns:
        total.tokens += total_tokens(turn.usage)
        cost = cost_of(turn, prices)
        if cost is not None:
            total.cost = (total.cost or 0.0) + cost
    return total
