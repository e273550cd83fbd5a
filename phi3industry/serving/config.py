"""Settings of the HTTP server: where it listens, its key, and the limits it enforces.

``phi3industry serve`` composes these with the :class:`~phi3industry.pipeline.PipelineConfig`
of the pipeline it serves: one YAML file (or one command line) holds the keys of both, each
read by the config that has it.

Example:
    >>> from phi3industry.serving import ServerConfig
    >>> ServerConfig(port=0).host
    '127.0.0.1'
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from phi3industry._config import ConfigBase, check, check_positive_int, split_list
from phi3industry.errors import ConfigError

#: Where the server's API key is read from when the config sets none.
API_KEY_ENV = "PHI3INDUSTRY_API_KEY"
#: Engines ``phi3industry serve --engine`` can start.
ENGINES = ("vllm",)
#: Data types vLLM accepts for ``--dtype``.
VLLM_DTYPES = ("auto", "float32", "bfloat16", "float16", "half", "float")


@dataclass
class VLLMConfig(ConfigBase):
    """How phi3industry starts vLLM (``phi3industry engine vllm``, ``serve --engine vllm``).

    The model and the adapters are the pipeline's; these are the engine's own settings.

    Example:
        >>> VLLMConfig(dtype="float32").port
        0
    """

    python: str | None = field(
        default=None,
        metadata={
            "help": "Python interpreter with vLLM installed (default: $PHI3INDUSTRY_VLLM_PYTHON, "
            "else ~/.cache/phi3industry-engines/vllm/bin/python if it exists, else this one)."
        },
    )
    host: str = field(default="127.0.0.1", metadata={"help": "Address vLLM binds."})
    port: int = field(default=0, metadata={"help": "vLLM's port (0: any free port)."})
    dtype: str = field(
        default="auto",
        metadata={"help": "Weights dtype: auto (bf16 on GPU), float32 (CPU, exact), bfloat16..."},
    )
    max_lora_rank: int | None = field(
        default=None,
        metadata={"help": "Largest LoRA rank (default: read from the adapters' configs)."},
    )
    max_model_len: int | None = field(
        default=None, metadata={"help": "Context length vLLM reserves (default: the model's)."}
    )
    gpu_memory_utilization: float | None = field(
        default=None,
        metadata={
            "help": "Share of GPU memory vLLM reserves (on CPU: of the machine's RAM, which "
            "must be free at start; e.g. 0.1 on a shared machine). Default: vLLM's (0.92)."
        },
    )
    startup_timeout: float = field(
        default=900.0, metadata={"help": "Seconds to wait for vLLM's /health (else an error)."}
    )
    extra_args: list[str] | None = field(
        default=None,
        metadata={
            "help": "More vLLM flags, comma-separated (e.g. '--gpu-memory-utilization=0.8')."
        },
    )

    def __post_init__(self) -> None:
        self.extra_args = split_list(self.extra_args)
        check(
            isinstance(self.port, int) and 0 <= self.port < 65536,
            f"vllm port must be between 0 (any free port) and 65535, got {self.port!r}.",
        )
        check(
            self.dtype in VLLM_DTYPES,
            f"vllm dtype must be one of {', '.join(VLLM_DTYPES)}, got {self.dtype!r}.",
        )
        if self.max_lora_rank is not None:
            check_positive_int(self.max_lora_rank, "max_lora_rank")
        if self.max_model_len is not None:
            check_positive_int(self.max_model_len, "max_model_len")
        check(
            self.gpu_memory_utilization is None or 0 < self.gpu_memory_utilization <= 1,
            f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}.",
        )
        check(
            self.startup_timeout > 0,
            f"startup_timeout must be positive seconds, got {self.startup_timeout!r}.",
        )


@dataclass
class ServerConfig(ConfigBase):
    """The server's address, API key and request limits.

    Example:
        >>> ServerConfig(host="0.0.0.0", api_key="a-long-random-key").max_queue
        64
    """

    host: str = field(default="127.0.0.1", metadata={"help": "Server bind address."})
    port: int = field(default=8000, metadata={"help": "Server port (0: any free port)."})
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "Server API key clients send as 'Authorization: Bearer KEY' "
            "(default: $PHI3INDUSTRY_API_KEY). Required to bind a non-loopback address."
        },
    )
    max_body_bytes: int = field(
        default=1_000_000, metadata={"help": "Largest request body accepted (else 413)."}
    )
    request_timeout: float = field(
        default=300.0, metadata={"help": "Seconds a request may wait and generate (else 504)."}
    )
    max_tokens_cap: int = field(
        default=1024, metadata={"help": "Largest max_tokens a client may ask for (else 400)."}
    )
    max_messages: int = field(
        default=64, metadata={"help": "Most messages accepted in one chat request (else 400)."}
    )
    max_queue: int = field(
        default=64, metadata={"help": "Requests waiting for the model at most (else 503)."}
    )
    engine: str | None = field(
        default=None,
        metadata={
            "help": "Start this inference engine (vllm) for the model and adapters, generate "
            "on it, and stop it with the server."
        },
    )
    vllm: VLLMConfig = field(
        default_factory=VLLMConfig, metadata={"help": "vLLM settings for --engine vllm."}
    )

    def __post_init__(self) -> None:
        check(
            isinstance(self.port, int) and 0 <= self.port < 65536,
            f"port must be between 0 (any free port) and 65535, got {self.port!r}.",
        )
        for name in ("max_body_bytes", "max_tokens_cap", "max_messages", "max_queue"):
            check_positive_int(getattr(self, name), name)
        check(
            self.request_timeout > 0,
            f"request_timeout must be positive seconds, got {self.request_timeout!r}.",
        )
        check(
            self.engine is None or self.engine in ENGINES,
            f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}.",
        )
        check(
            self.api_key is None or len(self.api_key) >= 8,
            "api_key must be at least 8 characters; use a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))').",
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(config: ServerConfig) -> str | None:
    """The server's API key: ``config.api_key``, else ``$PHI3INDUSTRY_API_KEY``, else None."""
    key = config.api_key or os.environ.get(API_KEY_ENV) or None
    if key is not None and len(key) < 8:
        raise ConfigError(f"{API_KEY_ENV} must be at least 8 characters; use a long random one.")
    return key


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to bind a non-loopback address without an API key.

    Raises:
        ConfigError: If ``host`` is reachable from other machines and no key is set.
    """
    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"Refusing to serve on {host!r} without an API key: anyone on the network could use "
            f"the model. Set --api-key or {API_KEY_ENV}, or bind 127.0.0.1."
        )
