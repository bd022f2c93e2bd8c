"""C2PA Content Credentials for every PNG that leaves Retouch.

Section names below are those of the C2PA Technical Specification 2.x
(https://c2pa.org/specifications/); the API is c2pa-python 0.38's
(``Builder``, ``Reader``, ``Signer.from_info``, ``Context``/``Settings``).

What is signed. Each version gets a C2PA manifest ("Manifests"), written
with c2pa-python's ``Builder`` and embedded in the PNG's ``caBX`` chunk
("Embedding manifests into assets", PNG). The manifest holds one
``c2pa.actions.v2`` assertion ("Actions"):

- a generation: ``c2pa.created`` with the IPTC digital source type
  ``trainedAlgorithmicMedia``;
- an edit (with or without a selected region): ``c2pa.opened`` of the parent
  version, then ``c2pa.edited`` with ``compositeWithTrainedAlgorithmicMedia``;
  a masked edit also says ``"mask": true`` in its parameters;
- the ``local`` backend is exact image processing, not a generative model:
  its canvases claim ``algorithmicMedia`` and its edits no source type,
  except neural style transfer (see :func:`source_type`);
- an upload: ``c2pa.opened`` of the photo as Retouch stored it (decoded and
  re-encoded, metadata removed), with no digital source type: Retouch claims
  nothing about how the photo was made.

Every action names ``softwareAgent`` Retouch and its version, and its
``parameters`` give the backend and the model. The parent version's signed
PNG is the ``parentOf`` ingredient ("Ingredient"), so the chain
of manifests leads back to the upload or the first generation; reference
images, masks and drawings are ``inputTo`` ingredients. The instruction is
written (as the action's ``description``) only when the owner turned that on
for the thread (``Thread.c2pa_instructions``; default off). The manifest's
title is ``"Retouch version N.png"``, never the thread title, which is often
the first prompt.

What is stored. The blobs stay plain content-addressed PNGs. Signed copies
are a cache in the store (``Store.cache_put``): ``<data dir>/c2pa-cache/<key[:2]>/<key>.png``,
or ``c2pa-cache/`` under an S3 store's prefix, whose
key is the sha256 of the blob's sha256, the manifest definition, the parent's
key and the certificate's fingerprint: a version is signed once, and again
only when one of those changes (the owner turns instructions on, say).
Deleting the folder is safe; ``retouch gc`` leaves it alone.

Who signs ("Trust model"). ``RETOUCH_C2PA_CERT`` and
``RETOUCH_C2PA_KEY`` name a PEM certificate chain (signing certificate first)
and its PEM private key. Without them, at first start Retouch makes an
instance certificate in the data folder, beside ``secret_key``: a self-signed
CA (``c2pa-ca.pem``) and an ES256 signing certificate it issued
(``c2pa-signer.pem``, the chain; ``c2pa-signer.key``, mode 0600). The CA's
private key is thrown away once the signing certificate is issued. No
verifier trusts that CA, so they report the credentials as valid but signed
by an untrusted certificate (``signingCredential.untrusted``).

Nothing here reaches the network: no time-stamp authority, no OCSP, no remote
manifests (the c2pa ``Context`` turns ``verify.ocsp_fetch`` and
``verify.remote_manifest_fetch`` off).

A vendor's own manifest. When a backend's result file arrives with its own
C2PA manifest (OpenAI signs its images), the worker keeps that file exactly
as it came (``<sha>.source`` in the blob store; :func:`embedded_manifest_format`
decides) and records its sha256 as ``turn.output["source_sha256"]``. The
version's manifest then lists it as a ``componentOf`` ingredient ("Ingredient"
assertion: the ingredient is a component of the current asset; there may be
only one ``parentOf`` ingredient, which is the parent version's signed PNG,
and a generation's ``c2pa.created`` has no parent), referenced by a
``c2pa.placed`` action
("Actions": an ingredient placed into the asset: all of it for a plain result,
the selected region of a masked composite). c2pa copies the vendor's manifest
into the version's manifest store and records its validation results in the
ingredient (the vendor's claim is validated when Retouch signs, so those
versions are signed with ingredient validation on), and every later version
carries it along through its ``parentOf`` chain.
"""
from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import io
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.models import Thread, Version
from app.storage import SOURCE_SUFFIX, THUMB_SUFFIX, create_once

log = logging.getLogger("retouch")

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/).
GENERATED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
#: "created purely by an algorithm not based on any sampled training data":
#: the local backend's plain canvases.
ALGORITHMIC = IPTC + "algorithmicMedia"
AI_SOURCE_TYPES = {GENERATED, COMPOSITE, IPTC + "compositeSynthetic",
                   "http://c2pa.org/digitalsourcetype/trainedAlgorithmicData"}
#: Backends whose edits are exact image processing rather than generative
#: models (``app/backends/local``): their edits claim no AI, except neural
#: style transfer, whose pixels a trained network paints (its summary says
#: "in the style").
NON_GENERATIVE_BACKENDS = {"local"}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CA_FILE, CHAIN_FILE, KEY_FILE = "c2pa-ca.pem", "c2pa-signer.pem", "c2pa-signer.key"
CACHE_DIR = "c2pa-cache"
#: Bumped when the manifest layout changes, so cached files are signed again.
MANIFEST_LAYOUT = 2
#: Steps of the chain the credentials panel lists (the newest first).
PANEL_STEPS = 12
#: Validity of a generated instance certificate, days.
CERT_DAYS = 3650


@functools.lru_cache(maxsize=1)
def retouch_version() -> str:
    """Retouch's version as installed (``pyproject.toml``), for ``softwareAgent``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("retouch")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "0.1.0"


class CredentialsError(Exception):
    """The signing certificate or key cannot be used; the message says why."""


@dataclass(frozen=True)
class SigningIdentity:
    """A PEM certificate chain (signing certificate first) and its PEM private
    key, the C2PA algorithm they sign with (``ES256`` ...), the signer's and
    issuer's names, whether Retouch generated them, and the sha256 hex
    fingerprint of the signing certificate (DER)."""

    chain_pem: bytes
    key_pem: bytes
    alg: str
    subject: str
    issuer: str
    generated: bool
    fingerprint: str


def load_identity(data_dir: Path, cert_path: str | None = None, key_path: str | None = None) -> SigningIdentity:
    """The signing identity: ``cert_path`` and ``key_path`` when given
    (``RETOUCH_C2PA_CERT`` / ``RETOUCH_C2PA_KEY``), else the instance
    certificate in ``data_dir``, generated on first use (see the module
    docstring). Raises :class:`CredentialsError` when only one of the two
    paths is given, a file cannot be read, or the key does not match the
    certificate or is of a type C2PA cannot sign with (spec, "Digital
    signatures": ES256/384/512, PS256/384/512, Ed25519)."""
    if bool(cert_path) != bool(key_path):
        raise CredentialsError("Set both RETOUCH_C2PA_CERT and RETOUCH_C2PA_KEY, or neither.")
    generated = not cert_path
    if generated:
        cert_path, key_path = _ensure_instance_certificate(Path(data_dir))
    try:
        chain_pem, key_pem = Path(cert_path).read_bytes(), Path(key_path).read_bytes()
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CredentialsError(f"Cannot read the C2PA certificate or key ({cert_path}, {key_path}): {exc}") from None
    leaf = certs[0]
    if leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CredentialsError(f"The key in {key_path} does not belong to the first certificate in {cert_path}.")
    return SigningIdentity(chain_pem=chain_pem, key_pem=key_pem, alg=_algorithm(key), subject=_name(leaf.subject),
                           issuer=_name(leaf.issuer), generated=generated,
                           fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest())


def _algorithm(key) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(key.curve.name)
        if alg:
            return alg
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise CredentialsError("C2PA signs with EC P-256/P-384/P-521, RSA (PSS) or Ed25519 keys; "
                           "this key is none of those.")


def _name(name: x509.Name) -> str:
    parts = [a.value for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME)
             for a in name.get_attributes_for_oid(oid)]
    return ", ".join(str(p) for p in parts) or name.rfc4514_string()


_GEN_LOCK = threading.Lock()


def _ensure_instance_certificate(data_dir: Path) -> tuple[Path, Path]:
    """Make the instance CA and signing certificate in ``data_dir`` unless
    they exist; returns (chain path, key path). The files are written to
    temporary names and linked into place (``os.link`` fails when another
    process won the race), key first, so a reader never sees a chain
    without its key."""
    chain_path, key_path, ca_path = data_dir / CHAIN_FILE, data_dir / KEY_FILE, data_dir / CA_FILE
    with _GEN_LOCK:
        if chain_path.is_file() and key_path.is_file():
            return chain_path, key_path
        data_dir.mkdir(parents=True, exist_ok=True)
        ca_pem, chain_pem, key_pem = generate_instance_certificate()
        for path, data in ((key_path, key_pem), (ca_path, ca_pem), (chain_path, chain_pem)):
            create_once(path, data)
        log.info("made a C2PA instance certificate in %s (verifiers will call it untrusted; see the README)",
                 data_dir.resolve())
    return chain_path, key_path


def generate_instance_certificate(common_name: str = "Retouch instance",
                                  organization: str = "Retouch (self-hosted)") -> tuple[bytes, bytes, bytes]:
    """A new self-signed CA and an ES256 signing certificate it issues, both
    valid ``CERT_DAYS`` days, named ``common_name`` + " CA" / " signer" of
    ``organization``. Returns (CA PEM, chain PEM = signing
    certificate then CA, signing key PEM, PKCS#8). The signing certificate
    has what C2PA requires of one (spec, "Certificate profile"; c2pa-rs
    checks it when signing, ``valid_eku_oids.cfg``):
    X.509 v3, not a CA, key usage digitalSignature (critical), extended key
    usage emailProtection, subject and authority key identifiers, and it is
    not self-signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} signer"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_pem, cert.public_bytes(pem) + ca_pem, key_pem


def _context() -> c2pa.Context:
    """A c2pa Context for reading (c2pa-python ``Context``/``Settings``,
    c2pa-rs settings schema): full validation, but never the network (no
    OCSP, no remote manifests)."""
    return c2pa.Context(settings=c2pa.Settings.from_dict({
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
    }))


def _signing_context(*, validate_ingredients: bool = False) -> c2pa.Context:
    """A c2pa Context for signing: no network, no thumbnails of its own
    (Retouch hands it the WebP thumbnails it already stores, which saves
    decoding two full-size PNGs per signing), and no validation of the
    parent's manifests when it is added, nor of the result after signing:
    Retouch signed the parent itself, and readers validate the whole chain
    anyway. Measured on a 50-version chain of 1024x1024 photos: about 3x
    faster, and the time no longer grows with the depth of the chain.

    With ``validate_ingredients`` (a version with a vendor's manifest, which
    Retouch did not sign) ingredients are validated as they are added, so
    the vendor ingredient records its validation results (C2PA spec,
    "Ingredient": ``validationResults``); the parent chain is then validated
    too, once per such version."""
    return c2pa.Context(settings=c2pa.Settings.from_dict({
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False, "verify_after_sign": False,
                   "verify_after_reading": validate_ingredients},
    }))


class Provenance:
    """Signs versions and reads credentials back, for one data folder and
    identity. Safe to use from several threads: each signing makes its own
    c2pa ``Builder`` and ``Signer``; two threads signing the same version at
    once both write the same cache file (atomically), and one copy wins."""

    def __init__(self, data_dir: Path, identity: SigningIdentity) -> None:
        self.identity = identity
        self.cache_root = Path(data_dir) / CACHE_DIR
        self._panels: OrderedDict[str, dict] = OrderedDict()
        self._panel_lock = threading.Lock()

    # ------------------------------------------------------------ signing

    def signed_path(self, store, thread: Thread, number: int) -> Path:
        """The file of :meth:`signed_copy` in a folder store
        (``FileStore.cache_path``; benchmarks read it). Raises as
        :meth:`signed_copy`, AttributeError for a store without files (S3)."""
        key, _ = self._sign_lineage(store, thread, number)
        return store.cache_path(cache_name(key))

    def signed_bytes(self, store, thread: Thread, number: int) -> bytes:
        """The bytes of :meth:`signed_copy`; raises as it does."""
        return self.signed_copy(store, thread, number)[1]

    def signed_copy(self, store, thread: Thread, number: int) -> tuple[str, bytes]:
        """(cache key, PNG bytes) of version ``number`` of ``thread``
        signed, signing it (and, first, each ancestor not yet signed) when
        the store's cache (``Store.cache_get``, :func:`cache_name`) has no
        copy. ``store`` is the :class:`app.storage.Store`. Takes about 40 ms
        per version signed on one core (README, "Content Credentials").
        Raises FileNotFoundError when a blob is missing, ``c2pa.C2paError``
        when c2pa refuses to sign (c2pa-python ``Builder.sign``)."""
        key, data = self._sign_lineage(store, thread, number)
        if data is None:
            data = store.cache_get(cache_name(key))
            if data is None:  # the cache was emptied meanwhile
                key, data = self._sign_lineage(store, thread, number, force=True)
        return key, data

    def _sign_lineage(self, store, thread: Thread, number: int, *, force: bool = False) -> tuple[str, bytes | None]:
        """Sign what the cache lacks of version ``number``'s lineage: only
        the versions after the newest cached one (each signed copy names
        its parent's key, so the ones before it are not needed). Returns
        the key of the version's signed copy and its bytes when signed now
        (None when it was cached already)."""
        steps = []
        parent_key = None
        for version in lineage(thread, number):
            definition, inputs = self.manifest_for(thread, version)
            vendor = vendor_source(thread, version)
            if vendor is not None and not store.exists(vendor[0], SOURCE_SUFFIX):
                vendor = None  # collected or lost: sign without it rather than fail the download
            key = hashlib.sha256(json.dumps({
                "layout": MANIFEST_LAYOUT, "blob": version.sha256, "manifest": definition, "inputs": inputs,
                "parent": parent_key, "signer": self.identity.fingerprint,
                **({"vendor_source": vendor[0]} if vendor else {})}, sort_keys=True).encode()).hexdigest()
            steps.append((version, definition, inputs, vendor, key))
            parent_key = key
        start = 0 if force else len(steps)
        while start > 0 and not store.cache_exists(cache_name(steps[start - 1][4])):
            start -= 1
        if start == len(steps):
            return steps[-1][4], None
        parent_data = store.cache_get(cache_name(steps[start - 1][4])) if start > 0 else None
        if start > 0 and parent_data is None:  # emptied meanwhile: sign the whole chain
            return self._sign_lineage(store, thread, number, force=True)
        for version, definition, inputs, vendor, key in steps[start:]:
            parent_data = self._sign(store, version, definition, inputs, parent_data, vendor=vendor)
            store.cache_put(cache_name(key), parent_data)
        return steps[-1][4], parent_data

    def manifest_for(self, thread: Thread, version: Version) -> tuple[dict, list[tuple[str, str]]]:
        """The manifest definition (c2pa-python ``Builder`` JSON) of
        ``version`` without its parent ingredient, and the ``inputTo``
        ingredients as (title, blob sha256) pairs. See the module
        docstring for what each kind of version claims."""
        turn = next((t for t in thread.turns if t.id == version.turn_id), None) if version.turn_id else None
        agent = {"name": "Retouch", "version": retouch_version()}
        share_text = bool(getattr(thread, "c2pa_instructions", False))
        params: dict = {}
        if turn is not None and turn.backend:
            params["backend"] = turn.backend
        model = ((turn.output or {}).get("model") if turn is not None else None) or (turn.model if turn else None)
        if model:
            params["model"] = model
        inputs: list[tuple[str, str]] = []
        if version.parent is None and (turn is None or turn.kind == "upload"):
            opened = {"action": "c2pa.opened", "softwareAgent": agent,
                      "parameters": {"ingredientIds": ["source"]}}
            if share_text and turn is not None and turn.instruction:
                opened["description"] = f"Uploaded photo {turn.instruction}"
            actions = [opened]
        elif version.parent is None:
            created = {"action": "c2pa.created", "softwareAgent": agent,
                       "digitalSourceType": source_type(turn, edit=False), "parameters": params}
            if share_text and turn is not None and turn.instruction:
                created["description"] = turn.instruction
            actions = [created]
        else:
            edited = {"action": "c2pa.edited", "softwareAgent": agent,
                      "parameters": {**params, **({"mask": True} if turn is not None and turn.mask_sha256 else {})}}
            kind = source_type(turn, edit=True)
            if kind:
                edited["digitalSourceType"] = kind
            if share_text and turn is not None and turn.instruction:
                edited["description"] = turn.instruction
            actions = [{"action": "c2pa.opened", "softwareAgent": agent, "parameters": {"ingredientIds": ["parent"]}},
                       edited]
        if turn is not None and turn.kind in ("edit", "generate"):
            if turn.mask_sha256:
                inputs.append(("selected region (mask).png", turn.mask_sha256))
            if turn.markup_sha256:
                inputs.append(("drawing (markup).png", turn.markup_sha256))
            for i, sha in enumerate(turn.reference_sha256s or [], 1):
                if isinstance(sha, str):
                    inputs.append((f"reference image {i}.png", sha))
        definition = {
            "claim_generator_info": [agent],
            "title": f"Retouch version {version.number}.png",
            "format": "image/png",
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}],
        }
        return definition, inputs

    def _sign(self, store, version: Version, definition: dict, inputs, parent_data: bytes | None,
              *, vendor: tuple[str, str] | None = None) -> bytes:
        blob = store.read(version.sha256)
        definition = {**definition, "thumbnail": {"format": "image/webp", "identifier": "thumbnail.webp"}}
        vendor_data = vendor_format = None
        if vendor is not None:
            try:
                vendor_data = store.read_source(vendor[0])
            except FileNotFoundError:  # collected since it was looked for
                vendor_data = b""
            vendor_format = embedded_manifest_format(vendor_data)
            if vendor_format is None:  # never stored so, or gone: no claim to keep
                vendor_data = None
            else:
                actions = [*definition["assertions"][0]["data"]["actions"],
                           {"action": "c2pa.placed", "softwareAgent": {"name": "Retouch", "version": retouch_version()},
                            "parameters": {"ingredientIds": ["vendor"]}}]
                definition = {**definition, "assertions": [
                    {"label": "c2pa.actions.v2", "data": {"actions": actions}}, *definition["assertions"][1:]]}
        builder = c2pa.Builder(definition, _signing_context(validate_ingredients=vendor_data is not None))
        builder.add_resource("thumbnail.webp", io.BytesIO(_thumbnail(store, version.sha256, blob)))

        names = iter(range(1, 1000))

        def ingredient(spec: dict, sha: str, data) -> None:
            name = f"ingredient-{next(names)}.webp"
            builder.add_resource(name, io.BytesIO(_thumbnail(store, sha)))
            builder.add_ingredient({**spec, "thumbnail": {"format": "image/webp", "identifier": name}},
                                   "image/png", data)

        if parent_data is not None:
            parent = next(v for v in version.thread.versions if v.number == version.parent)
            ingredient({"title": f"Retouch version {version.parent}.png", "relationship": "parentOf",
                        "label": "parent"}, parent.sha256, io.BytesIO(parent_data))
        elif definition["assertions"][0]["data"]["actions"][0]["action"] == "c2pa.opened":
            ingredient({"title": "uploaded photo (as stored by Retouch, metadata removed).png",
                        "relationship": "parentOf", "label": "source"}, version.sha256, io.BytesIO(blob))
        for title, sha in inputs:
            try:
                data = store.read(sha)
            except FileNotFoundError:
                continue
            ingredient({"title": title, "relationship": "inputTo"}, sha, io.BytesIO(data))
        if vendor_data is not None:
            from PIL import Image

            from app.imaging import encode_thumbnail

            with Image.open(io.BytesIO(vendor_data)) as im:
                builder.add_resource("vendor.webp", io.BytesIO(encode_thumbnail(im)))
            ext = vendor_format.rsplit("/", 1)[-1].replace("jpeg", "jpg")
            builder.add_ingredient({"title": f"result of the {vendor[1]} backend, as the vendor sent it.{ext}",
                                    "relationship": "componentOf", "label": "vendor",
                                    "thumbnail": {"format": "image/webp", "identifier": "vendor.webp"}},
                                   vendor_format, io.BytesIO(vendor_data))
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.identity.alg, self.identity.chain_pem,
                                                           self.identity.key_pem, None))
        out = io.BytesIO()
        try:
            builder.sign(signer, "image/png", io.BytesIO(blob), out)
        finally:
            signer.close()
            builder.close()
        return out.getvalue()

    def check(self) -> None:
        """Sign a 1x1 PNG, so that a certificate c2pa refuses (a self-signed
        or CA signing certificate, a missing extended key usage: C2PA spec,
        "Certificate profile") stops the start rather than the first
        download. Raises
        :class:`CredentialsError` with c2pa's reason."""
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buf, "PNG")
        definition = {"claim_generator_info": [{"name": "Retouch", "version": retouch_version()}],
                      "title": "check.png", "format": "image/png",
                      "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                          {"action": "c2pa.created", "digitalSourceType": ALGORITHMIC}]}}]}
        try:
            with c2pa.Builder(definition, _signing_context()) as builder, c2pa.Signer.from_info(
                    c2pa.C2paSignerInfo(self.identity.alg, self.identity.chain_pem, self.identity.key_pem,
                                        None)) as signer:
                builder.sign(signer, "image/png", io.BytesIO(buf.getvalue()), io.BytesIO())
        except c2pa.C2paError as exc:
            raise CredentialsError(f"c2pa cannot sign with the C2PA certificate ({self.identity.subject}): "
                                   f"{exc}") from None

    # ------------------------------------------------------------ reading

    def panel(self, store, thread: Thread, number: int) -> dict:
        """The "Content credentials" panel of a version, read back from its
        signed PNG (signing it first if needed): see :func:`read_credentials`.
        Cached in memory per signed file. Raises as :meth:`signed_path`."""
        key, data = self._sign_lineage(store, thread, number)
        with self._panel_lock:
            if key in self._panels:
                self._panels.move_to_end(key)
                return self._panels[key]
        if data is None:
            key, data = self.signed_copy(store, thread, number)
        result = read_credentials(data)
        with self._panel_lock:
            self._panels[key] = result
            while len(self._panels) > 256:
                self._panels.popitem(last=False)
        return result


def source_type(turn, *, edit: bool) -> str | None:
    """The IPTC digital source type a generation (``edit`` False) or edit
    by ``turn`` claims: ``trainedAlgorithmicMedia`` for a generative
    backend's generation, ``compositeWithTrainedAlgorithmicMedia`` for its
    edits (masked or not: the result mixes the earlier image with generated
    pixels). A non-generative backend (:data:`NON_GENERATIVE_BACKENDS`)
    claims ``algorithmicMedia`` for a generated canvas and nothing for an
    edit, except neural style transfer (composite). A version with no turn
    (never written by Retouch itself) claims the generative case."""
    backend = getattr(turn, "backend", None) if turn is not None else None
    if backend in NON_GENERATIVE_BACKENDS:
        if "in the style" in (turn.message or ""):
            return COMPOSITE
        return None if edit else ALGORITHMIC
    return COMPOSITE if edit else GENERATED


def vendor_source(thread: Thread, version: Version) -> tuple[str, str] | None:
    """(sha256, backend) of the vendor's original result file the worker
    kept for ``version`` (``turn.output["source_sha256"]``, a file with its
    own C2PA manifest), or None."""
    turn = next((t for t in thread.turns if t.id == version.turn_id), None) if version.turn_id else None
    sha = (turn.output or {}).get("source_sha256") if turn is not None and isinstance(turn.output, dict) else None
    if not isinstance(sha, str) or not _SHA256.match(sha):
        return None
    return sha, turn.backend or "vendor"


def embedded_manifest_format(data: bytes) -> str | None:
    """The MIME type of ``data`` when it is a PNG, JPEG or WebP file with an
    embedded C2PA manifest store, else None. Looks only where the C2PA spec
    puts one (Technical Specification 2.x, 11.3 "Embedding manifests into
    various file formats"): a PNG ``caBX`` chunk; JPEG ``APP11`` segments
    holding JUMBF (JPEG XT, ISO 19566-5) whose description box is labelled
    ``c2pa``; a ``C2PA`` chunk of a RIFF (WebP) file. Reads the chunk and
    segment headers only, not the pixels, and validates nothing (c2pa does
    that when the file becomes an ingredient)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(data):
            length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
            if kind == b"caBX":
                return "image/png"
            if kind == b"IEND":
                break
            pos += 12 + length
        return None
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                pos += 1 if marker == 0xFF else 2
                continue
            if marker in (0xDA, 0xD9):  # start of scan / end: metadata segments come before
                break
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            payload = data[pos + 4:pos + 2 + length]
            if marker == 0xEB and payload[:2] == b"JP" and b"jumb" in payload[:24] and b"c2pa" in payload[:96]:
                return "image/jpeg"
            pos += 2 + length
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        pos = 12
        while pos + 8 <= len(data):
            kind, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
            if kind == b"C2PA":
                return "image/webp"
            pos += 8 + length + (length & 1)
        return None
    return None


def _thumbnail(store, sha: str, blob: bytes | None = None) -> bytes:
    """The stored WebP thumbnail of blob ``sha``, made from the PNG when
    the blob was stored without one."""
    try:
        return store.read(sha, THUMB_SUFFIX)
    except FileNotFoundError:
        from app.imaging import encode_thumbnail, open_png

        return encode_thumbnail(open_png(blob if blob is not None else store.read(sha)))


def cache_name(key: str) -> str:
    """The store cache name of the signed copy with cache key ``key``."""
    return f"{key[:2]}/{key}.png"


def lineage(thread: Thread, number: int) -> list[Version]:
    """Version ``number`` and its ancestors, the root first. Raises KeyError
    for a version the thread does not have; a parent cycle (which Retouch
    never writes) ends the walk."""
    by_number = {v.number: v for v in thread.versions}
    chain, seen, current = [], set(), by_number[number]
    while current is not None and current.number not in seen:
        seen.add(current.number)
        chain.append(current)
        current = by_number.get(current.parent) if current.parent is not None else None
    return chain[::-1]


def read_credentials(data: bytes, *, max_steps: int = PANEL_STEPS) -> dict:
    """Read the C2PA manifest store of a PNG with c2pa-python's ``Reader``
    and summarise it for people (c2pa-python docs, "Reading manifest data").

    Returns ``{"present": False}`` when the file has no manifest, else::

        {"present": True, "state": "Valid" | "Invalid" | "Trusted",
         "failures": [codes other than signingCredential.untrusted],
         "untrusted": bool, "signer": str, "issuer": str, "signed_at": str|None,
         "ai": bool, "steps": [{"title", "actions": [...], "source_type",
         "ai", "backend", "model", "description", "thumbnail": data URI|None,
         "vendor_claims": [{"generator", "signer", "issuer", "failures"}]}],
         "more_steps": int}

    ``steps`` run from this file back along the ``parentOf`` ingredients,
    at most ``max_steps`` (``more_steps`` counts the rest). Never raises for
    a damaged file: ``state`` is then "Invalid" with the reason in
    ``failures``."""
    try:
        reader = c2pa.Reader("image/png", io.BytesIO(data), context=_context())
    except c2pa.C2paError.ManifestNotFound:
        return {"present": False}
    except c2pa.C2paError as exc:
        return {"present": True, "state": "Invalid", "failures": [str(exc)], "untrusted": False, "signer": "",
                "issuer": "", "signed_at": None, "ai": False, "steps": [], "more_steps": 0}
    with reader:
        store = json.loads(reader.json())
        results = reader.get_validation_results() or {}
        state = reader.get_validation_state() or "Invalid"
        manifests = store.get("manifests", {})
        failures = [f.get("code", "") for f in (results.get("activeManifest") or {}).get("failure", [])]
        active = manifests.get(store.get("active_manifest", ""), {})
        sig = active.get("signature_info") or {}
        steps, label, count = [], store.get("active_manifest"), 0
        seen = set()
        while label and label in manifests and label not in seen:
            seen.add(label)
            manifest = manifests[label]
            count += 1
            if len(steps) < max_steps:
                steps.append(_step(reader, manifest, manifests))
            parent = next((i for i in manifest.get("ingredients", []) if i.get("relationship") == "parentOf"), None)
            label = parent.get("active_manifest") if parent else None
    return {
        "present": True, "state": state,
        "failures": [c for c in failures if c != "signingCredential.untrusted"],
        "untrusted": "signingCredential.untrusted" in failures,
        "signer": sig.get("common_name") or "", "issuer": sig.get("issuer") or "", "signed_at": sig.get("time"),
        "ai": any(s["ai"] for s in steps), "steps": steps, "more_steps": count - len(steps),
    }


def _step(reader: c2pa.Reader, manifest: dict, manifests: dict | None = None) -> dict:
    actions = []
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            actions.extend(assertion.get("data", {}).get("actions", []))
    main = next((a for a in actions if a.get("action") != "c2pa.opened"), actions[0] if actions else {})
    source = next((a.get("digitalSourceType") for a in actions if a.get("digitalSourceType")), None)
    params = main.get("parameters") or {}
    thumb = None
    ref = manifest.get("thumbnail") or {}
    if ref.get("identifier"):
        buf = io.BytesIO()
        try:
            reader.resource_to_stream(ref["identifier"], buf)
            thumb = f"data:{ref.get('format', 'image/jpeg')};base64,{base64.b64encode(buf.getvalue()).decode()}"
        except c2pa.C2paError:
            thumb = None
    return {
        "title": manifest.get("title", ""),
        "actions": [a.get("action", "") for a in actions],
        "action": main.get("action", ""),
        "source_type": source.rsplit("/", 1)[-1] if source else None,
        "ai": source in AI_SOURCE_TYPES,
        "backend": params.get("backend"), "model": params.get("model"),
        "masked": bool(params.get("mask")),
        "description": main.get("description") or next(
            (a.get("description") for a in actions if a.get("description")), None),
        "thumbnail": thumb,
        "software": ", ".join(f"{a.get('name', '')} {a.get('version', '')}".strip()
                              for a in [main.get("softwareAgent")] if isinstance(a, dict)),
        "vendor_claims": _vendor_claims(manifest, manifests or {}),
    }


def _vendor_claims(manifest: dict, manifests: dict) -> list[dict]:
    """The manifests of ``manifest``'s ``componentOf`` ingredients (a
    vendor's own credentials, e.g. OpenAI's): for each, ``generator`` (its
    claim generator), ``signer`` and ``issuer`` (its certificate's names)
    and ``failures`` (the validation failures recorded in the ingredient
    when Retouch signed, other than ``signingCredential.untrusted``)."""
    claims = []
    for ingredient in manifest.get("ingredients", []):
        vendor = manifests.get(ingredient.get("active_manifest") or "")
        if ingredient.get("relationship") != "componentOf" or not vendor:
            continue
        sig = vendor.get("signature_info") or {}
        recorded = ((ingredient.get("validation_results") or {}).get("activeManifest") or {}).get("failure", [])
        claims.append({
            "generator": ", ".join(g.get("name", "") for g in vendor.get("claim_generator_info") or []
                                   if isinstance(g, dict)) or vendor.get("claim_generator", ""),
            "signer": sig.get("common_name") or "", "issuer": sig.get("issuer") or "",
            "failures": [f.get("code", "") for f in recorded if f.get("code") != "signingCredential.untrusted"],
        })
    return claims


_INSTANCES: dict[tuple, Provenance] = {}
_INSTANCES_LOCK = threading.Lock()


def for_settings(settings) -> Provenance:
    """The process's :class:`Provenance` for these settings (``data_dir``,
    ``c2pa_cert``, ``c2pa_key``), loading or generating the identity once
    and checking that c2pa signs with it (:meth:`Provenance.check`).
    Raises :class:`CredentialsError` as :func:`load_identity` and
    :meth:`Provenance.check`."""
    cert = getattr(settings, "c2pa_cert", None)
    key_path = getattr(settings, "c2pa_key", None)
    key = (str(Path(settings.data_dir).resolve()), cert, key_path)
    with _INSTANCES_LOCK:
        if key not in _INSTANCES:
            prov = Provenance(settings.data_dir, load_identity(settings.data_dir, cert, key_path))
            prov.check()
            _INSTANCES[key] = prov
        return _INSTANCES[key]
