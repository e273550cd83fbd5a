"""An OpenAI-compatible HTTP server for a :class:`~phi3industry.pipeline.Pipeline`.

Routes: ``POST /v1/chat/completions`` (plain and SSE streaming; the cited sources ride in an
extra ``sources`` field of the response and of the final chunk), ``GET /v1/models`` (the
pipeline, the base model and each adapter), ``POST /v1/retrieve`` (the sources a question
would be shown) and ``GET /health``.

Safety: binds 127.0.0.1 by default and refuses a non-loopback address without an API key;
with a key, every route but ``/health`` needs ``Authorization: Bearer KEY`` (compared in
constant time, never logged). Bodies over ``max_body_bytes`` get 413, ``max_tokens`` over
``max_tokens_cap`` 400, requests past ``request_timeout`` 504. A local model is not
thread-safe: generation is serialized, so concurrent requests queue (up to ``max_queue``, then
503). A failure while answering one request is a 500 for that request; the server keeps
serving.

Example:
    >>> from phi3industry.pipeline import PipelineConfig
    >>> from phi3industry.serving import ServerConfig, serve
    >>> pipeline = PipelineConfig(model="smollm2-135m-instruct", index="kb-index")
    >>> serve(pipeline, ServerConfig(port=8000))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from phi3industry._version import __version__
from phi3industry.errors import (
    ConfigError,
    DependencyMissingError,
    GenerationError,
    GenerationTimeoutError,
    Phi3IndustryError,
    QueryError,
    RequestError,
)
from phi3industry.generation.base import BASE_ADAPTER
from phi3industry.pipeline.answer import Answer, AnswerChunk
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.pipeline.pipeline import Pipeline
from phi3industry.serving.config import ServerConfig, check_bind, resolve_api_key
from phi3industry.serving.engine import engine_for, on_engine
from phi3industry.strategies import PIPELINE_STRATEGIES, STRATEGIES

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, ValidationError

    from phi3industry.serving.guard import Guard, error_response
    from phi3industry.serving.schema import ChatRequest, RetrieveRequest, error_body
except ImportError as exc:  # pragma: no cover - depends on the install
    raise DependencyMissingError(
        "The server needs FastAPI and uvicorn: pip install 'phi3industry[serve]'"
    ) from exc

logger = logging.getLogger("phi3industry.serving")

PIPELINE_MODEL_ID = "phi3industry"


def _hit_dict(hit: Any, n: int | None = None) -> dict[str, Any]:
    data = hit.to_dict()
    if n is not None:
        data = {"n": n, **data}
    return data


def _answer_fields(answer: Answer) -> dict[str, Any]:
    """What the server adds to OpenAI's response: citations, claims and their quotes, context."""
    numbers = answer.citation_numbers()
    return {
        "sources": [_hit_dict(h, n) for n, h in zip(numbers, answer.citations, strict=False)],
        "claims": [claim.to_dict() for claim in answer.claims],
        "grounded": answer.grounded,
        "flagged": answer.flagged,
        "quoted_instead": answer.quoted_instead,
        "unsupported_markers": answer.unsupported_markers,
        "answer_mode": answer.mode,
        "context": [_hit_dict(h, i) for i, h in enumerate(answer.sources, 1)],
        "strategy": answer.strategy,
        "abstained": answer.abstained,
    }


def check_engine(pipeline: Pipeline) -> list[str] | None:
    """Check that the engine behind ``pipeline`` serves its model and every adapter, by name.

    A pipeline that generates locally has nothing to check (None).

    Returns:
        The model ids the engine serves, or None.

    Raises:
        ConfigError: A model or adapter is not served (the message names the flag to add).
        GenerationError: The engine cannot be reached.
    """
    check = getattr(pipeline.generator, "check_served", None)
    return list(check()) if callable(check) else None


def create_app(
    pipeline: Pipeline, config: ServerConfig | None = None, *, api_key: str | None = None
) -> FastAPI:
    """Build the FastAPI app serving ``pipeline``.

    Args:
        pipeline: The :class:`~phi3industry.pipeline.Pipeline`.
        config: Server limits (default: ``ServerConfig()``).
        api_key: Bearer key clients must send (None: no authentication).

    Returns:
        The ASGI app (FastAPI, wrapped by the key and body-size guard).
    """
    cfg = config or ServerConfig()
    app = FastAPI(title="phi3industry", version=__version__, docs_url=None, redoc_url=None)
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
        if strategy is not None and strategy not in PIPELINE_STRATEGIES:
            raise RequestError(
                400,
                f"Unknown strategy {strategy!r}; choose one of {', '.join(PIPELINE_STRATEGIES)}.",
            )
        if model == PIPELINE_MODEL_ID:
            return strategy or pipeline.config.strategy, None
        if model in (base_id, BASE_ADAPTER):
            chosen = strategy or "base"
            if STRATEGIES[chosen].uses_adapter:
                raise RequestError(400, f"Model {model!r} is the base model; pick an adapter.")
            return chosen, None
        if model in pipeline.generator.adapter_names:
            chosen = strategy or "finetuned"
            if not STRATEGIES[chosen].uses_adapter:
                raise RequestError(
                    400, f"Model {model!r} is an adapter; use strategy finetuned/rag+finetuned."
                )
            return chosen, model
        raise RequestError(
            404, f"Unknown model {model!r}; available: {', '.join(model_ids())} (GET /v1/models)."
        )

    def admit() -> None:
        with inflight_lock:
            if inflight["n"] >= cfg.max_queue:
                raise RequestError(
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
            raise RequestError(
                400,
                f"Request body holds a lone UTF-16 surrogate ({exc.object[exc.start]!r}), "
                "which is not valid Unicode text. Send well-formed UTF-8.",
            ) from exc
        except ValueError as exc:
            raise RequestError(400, f"Request body is not valid JSON: {exc}.") from exc
        except RecursionError as exc:
            raise RequestError(400, "Request body is JSON nested too deeply.") from exc
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise RequestError(400, f"Invalid request: {problems}.") from exc

    def to_input(req: ChatRequest) -> dict[str, Any]:
        if len(req.messages) > cfg.max_messages:
            raise RequestError(
                400, f"Too many messages: {len(req.messages)}; the limit is {cfg.max_messages}."
            )
        if req.messages[-1].role != "user":
            raise RequestError(400, "The last message must be the user's question.")
        max_tokens = req.max_completion_tokens or req.max_tokens
        if max_tokens is not None and max_tokens > cfg.max_tokens_cap:
            raise RequestError(
                400, f"max_tokens={max_tokens} is over this server's cap of {cfg.max_tokens_cap}."
            )
        strategy, adapter = resolve(req.model, req.strategy)
        try:
            texts = [(m.role, m.text()) for m in req.messages]
        except QueryError as exc:
            raise RequestError(400, str(exc)) from exc
        system = "\n\n".join(t for r, t in texts if r in ("system", "developer")) or None
        history = [{"role": r, "content": t} for r, t in texts[:-1] if r in ("user", "assistant")]
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        return {
            "question": texts[-1][1],
            "history": history,
            "strategy": strategy,
            "adapter": adapter,
            "answer_mode": req.answer_mode,
            "system": system,
            "max_new_tokens": min(max_tokens or pipeline.config.max_new_tokens, cfg.max_tokens_cap),
            "temperature": req.temperature,
            "top_p": req.top_p,
            "stop": stop or None,
            "seed": req.seed,
        }

    def completion(req: ChatRequest, answer: Answer, cid: str, created: int) -> dict[str, Any]:
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
            **_answer_fields(answer),
            "timings": answer.timings,
        }

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind)

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
            raise RequestError(400, "This server has no index; start it with --index DIR.")
        try:
            hits = await asyncio.to_thread(pipeline.retrieve, req.query, req.k)
        except QueryError as exc:
            raise RequestError(400, str(exc)) from exc
        return {"object": "list", "data": [_hit_dict(h, i) for i, h in enumerate(hits, 1)]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        req = await parse_body(request, ChatRequest)
        inp = to_input(req)
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
            answer = await pipeline.ainvoke(inp, deadline=deadline)
        except Exception as exc:
            raise _as_request_error(exc) from exc
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
        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            body = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(body)}\n\n"

        def delta(content: dict[str, Any], reason: str | None = None, **extra: Any) -> str:
            return event([{"index": 0, "delta": content, "finish_reason": reason}], **extra)

        try:
            yield delta({"role": "assistant", "content": ""})
            async for chunk in pipeline.astream(inp, deadline=deadline):
                assert isinstance(chunk, AnswerChunk)
                if chunk.text:
                    yield delta({"content": chunk.text})
                if not chunk.last:
                    continue  # a text delta; the closing chunk carries the rest
                yield delta({}, chunk.finish_reason or "stop", **_answer_fields(chunk))
                if include_usage:
                    yield event([], usage=chunk.usage)
        except Exception as exc:  # headers are sent: report the error in the stream
            err = _as_request_error(exc)
            yield f"data: {json.dumps(error_body(err.message, err.kind))}\n\n"
        finally:
            release()
        yield "data: [DONE]\n\n"

    return Guard(app, api_key, cfg.max_body_bytes)  # type: ignore[return-value]


def _as_request_error(exc: BaseException) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, GenerationTimeoutError):
        return RequestError(504, f"Request timed out: {exc}", "timeout_error")
    if isinstance(exc, (QueryError, ConfigError)):
        return RequestError(400, str(exc))
    if isinstance(exc, GenerationError):
        logger.error("generation failed: %s", exc)
        return RequestError(500, f"Generation failed: {exc}", "server_error")
    logger.exception("request failed", exc_info=exc)
    kind = "server_error"
    if isinstance(exc, Phi3IndustryError):
        return RequestError(500, str(exc), kind)
    return RequestError(500, f"Internal error ({type(exc).__name__}); see the server log.", kind)


def model_id(name: str) -> str:
    """The id a model is served under: its short name or hub id, or a directory's name."""
    path = os.path.expanduser(name)
    return os.path.basename(os.path.normpath(path)) if os.path.exists(path) else name


class BackgroundServer:
    """Run the server in a background thread (tests, notebooks, benchmarks).

    Args:
        pipeline: The pipeline to serve.
        config: Server settings (default: ``ServerConfig(port=0)``: any free port).
        api_key: Bearer key (default: from the config or ``$PHI3INDUSTRY_API_KEY``).

    Example:
        >>> with BackgroundServer(pipe) as server:  # doctest: +SKIP
        ...     print(server.url)  # http://127.0.0.1:PORT/v1
    """

    def __init__(
        self, pipeline: Pipeline, config: ServerConfig | None = None, *, api_key: str | None = None
    ) -> None:
        import uvicorn

        cfg = config or ServerConfig(port=0)
        key = api_key or resolve_api_key(cfg)
        check_bind(cfg.host, key)
        check_engine(pipeline)
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


def serve(pipeline: PipelineConfig | Pipeline, config: ServerConfig | None = None) -> None:
    """Serve a pipeline over HTTP until interrupted (blocking).

    With ``config.engine`` (``"vllm"``), the engine is started first for the pipeline's model
    and adapters, the pipeline generates on it, and it is stopped when the server stops.

    Args:
        pipeline: The pipeline, or the settings to build it from (after the bind check, so
            a refused address costs no model load).
        config: Server settings (host, port, api_key, limits, engine); default
            ``ServerConfig()``.

    Raises:
        ConfigError: Non-loopback bind without an API key, bad settings, or an engine that
            does not serve the pipeline's model or adapters.
        EngineError: The engine could not be started.
    """
    import uvicorn

    config = config or ServerConfig()
    key = resolve_api_key(config)
    check_bind(config.host, key)  # before loading any model
    engine = None
    if config.engine is not None:
        if not isinstance(pipeline, PipelineConfig):
            raise ConfigError(
                "--engine starts the engine from the pipeline's settings: pass a PipelineConfig."
            )
        engine = engine_for(pipeline, config.vllm)
        pipeline = on_engine(pipeline, engine)
        logger.warning("starting vLLM: %s", " ".join(engine.command()))
        engine.start()
    try:
        if isinstance(pipeline, PipelineConfig):
            pipeline = Pipeline(config=pipeline)
        served = check_engine(pipeline)  # a missing LoRA module fails here, not on a request
        if served is not None:
            logger.warning(
                "generating on %s (serving %s)",
                getattr(pipeline.generator, "base_url", "?"),
                ", ".join(served),
            )
        app = create_app(pipeline, config, api_key=key)
        logger.warning(
            "phi3industry serving %s on http://%s:%d/v1 (API key %s)",
            getattr(pipeline.generator, "name", "?"),
            config.host,
            config.port,
            "required" if key else "not required: loopback only",
        )
        uvicorn.run(
            app, host=config.host, port=config.port, log_level="info", timeout_keep_alive=30
        )
    finally:
        if engine is not None:
            engine.stop()


__all__ = [
    "BackgroundServer",
    "check_engine",
    "create_app",
    "model_id",
    "serve",
]
