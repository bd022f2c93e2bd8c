"""Turns through the HTTP API with the ``openai`` backend: the real SDK talks
to the fake OpenAI server, and what arrives there is checked."""
from __future__ import annotations

import hashlib
import io
import json

import c2pa
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.backends import register_backend, unregister_backend
from app.backends.openai_backend import OpenAIBackend
from app.main import create_app
from tests import fake_c2pa
from tests.conftest import make_settings, open_image, png_bytes, wait_for_turn


@pytest.fixture
def client(tmp_path, sqlite_url, fake_openai, request):
    partial_images = getattr(request, "param", None)  # None: the settings' default (streams 2 partials)
    register_backend("openai-test", lambda: OpenAIBackend(
        api_key="sk-test-secret-key", base_url=fake_openai.base_url, timeout=5, max_retries=0,
        partial_images=partial_images))
    settings = make_settings(tmp_path / "data", sqlite_url, backend="openai-test")
    with TestClient(create_app(settings)) as c:
        yield c
    unregister_backend("openai-test")


def test_edit_sends_the_current_image_and_history(client, fake_openai):
    photo = png_bytes((64, 64), (10, 20, 30))
    r = client.post("/api/v1/threads", files={"image": ("p.png", photo, "image/png")},
                    data={"prompt": "make the background black"})
    thread = r.json()
    first = wait_for_turn(client, thread["turns"][1]["id"])
    assert first["status"] == "succeeded" and first["usage"]["total_tokens"] > 0
    stored_v1 = client.get(thread["versions"][0]["image_url"]).content
    edit = fake_openai.requests[-1]
    assert edit.path == "/v1/images/edits"
    assert edit.images[0].data == stored_v1  # the prior image's exact bytes
    assert "make the background black" in edit.param("prompt")
    assert edit.param("model") == "gpt-image-2.5-sunburst"  # the default: a live model

    second = client.post(f"/api/v1/threads/{thread['id']}/turns",
                         data={"instruction": "add 'SALE' at the top", "quality": "low"}).json()
    assert wait_for_turn(client, second["id"])["status"] == "succeeded"
    edit = fake_openai.requests[-1]
    stored_v2 = client.get(f"/api/v1/threads/{thread['id']}/versions/2/image").content
    assert hashlib.sha256(edit.images[0].data).hexdigest() == hashlib.sha256(stored_v2).hexdigest()
    prompt = edit.param("prompt")
    assert prompt.index("make the background black") < prompt.index("add 'SALE' at the top")
    assert edit.param("quality") == "low"


def test_generate_from_prompt(client, fake_openai):
    thread = client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    assert wait_for_turn(client, thread["turns"][0]["id"])["status"] == "succeeded"
    gen = fake_openai.requests[-1]
    assert gen.path == "/v1/images/generations" and gen.json["prompt"].endswith("a lighthouse at dusk")
    v1 = client.get(f"/api/v1/threads/{thread['id']}").json()["versions"][0]
    assert (v1["width"], v1["height"]) == (1024, 1024)


def test_masked_edit_keeps_outside_pixels(client, fake_openai):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((32, 32), (200, 100, 50)), "image/png")}).json()
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "put a hat here"},
                       files={"mask": ("m.png", buf.getvalue(), "image/png")}).json()
    assert wait_for_turn(client, turn["id"])["status"] == "succeeded"
    sent_mask = Image.open(io.BytesIO(fake_openai.requests[-1].mask.data))
    assert sent_mask.mode == "RGBA" and sent_mask.getpixel((10, 10))[3] == 0 and sent_mask.getpixel((0, 0))[3] == 255
    before = open_image(client.get(f"/api/v1/threads/{thread['id']}/versions/1/image").content)
    after = open_image(client.get(f"/api/v1/threads/{thread['id']}/versions/2/image").content)
    assert after.size == before.size
    outside = [(x, y) for x in range(32) for y in range(32) if not (8 <= x < 24 and 8 <= y < 24)]
    assert all(after.getpixel(p) == before.getpixel(p) for p in outside)
    assert after.getpixel((16, 16)) != before.getpixel((16, 16))


def test_faults_become_declined_or_failed_turns(client, fake_openai):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    tid = thread["id"]

    def turn(text):
        t = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": text}).json()
        return wait_for_turn(client, t["id"])

    fake_openai.fail_next("moderation_blocked")
    declined = turn("something the moderation refuses")
    assert declined["status"] == "declined" and declined["message"]
    fake_openai.fail_next("429")
    limited = turn("try while rate limited")
    assert limited["status"] == "failed" and "try again" in limited["error"].lower()
    fake_openai.fail_next("401")
    bad_key = turn("with a bad key")
    assert bad_key["status"] == "failed" and "sk-test-secret-key" not in bad_key["error"]
    assert client.get(f"/api/v1/threads/{tid}").json()["head_version"] == 1
    retried = client.post(f"/api/v1/turns/{limited['id']}/retry").json()
    assert wait_for_turn(client, retried["id"])["status"] == "succeeded"
    page = client.get(f"/t/{tid}").text
    assert "Traceback" not in page and "sk-test-secret-key" not in page


# ------------------------------------------------ OpenAI's own C2PA manifest


def downloaded_credentials(client, thread_id: str, number: int) -> tuple[dict, c2pa.Reader]:
    r = client.get(f"/api/v1/threads/{thread_id}/versions/{number}/image?download=1")
    assert r.status_code == 200, r.text
    reader = c2pa.Reader("image/png", io.BytesIO(r.content))
    return json.loads(reader.json()), reader


def vendor_ingredient(store: dict) -> tuple[dict, dict]:
    """The active manifest's ``componentOf`` ingredient (OpenAI's file) and
    the manifest it carries."""
    active = store["manifests"][store["active_manifest"]]
    [ingredient] = [i for i in active["ingredients"] if i["relationship"] == "componentOf"]
    return ingredient, store["manifests"][ingredient["active_manifest"]]


def check_openai_claim(store: dict, reader: c2pa.Reader) -> dict:
    assert reader.get_validation_state() in ("Valid", "Trusted")
    ingredient, openai_manifest = vendor_ingredient(store)
    assert openai_manifest["claim_generator_info"][0]["name"] == fake_c2pa.CLAIM_GENERATOR
    assert openai_manifest["signature_info"]["common_name"] == fake_c2pa.SIGNER_NAME
    [created] = [a for s in openai_manifest["assertions"] if s["label"].startswith("c2pa.actions")
                 for a in s["data"]["actions"]]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"].endswith("trainedAlgorithmicMedia")
    # its validation state: recorded in the ingredient when Retouch signed, and checked again on reading
    recorded = ingredient["validation_results"]["activeManifest"]
    assert {"claimSignature.validated", "assertion.dataHash.match"} <= {c["code"] for c in recorded["success"]}
    assert {c["code"] for c in recorded["failure"]} == {"signingCredential.untrusted"}  # a test certificate
    [delta] = [d for d in reader.get_validation_results()["ingredientDeltas"]
               if d["ingredientAssertionURI"].endswith("/c2pa.assertions/" + ingredient["label"])]
    assert "ingredient.manifest.validated" in {c["code"] for c in delta["validationDeltas"]["success"]}
    assert delta["validationDeltas"]["failure"] == []
    active = store["manifests"][store["active_manifest"]]
    placed = [a for s in active["assertions"] if s["label"].startswith("c2pa.actions")
              for a in s["data"]["actions"] if a["action"] == "c2pa.placed"]
    assert [len(a["parameters"]["ingredients"]) for a in placed] == [1]
    return active


def sources_on_disk(tmp_path) -> list:
    return sorted((tmp_path / "data").rglob("*.source"))


@pytest.mark.parametrize("client", [0, None], indirect=True, ids=["plain", "streamed"])
def test_openai_manifest_survives_as_an_ingredient_of_a_generation(client, fake_openai, tmp_path, request):
    fake_openai.c2pa = True
    thread = client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    turn = wait_for_turn(client, thread["turns"][0]["id"])
    assert turn["status"] == "succeeded"
    streamed = request.node.callspec.params["client"] is None
    assert bool(fake_openai.requests[-1].json.get("stream")) == streamed  # read_stream, or result_bytes
    kept = turn["output"]["source_sha256"]
    [path] = sources_on_disk(tmp_path)
    assert path.name == f"{kept}.source"
    sent = path.read_bytes()  # exactly OpenAI's file, manifest and all
    assert hashlib.sha256(sent).hexdigest() == kept and b"caBX" in sent
    assert open_image(sent).format == "PNG"
    version = client.get(f"/api/v1/threads/{thread['id']}").json()["versions"][0]
    assert version["sha256"] != kept  # the version blob stays a plain PNG of the pixels
    active = check_openai_claim(*downloaded_credentials(client, thread["id"], 1))
    assert [a["action"] for s in active["assertions"] if s["label"].startswith("c2pa.actions")
            for a in s["data"]["actions"]] == ["c2pa.created", "c2pa.placed"]
    panel = client.get(f"/api/v1/threads/{thread['id']}/versions/1/credentials").json()
    assert panel["state"] == "Valid" and panel["signer"] == "Retouch instance signer"
    assert panel["steps"][0]["vendor_claims"] == [{
        "generator": fake_c2pa.CLAIM_GENERATOR, "signer": fake_c2pa.SIGNER_NAME, "issuer": fake_c2pa.SIGNER_ORG,
        "failures": []}]
    assert "Keeps the vendor's own credentials: signed by Fake OpenAI signer" in client.get(
        f"/t/{thread['id']}/versions/1").text


def test_openai_manifest_survives_a_masked_composite_and_later_edits(client, fake_openai, tmp_path):
    fake_openai.c2pa = True
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((32, 32), (200, 100, 50)),
                                                               "image/png")}).json()
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    turn = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "put a hat here"},
                       files={"mask": ("m.png", buf.getvalue(), "image/png")}).json()
    turn = wait_for_turn(client, turn["id"])
    assert turn["status"] == "succeeded" and turn["output"]["source_sha256"]
    store, reader = downloaded_credentials(client, thread["id"], 2)
    active = check_openai_claim(store, reader)
    edited = next(a for s in active["assertions"] if s["label"].startswith("c2pa.actions")
                  for a in s["data"]["actions"] if a["action"] == "c2pa.edited")
    assert edited["parameters"]["mask"] is True
    assert edited["digitalSourceType"].endswith("compositeWithTrainedAlgorithmicMedia")
    parent = next(i for i in active["ingredients"] if i["relationship"] == "parentOf")
    assert store["manifests"][parent["active_manifest"]]["title"] == "Retouch version 1.png"
    # the next version (no manifest from OpenAI this time) still carries OpenAI's claim down its chain
    fake_openai.c2pa = False
    later = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "warmer"}).json()
    later = wait_for_turn(client, later["id"])
    assert later["status"] == "succeeded" and "source_sha256" not in later["output"]
    store, reader = downloaded_credentials(client, thread["id"], 3)
    assert reader.get_validation_state() in ("Valid", "Trusted")
    active = store["manifests"][store["active_manifest"]]
    assert not [i for i in active["ingredients"] if i["relationship"] == "componentOf"]
    names = [m["claim_generator_info"][0]["name"] for m in store["manifests"].values()]
    assert names.count(fake_c2pa.CLAIM_GENERATOR) == 1 and len(sources_on_disk(tmp_path)) == 1


def test_a_result_without_a_manifest_keeps_no_source(client, fake_openai, tmp_path):
    thread = client.post("/api/v1/threads", json={"prompt": "a lighthouse at dusk"}).json()
    turn = wait_for_turn(client, thread["turns"][0]["id"])
    assert turn["status"] == "succeeded" and "source_sha256" not in turn["output"]
    assert sources_on_disk(tmp_path) == []
    store, reader = downloaded_credentials(client, thread["id"], 1)
    active = store["manifests"][store["active_manifest"]]
    assert active.get("ingredients", []) == [] and len(store["manifests"]) == 1
