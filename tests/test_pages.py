"""The HTML pages: the same flows as the API, through forms and htmx."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import another_owner, make_settings, png_bytes, wait_for_thread

HX = {"HX-Request": "true"}


@pytest.fixture
def client(tmp_path, sqlite_url, fake_backend):
    with TestClient(create_app(make_settings(tmp_path / "data", sqlite_url)), follow_redirects=False) as c:
        yield c


def start(client, **form) -> str:
    r = client.post("/threads", data=form, files={"image": ("cat.png", png_bytes((80, 60)), "image/png")})
    assert r.status_code == 303
    return r.headers["location"].rsplit("/", 1)[-1]


def test_home_page_has_the_new_thread_form_and_no_inline_script(client):
    r = client.get("/")
    assert r.status_code == 200 and "HX-Request" in r.headers["vary"]
    assert 'action="/threads"' in r.text and 'type="file"' in r.text
    assert "<script>" not in r.text and "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_photo_upload_flow_and_polling(client, fake_backend):
    fake_backend.gate.clear()  # hold the first edit so the page shows it working
    tid = start(client, prompt="slow invert", title="Cat")
    page = client.get(f"/t/{tid}")
    assert page.status_code == 200
    assert "<title>Cat · Retouch</title>" in page.text
    assert 'every 5s"' in page.text and "spinner" in page.text and 'data-events="/t/' in page.text
    # the conversation shows a display-size preview; the full PNG is one click away
    assert re.search(r'<img src="/api/v1/threads/[^"]+/versions/1/image\?size=512" srcset="[^"]+ 1x, [^"]+\?size=1024 2x"\s+'
                     r'width="80" height="60"', page.text)
    fake_backend.gate.set()
    wait_for_thread(client, tid)
    frag = client.get(f"/t/{tid}", headers=HX)
    assert frag.text.lstrip().startswith('<div id="live"') and "<html" not in frag.text
    assert '<section id="conversation"' in frag.text and 'id="version-tree"' in frag.text
    # the sidebar comes along out of band, so its thumbnail shows the new head
    assert 'id="thread-list" class="thread-list" aria-label="Your threads" hx-swap-oob="true"' in frag.text
    assert f"/api/v1/threads/{tid}/versions/2/image?size=thumb" in frag.text
    assert 'every 5s' not in frag.text  # done: polling stops; the page's event listener stays
    assert "Version 2" in frag.text and 'alt="Version 2: slow invert"' in frag.text
    assert "HX-Request" in frag.headers["vary"]
    # navigation (hx-target="#content") gets the whole main column, with its <title>
    nav = client.get(f"/t/{tid}", headers={**HX, "HX-Target": "content"})
    assert nav.text.lstrip().startswith("<title>Cat · Retouch</title>") and 'id="composer"' in nav.text


def test_send_revert_and_branch_through_forms(client):
    tid = start(client)
    r = client.post(f"/t/{tid}/turns", data={"instruction": "invert it"})
    assert r.status_code == 303 and r.headers["location"] == f"/t/{tid}"
    wait_for_thread(client, tid)
    r = client.post(f"/t/{tid}/revert", data={"version": "1"}, headers=HX)
    assert r.status_code == 200 and "Continued from version 1" in r.text
    r = client.post(f"/t/{tid}/turns", data={"instruction": "invert from one"}, headers=HX)
    assert r.status_code == 200 and "invert from one" in r.text
    thread = wait_for_thread(client, tid)
    assert thread["versions"][-1]["parent"] == 1
    page = client.get(f"/t/{tid}").text
    # the version tree shows the branch: a second lane starting from version 1
    assert page.count('<ol class="lane"') == 2 and 'data-from="1"' in page


def test_form_errors_are_readable_and_keep_input(client):
    r = client.post("/threads", data={"prompt": "", "title": "kept"})
    assert r.status_code == 422
    assert "Describe an image to create, upload a photo, or both." in r.text and 'value="kept"' in r.text
    r = client.post("/threads", data={"prompt": ""}, files={"image": ("x.png", b"GIF89a....", "image/png")})
    assert r.status_code == 415 and "GIF" in r.text
    tid = start(client)
    r = client.post(f"/t/{tid}/turns", data={"instruction": "   "}, headers=HX)
    assert r.status_code == 422 and "Write an instruction" in r.text and "<html" not in r.text
    assert client.get("/t/doesnotexist").status_code == 404


def test_share_page_fork_and_revoke(client):
    tid = start(client, title="Shared cat")
    wait_for_thread(client, tid)
    assert client.post(f"/t/{tid}/share").status_code == 303
    page = client.get(f"/t/{tid}").text
    url = re.search(r'class="share-url" type="text" readonly value="([^"]+)"', page).group(1)
    token = url.rsplit("/", 1)[-1]
    with another_owner(client, follow_redirects=False) as visitor:
        shared = visitor.get(f"/s/{token}")
        assert shared.status_code == 200
        assert shared.headers["x-robots-tag"] == "noindex" and shared.headers["referrer-policy"] == "no-referrer"
        assert '<meta property="og:title" content="Shared cat">' in shared.text
        assert re.search(rf'<meta property="og:image" content="http://testserver/api/v1/shared/{token}/versions/1/image">', shared.text)
        assert "Continue from here" not in shared.text and 'id="composer"' not in shared.text
        fork = visitor.post(f"/s/{token}/fork")
        assert fork.status_code == 303
        new_id = fork.headers["location"].rsplit("/", 1)[-1]
        assert visitor.get(f"/t/{new_id}").status_code == 200
        assert client.get(f"/t/{new_id}").status_code == 404
        assert client.post(f"/t/{tid}/share/revoke").status_code == 303
        assert visitor.get(f"/s/{token}").status_code == 404


def test_html_in_instructions_and_titles_is_inert(client):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    tid = start(client, prompt=payload, title=payload)
    wait_for_thread(client, tid)
    client.post(f"/t/{tid}/share")
    for html in (client.get(f"/t/{tid}").text, client.get("/").text):
        assert payload not in html and "&lt;script&gt;" in html
    token = re.search(r'value="http://testserver/s/([^"]+)"', client.get(f"/t/{tid}").text).group(1)
    shared = client.get(f"/s/{token}").text
    assert payload not in shared and 'content="&lt;script&gt;' in shared


def test_rename_and_retry_through_forms(client, fake_backend):
    tid = start(client)
    assert client.post(f"/t/{tid}/title", data={"title": "Better name"}).status_code == 303
    assert "Better name" in client.get("/").text
    fake_backend.fail_times = 1
    client.post(f"/t/{tid}/turns", data={"instruction": "fail please"})
    thread = wait_for_thread(client, tid)
    failed = thread["turns"][-1]
    assert failed["status"] == "failed"
    assert "Try again" in client.get(f"/t/{tid}").text
    r = client.post(f"/t/{tid}/turns/{failed['id']}/retry")
    assert r.status_code == 303
    assert wait_for_thread(client, tid)["turns"][-1]["status"] == "succeeded"


def test_static_assets_are_vendored(client):
    r = client.get("/static/vendor/htmx/htmx-2.0.11.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:2000]
    assert client.get("/static/app.js").status_code == 200


def test_version_viewer_and_compare_pages(client):
    tid = start(client, prompt="invert it", title="Cat photo")
    wait_for_thread(client, tid)
    viewer = client.get(f"/t/{tid}/versions/1")
    assert viewer.status_code == 200 and '<section id="viewer"' in viewer.text
    assert 'id="continue-here"' in viewer.text  # version 1 is not the head
    assert f'href="/api/v1/threads/{tid}/versions/1/image?download=1"' in viewer.text
    assert f'href="/t/{tid}/compare?before=1&amp;after=2"' in viewer.text
    head = client.get(f"/t/{tid}/versions/2")
    assert 'id="continue-here"' not in head.text and "Compare with version 1" in head.text
    assert 'alt="Version 2: invert it"' in head.text
    # htmx navigation gets the main column, starting with the new <title>
    frag = client.get(f"/t/{tid}/versions/2", headers={**HX, "HX-Target": "content"})
    assert frag.text.lstrip().startswith("<title>Version 2 · Cat photo · Retouch</title>") and "<html" not in frag.text
    compare = client.get(f"/t/{tid}/compare")  # defaults: the head and its parent
    assert compare.status_code == 200
    assert re.search(r'<img class="compare-after" src="[^"]+/versions/2/image"', compare.text)
    assert re.search(r'<img class="compare-before" src="[^"]+/versions/1/image"', compare.text)
    assert client.get(f"/t/{tid}/compare?before=1&after=9").status_code == 404
    assert client.get(f"/t/{tid}/compare?before=x").status_code == 422
    assert client.get(f"/t/{tid}/versions/9").status_code == 404
    with another_owner(client, follow_redirects=False) as stranger:
        assert stranger.get(f"/t/{tid}/versions/1").status_code == 404
        assert stranger.get(f"/t/{tid}/compare").status_code == 404


def test_shared_viewer_and_compare_are_read_only(client):
    tid = start(client, prompt="invert it")
    wait_for_thread(client, tid)
    client.post(f"/t/{tid}/share")
    token = re.search(r'value="http://testserver/s/([^"]+)"', client.get(f"/t/{tid}").text).group(1)
    with another_owner(client, follow_redirects=False) as visitor:
        viewer = visitor.get(f"/s/{token}/versions/1")
        assert viewer.status_code == 200 and viewer.headers["x-robots-tag"] == "noindex"
        assert 'id="continue-here"' not in viewer.text and f"/api/v1/shared/{token}/versions/1/image" in viewer.text
        compare = visitor.get(f"/s/{token}/compare?before=1&after=2")
        assert compare.status_code == 200 and compare.headers["referrer-policy"] == "no-referrer"
        client.post(f"/t/{tid}/share/revoke")
        assert visitor.get(f"/s/{token}/versions/1").status_code == 404
        assert visitor.get(f"/s/{token}/compare").status_code == 404


def test_htmx_share_dialog_and_inline_rename(client):
    tid = start(client)
    r = client.post(f"/t/{tid}/share", headers={**HX, "HX-Target": "share-panel"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<div id="share-panel"')
    assert 'id="share-url"' in r.text and 'id="share-revoke"' in r.text
    r = client.post(f"/t/{tid}/share/revoke", headers=HX)
    assert 'id="share-create"' in r.text and 'id="share-url"' not in r.text
    r = client.post(f"/t/{tid}/title", data={"title": "Renamed inline"}, headers=HX)
    assert r.status_code == 200 and 'hx-swap-oob="true"' in r.text and "Renamed inline" in r.text
    r = client.post(f"/t/{tid}/title", data={"title": "  "}, headers=HX)
    assert r.status_code == 422 and r.headers["hx-retarget"] == "#flash"


def test_composer_errors_go_next_to_the_composer(client):
    """The composer's htmx send (HX-Trigger: composer) gets its error as a short message retargeted
    to #composer-alert-text; other htmx forms keep the flash area."""
    tid = start(client)
    r = client.post(f"/t/{tid}/turns", data={"instruction": "   "}, headers={**HX, "HX-Trigger": "composer"})
    assert r.status_code == 422 and r.headers["hx-retarget"] == "#composer-alert-text"
    assert r.text.lstrip().startswith("<p><strong>") and "<h1" not in r.text


def test_version_tree_lanes_show_branches(client):
    tid = start(client, prompt="invert it")
    wait_for_thread(client, tid)
    client.post(f"/t/{tid}/revert", data={"version": "1"})
    client.post(f"/t/{tid}/turns", data={"instruction": "invert again"})
    wait_for_thread(client, tid)
    page = client.get(f"/t/{tid}").text
    lanes = re.findall(r'<ol class="lane"[^>]*>(.*?)</ol>', page, re.S)
    assert len(lanes) == 2
    assert re.findall(r'data-version="(\d+)"', lanes[0]) == ["1", "2"]
    assert re.findall(r'data-version="(\d+)"', lanes[1]) == ["3"] and 'data-from="1"' in page
    assert re.search(r'class="version-node is-head"\s+data-version="3"', page)


def test_textarea_line_breaks_are_stored_as_newlines(client):
    tid = start(client)
    client.post(f"/t/{tid}/turns", data={"instruction": "make it sepia\r\nand flip it"})
    thread = wait_for_thread(client, tid)
    assert thread["turns"][-1]["instruction"] == "make it sepia\nand flip it"


def test_user_bubbles_show_their_mask_and_reference_images(client):
    tid = start(client)
    mask = png_bytes((80, 60), color=(255, 255, 255))
    r = client.post(f"/t/{tid}/turns", data={"instruction": "invert it"},
                    files=[("mask", ("m.png", mask, "image/png")),
                           ("image", ("ref.png", png_bytes((30, 20)), "image/png"))])
    assert r.status_code == 303
    thread = wait_for_thread(client, tid)
    turn = thread["turns"][-1]
    page = client.get(f"/t/{tid}").text
    mask_url = f"/api/v1/threads/{tid}/turns/{turn['id']}/attachments/mask"
    ref_url = f"/api/v1/threads/{tid}/turns/{turn['id']}/attachments/reference-1"
    assert f'src="{mask_url}?size=thumb"' in page and f'src="{ref_url}?size=thumb"' in page
    full = client.get(mask_url)
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    assert client.get(f"{ref_url}?size=thumb").headers["content-type"] == "image/webp"
    assert client.get(mask_url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    for missing in ("reference-2", "reference-0", "mask2", "reference-x"):
        assert client.get(f"/api/v1/threads/{tid}/turns/{turn['id']}/attachments/{missing}").status_code == 404
    with another_owner(client, follow_redirects=False) as stranger:
        assert stranger.get(mask_url).status_code == 404
