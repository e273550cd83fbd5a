"""Any OpenAI-compatible endpoint (vLLM, llama.cpp, Azure OpenAI, our own server) as a generator."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

from phi3industry.errors import ConfigError, DependencyMissingError, GenerationError
from phi3industry.generation.base import (
    BASE_ADAPTER,
    Generation,
    GenerationChunk,
    Message,
    check_messages,
    check_params,
)


class OpenAIGenerator:
    """Generate with any OpenAI-compatible endpoint: vLLM, llama.cpp, Azure OpenAI, our server.

    Unreachable or overloaded endpoints are retried with exponential backoff; then a
    :class:`GenerationError` names the URL. An adapter name is sent as the model name (vLLM
    serves LoRA adapters as models).

    Args:
        base_url: Endpoint root, e.g. ``http://127.0.0.1:8000/v1``.
        model: Model name at the endpoint.
        api_key: Key sent as ``Authorization: Bearer`` (default: ``$OPENAI_API_KEY``).
        retries: Retries after the first attempt on connection errors, 429 and 5xx.
        backoff: First retry delay in seconds; doubles each retry (with jitter).
        timeout: Seconds per request.
        tokenizer: Optional tokenizer for exact token counts (else ~4 characters a token).
        context_window: The served model's context window.
        adapters: Adapter (model) names the endpoint serves.

    Example:
        >>> gen = OpenAIGenerator(
        ...     "http://127.0.0.1:8000/v1", model="phi-3-mini-4k-instruct"
        ... )  # doctest: +SKIP
        >>> gen.generate([{"role": "user", "content": "Hi"}]).text  # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 120.0,
        tokenizer: Any = None,
        context_window: int = 4096,
        adapters: Sequence[str] = (),
    ) -> None:
        try:
            import openai
        except ImportError as exc:
            raise DependencyMissingError(
                "The OpenAI-compatible generator needs the openai client: "
                "pip install 'phi3industry[openai]'"
            ) from exc
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.retries = retries
        self.backoff = backoff
        self.tokenizer = tokenizer
        self._context_window = context_window
        self._adapters = list(adapters)
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            max_retries=0,  # we retry ourselves, to name the URL in the final error
            timeout=timeout,
        )

    @property
    def adapter_names(self) -> list[str]:
        """Adapter (model) names the endpoint serves, as configured."""
        return list(self._adapters)

    @property
    def adapter_paths(self) -> dict[str, str]:
        """Adapter name -> directory; an endpoint's adapters live on its side (none here)."""
        return {}

    @property
    def context_window(self) -> int:
        """The served model's context window in tokens (as configured)."""
        return self._context_window

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``: exact with a tokenizer, else about 4 characters a token."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(text) // 4 + 1

    def truncate(self, text: str, max_tokens: int) -> str:
        """Return a prefix of ``text`` that fits in ``max_tokens`` tokens."""
        if self.tokenizer is not None:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return str(self.tokenizer.decode(ids[: max(0, max_tokens)], skip_special_tokens=True))
        return text[: max(0, max_tokens) * 4]

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Approximate prompt tokens of ``messages`` (content plus a few per message)."""
        return sum(self.count_tokens(m["content"]) + 4 for m in check_messages(messages))

    def _request(self, **kwargs: Any) -> Any:
        o = self._openai
        retryable = (o.APIConnectionError, o.RateLimitError, o.InternalServerError)
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._client.chat.completions.create(**kwargs)
            except retryable as exc:
                if attempt + 1 >= attempts:
                    raise GenerationError(
                        f"Cannot get a completion from the OpenAI-compatible endpoint at "
                        f"{self.base_url} after {attempts} attempt(s): "
                        f"{type(exc).__name__}: {exc}. Check that the server is running and "
                        "that base_url is right."
                    ) from exc
                delay = self.backoff * (2**attempt)
                time.sleep(delay * (0.5 + random.random()))  # jitter spreads out the retries
            except o.APIStatusError as exc:
                raise GenerationError(
                    f"The endpoint at {self.base_url} refused the request "
                    f"(HTTP {exc.status_code}): {exc.message}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _kwargs(
        self,
        messages: Sequence[Message],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        stop: Sequence[str] | None,
        adapter: str | None,
        seed: int | None,
    ) -> dict[str, Any]:
        check_params(max_new_tokens, temperature, top_p)
        kwargs: dict[str, Any] = {
            "model": self.name if adapter in (None, BASE_ADAPTER) else adapter,
            "messages": check_messages(messages),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        if stop:
            kwargs["stop"] = list(stop)
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

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
        """Generate the reply to ``messages`` (see :meth:`LocalGenerator.generate`)."""
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        resp = self._request(**kwargs)
        choice = resp.choices[0]
        usage = resp.usage
        text = choice.message.content or ""
        return Generation(
            text=text,
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=usage.prompt_tokens if usage else self.prompt_tokens(kwargs["messages"]),
            completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
            first_token_s=None,
            total_s=time.perf_counter() - start,
        )

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
        """Generate replies one request at a time (the endpoint batches on its side)."""
        return [
            self.generate(
                messages,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                stop=stop,
                adapter=adapter,
                seed=seed,
                deadline=deadline,
            )
            for messages in batch
        ]

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
        """Stream the reply (see :meth:`LocalGenerator.stream`)."""
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        events = self._request(**kwargs, stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        first: float | None = None
        reason = "stop"
        usage = None
        try:
            for event in events:
                if getattr(event, "usage", None):
                    usage = event.usage
                for choice in event.choices or []:
                    delta = choice.delta.content or ""
                    if delta:
                        if first is None:
                            first = time.perf_counter() - start
                        parts.append(delta)
                        yield GenerationChunk(delta)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        except self._openai.APIError as exc:
            raise GenerationError(f"Stream from {self.base_url} failed: {exc}") from exc
        text = "".join(parts)
        final = Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=usage.prompt_tokens if usage else self.prompt_tokens(kwargs["messages"]),
            completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
            first_token_s=first,
            total_s=time.perf_counter() - start,
        )
        yield GenerationChunk("", final)
