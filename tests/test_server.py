"""The OpenAI-compatible server: real uvicorn on a free loopback port, the official openai
client for chat and streaming, plain HTTP for the errors."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.errors import ConfigError, GenerationError
from phi3industry.generation import OpenAIGenerator
from phi3industry.serving import BackgroundServer, ServerConfig, check_bind, is_loopback

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "What does error E4711 mean?"
DOCS = {
    "battery.md": "# Battery\n\n## Error E4711\n\nError code E4711 means the battery pack "
    "overheated. Let it cool for thirty minutes before charging again.\n",
    "returns.md": "# Returns\n\nCustomers may return unused parts within 30 days of delivery.\n",
}


def make_adapter(base_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=targets),
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread: None) -> None:
    """Every test here runs with one torch thread (see conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def pipe(tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    root = tmp_path_factory.mktemp("server-kb")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    retriever = Retriever(RetrieverConfig(path=str(root / "index"), progress=False))
    retriever.sync([str(root / "docs")])
    adapter = make_adapter(tiny_phi3_dir, root / "kb")
    return Pipeline(
        retriever=retriever,
        model=str(tiny_phi3_dir),
        adapter=f"kb={adapter}",
        config=PipelineConfig(max_new_tokens=8),
    )


SERVER = ServerConfig(port=0, api_key=KEY, max_body_bytes=60_000, max_tokens_cap=64, max_messages=6)


@pytest.fixture(scope="module")
def server(pipe: Pipeline) -> Iterator[BackgroundServer]:
    with BackgroundServer(pipe, SERVER) as srv:
        yield srv


@pytest.fixture
def client(server: BackgroundServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url.removesuffix("/v1"), timeout=120) as c:
        yield c


def ask(question: str = QUESTION, **kwargs: object) -> dict:
    return {"model": "phi3industry", "messages": [{"role": "user", "content": question}], **kwargs}


def test_models_lists_base_and_adapters(client: openai.OpenAI, pipe: Pipeline) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["phi3industry", Path(pipe.generator.name).name, "kb"]


def test_chat_completion_with_sources(client: openai.OpenAI, pipe: Pipeline) -> None:
    resp = client.chat.completions.create(**ask(max_tokens=6))
    local = pipe.invoke({"question": QUESTION, "max_new_tokens": 6})
    assert resp.choices[0].message.content == local.text
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage is not None and 0 < resp.usage.completion_tokens <= 6
    extra = resp.model_extra or {}
    assert extra["strategy"] == "rag" and extra["context"][0]["source"].endswith("battery.md")
    assert isinstance(extra["sources"], list)  # the cited hits ([n] in the text)


def test_streaming_with_sources_in_final_chunk(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(**ask(max_tokens=6)).choices[0].message.content
    stream = client.chat.completions.create(
        **ask(max_tokens=6), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == plain
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert "sources" in (final.model_extra or {}) and final.model_extra["context"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_adapter_and_base_models_and_strategy(client: openai.OpenAI) -> None:
    base_id = client.models.list().data[1].id
    base = client.chat.completions.create(
        **{**ask(), "model": base_id}, extra_body={"strategy": "base"}
    )
    tuned = client.chat.completions.create(
        **{**ask(), "model": "kb"}, extra_body={"strategy": "finetuned"}
    )
    assert base.model_extra["strategy"] == "base" and tuned.model_extra["strategy"] == "finetuned"
    assert base.choices[0].message.content != tuned.choices[0].message.content
    assert base.model_extra["context"] == []


def test_history_and_system_messages(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="phi3industry",
        messages=[
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Tell me about E4711."},
            {"role": "assistant", "content": "It is a battery error."},
            {"role": "user", "content": [{"type": "text", "text": "What should I do?"}]},
        ],
        max_tokens=4,
        extra_body={"strategy": "base"},
    )
    assert resp.usage is not None and resp.usage.prompt_tokens > 20


def test_retrieve_and_health(http: httpx.Client) -> None:
    r = http.post("/v1/retrieve", json={"query": "battery overheated", "k": 1}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["data"][0]["source"].endswith("battery.md") and len(r.json()["data"]) == 1
    assert http.get("/health").json()["status"] == "ok"  # no key needed


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key-000000"}, {"Authorization": KEY}]
)
def test_401_without_the_right_key(http: httpx.Client, headers: dict) -> None:
    for method, path in (
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/retrieve"),
    ):
        r = http.request(method, path, json=ask(), headers=headers)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
        assert KEY not in r.text


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (b"{not json", 400, "not valid JSON"),
        ({"model": "phi3industry"}, 400, "messages: Field required"),
        ({"model": "phi3industry", "messages": []}, 400, "messages"),
        ({"model": "phi3industry", "messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
        (ask(temperature=9), 400, "temperature"),
        (ask(max_tokens=100_000), 400, "cap of 64"),
        (ask(n=3), 400, "n"),
        (ask(""), 400, "non-empty string"),
        (ask("word " * 5000), 400, "too long"),
        (ask(strategy="magic"), 400, "Unknown strategy 'magic'"),
        ({**ask(), "model": "gpt-17"}, 404, "Unknown model 'gpt-17'"),
        ({**ask(), "messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
        ({**ask(), "messages": [{"role": "user", "content": "x"}] * 7}, 400, "Too many messages"),
        (
            {
                **ask(),
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            },
            400,
            "Only text content",
        ),
    ],
)
def test_malformed_requests(http: httpx.Client, body: object, status: int, match: str) -> None:
    if isinstance(body, bytes):
        r = http.post(
            "/v1/chat/completions",
            content=body,
            headers={**AUTH, "Content-Type": "application/json"},
        )
    else:
        r = http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert match in r.json()["error"]["message"]
    assert http.get("/health").status_code == 200  # still serving


def test_413_body_too_large(http: httpx.Client) -> None:
    r = http.post("/v1/chat/completions", json=ask("x" * 70_000), headers=AUTH)
    assert r.status_code == 413 and "limit is 60000" in r.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        for _ in range(70):
            yield b"x" * 1000

    r = http.post("/v1/chat/completions", content=chunked(), headers=AUTH)
    assert r.status_code == 413


def test_concurrent_requests_queue_and_all_succeed(client: openai.OpenAI) -> None:
    def one(i: int) -> str:
        if i % 2:
            stream = client.chat.completions.create(
                **ask(f"Question {i} about the battery?", max_tokens=4), stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        resp = client.chat.completions.create(**ask(f"Question {i} about returns?", max_tokens=4))
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert len(results) == 8 and all(isinstance(r, str) for r in results)


def test_generator_error_is_500_and_server_keeps_serving(
    http: httpx.Client, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise GenerationError("the model fell over")

    monkeypatch.setattr(pipe.generator, "generate", boom)
    r = http.post("/v1/chat/completions", json=ask(), headers=AUTH)
    assert r.status_code == 500 and "the model fell over" in r.json()["error"]["message"]
    monkeypatch.undo()
    assert (
        http.post("/v1/chat/completions", json=ask(max_tokens=2), headers=AUTH).status_code == 200
    )


def test_stream_error_is_reported_in_the_stream(
    client: openai.OpenAI, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> Iterator[object]:
        raise GenerationError("stream broke")
        yield

    monkeypatch.setattr(pipe.generator, "stream", boom)
    with pytest.raises(openai.APIError, match="stream broke"):
        list(client.chat.completions.create(**ask(), stream=True))


def test_request_timeout_is_504(pipe: Pipeline) -> None:
    cfg = dataclasses.replace(SERVER, request_timeout=0.001)
    with BackgroundServer(pipe, cfg) as srv, httpx.Client(timeout=60) as h:
        r = h.post(f"{srv.url}/chat/completions", json=ask(max_tokens=60), headers=AUTH)
    assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]


def test_our_server_as_an_openai_compatible_endpoint(
    server: BackgroundServer, pipe: Pipeline
) -> None:
    base_id = Path(pipe.generator.name).name
    remote = OpenAIGenerator(server.url, base_id, api_key=KEY, adapters=["kb"])
    via_http = Pipeline(model=remote, config=PipelineConfig(strategy="base", max_new_tokens=6))
    local = pipe.invoke({"question": "Hello?", "strategy": "base", "max_new_tokens": 6})
    assert via_http.invoke("Hello?").text == local.text
    streamed = "".join(chunk.text for chunk in via_http.stream("Hello?"))
    assert streamed == via_http.invoke("Hello?").text
    wrong = OpenAIGenerator(server.url, base_id, api_key="bad-key-12345678", retries=0)
    with pytest.raises(GenerationError, match=r"refused the request \(HTTP 401\)"):
        wrong.generate([{"role": "user", "content": "hi"}])


def test_refuses_public_bind_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match=r"Refusing to serve on '0\.0\.0\.0' without an API key"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", KEY)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "phi3industry",
            "serve",
            "--host",
            "0.0.0.0",
            "--model",
            "tiny-phi3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "without an API key" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_serve_with_key_from_env(tiny_phi3_dir: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PHI3INDUSTRY_API_KEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phi3industry",
            "serve",
            "--model",
            str(tiny_phi3_dir),
            "--strategy",
            "base",
            "--port",
            str(port),
            "--max-new-tokens",
            "4",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("server did not start")
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        assert c.chat.completions.create(**ask()).choices[0].message.content
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
    finally:
        proc.terminate()
        log = proc.communicate(timeout=30)[0]
    assert KEY not in log


def test_claims_quotes_and_citations_ride_in_the_response(pipe: Pipeline) -> None:
    quoting = Pipeline(
        retriever=pipe.retriever,
        model=pipe.generator,
        config=PipelineConfig(answer_mode="extract"),  # deterministic, and always cited
    )
    with BackgroundServer(quoting, SERVER) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key=KEY, max_retries=0, timeout=120)
        resp = client.chat.completions.create(**ask())
        extra = resp.model_extra or {}
        assert "E4711" in (resp.choices[0].message.content or "")
        assert extra["grounded"] == 1.0 and extra["flagged"] is False
        claims = extra["claims"]
        assert claims and all(c["supported"] for c in claims)
        quote = claims[0]["quotes"][0]
        assert quote["n"] == extra["sources"][0]["n"] and "E4711" in quote["text"]
        assert extra["sources"][0]["source"].endswith("battery.md")
        assert extra["answer_mode"] == "extract" and extra["unsupported_markers"] == []
        final = [
            c
            for c in client.chat.completions.create(**ask(), stream=True)
            if c.choices and c.choices[0].finish_reason
        ][-1].model_extra or {}
        assert final["claims"] == claims and final["grounded"] == 1.0
        # The request may choose the answer mode: written by the (tiny) model, then attributed.
        written = (
            client.chat.completions.create(
                **ask(), max_tokens=4, extra_body={"answer_mode": "generate"}
            ).model_extra
            or {}
        )
        assert written["answer_mode"] == "generate" and isinstance(written["claims"], list)
        with pytest.raises(openai.BadRequestError, match="answer_mode"):
            client.chat.completions.create(**ask(), extra_body={"answer_mode": "paraphrase"})
