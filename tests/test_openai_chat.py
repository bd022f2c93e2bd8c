"""Conversational mode (``openai-chat``) through the HTTP API and the worker:
the real SDK talks to the fake Responses API (tests/fake_responses.py), and
the requests that arrive there show how context follows the version tree."""
from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.backends import register_backend, unregister_backend
from app.backends.openai_chat import OpenAIChatBackend
from app.main import create_app
from tests.conftest import make_settings, png_bytes, wait_for_turn
from tests.test_openai_turns import check_openai_claim, downloaded_credentials, sources_on_disk

CHAT = "chat-test"


def make_client(tmp_path, database_url, fake_openai, **backend_args):
    register_backend(CHAT, lambda: OpenAIChatBackend(
        api_key="sk-test-secret-key", base_url=fake_openai.base_url, timeout=5, max_retries=0, **backend_args))
    settings = make_settings(tmp_path / "data", database_url, backend=CHAT)
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path, database_url, fake_openai):
    with make_client(tmp_path, database_url, fake_openai) as c:
        yield c
    unregister_backend(CHAT)


def responses_sent(fake):
    return [r for r in fake.requests if r.path == "/v1/responses" and r.method == "POST"]


def turn(client, thread_id, text, **data):
    files = data.pop("files", None)
    r = client.post(f"/api/v1/threads/{thread_id}/turns", data={"instruction": text, **data}, files=files)
    assert r.status_code == 202, r.text
    return wait_for_turn(client, r.json()["id"])


def upload(client, size=(64, 48)):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(size), "image/png")}).json()
    return thread["id"]


def test_three_turns_chain_and_a_branch_continues_its_own_version(client, fake_openai):
    tid = upload(client)
    t1 = turn(client, tid, "make the sky pink")
    t2 = turn(client, tid, "add a moon")
    t3 = turn(client, tid, "make it night")
    sent = responses_sent(fake_openai)
    assert [t["status"] for t in (t1, t2, t3)] == ["succeeded"] * 3
    # v1 is an upload: nothing to continue, and no history to restart from
    assert "previous_response_id" not in sent[0].json and t1["context"] == "fresh"
    assert sent[1].json["previous_response_id"] == t1["response_id"] and t2["context"] == "chained"
    assert sent[2].json["previous_response_id"] == t2["response_id"]
    assert [t["chain_depth"] for t in (t1, t2, t3)] == [1, 2, 3]
    # chained turns send the instruction alone, and the base version as an input_image
    content = sent[1].json["input"][0]["content"]
    assert content[0]["text"] == "add a moon"
    assert content[1]["type"] == "input_image" and content[1]["image_url"].startswith("data:image/png;base64,")
    assert sent[0].json["tools"][0]["model"] == "gpt-image-2.5-sunburst"
    assert sent[0].json["model"] == "gpt-6-astra" and sent[0].json["instructions"]
    # branch: back to version 2 (made by t1), then a new turn continues t1's response, not t3's
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 2}).status_code == 200
    t4 = turn(client, tid, "make it winter")
    assert responses_sent(fake_openai)[-1].json["previous_response_id"] == t1["response_id"]
    assert t4["base_version"] == 2 and t4["chain_depth"] == 2
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert thread["versions"][-1]["parent"] == 2
    assert t1["reply"] and t1["revised_prompt"]
    assert t1["usage"]["output_tokens"] > 0 and t1["usage"]["chat"]["total_tokens"] > 0


def test_a_masked_composite_or_another_backend_restarts_the_conversation(client, fake_openai):
    tid = upload(client, (32, 32))
    first = turn(client, tid, "make it warmer")
    v2 = client.get(f"/api/v1/threads/{tid}").json()["versions"][-1]
    mask = Image.new("L", (v2["width"], v2["height"]), 0)
    mask.paste(255, (8, 8, 24, 24))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    masked = turn(client, tid, "put a hat here", files={"mask": ("m.png", buf.getvalue(), "image/png")})
    sent = responses_sent(fake_openai)[-1].json
    assert sent["previous_response_id"] == first["response_id"]  # v2 is exactly first's image
    assert sent["tools"][0]["input_image_mask"]["image_url"].startswith("data:image/png;base64,")
    assert masked["status"] == "succeeded"
    after = turn(client, tid, "now make it snow")
    sent = responses_sent(fake_openai)[-1].json
    assert "previous_response_id" not in sent  # v3 is a composite, not the response's pixels
    assert after["context"] == "restarted" and "selected region" in after["message"]
    text = sent["input"][0]["content"][0]["text"]
    assert text.index("make it warmer") < text.index("put a hat here") < text.index("now make it snow")
    # a local-backend edit in between also restarts
    chained = turn(client, tid, "brighter")
    assert chained["context"] == "chained"
    local = turn(client, tid, "make it black and white", backend="local")
    assert local["status"] == "succeeded" and local["backend"] == "local"
    again = turn(client, tid, "add a red scarf")
    assert again["context"] == "restarted" and "previous_response_id" not in responses_sent(fake_openai)[-1].json


def test_a_stored_response_that_is_gone_falls_back_once_to_a_fresh_chain(client, fake_openai):
    tid = upload(client)
    first = turn(client, tid, "make it blue")
    fake_openai.responses.forget(first["response_id"])  # expired at OpenAI
    before = len(responses_sent(fake_openai))
    second = turn(client, tid, "add stars")
    sent = responses_sent(fake_openai)[before:]
    assert [r.status for r in sent] == [404, 200]
    assert sent[0].json["previous_response_id"] == first["response_id"]
    assert "previous_response_id" not in sent[1].json
    assert "make it blue" in sent[1].json["input"][0]["content"][0]["text"]
    assert second["status"] == "succeeded" and second["context"] == "restarted"
    assert "no longer had the earlier conversation" in second["message"]


def test_openai_manifest_of_the_image_tool_result_is_kept_as_an_ingredient(client, fake_openai, tmp_path):
    fake_openai.c2pa = True
    tid = upload(client, (32, 32))
    t1 = turn(client, tid, "make the sky pink")
    assert t1["status"] == "succeeded" and t1["output"]["source_sha256"]
    [path] = sources_on_disk(tmp_path)
    assert path.name == f"{t1['output']['source_sha256']}.source" and b"caBX" in path.read_bytes()
    store, reader = downloaded_credentials(client, tid, 2)
    active = check_openai_claim(store, reader)
    assert next(i for i in active["ingredients"] if i["relationship"] == "parentOf")["title"] == \
        "Retouch version 1.png"
    fake_openai.responses.enqueue("What colour should the moon be?", image=False)
    asked = turn(client, tid, "add a moon")  # words only: no version, nothing more kept
    assert asked["status"] == "answered" and len(sources_on_disk(tmp_path)) == 1


def test_words_only_is_an_answer_not_a_failure(client, fake_openai):
    tid = upload(client)
    fake_openai.responses.enqueue("Which of the two dogs should wear the hat?", image=False)
    answered = turn(client, tid, "put a hat on the dog")
    assert answered["status"] == "answered" and answered["result_version"] is None
    assert answered["reply"] == "Which of the two dogs should wear the hat?" and answered["error"] is None
    thread = client.get(f"/api/v1/threads/{tid}").json()
    assert len(thread["versions"]) == 1 and thread["head_version"] == 1
    # the person replies in the same thread, and the reply continues the conversation with the question
    reply = turn(client, tid, "the small one")
    assert reply["status"] == "succeeded"
    assert responses_sent(fake_openai)[-1].json["previous_response_id"] == answered["response_id"]
    assert reply["chain_depth"] == 2
    page = client.get(f"/t/{tid}").text
    assert "Which of the two dogs should wear the hat?" in page


def test_the_safety_system_declines(client, fake_openai):
    tid = upload(client)
    fake_openai.responses.enqueue(None, failed=True)
    declined = turn(client, tid, "something refused")
    assert declined["status"] == "declined" and "safety system" in declined["message"]


def test_store_off_never_chains(tmp_path, database_url, fake_openai):
    with make_client(tmp_path, database_url, fake_openai, store=False) as client:
        tid = upload(client)
        turn(client, tid, "make it blue")
        second = turn(client, tid, "add stars")
    unregister_backend(CHAT)
    sent = responses_sent(fake_openai)
    assert all(r.json["store"] is False and "previous_response_id" not in r.json for r in sent)
    assert second["context"] == "restarted" and "RETOUCH_OPENAI_STORE" in second["message"]
    assert second["response_id"] is None


def test_the_chain_is_capped(tmp_path, database_url, fake_openai):
    with make_client(tmp_path, database_url, fake_openai, chain_max=2) as client:
        tid = upload(client)
        depths = [turn(client, tid, f"step {i}")["chain_depth"] for i in range(4)]
    unregister_backend(CHAT)
    assert depths == [1, 2, 1, 2]


def test_a_fork_starts_its_own_conversation(client, fake_openai):
    tid = upload(client)
    turn(client, tid, "make it blue")
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    fork = client.post(f"/api/v1/shared/{token}/fork").json()
    assert all(t.get("response_id") is None for t in fork["turns"])
    forked = turn(client, fork["id"], "add stars")
    assert "previous_response_id" not in responses_sent(fake_openai)[-1].json
    assert forked["context"] == "restarted" and "copy of a shared" in forked["message"]


def test_the_backend_is_chosen_per_turn_among_configured_ones(client):
    models = client.get("/api/v1/models").json()
    names = [b["name"] for b in models["backends"]]
    assert names[0] == CHAT and "local" in names
    assert next(b for b in models["backends"] if b["name"] == CHAT)["conversational"] is True
    tid = upload(client)
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "x", "backend": "dall-e"})
    assert r.status_code == 422 and "not offered" in r.json()["detail"]
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "x", "backend": "local",
                                                          "model": "gpt-image-2"})
    assert r.status_code == 422  # the local backend has no models
    page = client.get(f"/t/{tid}").text
    assert 'id="backend"' in page


def test_a_shut_down_chat_model_is_refused_before_anything_is_sent(tmp_path, database_url, fake_openai):
    with make_client(tmp_path, database_url, fake_openai, chat_model="gpt-4-turbo") as client:
        tid = upload(client)
        r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "make it blue"})
    unregister_backend(CHAT)
    assert r.status_code == 422 and "shut down on 2026-10-23" in r.json()["detail"]
    assert responses_sent(fake_openai) == []


def test_the_cli_prints_words_and_exits_4_when_there_is_no_image(tmp_path, fake_openai, monkeypatch, capsys):
    from app.cli import main

    register_backend(CHAT, lambda: OpenAIChatBackend(api_key="sk-test", base_url=fake_openai.base_url,
                                                    timeout=5, max_retries=0))
    try:
        src = tmp_path / "in.png"
        src.write_bytes(png_bytes((64, 48)))
        fake_openai.responses.enqueue("Which corner should the logo go in?", image=False)
        code = main(["edit", "--input", str(src), "--instruction", "add our logo", "--output", str(tmp_path / "out.png"),
                     "--backend", CHAT])
        assert code == 4 and not (tmp_path / "out.png").exists()
        assert "Which corner should the logo go in?" in capsys.readouterr().out
        fake_openai.responses.enqueue("Done: a logo in the top left corner.")
        code = main(["edit", "--input", str(src), "--instruction", "top left", "--output", str(tmp_path / "out.png"),
                     "--backend", CHAT])
        assert code == 0 and (tmp_path / "out.png").exists()
    finally:
        unregister_backend(CHAT)


def test_stored_responses_can_be_deleted(fake_openai):
    backend = OpenAIChatBackend(api_key="sk-test", base_url=fake_openai.base_url, timeout=5, max_retries=0)
    from app.backends import EditRequest

    result = backend.edit(EditRequest(instruction="a lighthouse at dusk"))
    assert result.response_id in fake_openai.responses.store
    # the second id is gone already: logged, not raised
    assert backend.delete_responses([result.response_id, "resp_gone"]) == 1
    assert result.response_id not in fake_openai.responses.store
