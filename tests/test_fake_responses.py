"""The fake Responses API refuses what OpenAI refuses (rules derived from the
SDK's TypedDicts and deprecation notes; see tests/fake_responses.py), and
what it answers parses with the SDK."""
from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from tests.fake_openai import FakeOpenAI


def _png(size=(64, 48), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 0) if mode == "RGBA" else (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _body(**over):
    body = {"model": "gpt-6-astra", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "make it blue"},
        {"type": "input_image", "detail": "auto", "image_url": _url(_png())}]}],
        "tools": [{"type": "image_generation", "model": "gpt-image-2.5-sunburst"}]}
    body.update(over)
    return body


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


def post(fake, body):
    return httpx.post(f"{fake.base_url}/responses", json=body, headers={"Authorization": "Bearer sk-test"})


def _tool(**over):
    return [{"type": "image_generation", "model": "gpt-image-2.5-sunburst", **over}]


@pytest.mark.parametrize("body, status, code, param", [
    (_body(temperature_typo=1), 400, "unknown_parameter", "temperature_typo"),
    (_body(model=None), 400, "missing_required_parameter", "model"),
    (_body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": _url(_png())}]}]),
     400, "missing_required_parameter", "input[0].content[0].detail"),
    (_body(input=[{"role": "wizard", "content": "hi"}]), 400, "invalid_value", None),
    (_body(tools=_tool(quality="ultra")), 400, "invalid_value", "tools[0].quality"),
    (_body(tools=_tool(markup={"image_url": "x"})), 400, "unknown_parameter", "tools[0].markup"),
    (_body(tools=[{"type": "image_gen"}]), 400, "invalid_value", "tools[0].type"),
    (_body(tools=_tool(partial_images="2")), 400, "invalid_type", "tools[0].partial_images"),
    (_body(tools=_tool(partial_images=4)), 400, "invalid_value", "tools[0].partial_images"),
    (_body(tools=_tool(size="1000x100")), 400, "invalid_value", "tools[0].size"),
    (_body(store="yes"), 400, "invalid_type", "store"),
    (_body(model="gpt-4-turbo"), 404, "model_not_found", "model"),  # shut down 2026-10-23 (SDK notes)
    (_body(model="gpt-imaginary"), 404, "model_not_found", "model"),
    (_body(tools=_tool(model="gpt-image-1")), 404, "model_not_found", "tools[0].model"),
    (_body(previous_response_id="resp_unknown"), 404, "previous_response_not_found", "previous_response_id"),
    (_body(input=[{"role": "user", "content": [{"type": "input_text", "text": "x"}]}],
           tools=_tool(input_image_mask={"image_url": _url(_png(mode="RGBA"))})),
     400, "invalid_value", "tools[0].input_image_mask"),
    (_body(tools=_tool(input_image_mask={"image_url": _url(_png())})), 400, "invalid_image",
     "tools[0].input_image_mask"),
    (_body(tools=_tool(input_image_mask={"image_url": _url(_png((10, 10), "RGBA"))})), 400, "invalid_image",
     "tools[0].input_image_mask"),
    (_body(input=[{"role": "user", "content": [{"type": "input_image", "detail": "auto",
                                                "image_url": "https://example.com/a.png"}]}]),
     400, "invalid_value", "input[0].content[0].image_url"),
])
def test_the_fake_refuses_what_openai_refuses(fake, body, status, code, param):
    r = post(fake, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    if param:
        assert error["param"] == param
    assert error["message"]


def test_a_valid_request_is_answered_and_the_sdk_reads_it(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    mask = _url(_png(mode="RGBA"))
    response = client.responses.create(**_body(tools=_tool(input_image_mask={"image_url": mask}, quality="low")))
    kinds = [item.type for item in response.output]
    assert kinds == ["image_generation_call", "message"]
    image = Image.open(io.BytesIO(base64.b64decode(response.output[0].result)))
    assert image.size == (64, 48)  # auto size: the input image's
    assert response.tool_usage.image_gen.output_tokens > 0 and response.usage.total_tokens > 0
    # stored: it can be fetched, continued, deleted; then it is gone
    assert client.responses.retrieve(response.id).id == response.id
    follow = client.responses.create(**_body(previous_response_id=response.id))
    assert follow.previous_response_id == response.id
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_store_false_keeps_nothing(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    response = client.responses.create(**_body(store=False))
    with pytest.raises(openai.NotFoundError):
        client.responses.create(**_body(previous_response_id=response.id))


def test_streamed_events_come_in_the_sdk_order(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    fake.responses.enqueue("A blue picture, as asked.")
    events = list(client.responses.create(**_body(stream=True, tools=_tool(partial_images=2))))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.image_generation_call.partial_image") == 2
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[0].item.type == "image_generation_call" and done[0].item.result
    completed = [e for e in events if e.type == "response.image_generation_call.completed"][0]
    assert not hasattr(completed, "result")  # the tool's completed event carries no image
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "A blue picture, as asked."
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_a_text_only_answer_is_stated_by_the_test(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    fake.responses.enqueue("Which of the two dogs?", image=False)
    response = client.responses.create(**_body())
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text == "Which of the two dogs?"


def test_c2pa_signs_the_image_tool_result(fake):
    import json

    import c2pa

    from tests import fake_c2pa

    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    fake.c2pa = True
    try:
        events = list(client.responses.create(**_body(stream=True, tools=_tool(partial_images=1))))
    finally:
        fake.c2pa = False
    partial = next(e for e in events if e.type == "response.image_generation_call.partial_image")
    assert c2pa.Reader.try_create("image/png", io.BytesIO(base64.b64decode(partial.partial_image_b64))) is None
    item = next(e for e in events if e.type == "response.output_item.done").item
    data = base64.b64decode(item.result)
    assert Image.open(io.BytesIO(data)).format == "PNG" and item.output_format == "png"
    with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
    manifest = store["manifests"][store["active_manifest"]]
    assert manifest["claim_generator_info"][0]["name"] == fake_c2pa.CLAIM_GENERATOR
    assert manifest["signature_info"]["common_name"] == fake_c2pa.SIGNER_NAME
