from __future__ import annotations

import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from phi3industry.errors import ConfigError, DependencyMissingError, ModelNotFoundError
from phi3industry.models import cache_dir
from phi3industry.retrieval import embeddings
from phi3industry.retrieval.config import DEFAULT_EMBEDDING
from phi3industry.retrieval.embeddings import Embedder, load_embedder

TEXTS = [
    "Torque the cylinder-head bolts to 40 Nm in three passes.",
    "The cafeteria serves lunch from noon until two.",
    "Replace the hydraulic filter every 500 operating hours.",
    "Quarterly revenue grew by 12 percent.",
    "word " * 400,  # longer than the model's 256-token limit
]

HAS_ONNX = all(importlib.util.find_spec(p) for p in ("onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def embedder(session_cache: Path) -> Embedder:
    return load_embedder()


def test_bundled_embedder_offline(embedder: Embedder) -> None:
    assert embedder.name == DEFAULT_EMBEDDING
    assert embedder.dimension == 384
    assert embedder.max_tokens == 254  # 256 minus [CLS] and [SEP]
    vectors = embedder.embed_documents(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, 384)
    # Same object per arguments; the hub-style name is the same bundled model.
    assert load_embedder("sentence-transformers/all-MiniLM-L6-v2").name == DEFAULT_EMBEDDING
    assert load_embedder() is embedder


def test_closer_meaning_scores_higher(embedder: Embedder) -> None:
    docs = embedder.embed_documents(TEXTS[:4])
    query = embedder.embed_query("How tight should the head bolts be?")
    assert query.shape == (384,) and query.dtype == np.float32
    scores = docs @ query
    assert int(np.argmax(scores)) == 0
    assert scores[0] > scores[1] + 0.2
    # Order in a batch does not change a text's vector (length-sorted batching is undone).
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS[::-1])[::-1], embedder.embed_documents(TEXTS), atol=1e-5
    )


def test_count_tokens_matches_tokenizer(embedder: Embedder) -> None:
    tokenizer = embedder.model.tokenizer  # type: ignore[attr-defined]
    for text in TEXTS:
        want = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert embedder.count_tokens(text) == want
    # Not capped by the model's truncation, even after embedding turned it on.
    embedder.embed_documents(TEXTS)
    assert embedder.count_tokens(TEXTS[-1]) == 400
    assert embedder.count_tokens("") == 0


def test_langchain_adapter(embedder: Embedder) -> None:
    from langchain_core.embeddings import Embeddings

    lc = embedder.as_langchain()
    assert isinstance(lc, Embeddings)
    docs = lc.embed_documents(TEXTS[:2])
    assert len(docs) == 2 and len(docs[0]) == 384 and isinstance(docs[0][0], float)
    np.testing.assert_allclose(lc.embed_query(TEXTS[0]), embedder.embed_query(TEXTS[0]), atol=1e-6)


def test_unknown_model_offline() -> None:
    with pytest.raises(ModelNotFoundError, match="jinaai/no-such-embedder") as info:
        load_embedder("jinaai/no-such-embedder")
    assert "huggingface-cli download" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_embedder("./no/such/dir")


def test_local_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"modules\.json"):
        load_embedder(str(tmp_path))


def test_bad_backend() -> None:
    with pytest.raises(ConfigError, match="backend"):
        load_embedder(backend="tensorrt")
    with pytest.raises(ConfigError, match="non-empty"):
        load_embedder("  ")


def test_openai_without_key() -> None:
    if importlib.util.find_spec("langchain_openai") is None:
        with pytest.raises(DependencyMissingError, match=r"phi3industry\[openai\]"):
            load_embedder("text-embedding-3-small")
    else:
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            load_embedder("text-embedding-3-small")


def test_openai_embedder_shape_without_network(monkeypatch) -> None:
    pytest.importorskip("langchain_openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.setattr(embeddings, "_CACHE", {})
    embedder = load_embedder("text-embedding-3-large")
    assert embedder.name == "text-embedding-3-large" and embedder.dimension == 3072
    assert embedder.max_tokens == 8191
    with pytest.warns(UserWarning) if _tiktoken_offline() else _nullcontext():
        assert embedder.count_tokens("hello world") > 0


def _tiktoken_offline() -> bool:
    try:
        import tiktoken

        tiktoken.get_encoding("cl100k_base")
    except Exception:
        return True
    return False


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def test_missing_onnx_dependency_says_how_to_install(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(embeddings, "_CACHE", {})
    monkeypatch.setattr(
        embeddings.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnx" else real(name, *a),
    )
    with pytest.raises(DependencyMissingError, match=r"pip install 'phi3industry\[onnx\]'"):
        load_embedder(backend="onnx-int8")


@pytest.mark.skipif(not HAS_ONNX, reason="needs phi3industry[onnx]")
def test_onnx_int8_agrees_with_torch(embedder: Embedder, monkeypatch) -> None:
    quantized = load_embedder(backend="onnx-int8")
    assert quantized.name == "all-MiniLM-L6-v2@onnx-int8" != embedder.name
    assert quantized.dimension == 384 and quantized.max_tokens == embedder.max_tokens
    reference = embedder.embed_documents(TEXTS)
    vectors = quantized.embed_documents(TEXTS, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.98
    for text in TEXTS:
        assert quantized.count_tokens(text) == embedder.count_tokens(text)
    # Exported once into the cache; a new process (here: an empty in-process cache) reuses it.
    (export,) = (cache_dir() / "embeddings").glob("all-MiniLM-L6-v2-onnx-int8-*")
    stamp = (export / "model_int8.onnx").stat().st_mtime_ns
    monkeypatch.setattr(embeddings, "_CACHE", {})
    again = load_embedder(backend="onnx-int8")
    assert again is not quantized
    assert (export / "model_int8.onnx").stat().st_mtime_ns == stamp
    # Dynamic quantization scales activations per batch, so batch-mates nudge a vector a bit.
    same_batching = again.embed_documents(TEXTS, batch_size=2)
    np.testing.assert_allclose(same_batching, vectors, atol=1e-6)
    alone = np.stack([again.embed_query(t) for t in TEXTS])
    assert np.min(np.sum(alone * vectors, axis=1)) > 0.98
    assert np.min(np.sum(alone * reference, axis=1)) > 0.98


@pytest.mark.skipif(not HAS_ONNX, reason="needs phi3industry[onnx]")
def test_onnx_bulk_embedding_runs_batches_side_by_side(monkeypatch) -> None:
    quantized = load_embedder(backend="onnx-int8")
    texts = [f"{t} Section {i}: " + "torque the bolts " * (i % 7) for i, t in enumerate(TEXTS * 8)]
    monkeypatch.setattr(quantized, "_workers", 1)
    one_at_a_time = quantized.embed_documents(texts, batch_size=4)
    threads: set[str] = set()
    opened: list[Any] = []
    real_open = quantized._open

    class Watched:
        def __init__(self, session: Any) -> None:
            self.session = session

        def run(self, *args: Any) -> Any:
            threads.add(threading.current_thread().name)
            time.sleep(0.01)  # long enough for the second worker to take a batch
            return self.session.run(*args)

    def watched_open(*args: Any) -> Watched:
        opened.append(Watched(real_open(*args)))
        return opened[-1]

    monkeypatch.setattr(quantized, "_workers", 2)
    monkeypatch.setattr(quantized, "_idle", queue.SimpleQueue())
    monkeypatch.setattr(quantized, "_open", watched_open)
    side_by_side = quantized.embed_documents(texts, batch_size=4, progress=True)
    # Two batches at a time, each on a session of its own, kept for the next call.
    assert len(threads) == 2 and all(name.startswith("embed") for name in threads)
    assert len(opened) == 2
    quantized.embed_documents(texts, batch_size=4)
    assert len(opened) == 2
    # The same batches, so the same vectors (int8 activations are scaled per batch).
    np.testing.assert_allclose(side_by_side, one_at_a_time, atol=1e-5)
    assert side_by_side.shape == (len(texts), 384)
    # One batch (a query, a short list) runs on the all-cores session, in the caller's thread.
    few = quantized.embed_documents(texts[:3])
    assert np.min(np.sum(few * one_at_a_time[:3], axis=1)) > 0.98  # other batch-mates
    assert len(opened) == 2


@pytest.mark.skipif(not HAS_ONNX, reason="needs phi3industry[onnx]")
def test_onnx_fp32_matches_torch(embedder: Embedder) -> None:
    exact = load_embedder(backend="onnx")
    assert exact.name == "all-MiniLM-L6-v2@onnx"
    cos = np.sum(exact.embed_documents(TEXTS) * embedder.embed_documents(TEXTS), axis=1)
    assert np.min(cos) > 0.9999


def test_auto_backend_follows_the_index_then_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phi3industry.retrieval.embeddings import resolve_backend, split_embedder_name

    assert split_embedder_name("all-MiniLM-L6-v2@onnx-int8") == ("all-MiniLM-L6-v2", "onnx-int8")
    assert split_embedder_name("/models/a@b/mini") == ("/models/a", "b/mini")
    assert split_embedder_name("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", "torch")
    # A concrete backend is kept as asked.
    assert resolve_backend(DEFAULT_EMBEDDING, "onnx", "cuda") == "onnx"
    # An existing index keeps the backend its vectors were made with, by any name of the model.
    for name in (DEFAULT_EMBEDDING, "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_backend(name, "auto", built_with=f"{DEFAULT_EMBEDDING}@onnx") == "onnx"
        assert resolve_backend(name, "auto", "cpu", built_with=DEFAULT_EMBEDDING) == "torch"
    model_dir = tmp_path / "my-embedder"
    model_dir.mkdir()
    built = f"{model_dir.resolve()}@onnx-int8"
    assert resolve_backend(str(model_dir), "auto", built_with=built) == "onnx-int8"
    # Another model's index is refused later anyway: no export for it.
    assert resolve_backend(str(model_dir), "auto", built_with=f"{DEFAULT_EMBEDDING}@onnx") == (
        "torch"
    )
    # A new index: int8 ONNX on the CPU when the [onnx] extra is there; torch otherwise.
    monkeypatch.setattr(embeddings, "_missing_onnx_packages", list)
    assert resolve_backend(DEFAULT_EMBEDDING, "auto", "cpu") == "onnx-int8"
    assert resolve_backend(DEFAULT_EMBEDDING, "auto", "cuda:0") == "torch"
    assert resolve_backend("text-embedding-3-small", "auto", "cpu") == "torch"
    monkeypatch.setattr(embeddings, "_missing_onnx_packages", lambda: ["onnxruntime"])
    assert resolve_backend(DEFAULT_EMBEDDING, "auto", "cpu") == "torch"


@pytest.mark.skipif(not HAS_ONNX, reason="needs phi3industry[onnx]")
def test_onnx_export_leaves_logging_alone(tmp_path: Path) -> None:
    # A process of its own (pytest gives the root logger handlers of its own) with a fresh
    # cache, so that the export and onnxruntime's quantizer really run.
    script = (
        "import logging\n"
        "from phi3industry.retrieval.embeddings import load_embedder\n"
        "load_embedder(backend='onnx-int8')\n"
        "logging.getLogger('bm25s').setLevel(logging.DEBUG)\n"
        "logging.getLogger('bm25s').debug('a library debug line')\n"
        "print(len(logging.getLogger().handlers), logging.root.manager.disable)\n"
    )
    env = {**os.environ, "PHI3INDUSTRY_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert list((tmp_path / "cache" / "embeddings").glob("all-MiniLM-L6-v2-onnx-int8-*"))
    assert done.stdout.split() == ["0", "0"], "no root handler installed, logging not disabled"
    assert "a library debug line" not in done.stderr
    assert "WARNING:root" not in done.stderr
