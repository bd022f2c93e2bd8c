"""How pages and images travel: display-size WebP previews, content-hashed
static files cached for a year, and compressed text responses."""
from __future__ import annotations

import io
import re

from PIL import Image

from app.storage.base import blob_name
from tests.conftest import png_bytes


def test_previews_are_webp_at_display_size_and_cacheable(client):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((1600, 900)), "image/png")}).json()
    url = thread["versions"][0]["image_url"]
    for width in (512, 1024):
        r = client.get(f"{url}?size={width}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        img = Image.open(io.BytesIO(r.content))
        assert max(img.size) == width and abs(img.width / img.height - 16 / 9) < 0.01
        again = client.get(f"{url}?size={width}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and not again.content
    assert client.get(f"{url}?size=333").status_code == 422
    page = client.get(f"/t/{thread['id']}").text
    assert f'src="{url}?size=512"' in page and f'{url}?size=1024 2x' in page and 'loading="lazy"' in page


def test_the_version_tree_shows_small_previews_made_from_the_thumbnail(client):
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((1600, 900)), "image/png")}).json()
    url = thread["versions"][0]["image_url"]
    page = client.get(f"/t/{thread['id']}").text
    tree = page[page.index('id="version-tree"'):page.index('id="conversation"')]
    assert f'src="{url}?size=128"' in tree and "?size=thumb" not in tree
    store = client.app.state.ctx.store
    with client.app.state.ctx.sessions() as session:
        from app.models import Version

        sha = session.query(Version.sha256).filter_by(thread_id=thread["id"], number=1).scalar()
    full = client.get(url).content
    store.delete(blob_name(sha, ".png"))  # without the PNG, only the thumbnail can make it
    try:
        r = client.get(f"{url}?size=128")
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        img = Image.open(io.BytesIO(r.content))
        assert img.size == (128, 72)
        thumb = client.get(f"{url}?size=thumb").content
        assert len(r.content) < len(thumb)
    finally:
        assert store.put(full) == sha


def test_static_files_have_hashed_names_cached_forever(client):
    page = client.get("/").text
    css = re.search(r'href="(/static/app\.([0-9a-f]{12})\.css)"', page)
    assert css, "the page links a content-hashed stylesheet"
    r = client.get(css.group(1))
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert client.get("/static/app.000000000000.css").status_code == 404  # content that no longer exists
    plain = client.get("/static/app.css")
    assert plain.status_code == 200 and plain.headers["cache-control"] == "no-cache" and plain.content == r.content


def test_text_responses_are_compressed(client):
    client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")})
    for encoding in ("gzip", "br", "zstd"):
        r = client.get("/", headers={"Accept-Encoding": encoding})
        assert r.status_code == 200 and r.headers.get("content-encoding") == encoding, r.headers
    raw = client.get("/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers


def test_image_gets_find_their_blob_for_the_owner_and_live_share_links_only(client):
    # Thumbnails and previews take one Core query (app.services.version_blob); full-size images through a
    # share link and downloads read the rows to sign them. Both answer who may see what alike.
    from tests.conftest import another_owner

    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((300, 200)), "image/png")}).json()["id"]
    own, token = f"/api/v1/threads/{tid}/versions", client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    shared = f"/api/v1/shared/{token}/versions"
    sizes = ["?size=thumb", "?size=128", "?size=512", "", "?download=1", "?size=thumb&download=1"]
    for base in (own, shared):
        for size in sizes:
            r = client.get(f"{base}/1/image{size}")
            assert r.status_code == 200, (base, size, r.text)
            assert ("attachment" in r.headers.get("content-disposition", "")) == ("download" in size)
        missing = client.get(f"{base}/2/image?size=thumb")
        assert missing.status_code == 404 and "Version 2 does not exist" in missing.json()["detail"]
        for number in (0, 2**31, 2**63):
            assert client.get(f"{base}/{number}/image?size=thumb").status_code == 404
    with another_owner(client) as other:
        for size in sizes:
            r = other.get(f"{own}/1/image{size}")
            assert r.status_code == 404 and r.json()["detail"] == "There is no such thread.", size
            assert other.get(f"{shared}/1/image{size}").status_code == 200  # the link is the capability
    assert client.get(f"/api/v1/shared/{token}x/versions/1/image?size=thumb").status_code == 404
    assert client.delete(f"/api/v1/threads/{tid}/share").status_code == 204
    for size in sizes:
        r = client.get(f"{shared}/1/image{size}")
        assert r.status_code == 404 and "revoked" in r.json()["detail"], size
    assert client.get(f"{own}/1/image?size=thumb").status_code == 200
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    assert client.delete(f"/api/v1/threads/{tid}").status_code == 204
    for size in sizes:
        assert client.get(f"{own}/1/image{size}").status_code == 404, size
        assert client.get(f"/api/v1/shared/{token}/versions/1/image{size}").status_code == 404, size
