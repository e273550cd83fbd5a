"""An OpenAI-compatible HTTP server for a :class:`~phi3industry.pipeline.Pipeline`.

Routes: ``POST /v1/chat/completions`` (plain and SSE streaming; the cited sources ride in an
extra ``sources`` field of the response and of the final chunk), ``GET /v1/models`` (the
pipeline, the base model and each adapter), ``POST /v1/retrieve`` (hits only) and
``GET /health``.

Safety: binds 127.0.0.1 by default and refuses a non-loopback address without an API key;
with a key, every route but ``/health`` needs ``Authorization: Bearer KEY`` (compared in
constant time, never logged). Bodies over ``max_body_bytes`` get 413, ``max_tokens`` over
``max_tokens_cap`` 400, requests past ``request_timeout`` 504. The model is not thread-safe:
generation is serialized, so concurrent requests queue (up to ``max_queue``, then 503). A
failure while answering one request is a 500 for that request; the server keeps serving.

Example:
    >>> from phi3industry import Pipeline, PipelineConfig
    >>> from phi3industry.server import serve
    >>> cfg = PipelineConfig(model="smollm2-135m-instruct", index="kb-index", port=8000)
    >>> serve(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Literal

from phi3industry.config import STRATEGIES, PipelineConfig
from phi3industry.errors import (
    ConfigError,
    DependencyMissingError,
    GenerationError,
    Phi3IndustryError,
    QueryError,
)
from phi3industry.generation import BASE_ADAPTER, GenerationTimeoutError

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
except ImportError as exc:  # pragma: no cover - depends on the install
    raise DependencyMissingError(
        "The server needs FastAPI and uvicorn: pip install 'phi3industry[serve]'"
    ) from exc

logger = logging.getLogger("phi3industry.server")

PIPELINE_MODEL_ID = "phi3industry"
API_KEY_ENV = "PHI3INDUSTRY_API_KEY"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# -- request schema ---------------------------------------------------------------------------


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One OpenAI chat message (text content only)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_ContentPart] | None = None

    def text(self) -> str:
        """The message's text; non-text parts are refused."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise QueryError(f"Only text content is supported, got a {part.type!r} part.")
            texts.append(part.text)
        return "".join(texts)


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (OpenAI fields plus ``strategy``)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(default=1, ge=1, le=1)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)  # OpenAI's int64 range
    strategy: str | None = None


class RetrieveRequest(BaseModel):
    """The body of ``POST /v1/retrieve``."""

    query: str = Field(min_length=1)
    k: int | None = Field(default=None, ge=1, le=100)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(_error_body(message, kind), status_code=status, headers=headers)


# -- ASGI guard: API key and body size, before any body is read -------------------------------


class _Guard:
    """Checks the bearer key (all routes but /health) and caps the request body size."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body = max_body_bytes

    async def _reply(self, send: Send, status: int, message: str, kind: str) -> None:
        response = _error(status, message, kind)
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path") != "/health":
            given = headers.get("authorization", b"")
            scheme, _, token = given.partition(b" ")
            # compare_digest: the time taken does not reveal how much of the key matched.
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                await self._reply(
                    send,
                    401,
                    "Missing or invalid API key: send 'Authorization: Bearer KEY'.",
                    "authentication_error",
                )
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._reply(
                send,
                413,
                f"Request body is {int(length)} bytes; the limit is {self.max_body}.",
                "invalid_request_error",
            )
            return
        # Read the body here, up to the limit, so that a chunked upload (no Content-Length)
        # is cut off as early as one that declares its size.
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_body:
                await self._reply(
                    send,
                    413,
                    f"Request body is over the limit of {self.max_body} bytes.",
                    "invalid_request_error",
                )
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)


async def _no_receive() -> MutableMapping[str, Any]:  # pragma: no cover - never awaited
    return {"type": "http.disconnect"}


# -- the app ----------------------------------------------------------------------------------


def _hit_dict(hit: Any, n: int | None = None) -> dict[str, Any]:
    data = hit.to_dict()
    if n is not None:
        data = {"n": n, **data}
    return data


def create_app(
    pipeline: Any, config: PipelineConfig | None = None, *, api_key: str | None = None
) -> FastAPI:
    """Build the FastAPI app serving ``pipeline``.

    Args:
        pipeline: The :class:`~phi3industry.pipeline.Pipeline`.
        config: Server limits (default: ``pipeline.config``).
        api_key: Bearer key clients must send (None: no authentication).

    Returns:
        The ASGI app (FastAPI, wrapped by the key and body-size guard).
    """
    cfg = config or pipeline.config
    app = FastAPI(title="phi3industry", version=_version(), docs_url=None, redoc_url=None)
    base_id = model_id(str(getattr(pipeline.generator, "name", "base")))
    inflight = {"n": 0}
    inflight_lock = threading.Lock()

    def model_ids() -> list[str]:
        ids = [PIPELINE_MODEL_ID, base_id]
        ids += [a for a in pipeline.generator.adapter_names if a not in ids]
        return ids

    def resolve(model: str, strategy: str | None) -> tuple[str, str | None]:
        """Map the request's model (and optional strategy) to (strategy, adapter).

        ``phi3industry`` is the pipeline with its configured strategy; the base model's id and
        each adapter's name are the plain models (no retrieval), as vLLM serves them, unless
        the request's ``strategy`` asks for retrieval.
        """
        if strategy is not None and strategy not in STRATEGIES:
            raise _HTTPError(
                400, f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}."
            )
        if model == PIPELINE_MODEL_ID:
            return strategy or pipeline.config.strategy, None
        if model in (base_id, BASE_ADAPTER):
            chosen = strategy or "base"
            if chosen.endswith("finetuned"):
                raise _HTTPError(400, f"Model {model!r} is the base model; pick an adapter.")
            return chosen, None
        if model in pipeline.generator.adapter_names:
            chosen = strategy or "finetuned"
            if not chosen.endswith("finetuned"):
                raise _HTTPError(
                    400, f"Model {model!r} is an adapter; use strategy finetuned/rag+finetuned."
                )
            return chosen, model
        raise _HTTPError(
            404, f"Unknown model {model!r}; available: {', '.join(model_ids())} (GET /v1/models)."
        )

    def admit() -> None:
        with inflight_lock:
            if inflight["n"] >= cfg.max_queue:
                raise _HTTPError(
                    503,
                    f"Server busy: {cfg.max_queue} requests already queued; retry later.",
                    "server_error",
                )
            inflight["n"] += 1

    def release() -> None:
        with inflight_lock:
            inflight["n"] -= 1

    async def parse_body(request: Request, schema: type[BaseModel]) -> Any:
        raw = await request.body()
        try:
            data = json.loads(raw)
            # A "\ud800" escape decodes to a lone surrogate, which no tokenizer can encode.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _HTTPError(
                400,
                f"Request body holds a lone UTF-16 surrogate ({exc.object[exc.start]!r}), "
                "which is not valid Unicode text. Send well-formed UTF-8.",
            ) from exc
        except ValueError as exc:
            raise _HTTPError(400, f"Request body is not valid JSON: {exc}.") from exc
        except RecursionError as exc:
            raise _HTTPError(400, "Request body is JSON nested too deeply.") from exc
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise _HTTPError(400, f"Invalid request: {problems}.") from exc

    def to_input(req: ChatRequest) -> tuple[dict[str, Any], str | None, str]:
        if len(req.messages) > cfg.max_messages:
            raise _HTTPError(
                400, f"Too many messages: {len(req.messages)}; the limit is {cfg.max_messages}."
            )
        if req.messages[-1].role != "user":
            raise _HTTPError(400, "The last message must be the user's question.")
        max_tokens = req.max_completion_tokens or req.max_tokens
        if max_tokens is not None and max_tokens > cfg.max_tokens_cap:
            raise _HTTPError(
                400, f"max_tokens={max_tokens} is over this server's cap of {cfg.max_tokens_cap}."
            )
        strategy, adapter = resolve(req.model, req.strategy)
        try:
            texts = [(m.role, m.text()) for m in req.messages]
        except QueryError as exc:
            raise _HTTPError(400, str(exc)) from exc
        system = "\n\n".join(t for r, t in texts if r in ("system", "developer")) or None
        history = [{"role": r, "content": t} for r, t in texts[:-1] if r in ("user", "assistant")]
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        inp: dict[str, Any] = {
            "question": texts[-1][1],
            "history": history,
            "strategy": strategy,
            "adapter": adapter,
            "system": system,
            "max_new_tokens": min(max_tokens or pipeline.config.max_new_tokens, cfg.max_tokens_cap),
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stop": stop or None,
            "seed": req.seed,
        }
        return inp, adapter, strategy

    def completion(req: ChatRequest, answer: Any, cid: str, created: int) -> dict[str, Any]:
        numbers = answer.citation_numbers()
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": answer.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
            "usage": answer.usage,
            "sources": [_hit_dict(h, n) for n, h in zip(numbers, answer.citations, strict=False)],
            "context": [_hit_dict(h, i) for i, h in enumerate(answer.sources, 1)],
            "strategy": answer.strategy,
            "abstained": answer.abstained,
            "timings": answer.timings,
        }

    @app.exception_handler(_HTTPError)
    async def _http_error(request: Request, exc: _HTTPError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.kind)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": base_id, "adapters": pipeline.generator.adapter_names}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        data = [
            {"id": mid, "object": "model", "created": created, "owned_by": "phi3industry"}
            for mid in model_ids()
        ]
        data[0]["strategy"] = pipeline.config.strategy
        return {"object": "list", "data": data}

    @app.post("/v1/retrieve")
    async def retrieve(request: Request) -> dict[str, Any]:
        req = await parse_body(request, RetrieveRequest)
        if pipeline.retriever is None:
            raise _HTTPError(400, "This server has no index; start it with --index DIR.")
        try:
            hits = await asyncio.to_thread(pipeline.retrieve, req.query, req.k)
        except QueryError as exc:
            raise _HTTPError(400, str(exc)) from exc
        return {"object": "list", "data": [_hit_dict(h, i) for i, h in enumerate(hits, 1)]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        req = await parse_body(request, ChatRequest)
        inp, _adapter, _strategy = to_input(req)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        deadline = time.monotonic() + cfg.request_timeout
        admit()
        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _sse(req, inp, cid, created, deadline, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            answer = await asyncio.to_thread(pipeline.invoke, inp, None, deadline=deadline)
        except Exception as exc:
            raise _as_http(exc) from exc
        finally:
            release()
        return completion(req, answer, cid, created)

    async def _sse(
        req: ChatRequest,
        inp: dict[str, Any],
        cid: str,
        created: int,
        deadline: float,
        include_usage: bool,
    ) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
                **extra,
            }
            return f"data: {json.dumps(body)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            async for item in pipeline.astream_answer(inp, deadline=deadline):
                if isinstance(item, str):
                    yield chunk({"content": item})
                    continue
                numbers = item.citation_numbers()
                yield chunk(
                    {},
                    item.finish_reason or "stop",
                    sources=[
                        _hit_dict(h, n) for n, h in zip(numbers, item.citations, strict=False)
                    ],
                    context=[_hit_dict(h, i) for i, h in enumerate(item.sources, 1)],
                    strategy=item.strategy,
                    abstained=item.abstained,
                )
                if include_usage:
                    body = {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": req.model,
                        "choices": [],
                        "usage": item.usage,
                    }
                    yield f"data: {json.dumps(body)}\n\n"
        except Exception as exc:  # headers are sent: report the error in the stream
            err = _as_http(exc)
            yield f"data: {json.dumps(_error_body(err.message, err.kind))}\n\n"
        finally:
            release()
        yield "data: [DONE]\n\n"

    return _Guard(app, api_key, cfg.max_body_bytes)  # type: ignore[return-value]


def _as_http(exc: BaseException) -> _HTTPError:
    if isinstance(exc, _HTTPError):
        return exc
    if isinstance(exc, GenerationTimeoutError):
        return _HTTPError(504, f"Request timed out: {exc}", "timeout_error")
    if isinstance(exc, (QueryError, ConfigError)):
        return _HTTPError(400, str(exc))
    if isinstance(exc, GenerationError):
        logger.error("generation failed: %s", exc)
        return _HTTPError(500, f"Generation failed: {exc}", "server_error")
    logger.exception("request failed", exc_info=exc)
    kind = "server_error"
    if isinstance(exc, Phi3IndustryError):
        return _HTTPError(500, str(exc), kind)
    return _HTTPError(500, f"Internal error ({type(exc).__name__}); see the server log.", kind)


def model_id(name: str) -> str:
    """The id a model is served under: its short name or hub id, or a directory's name."""
    path = os.path.expanduser(name)
    return os.path.basename(os.path.normpath(path)) if os.path.exists(path) else name


def _version() -> str:
    from phi3industry import __version__

    return __version__


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(config: PipelineConfig) -> str | None:
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


class BackgroundServer:
    """Run the server in a background thread (tests, notebooks, benchmarks).

    Args:
        pipeline: The pipeline to serve.
        config: Server settings (default: ``pipeline.config``); ``port=0`` picks a free port.
        api_key: Bearer key (default: from the config or ``$PHI3INDUSTRY_API_KEY``).

    Example:
        >>> with BackgroundServer(pipe) as server:  # doctest: +SKIP
        ...     print(server.url)  # http://127.0.0.1:PORT/v1
    """

    def __init__(
        self, pipeline: Any, config: PipelineConfig | None = None, *, api_key: str | None = None
    ) -> None:
        import uvicorn

        cfg = config or pipeline.config
        key = api_key or resolve_api_key(cfg)
        check_bind(cfg.host, key)
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM
        )
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((cfg.host, cfg.port))
        self.host, self.port = cfg.host, self._sock.getsockname()[1]
        app = create_app(pipeline, cfg, api_key=key)
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, lifespan="off")
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> BackgroundServer:
        """Start serving and wait until the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The server did not start.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: PipelineConfig, pipeline: Any = None) -> None:
    """Serve a pipeline over HTTP until interrupted (blocking).

    Args:
        config: Pipeline and server settings (host, port, api_key, limits).
        pipeline: An already built pipeline (default: built from ``config``).

    Raises:
        ConfigError: Non-loopback bind without an API key, or bad settings.
    """
    import uvicorn

    key = resolve_api_key(config)
    check_bind(config.host, key)  # before loading any model
    if pipeline is None:
        from phi3industry.pipeline import Pipeline

        pipeline = Pipeline(config=config)
    app = create_app(pipeline, config, api_key=key)
    logger.warning(
        "phi3industry serving %s on http://%s:%d/v1 (API key %s)",
        getattr(pipeline.generator, "name", "?"),
        config.host,
        config.port,
        "required" if key else "not required: loopback only",
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", timeout_keep_alive=30)


__all__ = [
    "BackgroundServer",
    "ChatRequest",
    "check_bind",
    "create_app",
    "is_loopback",
    "resolve_api_key",
    "serve",
]
