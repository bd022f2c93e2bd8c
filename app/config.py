"""All configuration in one ``Settings`` object, read from the environment.

Every ``RETOUCH_*`` variable is a field here; ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` are read under their own names. The README lists them all
(``tests/test_docs.py`` fails when one is undocumented).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETOUCH_", extra="ignore")

    #: Folder for the SQLite database, image blobs and the generated secret key.
    data_dir: Path = Path("./data")
    #: SQLAlchemy URL; default ``sqlite:///<data_dir>/retouch.db``.
    #: PostgreSQL: ``postgresql+psycopg://user@host:5432/dbname``.
    database_url: str | None = None
    #: Backend name (``local``, ``openai``, ``openai-chat`` or ``diffusers``); default ``openai`` when
    #: ``OPENAI_API_KEY`` is set, else ``local``.
    backend: str | None = None
    #: Secret that signs the owner cookie; default: generated once and kept in
    #: ``<data_dir>/secret_key``.
    secret_key: str | None = None
    #: Largest accepted upload (image, reference or mask), in bytes.
    max_upload_bytes: int = 25 * 1024 * 1024
    #: Largest accepted upload, in pixels (width x height).
    max_upload_pixels: int = 40_000_000
    #: Longest accepted side of an upload, in pixels (16384 is also WebP's limit).
    max_upload_side: int = 16384
    #: Concurrent turn workers in the server process (turns of one thread
    #: always run one at a time, in order); 0 = none (``retouch worker`` runs them).
    workers: int = Field(default=2, ge=0)
    #: Seconds a deleted thread can be brought back (Undo, ``POST /api/v1/threads/{id}/restore``);
    #: after them it is purged with its turns and share links (``app/services.py``).
    delete_undo_seconds: float = Field(default=10.0, ge=0)

    # -- Turn queue across processes (app/turns.py, app/jobs.py, app/worker.py) --
    #: Seconds a worker's claim on a running turn lasts; its heartbeat renews
    #: it every third of this. A turn whose lease ran out (its worker died) is
    #: taken over by another worker, so this is also the takeover delay.
    lease_seconds: float = Field(default=30.0, ge=1)
    #: Threads that run requests' blocking work (database queries, file reads, image decoding): the
    #: size of anyio's default thread limiter, which Starlette uses for every ``def`` endpoint. Few
    #: threads on a few cores: more contend for the GIL and raised the page's p99 (``make bench``).
    request_threads: int = Field(default=8, ge=1, le=200)
    #: Apply the database migrations when ``retouch serve`` starts; ``false``
    #: when a deploy runs ``retouch db upgrade`` once instead (``--no-migrate``).
    migrate_on_start: bool = True
    #: The OpenAI image model turns use unless the person picks another
    #: (see ``app/backends/openai_models.py`` for why this default).
    openai_model: str = "gpt-image-2.5-sunburst"
    #: The OpenAI image models the composer offers, comma-separated; shut-down
    #: and unknown ones are left out (with a warning in the log).
    openai_models: str = "gpt-image-2.5-sunburst,gpt-image-2.5-flare,gpt-image-2"
    #: The chat model of the ``openai-chat`` backend (conversational mode); it
    #: calls the image models above through the image_generation tool.
    openai_chat_model: str = "gpt-6-astra"
    #: Let OpenAI store responses (kept at least 30 days), so that a turn
    #: continues the conversation that made its version; ``false`` = every
    #: turn of ``openai-chat`` starts a fresh conversation.
    openai_store: bool = True
    #: Longest conversation chain (turns) ``openai-chat`` continues before it
    #: starts afresh: each chained turn bills the earlier turns' input again.
    openai_chain_max: int = Field(default=8, ge=1)
    #: Partial images OpenAI streams while a turn runs (0 to 3; 0 = none).
    openai_partial_images: int = 2
    #: Prices to show a cost per turn: JSON ``{"MODEL": {"text_input": USD,
    #: "image_input": USD, "image_output": USD, "text_output": USD}}``, each
    #: per million tokens. Unset: tokens only, no cost (Retouch ships no prices).
    openai_prices: str | None = None
    #: The ``diffusers`` backend's model: a local folder or a Hugging Face
    #: model id (downloaded at first use). Unset: the backend is not offered.
    diffusers_model: str | None = None
    #: Which pipeline the model is: ``qwen-image-edit``, ``flux-kontext`` or
    #: ``instruct-pix2pix``. Unset: read from the folder's ``model_index.json``.
    diffusers_pipeline: str | None = None
    #: ``auto`` (``cuda`` when torch sees a GPU, else ``mps``, else ``cpu``),
    #: or a torch device such as ``cuda:1``.
    diffusers_device: str = "auto"
    #: ``auto`` (the pipeline's GPU dtype on CUDA, ``float32`` elsewhere),
    #: ``bfloat16``, ``float16`` or ``float32``.
    diffusers_dtype: str = "auto"
    #: Denoising steps at quality ``medium``; unset = the pipeline's default.
    diffusers_steps: int | None = Field(default=None, ge=1, le=500)
    #: Guidance scale; unset = the pipeline's default.
    diffusers_guidance: float | None = Field(default=None, ge=0)
    #: Keep the models in CPU memory and move each to the GPU only while it
    #: runs (``enable_model_cpu_offload``): less GPU memory, slower steps.
    diffusers_cpu_offload: bool = False
    #: Send a preview image every this many denoising steps; ``0`` = none.
    diffusers_preview_every: int = Field(default=4, ge=0)
    #: A tiny VAE (``AutoencoderTiny``, the TAESD family) folder or model id
    #: that decodes the step previews; unset = the model's own VAE, small.
    diffusers_preview_vae: str | None = None
    #: Largest working size in pixels (width x height); unset = the
    #: pipeline's default (1024x1024, or 512x512 for instruct-pix2pix).
    diffusers_max_pixels: int | None = Field(default=None, ge=64)
    #: Seconds to wait for one OpenAI image request.
    openai_timeout: float = 180.0
    #: Resends of one turn's OpenAI request after a failure that made (and
    #: billed) no image; timeouts are never resent (see openai_backend).
    openai_max_retries: int = 1
    #: Set the owner cookie with the ``Secure`` flag (serve over HTTPS).
    secure_cookies: bool = False
    #: When set, creating threads and sending turns needs a login with this
    #: password (shared links stay viewable). Scripts send it as a Bearer token.
    access_password: str | None = None

    # -- Accounts: OpenID Connect login (app/accounts.py, app/oidc.py) --
    #: The OpenID Provider's issuer URL (``https://login.example.com/realms/x``);
    #: its ``/.well-known/openid-configuration`` is read at the first login.
    #: Set: pages need a login with it. Not together with ``access_password``.
    oidc_issuer: str | None = None
    #: The client id Retouch is registered under at the provider.
    oidc_client_id: str | None = None
    #: The client secret of that registration.
    oidc_client_secret: str | None = None
    #: Scopes asked for, space-separated; must include ``openid``.
    oidc_scopes: str = "openid email profile"
    #: ID-token claim shown as the person's name (then ``name``,
    #: ``preferred_username``, ``email``, ``sub``, the first that is set).
    oidc_name_claim: str = "name"
    #: Largest request body that is not ``multipart/form-data`` (JSON,
    #: URL-encoded forms), in bytes; past it: 413, and no more is read.
    max_json_bytes: int = 64 * 1024
    #: Seconds to wait for the next piece of an unfinished request body
    #: before answering 408 Request Timeout.
    body_timeout: float = Field(default=30.0, gt=0)
    #: Proxy addresses trusted to set ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto``, comma-separated IPs or networks, ``*`` = any
    #: (uvicorn's ``--forwarded-allow-ips``); unset = those headers are ignored.
    forwarded_allow_ips: str | None = None
    #: The address people reach Retouch at (``https://retouch.example.com``):
    #: share links and ``og:image`` use it, whatever ``Host`` a request sends.
    public_url: str | None = None
    #: Host names a request's ``Host`` may name, comma-separated
    #: (``*.example.com`` allowed); ``*`` = any. Others get 400.
    allowed_hosts: str = "*"
    #: Turns one owner may queue, as a ``limits`` string (``"30/minute"``,
    #: ``"500/day"``); ``0`` turns the limit off.
    turn_rate_limit: str = "30/minute"
    #: Turns (and forks) one client address may queue without an owner
    #: cookie, as a ``limits`` string; ``0`` turns it off. Stops a client that
    #: drops its cookie from escaping ``turn_rate_limit``.
    anonymous_rate_limit: str = "30/minute"
    #: Turns one owner may have queued or running at once; ``0`` = no cap.
    max_queued_turns: int = 20
    #: Bytes of stored images one owner may use (versions, masks, drawings,
    #: references; shared blobs count once); ``0`` = no quota. Past it: 507.
    owner_quota_bytes: int = 0
    #: PEM certificate chain (signing certificate first) that signs the C2PA
    #: Content Credentials of downloads; with ``c2pa_key``. Unset: an instance
    #: certificate is generated in the data folder (verifiers call it untrusted).
    c2pa_cert: str | None = None
    #: PEM private key of ``c2pa_cert``.
    c2pa_key: str | None = None

    # -- Image storage: a folder or an S3 bucket (app/storage/, docs/deploy.md "Storage") --
    #: Where images live: unset = ``<data_dir>/blobs``; ``file:///path`` =
    #: another folder; ``s3://bucket/prefix`` = an S3 bucket (credentials
    #: and region from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``).
    storage_url: str | None = None
    #: Endpoint of an S3-compatible server (``http://minio:9000``); unset =
    #: AWS, or ``AWS_ENDPOINT_URL``, which boto3 reads itself.
    s3_endpoint_url: str | None = None
    #: Answer image requests with a 307 redirect to a presigned S3 URL
    #: instead of streaming the bytes through the app.
    s3_redirect: bool = False
    #: Lifetime of those presigned URLs, in seconds (S3 allows up to 7 days).
    s3_presign_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # -- Live updates across processes and operations (app/events.py, app/partials.py, app/metrics.py) --
    #: Redis URL (``redis://host:6379/0``) that carries thread-change events and
    #: partial images between processes; unset = in-process only (one process).
    redis_url: str | None = None
    #: Port on which a ``retouch worker`` process serves its own Prometheus
    #: ``/metrics`` (web processes serve it on their own port); unset = none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL")
    )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in effect."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'retouch.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
