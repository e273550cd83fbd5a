"""The library's exceptions.

Every error raised on purpose by phi3industry derives from :class:`Phi3IndustryError`.
Specific errors also subclass the builtin they refine, so ``except ValueError`` keeps
working for callers who do not know this library (the pattern peft uses).
"""

from __future__ import annotations


class Phi3IndustryError(Exception):
    """Base class of every error phi3industry raises on purpose."""


class ConfigError(Phi3IndustryError, ValueError):
    """A configuration value is invalid (names the field, the value and the fix)."""


class DependencyMissingError(Phi3IndustryError, ImportError):
    """An optional dependency is missing or too old (names the install command)."""


class DocumentError(Phi3IndustryError, ValueError):
    """A document cannot be loaded: missing, unreadable, binary, empty, too large or malformed."""


class ModelNotFoundError(Phi3IndustryError, FileNotFoundError):
    """A model name, path or hub id cannot be resolved (says how to provide it)."""


class EmbedderMismatchError(Phi3IndustryError, ValueError):
    """An index was built with a different embedder than the one asked for."""


class IndexLockedError(Phi3IndustryError, RuntimeError):
    """Another process is writing to the same index."""


class QueryError(Phi3IndustryError, ValueError):
    """A search request is invalid (bad ``k``, bad ``where`` filter, empty query)."""


class DataFormatError(Phi3IndustryError, ValueError):
    """Training or evaluation data is malformed (names the row and the field)."""


class TargetModulesError(ConfigError):
    """LoRA ``target_modules`` do not match the model's modules (names those that exist)."""


class GenerationError(Phi3IndustryError, RuntimeError):
    """Text generation failed (local model or remote endpoint)."""


class GenerationTimeoutError(GenerationError, TimeoutError):
    """Generation did not finish (or could not start) before its deadline."""


class IndexConnectionError(Phi3IndustryError, ConnectionError):
    """The Chroma server holding the index cannot be reached (names host, port and the fix)."""


class EngineError(Phi3IndustryError, RuntimeError):
    """An inference engine (vLLM, llama.cpp's server) could not be started or stopped."""


class RequestError(Phi3IndustryError):
    """A request to the HTTP server is refused: carries the HTTP status and the OpenAI error type.

    Attributes:
        status: The HTTP status code (400, 401, 404, 413, 503, 504...).
        message: What is wrong, for the client.
        kind: The OpenAI error ``type`` (``invalid_request_error``, ``server_error``...).
    """

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class QueryTruncatedWarning(UserWarning):
    """A search query was longer than the embedder reads, even in windows: its end was cut."""


__all__ = [
    "ConfigError",
    "DataFormatError",
    "DependencyMissingError",
    "DocumentError",
    "EmbedderMismatchError",
    "EngineError",
    "GenerationError",
    "GenerationTimeoutError",
    "IndexConnectionError",
    "IndexLockedError",
    "ModelNotFoundError",
    "Phi3IndustryError",
    "QueryError",
    "QueryTruncatedWarning",
    "RequestError",
    "TargetModulesError",
]
