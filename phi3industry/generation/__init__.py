"""Text generators: a local transformers model (with LoRA adapters) or an OpenAI endpoint.

Both implement :class:`Generator`, the one interface the pipeline and the server use:
``generate(messages) -> Generation``, ``generate_batch([messages, ...])``,
``stream(messages) -> Iterator[GenerationChunk]``, ``count_tokens(text)``,
``context_window`` and ``adapter_names``. :class:`ChatPhi3Industry` is the same models as a
LangChain chat model.

Example:
    >>> from phi3industry.generation import LocalGenerator
    >>> gen = LocalGenerator.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
    >>> msgs = [{"role": "user", "content": "Say hi."}]
    >>> gen.generate(msgs, max_new_tokens=8).text  # doctest: +SKIP
    'Hi! How can I help you today?'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.generation.adapters import check_adapter_compatible, parse_adapter_spec
    from phi3industry.generation.base import (
        BASE_ADAPTER,
        AsyncGenerator,
        Generation,
        GenerationChunk,
        Generator,
        Message,
    )
    from phi3industry.generation.chat_model import ChatPhi3Industry
    from phi3industry.generation.endpoint import OpenAIGenerator
    from phi3industry.generation.local import LocalGenerator

_LAZY = {
    "AsyncGenerator": "phi3industry.generation.base",
    "BASE_ADAPTER": "phi3industry.generation.base",
    "ChatPhi3Industry": "phi3industry.generation.chat_model",
    "Generation": "phi3industry.generation.base",
    "GenerationChunk": "phi3industry.generation.base",
    "Generator": "phi3industry.generation.base",
    "LocalGenerator": "phi3industry.generation.local",
    "Message": "phi3industry.generation.base",
    "OpenAIGenerator": "phi3industry.generation.endpoint",
    "check_adapter_compatible": "phi3industry.generation.adapters",
    "parse_adapter_spec": "phi3industry.generation.adapters",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "BASE_ADAPTER",
    "AsyncGenerator",
    "ChatPhi3Industry",
    "Generation",
    "GenerationChunk",
    "Generator",
    "LocalGenerator",
    "Message",
    "OpenAIGenerator",
    "check_adapter_compatible",
    "parse_adapter_spec",
]
