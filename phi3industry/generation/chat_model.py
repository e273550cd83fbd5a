"""Phi-3 (or any phi3industry model) as a LangChain chat model: :class:`ChatPhi3Industry`.

Built the way LangChain's own chat models are: ``model=`` names the model (a short name, a
directory, a hub id or a ``.gguf`` file), ``adapter=`` a LoRA adapter to answer with, and
``base_url=`` an OpenAI-compatible endpoint (vLLM, llama.cpp, ``phi3industry serve``) to
generate with instead of a local model. It passes ``langchain-tests``' standard chat model
suites; it has no tool calling and no structured output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr, SecretStr

from phi3industry.errors import GenerationError
from phi3industry.generation.adapters import parse_adapter_spec
from phi3industry.generation.base import BASE_ADAPTER, Generation, Generator
from phi3industry.generation.endpoint import OpenAIGenerator
from phi3industry.generation.local import LocalGenerator
from phi3industry.models import DEFAULT_MODEL

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "user": "user"}
# One loaded model per (model, adapter, device, dtype): chat models are cheap to build, as
# LangChain users expect, while the weights load once per process.
_LOADED: dict[tuple[Any, ...], Generator] = {}
_LOADED_LOCK = threading.Lock()


def chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as ``role``/``content`` dicts (system, human and AI messages only)."""
    out = []
    for m in messages:
        role = _ROLES.get(m.type)
        if role is None:
            raise GenerationError(
                f"Unsupported message type {m.type!r}; ChatPhi3Industry takes system, human "
                "and AI messages (it has no tool calling)."
            )
        content = m.content if isinstance(m.content, str) else m.text
        out.append({"role": role, "content": str(content)})
    return out


class ChatPhi3Industry(BaseChatModel):
    """A LangChain chat model over a local model (with LoRA adapters) or an endpoint.

    Attributes:
        model: Short name, directory, hub id or ``.gguf`` file (default: Phi-3-mini 4k);
            with ``base_url``, the model's name at the endpoint.
        adapter: A LoRA adapter directory (``name=DIR`` to name it) to answer with; with
            ``base_url``, the adapter's name at the endpoint (vLLM's ``--lora-modules``).
        base_url: Generate with this OpenAI-compatible endpoint instead of locally.
        api_key: The endpoint's key (default: ``$OPENAI_API_KEY``).
        max_tokens: Tokens generated at most.
        temperature: Sampling temperature; 0 is greedy.
        top_p: Nucleus sampling mass.
        stop: Extra stop strings (the chat template's end of turn always stops).
        seed: Sampling seed.
        timeout: Seconds a call may take (local: a deadline; endpoint: per request).
            Any setting, and ``model``, can also be given per call: ``chat.invoke(msgs,
            model="tiny-phi3", max_tokens=8)``.
        max_retries: Endpoint retries on connection errors, 429 and 5xx.
        dtype: Local weights dtype (``auto``, ``fp32``, ``bf16``, ``fp16``).
        device: Local device (``cpu``, ``cuda``); default: the best there is.

    Example:
        >>> from phi3industry.generation import ChatPhi3Industry
        >>> chat = ChatPhi3Industry(model="smollm2-135m-instruct", max_tokens=16)
        >>> chat.invoke("What is 2 + 2?").content  # doctest: +SKIP
        '2 + 2 = 4.'
        >>> for chunk in chat.stream("Say hi."):  # doctest: +SKIP
        ...     print(chunk.content, end="")
    """

    model_config = ConfigDict(protected_namespaces=())

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] | None = None
    seed: int | None = None
    timeout: float | None = None
    max_retries: int = 2
    dtype: str = "auto"
    device: str | None = None

    _generator: Generator | None = PrivateAttr(default=None)

    @classmethod
    def from_generator(
        cls, generator: Generator, *, adapter: str | None = None, **kwargs: Any
    ) -> ChatPhi3Industry:
        """Wrap a generator already loaded (e.g. a pipeline's ``generator``).

        Args:
            generator: A :class:`~phi3industry.generation.LocalGenerator` or
                :class:`~phi3industry.generation.OpenAIGenerator`.
            adapter: Name of one of its adapters to answer with.
            **kwargs: Other fields (``max_tokens``, ``temperature``...).
        """
        chat = cls(model=str(getattr(generator, "name", DEFAULT_MODEL)), adapter=adapter, **kwargs)
        chat._generator = generator
        return chat

    @property
    def generator(self) -> Generator:
        """The generator behind the model (loaded on first use, shared by equal chat models)."""
        if self._generator is None:
            self._generator = self._load(self.model)
        return self._generator

    def _generator_for(self, model: str | None) -> Generator:
        """The generator of a per-call ``model`` override (the configured one by default)."""
        if model is None or model == self.model:
            return self.generator
        return self._load(model)

    def _load(self, model: str) -> Generator:
        if self.base_url:
            key = self.api_key.get_secret_value() if self.api_key else None
            return OpenAIGenerator(
                self.base_url,
                model,
                api_key=key,
                retries=self.max_retries,
                timeout=self.timeout or 120.0,
                adapters=[self.adapter] if self.adapter else [],
            )
        adapters = dict([parse_adapter_spec(self.adapter)]) if self.adapter else {}
        cache_key = (model, tuple(sorted(adapters.items())), self.dtype, self.device)
        with _LOADED_LOCK:
            if cache_key not in _LOADED:
                _LOADED[cache_key] = LocalGenerator.from_pretrained(
                    model, adapters=adapters, dtype=self.dtype, device=self.device
                )
            return _LOADED[cache_key]

    def _adapter_name(self) -> str:
        if not self.adapter:
            return BASE_ADAPTER
        if self.base_url or self.adapter in self.generator.adapter_names:
            return self.adapter
        return parse_adapter_spec(self.adapter)[0]

    @property
    def _llm_type(self) -> str:
        return "phi3industry"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "adapter": self.adapter,
            "base_url": self.base_url,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="phi3industry",
            ls_model_name=model if isinstance(model, str) else self.model,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        stops = stop or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        stops = [*(self.stop or []), *(stop or []), *(kwargs.pop("stop", None) or [])]
        timeout = kwargs.pop("timeout", self.timeout)
        return {
            "max_new_tokens": int(kwargs.pop("max_tokens", self.max_tokens)),
            "temperature": float(kwargs.pop("temperature", self.temperature)),
            "top_p": float(kwargs.pop("top_p", self.top_p)),
            "adapter": kwargs.pop("adapter", None) or self._adapter_name(),
            "seed": kwargs.pop("seed", self.seed),
            "stop": stops or None,
            "deadline": time.monotonic() + timeout if timeout and not self.base_url else None,
        }

    def _metadata(self, gen: Generation, model: str | None) -> dict[str, Any]:
        return {"finish_reason": gen.finish_reason, "model_name": model or self.model}

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
        model = kwargs.pop("model", None)
        generator = self._generator_for(model)
        gen = generator.generate(chat_messages(messages), **self._params(stop, kwargs))
        message = AIMessage(
            content=gen.text,
            usage_metadata=self._usage(gen),  # type: ignore[arg-type]
            response_metadata=self._metadata(gen, model),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model = kwargs.pop("model", None)
        generator = self._generator_for(model)
        params = self._params(stop, kwargs)
        for piece in generator.stream(chat_messages(messages), **params):
            if piece.generation is None:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece.text))
            else:
                gen = piece.generation
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(
                        content=piece.text,
                        usage_metadata=self._usage(gen),  # type: ignore[arg-type]
                        response_metadata=self._metadata(gen, model),
                        chunk_position="last",
                    )
                )
            if run_manager is not None and piece.text:
                run_manager.on_llm_new_token(piece.text, chunk=chunk)
            yield chunk
