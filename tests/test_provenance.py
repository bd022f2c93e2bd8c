"""C2PA Content Credentials (app/provenance.py): every download is signed,
read back here with c2pa-python's Reader, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import io
import json

import c2pa
import pytest
from cryptography import x509
from PIL import Image

from app import provenance
from tests.conftest import open_image, png_bytes, wait_for_thread
from tests.test_threads_api import create_from_photo, send

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def read(data: bytes) -> tuple[dict, c2pa.Reader]:
    reader = c2pa.Reader("image/png", io.BytesIO(data))
    return json.loads(reader.json()), reader


def actions_of(manifest: dict) -> list[dict]:
    return [a for s in manifest["assertions"] if s["label"].startswith("c2pa.actions") for a in s["data"]["actions"]]


def parent_manifest(store: dict, manifest: dict) -> dict | None:
    parent = next((i for i in manifest.get("ingredients", []) if i["relationship"] == "parentOf"), None)
    return store["manifests"].get(parent.get("active_manifest")) if parent and parent.get("active_manifest") else None


def mask_png(size=(40, 30)) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    return buf.getvalue()


def download(client, thread_id: str, number: int) -> bytes:
    r = client.get(f"/api/v1/threads/{thread_id}/versions/{number}/image?download=1")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return r.content


def test_downloaded_generation_reads_back_with_reader(client, fake_backend):
    thread = client.post("/api/v1/threads", json={"prompt": "a teal rectangle"}).json()
    thread = wait_for_thread(client, thread["id"])
    data = download(client, thread["id"], 1)
    store, reader = read(data)
    assert reader.get_validation_state() in ("Valid", "Trusted")
    active = store["manifests"][store["active_manifest"]]
    [created] = actions_of(active)
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == IPTC + "trainedAlgorithmicMedia"
    assert created["softwareAgent"]["name"] == "Retouch" and created["softwareAgent"]["version"]
    assert created["parameters"]["backend"] == "fake"
    assert "description" not in created  # instructions are off by default
    assert active["title"] == "Retouch version 1.png"  # never the thread title (often the first prompt)
    assert active["signature_info"]["common_name"] == "Retouch instance signer"
    # the pixels are the stored version's; the stored blob itself stays plain
    assert open_image(data).tobytes() == open_image(client.get(thread["versions"][0]["image_url"]).content).tobytes()
    plain = client.get(thread["versions"][0]["image_url"]).content
    assert hashlib.sha256(plain).hexdigest() == thread["versions"][0]["sha256"]
    assert c2pa.Reader.try_create("image/png", io.BytesIO(plain)) is None


def test_three_edit_chain_has_ingredients_three_deep(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    for word in ("invert", "invert again", "and once more"):
        send(client, thread["id"], word)
        wait_for_thread(client, thread["id"])
    store, reader = read(download(client, thread["id"], 4))
    assert reader.get_validation_state() in ("Valid", "Trusted")
    manifest = store["manifests"][store["active_manifest"]]
    chain = []
    while manifest is not None:
        chain.append(manifest)
        manifest = parent_manifest(store, manifest)
    assert [m["title"] for m in chain] == [f"Retouch version {n}.png" for n in (4, 3, 2, 1)]
    for m in chain[:3]:
        acts = actions_of(m)
        assert [a["action"] for a in acts] == ["c2pa.opened", "c2pa.edited"]
        assert acts[1]["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    # the chain ends at the upload: opened, nothing claimed about how it was made
    [opened] = actions_of(chain[3])
    assert opened["action"] == "c2pa.opened" and "digitalSourceType" not in opened


def test_masked_edit_is_labelled_composite(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    send(client, thread["id"], "invert the left half", files=[("mask", ("mask.png", mask_png(), "image/png"))])
    wait_for_thread(client, thread["id"])
    store, _ = read(download(client, thread["id"], 2))
    manifest = store["manifests"][store["active_manifest"]]
    edited = actions_of(manifest)[-1]
    assert edited["digitalSourceType"] == IPTC + "compositeWithTrainedAlgorithmicMedia"
    assert edited["parameters"]["mask"] is True
    inputs = [i for i in manifest["ingredients"] if i["relationship"] == "inputTo"]
    assert [i["title"] for i in inputs] == ["selected region (mask).png"]


def test_upload_claims_no_ai(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    store, reader = read(download(client, thread["id"], 1))
    for manifest in store["manifests"].values():
        for action in actions_of(manifest):
            assert "digitalSourceType" not in action
    panel = client.get(f"/api/v1/threads/{thread['id']}/versions/1/credentials").json()
    assert panel["present"] and panel["ai"] is False
    assert [s["action"] for s in panel["steps"]] == ["c2pa.opened"]


def test_tampered_byte_breaks_validation(client, fake_backend):
    thread = client.post("/api/v1/threads", json={"prompt": "a teal rectangle"}).json()
    wait_for_thread(client, thread["id"])
    data = bytearray(download(client, thread["id"], 1))
    idat = data.find(b"IDAT")
    data[idat + 10] ^= 0x01
    _, reader = read(bytes(data))
    assert reader.get_validation_state() == "Invalid"
    failures = [f["code"] for f in reader.get_validation_results()["activeManifest"]["failure"]]
    assert "assertion.dataHash.mismatch" in failures
    panel = provenance.read_credentials(bytes(data))
    assert panel["state"] == "Invalid" and "assertion.dataHash.mismatch" in panel["failures"]


def test_instructions_only_when_the_owner_turns_them_on(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    send(client, thread["id"], "invert the colours")
    wait_for_thread(client, thread["id"])
    first = download(client, thread["id"], 2)
    assert b"invert the colours" not in first
    r = client.put(f"/api/v1/threads/{thread['id']}/provenance", json={"include_instructions": True})
    assert r.status_code == 200 and r.json() == {"include_instructions": True}
    second = download(client, thread["id"], 2)
    store, _ = read(second)
    assert actions_of(store["manifests"][store["active_manifest"]])[-1]["description"] == "invert the colours"
    # and the page's switch turns it off again
    r = client.post(f"/t/{thread['id']}/provenance", data={"include_instructions": "", "version": "2"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/versions/2#credentials")
    assert b"invert the colours" not in download(client, thread["id"], 2)


def test_signing_is_cached_and_conditional(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    url = f"/api/v1/threads/{thread['id']}/versions/1/image?download=1"
    a, b = client.get(url), client.get(url)
    assert a.content == b.content  # signed once, not per download
    assert "attachment" in a.headers["content-disposition"]
    assert client.get(url, headers={"If-None-Match": a.headers["etag"]}).status_code == 304


def test_shared_page_serves_signed_images_and_shows_credentials(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)), prompt="invert it")
    wait_for_thread(client, thread["id"])
    token = client.post(f"/api/v1/threads/{thread['id']}/share").json()["token"]
    image = client.get(f"/api/v1/shared/{token}/versions/2/image")
    store, _ = read(image.content)
    assert store["active_manifest"]
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "Content credentials" in page.text and "AI was used" in page.text
    assert f"/api/v1/shared/{token}/timeline.webp" in page.text
    # the owner's version page has the panel and the switch
    page = client.get(f"/t/{thread['id']}/versions/2")
    assert "Content credentials" in page.text and 'id="cred-toggle"' in page.text
    assert "composite with AI-generated parts" in page.text


def test_instance_certificate_is_made_once_beside_the_secret_key(tmp_path):
    first = provenance.load_identity(tmp_path)
    second = provenance.load_identity(tmp_path)
    assert first.fingerprint == second.fingerprint and first.generated
    assert (tmp_path / provenance.KEY_FILE).stat().st_mode & 0o077 == 0
    leaf, ca = x509.load_pem_x509_certificates(first.chain_pem)
    assert leaf.issuer == ca.subject and leaf.subject != leaf.issuer
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_configured_certificate_is_used(tmp_path):
    ca_pem, chain_pem, key_pem = provenance.generate_instance_certificate("Example Org")
    (tmp_path / "chain.pem").write_bytes(chain_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    identity = provenance.load_identity(tmp_path / "data", str(tmp_path / "chain.pem"), str(tmp_path / "key.pem"))
    assert identity.subject.startswith("Example Org signer") and not identity.generated
    assert not (tmp_path / "data" / provenance.CHAIN_FILE).exists()
    with pytest.raises(provenance.CredentialsError, match="both"):
        provenance.load_identity(tmp_path, str(tmp_path / "chain.pem"), None)
    other = provenance.generate_instance_certificate()[2]
    (tmp_path / "other.pem").write_bytes(other)
    with pytest.raises(provenance.CredentialsError, match="does not belong"):
        provenance.load_identity(tmp_path, str(tmp_path / "chain.pem"), str(tmp_path / "other.pem"))


def test_local_backend_claims_no_ai_except_neural_style():
    from types import SimpleNamespace as T

    local = T(backend="local", message="made it black and white")
    assert provenance.source_type(local, edit=True) is None
    assert provenance.source_type(local, edit=False) == provenance.ALGORITHMIC
    style = T(backend="local", message="painted it in the style 'mosaic' (neural style 3)")
    assert provenance.source_type(style, edit=True) == provenance.COMPOSITE
    openai = T(backend="openai", message=None)
    assert provenance.source_type(openai, edit=False) == provenance.GENERATED
    assert provenance.source_type(openai, edit=True) == provenance.COMPOSITE


def test_a_certificate_c2pa_refuses_stops_the_start(tmp_path):
    """A self-signed signing certificate (C2PA spec §14.5.1 forbids it) is
    refused when the app starts, with c2pa's reason."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from app.config import Settings
    from app.main import create_app

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'r.db'}", backend="local",
                        c2pa_cert=str(tmp_path / "c.pem"), c2pa_key=str(tmp_path / "k.pem"))
    with pytest.raises(provenance.CredentialsError, match="c2pa cannot sign"):
        create_app(settings)


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_embedded_manifest_format_finds_a_manifest_where_the_spec_puts_it(fmt, pil_format):
    from tests import fake_c2pa

    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(buf, pil_format)
    assert provenance.embedded_manifest_format(buf.getvalue()) is None
    assert provenance.embedded_manifest_format(fake_c2pa.sign(buf.getvalue(), fmt)) == f"image/{fmt}"
    assert provenance.embedded_manifest_format(b"caBX but not an image") is None


def test_a_vendor_file_that_is_gone_is_left_out_not_fatal(client, fake_backend, monkeypatch, settings):
    """The worker keeps a result file that came with a C2PA manifest; when
    that file is gone (deleted by hand), the version is still signed, just
    without the vendor's claim."""
    from app.storage import BlobStore
    from tests import fake_c2pa

    plain_run = fake_backend.run

    def signed_run(request):
        result = plain_run(request)
        buf = io.BytesIO()
        result.image.save(buf, "PNG")
        result.source = fake_c2pa.sign(buf.getvalue())
        return result

    monkeypatch.setattr(fake_backend, "run", signed_run)
    thread = create_from_photo(client, png_bytes((40, 30)))
    send(client, thread["id"], "invert")
    send(client, thread["id"], "invert again")
    thread = wait_for_thread(client, thread["id"])
    turns = [t for t in thread["turns"] if t["kind"] == "edit"]
    assert len({t["output"]["source_sha256"] for t in turns}) == 2
    BlobStore(settings.blob_dir).path(turns[0]["output"]["source_sha256"], ".source").unlink()
    store, reader = read(download(client, thread["id"], 3))
    assert reader.get_validation_state() in ("Valid", "Trusted")
    vendors = [m for m in store["manifests"].values()
               if m["claim_generator_info"][0]["name"] == fake_c2pa.CLAIM_GENERATOR]
    assert len(vendors) == 1  # v3's vendor file; v2's is gone, and v2 was signed without it
    v2 = parent_manifest(store, store["manifests"][store["active_manifest"]])
    assert [i["relationship"] for i in v2["ingredients"]] == ["parentOf"]
    # an import never brings a vendor file's digest along (the zip has no such file, and a digest
    # named in thread.json must not pull someone else's kept file into the importer's credentials)
    archive = client.get(f"/api/v1/threads/{thread['id']}/export").content
    imported = client.post("/api/v1/threads/import", files={"archive": ("t.zip", archive, "application/zip")})
    assert imported.status_code in (200, 201), imported.text
    copy = client.get(f"/api/v1/threads/{imported.json()['id']}").json()
    assert [t["output"] for t in copy["turns"] if t["kind"] == "edit"] == [
        {k: v for k, v in t["output"].items() if k != "source_sha256"} for t in turns]
    store, _ = read(download(client, copy["id"], 3))
    assert not [m for m in store["manifests"].values()
                if m["claim_generator_info"][0]["name"] == fake_c2pa.CLAIM_GENERATOR]
