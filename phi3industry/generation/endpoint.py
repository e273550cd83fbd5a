"""Any OpenAI-compatible endpoint (vLLM, llama.cpp, Azure OpenAI, our own server) as a generator.

The blocking methods (``generate``, ``stream``) use ``openai.OpenAI``; the async ones
(``agenerate``, ``astream``) use ``openai.AsyncOpenAI`` on the caller's event loop, so a server
in front of an engine keeps as many requests in flight as its clients send (no worker-thread
pool in between).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from phi3industry.errors import (
    ConfigError,
    DependencyMissingError,
    GenerationError,
    GenerationTimeoutError,
)
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
        adapters: Adapter (model) names the endpoint serves (vLLM LoRA modules), or a mapping
            name -> adapter directory (the directory is only named in error messages: the
            engine loads it, see :meth:`check_served`).

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
        adapters: Sequence[str] | Mapping[str, str] = (),
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
        self._adapter_dirs = dict(adapters) if isinstance(adapters, Mapping) else {}
        self._openai = openai
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self.timeout = timeout
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            max_retries=0,  # we retry ourselves, to name the URL in the final error
            timeout=timeout,
        )
        # One async client per event loop: its connection pool belongs to the loop it runs on.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = self._openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=self.timeout
            )
            self._aclients[loop] = client
        return client

    def served_models(self) -> list[str]:
        """The model ids the endpoint serves (``GET /v1/models``).

        Raises:
            GenerationError: If the endpoint cannot be reached or refuses the request.
        """
        o = self._openai
        try:
            return [m.id for m in self._client.models.list()]
        except o.APIStatusError as exc:
            raise GenerationError(
                f"The endpoint at {self.base_url} refused GET /models "
                f"(HTTP {exc.status_code}): {exc.message}"
            ) from exc
        except o.APIError as exc:
            raise GenerationError(
                f"Cannot list the models of the OpenAI-compatible endpoint at {self.base_url}: "
                f"{type(exc).__name__}: {exc}. Check that the engine is running and that "
                "base_url is right."
            ) from exc

    def check_served(self) -> list[str]:
        """Check that the endpoint serves the base model and every adapter, by name.

        vLLM serves each LoRA module under its name (``--lora-modules NAME=DIR``); a pipeline's
        adapter ``NAME`` is generated by sending ``model=NAME``.

        Returns:
            The model ids the endpoint serves.

        Raises:
            ConfigError: If the base model or an adapter is not served, naming it and the
                engine flag that serves it.
            GenerationError: If the endpoint cannot be reached.
        """
        served = self.served_models()
        listed = ", ".join(served) or "none"
        if self.name not in served:
            raise ConfigError(
                f"The engine at {self.base_url} does not serve the model {self.name!r} (it "
                f"serves: {listed}). Start vLLM with --served-model-name {self.name}, or set "
                f"--endpoint.model to one of the served names."
            )
        missing = [name for name in self._adapters if name not in served]
        if missing:
            flags = " ".join(
                f"--lora-modules {name}={self._adapter_dirs.get(name) or 'DIR'}" for name in missing
            )
            raise ConfigError(
                f"The engine at {self.base_url} does not serve the adapter(s) "
                f"{', '.join(repr(n) for n in missing)} as LoRA module(s) (it serves: {listed}). "
                f"Start vLLM with --enable-lora {flags} (phi3industry engine vllm --adapter "
                "NAME=DIR does), or drop the adapter from the pipeline."
            )
        return served

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
                    raise self._unreachable(attempts, exc) from exc
                delay = self.backoff * (2**attempt)
                time.sleep(delay * (0.5 + random.random()))  # jitter spreads out the retries
            except o.APIStatusError as exc:
                raise GenerationError(
                    f"The endpoint at {self.base_url} refused the request "
                    f"(HTTP {exc.status_code}): {exc.message}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _timeout(self, deadline: float | None) -> float:
        """Seconds the next request may take: the configured timeout, cut at the deadline."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise GenerationTimeoutError(
                f"The request's deadline passed before {self.base_url} answered."
            )
        return min(self.timeout, left)

    async def _arequest(self, deadline: float | None, **kwargs: Any) -> Any:
        o = self._openai
        retryable = (o.APIConnectionError, o.RateLimitError, o.InternalServerError)
        attempts = self.retries + 1
        client = self._aclient()
        for attempt in range(attempts):
            try:
                return await client.chat.completions.create(
                    **kwargs, timeout=self._timeout(deadline)
                )
            except o.APITimeoutError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise GenerationTimeoutError(
                        f"The endpoint at {self.base_url} did not answer before the deadline."
                    ) from exc
                if attempt + 1 >= attempts:
                    raise self._unreachable(attempts, exc) from exc
            except retryable as exc:
                if attempt + 1 >= attempts:
                    raise self._unreachable(attempts, exc) from exc
            except o.APIStatusError as exc:
                raise GenerationError(
                    f"The endpoint at {self.base_url} refused the request "
                    f"(HTTP {exc.status_code}): {exc.message}"
                ) from exc
            delay = self.backoff * (2**attempt)
            await asyncio.sleep(delay * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, attempts: int, exc: Exception) -> GenerationError:
        return GenerationError(
            f"Cannot get a completion from the OpenAI-compatible endpoint at "
            f"{self.base_url} after {attempts} attempt(s): "
            f"{type(exc).__name__}: {exc}. Check that the server is running and "
            "that base_url is right."
        )

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
        return self._generation(self._request(**kwargs), kwargs, start)

    def _generation(self, resp: Any, kwargs: dict[str, Any], start: float) -> Generation:
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
        """Async :meth:`generate`: awaits the endpoint on the running event loop.

        Raises:
            GenerationTimeoutError: If ``deadline`` passes first.
            GenerationError: If the endpoint is unreachable (after the retries) or refuses.
        """
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        return self._generation(await self._arequest(deadline, **kwargs), kwargs, start)

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
        """Generate replies, all requests in flight at once: the engine batches them."""
        from concurrent.futures import ThreadPoolExecutor

        def one(messages: Sequence[Message]) -> Generation:
            return self.generate(
                messages,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                stop=stop,
                adapter=adapter,
                seed=seed,
                deadline=deadline,
            )

        if len(batch) <= 1:
            return [one(messages) for messages in batch]
        with ThreadPoolExecutor(max_workers=min(len(batch), 64)) as pool:
            return list(pool.map(one, batch))

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
        acc = _StreamAccumulator(self, kwargs, start)
        try:
            for event in events:
                yield from acc.feed(event)
        except self._openai.APIError as exc:
            raise GenerationError(f"Stream from {self.base_url} failed: {exc}") from exc
        yield GenerationChunk("", acc.final())

    async def astream(
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
        """Async :meth:`stream`; closing the iterator closes the engine's stream (it stops)."""
        start = time.perf_counter()
        kwargs = self._kwargs(messages, max_new_tokens, temperature, top_p, stop, adapter, seed)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        events = await self._arequest(deadline, **kwargs)
        acc = _StreamAccumulator(self, kwargs, start)
        try:
            async for event in events:
                for chunk in acc.feed(event):
                    yield chunk
                if deadline is not None and time.monotonic() > deadline:
                    raise GenerationTimeoutError(
                        f"The stream from {self.base_url} did not finish before the deadline."
                    )
        except self._openai.APITimeoutError as exc:
            raise GenerationTimeoutError(
                f"The stream from {self.base_url} did not finish before the deadline."
            ) from exc
        except self._openai.APIError as exc:
            raise GenerationError(f"Stream from {self.base_url} failed: {exc}") from exc
        finally:
            await events.close()
        yield GenerationChunk("", acc.final())


class _StreamAccumulator:
    """Turn streamed completion events into text chunks and the final :class:`Generation`."""

    def __init__(self, gen: OpenAIGenerator, kwargs: dict[str, Any], start: float) -> None:
        self.gen, self.kwargs, self.start = gen, kwargs, start
        self.parts: list[str] = []
        self.first: float | None = None
        self.reason = "stop"
        self.usage: Any = None

    def feed(self, event: Any) -> Iterator[GenerationChunk]:
        if getattr(event, "usage", None):
            self.usage = event.usage
        for choice in event.choices or []:
            delta = choice.delta.content or ""
            if delta:
                if self.first is None:
                    self.first = time.perf_counter() - self.start
                self.parts.append(delta)
                yield GenerationChunk(delta)
            if choice.finish_reason:
                self.reason = choice.finish_reason

    def final(self) -> Generation:
        text = "".join(self.parts)
        usage = self.usage
        return Generation(
            text=text,
            finish_reason=self.reason,
            prompt_tokens=(
                usage.prompt_tokens if usage else self.gen.prompt_tokens(self.kwargs["messages"])
            ),
            completion_tokens=usage.completion_tokens if usage else self.gen.count_tokens(text),
            first_token_s=self.first,
            total_s=time.perf_counter() - self.start,
        )
