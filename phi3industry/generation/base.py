"""What every generator shares: the :class:`Generator` protocol, messages, results, checks.

:class:`~phi3industry.generation.LocalGenerator` (a transformers model with LoRA adapters) and
:class:`~phi3industry.generation.OpenAIGenerator` (an OpenAI-compatible endpoint) both
implement :class:`Generator`; the pipeline, the chat model and the server use nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from phi3industry.errors import ConfigError, GenerationError

Message = Mapping[str, str]
#: The adapter name that selects the base model (no adapter).
BASE_ADAPTER = "base"
_ROLES = ("system", "user", "assistant")
#: A system message a chat template must keep to count as one that supports system turns.
SYSTEM_PROBE = "\x1fphi3industry-system-probe\x1f"


@dataclass
class Generation:
    """One finished generation.

    Attributes:
        text: The generated text, without the end-of-turn token or the stop string.
        finish_reason: ``"stop"`` (end of turn or stop string) or ``"length"`` (max tokens).
        prompt_tokens: Tokens in the prompt.
        completion_tokens: Tokens generated (up to the stop).
        first_token_s: Seconds from the call to the first generated token (None if none).
        total_s: Seconds the call took.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float | None = None
    total_s: float = 0.0

    @property
    def usage(self) -> dict[str, int]:
        """Token usage in the OpenAI shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the generation as a plain dict."""
        return asdict(self)


@dataclass
class GenerationChunk:
    """A piece of a streamed generation; the last chunk carries the whole :class:`Generation`."""

    text: str
    generation: Generation | None = field(default=None)


def check_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The messages as plain ``role``/``content`` dicts, or a clear error naming the bad one."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise GenerationError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}."
        )
    out = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, Mapping) else None
        content = msg.get("content") if isinstance(msg, Mapping) else None
        if role not in _ROLES or not isinstance(content, str):
            raise GenerationError(
                f"messages[{i}] must have role in {_ROLES} and string content, got {msg!r}."
            )
        out.append({"role": str(role), "content": content})
    return out


# Sampling temperatures below this decode greedily: logits divided by a temperature like
# 1e-300 overflow to inf, and the sampler then fails on NaN probabilities.
GREEDY_BELOW = 1e-5


def check_params(max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Refuse sampling settings no generator can honour (named, with the allowed range)."""
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}.")
    if not 0.0 <= temperature <= 2.0:
        raise ConfigError(f"temperature must be between 0 and 2, got {temperature!r}.")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p!r}.")


def find_stop(text: str, stop: Sequence[str]) -> int:
    """Return the index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else -1


def held_back(text: str, stop: Sequence[str]) -> int:
    """Characters at the end of ``text`` that could start a stop string (not safe to emit)."""
    best = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


@runtime_checkable
class Generator(Protocol):
    """What the pipeline, the chat model and the server need of a text generator.

    ``generate``/``generate_batch``/``stream`` take chat messages and the sampling keywords
    ``max_new_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``, ``adapter`` (a name of
    :attr:`adapter_names`, or :data:`BASE_ADAPTER`) and ``deadline`` (``time.monotonic()``
    after which a :class:`~phi3industry.errors.GenerationTimeoutError` is raised).
    """

    name: str

    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters it can generate with."""
        ...

    @property
    def context_window(self) -> int:
        """The model's context window in tokens."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer (an estimate where it has none)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The start of ``text`` that fits in ``max_tokens`` tokens."""
        ...

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the rendered chat prompt for ``messages``."""
        ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Generation:
        """Generate one answer."""
        ...

    def generate_batch(
        self,
        batch: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> list[Generation]:
        """Generate one answer per conversation (together, where the generator can)."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Iterator[GenerationChunk]:
        """Generate one answer piece by piece; the last chunk carries the :class:`Generation`."""
        ...


@runtime_checkable
class AsyncGenerator(Protocol):
    """A generator that can also be awaited: its calls wait on the event loop, not a thread.

    :class:`~phi3industry.generation.OpenAIGenerator` is one; the pipeline's async path
    (``ainvoke``/``astream``, what the server runs) awaits these instead of running the
    blocking calls in worker threads, so nothing caps how many requests reach the engine.
    """

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> Generation:
        """Generate one answer."""
        ...

    def astream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        adapter: str | None = None,
        seed: int | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """Generate one answer piece by piece; the last chunk carries the :class:`Generation`."""
        ...
