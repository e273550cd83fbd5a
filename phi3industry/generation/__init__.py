"""Text generators: a local transformers model (with LoRA adapters) or an OpenAI endpoint.

Both generators share one small interface used by :class:`~phi3industry.pipeline.Pipeline` and
the server: ``generate(messages) -> Generation``, ``generate_batch([messages, ...])``,
``stream(messages) -> Iterator[GenerationChunk]``, ``count_tokens(text)``,
``context_window`` and ``adapter_names``. :class:`LocalChatModel` wraps a generator as a
LangChain chat model.

Example:
    >>> from phi3industry.generation import LocalGenerator
    >>> gen = LocalGenerator.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
    >>> msgs = [{"role": "user", "content": "Say hi."}]
    >>> gen.generate(msgs, max_new_tokens=8).text  # doctest: +SKIP
    'Hi! How can I help you today?'
"""

from __future__ import annotations

from typing import Any

from phi3industry.generation._common import (
    BASE_ADAPTER,
    Generation,
    GenerationChunk,
    GenerationTimeoutError,
    Message,
)
from phi3industry.generation.adapters import check_adapter_compatible, parse_adapter_spec
from phi3industry.generation.endpoint import OpenAIGenerator
from phi3industry.generation.local import LocalGenerator


def __getattr__(name: str) -> Any:
    # Built on first use so that importing this module does not import langchain.
    if name == "LocalChatModel":
        from phi3industry.generation.chat_model import _chat_model_class

        cls = _chat_model_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASE_ADAPTER",
    "Generation",
    "GenerationChunk",
    "GenerationTimeoutError",
    "LocalGenerator",
    "Message",
    "OpenAIGenerator",
    "check_adapter_compatible",
    "parse_adapter_spec",
]
