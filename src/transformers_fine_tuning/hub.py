"""Whether the Hugging Face Hub can be reached, known in a few seconds rather than after the Hub client's retries.

Without a network, ``from_pretrained("albert-large-v2")`` or ``load_dataset("nyu-mll/glue", ...)`` spend about
30 s in huggingface_hub's retries (1 + 2 + 4 + 8 + 8 s) before failing. One TCP connection to the Hub's host,
with a short timeout, tells the same thing at once; when it fails, the Hub libraries can be switched to their
offline mode (``HF_HUB_OFFLINE``) for this process (:func:`use_local_files_only`), so that what is in the local
cache still loads and what is not fails immediately — with this package's message saying how to run on local
files.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlsplit

__all__ = ["hub_endpoint", "hub_offline", "hub_unreachable", "use_local_files_only"]

_TRUE = ("1", "true", "yes", "on")
_DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    """The Hub the libraries talk to: ``HF_ENDPOINT``, default https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT


def hub_offline() -> bool:
    """Whether the Hub libraries are in offline mode (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    import huggingface_hub.constants

    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _uses_proxy(scheme: str) -> bool:
    names = ["https_proxy", "all_proxy"] + (["http_proxy"] if scheme == "http" else [])
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in names)


@functools.cache
def hub_unreachable(endpoint: str | None = None, timeout_s: float = 3.0) -> str | None:
    """Why the Hub's host cannot be reached by a plain TCP connection within ``timeout_s``, or ``None`` if it
    can (asked once per process and endpoint).

    Only a connect (no TLS, no request): enough to fail in seconds on a machine without network. Behind a
    proxy the host is not reached directly, so the probe is left out (``None``): only the Hub client can tell.
    """
    endpoint = endpoint or hub_endpoint()
    parts = urlsplit(endpoint)
    if _uses_proxy(parts.scheme):
        return None
    if not parts.hostname:
        return f"HF_ENDPOINT={endpoint!r} names no host"
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as error:  # no DNS, no route, refused, timed out
        return f"{parts.hostname}:{port}: {error or type(error).__name__}"


def use_local_files_only() -> None:
    """Put huggingface_hub, transformers and datasets in offline mode for the rest of this process."""
    import datasets.config
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"  # for processes this one starts
