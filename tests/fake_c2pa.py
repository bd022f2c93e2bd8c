"""C2PA Content Credentials for the fake OpenAI server's images.

OpenAI embeds a signed C2PA manifest in the images its APIs return. With
``FakeOpenAI(c2pa=True)`` (``tests/fake_openai.py``, Images and Responses
APIs) the fake does the same: each final image (never a partial one) is
signed with c2pa-python's ``Builder`` and a test certificate made here the
way ``app/provenance.py`` makes Retouch's instance certificate
(:func:`app.provenance.generate_instance_certificate`: a throwaway CA and an
ES256 signing certificate it issued, named "Fake OpenAI"). The image is
still what the API returns: the requested ``output_format`` (PNG by
default), the same pixels, with the manifest embedded where the C2PA spec
puts it (PNG ``caBX`` chunk, JPEG APP11, WebP ``C2PA`` chunk).

The manifest says what OpenAI's say: a ``c2pa.created`` action with the
IPTC ``trainedAlgorithmicMedia`` source type, the image model as
``softwareAgent``, and the claim generator :data:`CLAIM_GENERATOR`.
"""
from __future__ import annotations

import functools
import io

import c2pa

from app.provenance import GENERATED, generate_instance_certificate

#: The claim generator the fake's manifests name, for tests to look for.
CLAIM_GENERATOR = "Fake OpenAI API (tests)"
#: The signing certificate's common name and organisation.
SIGNER_NAME, SIGNER_ORG = "Fake OpenAI signer", "Fake OpenAI (tests)"
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@functools.lru_cache(maxsize=1)
def _identity() -> tuple[bytes, bytes]:
    """(chain PEM, key PEM), made once per test process (about 5 ms)."""
    _ca, chain, key = generate_instance_certificate("Fake OpenAI", organization=SIGNER_ORG)
    return chain, key


def sign(data: bytes, output_format: str = "png", *, model: str = "gpt-image-1") -> bytes:
    """``data`` (an image encoded as ``output_format``: png, jpeg or webp)
    with a signed C2PA manifest embedded, as OpenAI returns its images."""
    chain, key = _identity()
    definition = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": "1.0"}],
        "title": f"image.{output_format}",
        "format": MIME[output_format],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": GENERATED, "softwareAgent": {"name": model}}]}}],
    }
    context = c2pa.Context(settings=c2pa.Settings.from_dict({
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False, "verify_after_sign": False},
    }))
    out = io.BytesIO()
    with c2pa.Builder(definition, context) as builder, \
            c2pa.Signer.from_info(c2pa.C2paSignerInfo("es256", chain, key, None)) as signer:
        builder.sign(signer, MIME[output_format], io.BytesIO(data), out)
    return out.getvalue()
