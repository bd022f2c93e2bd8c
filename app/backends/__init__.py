"""Backend registry: pick an :class:`ImageBackend` by name.

The default is ``openai`` when ``OPENAI_API_KEY`` is set, otherwise ``local``;
``RETOUCH_BACKEND`` overrides it. Tests may register a fake backend with
:func:`register_backend` and remove it with :func:`unregister_backend`.
"""
from __future__ import annotations

from collections.abc import Callable

from .base import (
    BackendDeclined,
    BackendError,
    BackendFailed,
    EditRequest,
    EditResult,
    ImageBackend,
    OptionRejected,
)

__all__ = [
    "BackendDeclined",
    "BackendError",
    "BackendFailed",
    "EditRequest",
    "EditResult",
    "ImageBackend",
    "OptionRejected",
    "UnknownBackend",
    "backend_names",
    "default_backend_name",
    "get_backend",
    "offered_backends",
    "register_backend",
    "unregister_backend",
]

_factories: dict[str, Callable[[], ImageBackend]] = {}
_instances: dict[str, ImageBackend] = {}


class UnknownBackend(KeyError):
    """No backend is registered under that name."""


def register_backend(name: str, factory: Callable[[], ImageBackend]) -> None:
    """Register ``factory`` (a class or a zero-argument callable returning an
    :class:`ImageBackend`) under ``name``, replacing any earlier one."""
    _factories[name] = factory
    _instances.pop(name, None)


def unregister_backend(name: str) -> None:
    """Remove the backend registered under ``name`` (no error if absent)."""
    _factories.pop(name, None)
    _instances.pop(name, None)


def backend_names() -> list[str]:
    """Names of all registered backends, sorted."""
    _load_builtins()
    return sorted(_factories)


def get_backend(name: str) -> ImageBackend:
    """Return the (cached) backend instance named ``name``.

    Raises :class:`UnknownBackend` when no such backend is registered.
    """
    _load_builtins()
    if name not in _instances:
        try:
            factory = _factories[name]
        except KeyError:
            raise UnknownBackend(
                f"unknown backend {name!r}; choose one of: {', '.join(sorted(_factories))}"
            ) from None
        _instances[name] = factory()
    return _instances[name]


def default_backend_name(settings=None) -> str:
    """``RETOUCH_BACKEND`` if set, else ``openai`` when ``OPENAI_API_KEY`` is
    set, else ``local``. ``settings`` defaults to the process-wide ones."""
    from app.config import get_settings

    settings = settings or get_settings()
    if settings.backend:
        return settings.backend
    return "openai" if settings.openai_api_key else "local"


_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from .diffusers_backend import DiffusersBackend
    from .local import LocalBackend
    from .openai_backend import OpenAIBackend
    from .openai_chat import OpenAIChatBackend

    _factories.setdefault("local", LocalBackend)
    _factories.setdefault("openai", OpenAIBackend)
    _factories.setdefault("openai-chat", OpenAIChatBackend)
    _factories.setdefault("diffusers", DiffusersBackend)  # offered when its extra and model are there


#: The built-in backends a person may pick per turn, in the picker's order.
PICKABLE = ("local", "openai", "openai-chat", "diffusers")


def offered_backends(default: str) -> list[str]:
    """The backends the composer offers: ``default`` (the server's backend)
    first, then each other built-in backend of :data:`PICKABLE` that is
    :meth:`~ImageBackend.available` here (the OpenAI ones need a key)."""
    out = [default]
    for name in PICKABLE:
        if name == default:
            continue
        try:
            if get_backend(name).available():
                out.append(name)
        except Exception:  # a backend that cannot even be built is not offered
            continue
    return out
