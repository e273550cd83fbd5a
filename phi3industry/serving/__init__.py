"""Serving: the pipeline behind an OpenAI-compatible HTTP API (``phi3industry serve``).

The app needs the ``[serve]`` extra (FastAPI, uvicorn); the settings and request schema do not.

Example:
    >>> from phi3industry.serving import BackgroundServer, ServerConfig
    >>> with BackgroundServer(pipe, ServerConfig(port=0)) as server:  # doctest: +SKIP
    ...     print(server.url)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.serving.app import BackgroundServer, check_engine, create_app, serve
    from phi3industry.serving.config import (
        ServerConfig,
        VLLMConfig,
        check_bind,
        is_loopback,
        resolve_api_key,
    )
    from phi3industry.serving.engine import VLLMEngine
    from phi3industry.serving.schema import ChatRequest, RetrieveRequest

_LAZY = {
    "BackgroundServer": "phi3industry.serving.app",
    "ChatRequest": "phi3industry.serving.schema",
    "RetrieveRequest": "phi3industry.serving.schema",
    "ServerConfig": "phi3industry.serving.config",
    "VLLMConfig": "phi3industry.serving.config",
    "VLLMEngine": "phi3industry.serving.engine",
    "check_bind": "phi3industry.serving.config",
    "check_engine": "phi3industry.serving.app",
    "create_app": "phi3industry.serving.app",
    "is_loopback": "phi3industry.serving.config",
    "resolve_api_key": "phi3industry.serving.config",
    "serve": "phi3industry.serving.app",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "BackgroundServer",
    "ChatRequest",
    "RetrieveRequest",
    "ServerConfig",
    "VLLMConfig",
    "VLLMEngine",
    "check_bind",
    "check_engine",
    "create_app",
    "is_loopback",
    "resolve_api_key",
    "serve",
]
