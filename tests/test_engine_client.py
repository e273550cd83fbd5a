"""The server in front of an engine: async endpoint client, no serialization, module check.

A small OpenAI-compatible engine (tests/_fake_engine.py) runs over a real loopback socket;
the real-engine tests (vLLM, llama.cpp) are in test_engines.py, marked ``engine``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.errors import ConfigError, GenerationError, GenerationTimeoutError
from phi3industry.generation import AsyncGenerator, OpenAIGenerator
from phi3industry.pipeline.config import EndpointConfig
from phi3industry.serving import BackgroundServer, ServerConfig
from tests._fake_engine import FakeEngine

MSGS = [{"role": "user", "content": "Hi"}]
REPLY = "Error code E4711 means the battery pack overheated [1]."
DOCS = {
    "battery.md": "# Battery\n\n## Error E4711\n\nError code E4711 means the battery pack "
    "overheated. Let it cool for thirty minutes before charging again.\n",
    "returns.md": "# Returns\n\nCustomers may return unused parts within 30 days of delivery.\n",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    root = tmp_path_factory.mktemp("engine-kb")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    retriever = Retriever(RetrieverConfig(path=str(root / "index"), progress=False))
    retriever.sync([str(root / "docs")])
    return retriever


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    with FakeEngine(["base-model", "kb"], reply=REPLY) as fake:
        yield fake


def test_async_client_generates_and_streams(engine: FakeEngine) -> None:
    gen = OpenAIGenerator(engine.url, "base-model", adapters=["kb"])
    assert isinstance(gen, AsyncGenerator)

    async def run() -> tuple[str, list[str], str]:
        plain = await gen.agenerate(MSGS, max_new_tokens=8, adapter="kb")
        pieces = [c async for c in gen.astream(MSGS, max_new_tokens=8)]
        assert pieces[-1].generation is not None and pieces[-1].generation.completion_tokens == 9
        return plain.text, [p.text for p in pieces[:-1]], pieces[-1].generation.text

    text, deltas, streamed = asyncio.run(run())
    assert text == streamed == "".join(deltas) == REPLY and len(deltas) > 1
    assert [r["model"] for r in engine.requests] == ["kb", "base-model"]  # adapter = module name
    assert engine.requests[0]["max_tokens"] == 8 and engine.requests[0]["temperature"] == 0.0
    # One client per event loop: a second asyncio.run works on a fresh connection pool.
    assert asyncio.run(gen.agenerate(MSGS)).text == REPLY


def test_async_client_errors_name_the_url_and_the_deadline() -> None:
    with FakeEngine(["m"], delay=2.0) as slow:
        gen = OpenAIGenerator(slow.url, "m", retries=0)
        with pytest.raises(GenerationTimeoutError, match="deadline"):
            asyncio.run(gen.agenerate(MSGS, deadline=time.monotonic() + 0.3))
        with pytest.raises(GenerationError, match=r"refused the request \(HTTP 404\)"):
            asyncio.run(OpenAIGenerator(slow.url, "other", retries=0).agenerate(MSGS))
    gen = OpenAIGenerator(slow.url, "m", retries=1, backoff=0.01)  # the engine is gone now
    with pytest.raises(GenerationError, match=rf"{slow.url} after 2 attempt\(s\)"):
        asyncio.run(gen.agenerate(MSGS))


def test_check_served_names_the_missing_module_and_the_flag(engine: FakeEngine) -> None:
    assert OpenAIGenerator(engine.url, "base-model", adapters=["kb"]).check_served() == [
        "base-model",
        "kb",
    ]
    gen = OpenAIGenerator(engine.url, "base-model", adapters={"kb": "/a/kb", "hr": "/a/hr"})
    with pytest.raises(ConfigError, match=r"adapter\(s\) 'hr'.*--lora-modules hr=/a/hr"):
        gen.check_served()
    with pytest.raises(ConfigError, match=r"does not serve the model 'phi-3'.*--served-model-name"):
        OpenAIGenerator(engine.url, "phi-3").check_served()
    # The server checks at start, before it listens: a pipeline built from its settings too.
    cfg = PipelineConfig(
        model="base-model",
        adapter="hr=/adapters/hr",
        strategy="finetuned",
        endpoint=EndpointConfig(base_url=engine.url),
    )
    pipe = Pipeline(config=cfg)
    with pytest.raises(ConfigError, match="--lora-modules hr=/adapters/hr"):
        BackgroundServer(pipe, ServerConfig(port=0))


def test_server_refuses_to_start_when_the_engine_is_down(engine: FakeEngine) -> None:
    gen = OpenAIGenerator(engine.url, "base-model")
    pipe = Pipeline(model=gen, config=PipelineConfig(strategy="base"))
    engine.server.shutdown()
    engine.server.server_close()
    with pytest.raises(GenerationError, match=f"models of the .* endpoint at {engine.url}"):
        BackgroundServer(pipe, ServerConfig(port=0))


def test_server_lets_every_request_through_to_the_engine() -> None:
    """32 clients (half streaming) are all in flight at the engine at once: no thread-pool cap."""
    with FakeEngine(["base-model"], reply="Fine, thanks.", delay=2.0) as slow:
        gen = OpenAIGenerator(slow.url, "base-model")
        pipe = Pipeline(model=gen, config=PipelineConfig(strategy="base", max_new_tokens=8))
        with BackgroundServer(pipe, ServerConfig(port=0)) as server:

            def ask(i: int) -> str:
                body = {
                    "model": "phi3industry",
                    "messages": [{"role": "user", "content": f"How are you, {i}?"}],
                    "stream": i % 2 == 1,
                }
                with httpx.Client(timeout=60) as h:
                    r = h.post(f"{server.url}/chat/completions", json=body)
                assert r.status_code == 200, r.text
                return r.text

            start = time.monotonic()
            with ThreadPoolExecutor(32) as pool:
                replies = list(pool.map(ask, range(32)))
            elapsed = time.monotonic() - start
    assert all("Fine, thanks." in r or "Fine," in r for r in replies)
    assert slow.max_active == 32
    assert elapsed < 4 * slow.delay  # serialized through 6 worker threads it takes 6x


def test_engine_answers_with_sources_citations_and_streams(
    engine: FakeEngine, index: Retriever
) -> None:
    gen = OpenAIGenerator(engine.url, "base-model", adapters=["kb"])
    cfg = PipelineConfig(strategy="rag+finetuned", max_new_tokens=32, answer_mode="generate")
    pipe = Pipeline(retriever=index, model=gen, adapter="kb", config=cfg)
    with BackgroundServer(pipe, ServerConfig(port=0)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
        ask = {"messages": [{"role": "user", "content": "What does error E4711 mean?"}]}
        resp = client.chat.completions.create(model="phi3industry", **ask)
        chunks = list(client.chat.completions.create(model="phi3industry", stream=True, **ask))
        models = [m.id for m in client.models.list()]
    extra = resp.model_extra or {}
    assert resp.choices[0].message.content == REPLY
    assert extra["strategy"] == "rag+finetuned" and not extra["abstained"]
    assert extra["sources"][0]["source"].endswith("battery.md") and extra["sources"][0]["n"] == 1
    assert "thirty minutes" in engine.requests[0]["messages"][-1]["content"]  # sources shown
    assert {r["model"] for r in engine.requests} == {"kb"}  # the adapter, by its module name
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert (last.model_extra or {})["sources"] == extra["sources"]
    assert models == ["phi3industry", "base-model", "kb"]


def test_request_deadline_reaches_the_engine_call() -> None:
    with FakeEngine(["base-model"], delay=3.0) as slow:
        pipe = Pipeline(
            model=OpenAIGenerator(slow.url, "base-model", retries=0),
            config=PipelineConfig(strategy="base"),
        )
        cfg = ServerConfig(port=0, request_timeout=0.5)
        with BackgroundServer(pipe, cfg) as server, httpx.Client(timeout=30) as h:
            body = {"model": "phi3industry", "messages": MSGS}
            r = h.post(f"{server.url}/chat/completions", json=body)
            s = h.post(f"{server.url}/chat/completions", json={**body, "stream": True})
    assert r.status_code == 504 and "deadline" in r.json()["error"]["message"]
    assert "timeout_error" in s.text


def test_generate_batch_sends_the_whole_batch_at_once() -> None:
    """Pipeline.batch (the evaluation's path) lets the engine batch: all requests in flight."""
    with FakeEngine(["base-model"], reply="Sure.", delay=3.0) as slow:
        gen = OpenAIGenerator(slow.url, "base-model")
        pipe = Pipeline(model=gen, config=PipelineConfig(strategy="base", batch_size=8))
        answers = pipe.batch([f"Question {i}?" for i in range(8)])
    assert [a.text for a in answers] == ["Sure."] * 8
    assert slow.max_active == 8
