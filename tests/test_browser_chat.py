"""Conversational mode (``openai-chat``) in real Chromium: a real ``retouch
serve`` with ``RETOUCH_BACKEND=openai-chat`` against the validating fake
OpenAI server's Responses API (tests/fake_responses.py).

A three-turn conversation with a branch: the assistant's words and the
prompt used appear in each bubble, streamed words and partial images appear
while a turn runs, a words-only answer ends the turn without a version, and
the requests that reached the fake show each turn continuing the response
that made its base version. Screenshots: tests/artifacts/browser/chat-*.png;
the request sequence: tests/artifacts/browser/chat-requests.txt.
"""
from __future__ import annotations

import re

import pytest

from tests.fake_openai import FakeOpenAI
from tests.test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    PHONE,
    Server,
    browser,
    browser_test,
    busy_false,
    expect,
    expect_version,
    new_thread,
    photo,
    serve,
    shot,
    submit,
    ui,
    version_figure,
)


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(image_size=(640, 480)) as f:
        yield f


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake) -> Server:
    with serve(tmp_path_factory.mktemp("browser-chat-server"), RETOUCH_BACKEND="openai-chat",
               OPENAI_API_KEY="sk-test-browser", OPENAI_BASE_URL=fake.base_url, RETOUCH_OPENAI_TIMEOUT="60") as srv:
        yield srv


def sent(fake):
    return [r for r in fake.requests if r.path == "/v1/responses" and r.method == "POST"]


def bubble(page, n):
    """The assistant bubble of the n-th turn (1-based) of the conversation."""
    return page.locator("section#conversation li.turn").nth(n - 1).locator(".bubble.assistant")


@browser_test
def test_a_branched_conversation(ui, photo, fake):
    page = ui.page()
    tid = new_thread(page, photo)
    expect(page.locator("#options-model")).to_contain_text("OpenAI chat")
    start = len(sent(fake))

    fake.responses.enqueue("I made the sky pink and kept everything else.", revised_prompt="The photo with a pink sky")
    submit(page, "make the sky pink")
    expect_version(page, 2)
    expect(bubble(page, 2).locator(".reply")).to_have_text("I made the sky pink and kept everything else.")
    page.locator("details.revised-prompt summary").first.click()
    expect(bubble(page, 2).locator("details.revised-prompt p")).to_have_text("The photo with a pink sky")
    expect(bubble(page, 2).locator(".usage")).to_contain_text("chat tokens")

    fake.responses.enqueue("Added a crescent moon.")
    submit(page, "add a moon")
    expect_version(page, 3)

    # Third turn, paced: streamed words and a partial image show before the result.
    fake.event_delay = 1.0
    try:
        fake.responses.enqueue("It is night now, with the moon kept where it was.")
        submit(page, "make it night")
        expect(page.locator("section#conversation .reply.streaming")).to_be_visible(timeout=20000)
        expect(page.locator("section#conversation figure.version.partial img")).to_be_visible(timeout=20000)
        shot(page, "chat-streaming")
        expect_version(page, 4)
    finally:
        fake.event_delay = 0.0
    expect(page.locator("section#conversation li.turn").last).to_contain_text("It is night now")

    # Branch: continue from version 2, then edit; the new turn continues version 2's response.
    version_figure(page, 2).get_by_role("button", name="Continue from here").click()
    expect(page.locator("section#conversation li.turn-revert")).to_have_count(1)
    busy_false(page)
    fake.responses.enqueue("Snow on the pink-sky version.")
    submit(page, "make it winter")
    expect_version(page, 5)

    # A question back: no new version, and the person can answer in the same thread.
    fake.responses.enqueue("Should the snowman go on the left or on the right?", image=False)
    submit(page, "add a snowman")
    expect(page.locator("section#conversation li.turn.status-answered .reply")).to_have_text(
        "Should the snowman go on the left or on the right?")
    busy_false(page)
    expect(version_figure(page, 6)).to_have_count(0)
    shot(page, "chat-conversation")
    fake.responses.enqueue("A snowman on the left.")
    submit(page, "on the left")  # continues the conversation that asked
    expect_version(page, 6)

    # The same conversation on a phone, in dark mode.
    page.set_viewport_size(PHONE)
    page.emulate_media(color_scheme="dark")
    page.reload()
    busy_false(page)
    page.locator("section#conversation li.turn.status-answered").scroll_into_view_if_needed()
    shot(page, "chat-phone-dark")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.emulate_media(color_scheme="light")

    requests = sent(fake)[start:]
    thread = page.request.get(f"/api/v1/threads/{tid}").json()
    turns = [t for t in thread["turns"] if t["kind"] == "edit"]
    ids = {t["response_id"]: t["instruction"] for t in turns}
    lines = []
    for t, r in zip(turns, requests):
        prev = r.json.get("previous_response_id")
        lines.append(f"{t['instruction']!r} from v{t['base_version']}: previous_response_id={prev} "
                     f"({ids.get(prev, 'none')!r}) -> {t['response_id']} [{t['status']}, {t['context']}]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "chat-requests.txt").write_text("\n".join(lines) + "\n")
    prev = [r.json.get("previous_response_id") for r in requests]
    assert prev == [None, turns[0]["response_id"], turns[1]["response_id"], turns[0]["response_id"],
                    turns[3]["response_id"], turns[4]["response_id"]], lines
    assert [t["status"] for t in turns] == ["succeeded"] * 4 + ["answered", "succeeded"]


@browser_test
def test_the_backend_picker(ui, photo, fake):
    page = ui.page()
    new_thread(page, photo)
    page.locator("details#options summary").click()
    backend = page.locator("select#backend")
    expect(backend.locator("option")).to_have_count(3)  # openai-chat (the server's), local, openai
    expect(page.locator("select#model")).to_be_visible()
    expect(page.locator("#mode-draw")).to_be_disabled()  # the image tool takes no markup
    backend.select_option("local")
    expect(page.locator("select#model")).to_be_hidden()
    expect(page.locator("#options-model")).to_have_text(re.compile("Local|local"))
    backend.select_option("openai")
    expect(page.locator("select#model")).to_be_visible()
    expect(page.locator("#mode-draw")).to_be_enabled()  # OpenAI images with a markup model
    shot(page, "chat-backend-picker")
    backend.select_option("local")
    submit(page, "make it black and white")
    expect_version(page, 2)
    expect(version_figure(page, 2)).to_contain_text("Local (offline)")
