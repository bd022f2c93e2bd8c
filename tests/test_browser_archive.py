"""Real-browser tests of Content Credentials, Export and Import: a real
``retouch serve`` driven by Chromium (fixtures and helpers from
``tests/test_browser.py``; skipped as that module is when Chromium or
Playwright is missing)."""
from __future__ import annotations

import io
import json
import re
import zipfile
from urllib.parse import urlsplit

import c2pa

from tests.test_browser import (  # noqa: F401 - fixtures are found by name
    browser,
    browser_test,
    expect,
    expect_loaded,
    new_thread,
    photo,
    send,
    server,
    shot,
    ui,
    version_figure,
)


@browser_test
def test_credentials_panel_export_and_import(ui, photo, tmp_path):
    """The version page shows the credentials read back from the signed
    PNG; Export downloads a zip; the home page's Import makes a new thread
    from it, and refuses a file that is not a zip with its reason."""
    page = ui.page()
    tid = new_thread(page, photo)
    send(page, tid, "make it black and white")

    page.goto(f"/t/{tid}/versions/2")
    panel = page.locator("section#credentials")
    expect(panel).to_be_visible()
    # the local backend is exact image processing: no AI is claimed for its edits
    expect(panel.locator(".cred-noai")).to_have_text("No AI claimed")
    expect(panel.locator("li.cred-step")).to_have_count(2)
    expect(panel.locator("#cred-signer")).to_have_text("Retouch instance signer")
    expect_loaded(panel.locator("li.cred-step img").first)
    panel.scroll_into_view_if_needed()
    shot(page, "20-credentials-panel")

    # Download PNG carries the manifest
    with page.expect_download() as dl:
        page.locator("a#download").click()
    png = tmp_path / "v2.png"
    dl.value.save_as(png)
    reader = c2pa.Reader("image/png", io.BytesIO(png.read_bytes()))
    assert reader.get_validation_state() in ("Valid", "Trusted")

    # Export from the thread page
    page.goto(f"/t/{tid}")
    page.evaluate("window.scrollTo(0, 0)")
    expect(page.locator("a#export")).to_be_visible()
    shot(page, "23-thread-export-button")
    with page.expect_download() as dl:
        page.locator("a#export").click()
    zpath = tmp_path / "export.zip"
    dl.value.save_as(zpath)
    assert dl.value.suggested_filename.endswith("-retouch.zip")
    with zipfile.ZipFile(zpath) as zf:
        doc = json.loads(zf.read("thread.json"))
        assert {"versions/v001.png", "versions/v002.png", "timeline.webp"} <= set(zf.namelist())
    assert [t["instruction"] for t in doc["turns"]][-1] == "make it black and white"

    # The shared page shows the timeline and the head's credentials
    token = page.request.post(f"/api/v1/threads/{tid}/share").json()["token"]
    page.goto(f"/s/{token}")
    expect_loaded(page.locator("img#timeline"))
    expect(page.locator("section#credentials li.cred-step")).to_have_count(2)
    page.locator("section#credentials").scroll_into_view_if_needed()
    shot(page, "22-shared-timeline-credentials")

    # Import on the home page: a bad file first, then the export
    ui.allow_console_error(r"status of 415")
    page.goto("/")
    bad = tmp_path / "notes.zip"
    bad.write_bytes(b"not a zip at all")
    page.set_input_files("input#archive", str(bad))
    page.locator("button#import-submit").click()
    expect(page.locator("#import-thread .error")).to_contain_text("not a zip file")
    page.set_input_files("input#archive", str(zpath))
    shot(page, "21-home-import")
    page.locator("button#import-submit").click()
    page.wait_for_url(re.compile(r"/t/[^/?#]+/?$"))
    new_tid = urlsplit(page.url).path.rstrip("/").rsplit("/", 1)[1]
    assert new_tid != tid
    expect(version_figure(page, 2)).to_be_visible()
    expect_loaded(version_figure(page, 2).locator("img"))
