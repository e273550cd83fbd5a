"""A generator as a LangChain chat model (:class:`LocalChatModel`).

The class is built on first use, so that importing the generators does not import langchain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from phi3industry.errors import DependencyMissingError, GenerationError
from phi3industry.generation._common import (
    Generation,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult


def _lc_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant", "user": "user"}
    out = []
    for m in messages:
        role = roles.get(m.type)
        if role is None:
            raise GenerationError(f"Unsupported message type {m.type!r}; use system/human/ai.")
        content = m.content if isinstance(m.content, str) else m.text
        out.append({"role": role, "content": str(content)})
    return out


def _chat_model_class() -> type:
    try:
        from langchain_core.language_models.chat_models import BaseChatModel
        from langchain_core.messages import AIMessage, AIMessageChunk
        from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
        from pydantic import ConfigDict
    except ImportError as exc:  # pragma: no cover - langchain-core is a core dependency
        raise DependencyMissingError("LocalChatModel needs langchain-core.") from exc

    class LocalChatModel(BaseChatModel):  # type: ignore[misc]
        """A LangChain chat model backed by a phi3industry generator (local or endpoint).

        Example:
            >>> from phi3industry.generation import LocalChatModel, LocalGenerator
            >>> gen = LocalGenerator.from_pretrained("smollm2-135m-instruct")  # doctest: +SKIP
            >>> chat = LocalChatModel(generator=gen)  # doctest: +SKIP
            >>> chat.invoke("What is 2+2?", max_tokens=16).content  # doctest: +SKIP
        """

        model_config = ConfigDict(arbitrary_types_allowed=True)

        generator: Any
        max_tokens: int = 256
        temperature: float = 0.0
        top_p: float = 1.0
        adapter: str | None = None
        stop: list[str] | None = None
        seed: int | None = None

        @property
        def _llm_type(self) -> str:
            return "phi3industry-local"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {
                "model": getattr(self.generator, "name", "?"),
                "adapter": self.adapter,
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
            }

        def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
            stops = [*(self.stop or []), *(stop or []), *(kwargs.pop("stop", None) or [])]
            params = {
                "max_new_tokens": int(kwargs.pop("max_tokens", self.max_tokens)),
                "temperature": float(kwargs.pop("temperature", self.temperature)),
                "top_p": float(kwargs.pop("top_p", self.top_p)),
                "adapter": kwargs.pop("adapter", self.adapter),
                "seed": kwargs.pop("seed", self.seed),
                "stop": stops or None,
            }
            return params

        @staticmethod
        def _usage(gen: Generation) -> dict[str, int]:
            return {
                "input_tokens": gen.prompt_tokens,
                "output_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            }

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            gen = self.generator.generate(_lc_messages(messages), **self._params(stop, kwargs))
            message = AIMessage(
                content=gen.text,
                usage_metadata=self._usage(gen),  # type: ignore[arg-type]
                response_metadata={
                    "finish_reason": gen.finish_reason,
                    "model_name": getattr(self.generator, "name", None),
                },
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _stream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Iterator[ChatGenerationChunk]:
            params = self._params(stop, kwargs)
            for piece in self.generator.stream(_lc_messages(messages), **params):
                if piece.generation is None:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece.text))
                else:
                    gen = piece.generation
                    chunk = ChatGenerationChunk(
                        message=AIMessageChunk(
                            content=piece.text,
                            usage_metadata=self._usage(gen),  # type: ignore[arg-type]
                            response_metadata={"finish_reason": gen.finish_reason},
                        )
                    )
                if run_manager is not None and piece.text:
                    run_manager.on_llm_new_token(piece.text, chunk=chunk)
                yield chunk

    return LocalChatModel
