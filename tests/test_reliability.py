"""Faults: killed and concurrent ingests, training into a used output_dir, a failing server.

The ingest tests run the real console script over real documents (Django's HTML release
notes when the python-django-doc package is installed, else generated Markdown) and SIGKILL
it at seeded random points. After the last kill an uninterrupted `phi3industry ingest`
completes the index, which must then equal an index built without interruption: the same
chunk ids, texts, metadata and vectors, no duplicates, and a BM25 side index holding exactly
the ids in Chroma.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.errors import DataFormatError, GenerationError
from phi3industry.retrieval.bm25 import BM25Index, ids_fingerprint
from phi3industry.serving import BackgroundServer, ServerConfig

CLI = Path(sys.executable).with_name("phi3industry")
DJANGO_RELEASES = Path("/usr/share/doc/python-django-doc/html/releases")
WORDS = ["robot", "dock", "battery", "gripper", "lidar", "pallet", "shelf", "firmware"]


def real_corpus(dest: Path, n_docs: int) -> Path:
    """A fixed subset of Django's release notes (HTML), or generated Markdown without them."""
    dest.mkdir(parents=True)
    pages = sorted(DJANGO_RELEASES.glob("*.html"))[::5][:n_docs]
    if len(pages) == n_docs:
        for page in pages:
            shutil.copyfile(page, dest / page.name)
        return dest
    rng = random.Random(3)
    for i in range(n_docs):
        paragraphs = (" ".join(rng.choice(WORDS) for _ in range(90)) for _ in range(12))
        (dest / f"doc{i:03d}.md").write_text(f"# Doc {i}\n\n" + "\n\n".join(paragraphs))
    return dest


class Ingest:
    """`phi3industry ingest` in a subprocess, its progress bar read from a pseudo-terminal."""

    PROGRESS = re.compile(rb"Indexing:.*?(\d+)/(\d+)")

    def __init__(self, docs: Path, index: Path) -> None:
        self.started = time.monotonic()
        self.master, slave = pty.openpty()
        # A new pty is 0 columns wide, which makes tqdm print nothing; give it a real size.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
        self.proc = subprocess.Popen(
            # Batches of one chunk (a vector never depends on its batch mates) and a write
            # every 8 chunks, so kills land between many writes. The torch embedder: int8
            # ONNX embeds these few documents faster than a kill can be aimed between writes
            # (crash safety does not depend on the backend).
            [
                *(str(CLI), "ingest", str(docs), "--index", str(index)),
                *("--batch-size", "1", "--write-batch-size", "8"),
                *("--embedding-backend", "torch"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        self.seen = b""
        self.indexing_at: float | None = None  # seconds from start to the progress bar
        self.done, self.total = 0, -1

    def _read(self, timeout: float) -> None:
        if select.select([self.master], [], [], timeout)[0]:
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                time.sleep(timeout)
                return
            found = self.PROGRESS.findall(self.seen)
            if found:
                self.done, self.total = int(found[-1][0]), int(found[-1][1])
                if self.indexing_at is None:
                    self.indexing_at = time.monotonic() - self.started

    def wait(self, until: Any, limit: float = 300) -> bool:
        """Read progress until ``until(self)`` holds or the process exits; True if it held."""
        deadline = time.monotonic() + limit
        while not until(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            self._read(0.05)
        return True

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        self.wait(lambda _: time.monotonic() >= end)

    def kill(self) -> bool:
        """SIGKILL the ingest; True if it was still running (a real kill)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        os.close(self.master)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.proc.returncode == -signal.SIGKILL

    def finish(self) -> str:
        out = self.proc.communicate(timeout=600)[0].decode()
        os.close(self.master)
        assert self.proc.returncode == 0, self.seen.decode(errors="replace")[-3000:]
        return out


def kill_repeatedly(
    docs: Path, index: Path, kills: int, seed: int, aim_at_end: bool = True
) -> list[str]:
    """SIGKILL `phi3industry ingest` ``kills`` times in a row at seeded random points.

    Every fourth kill (the 2nd, 6th, ...) lands at a random moment of start-up (loading the
    embedder, opening Chroma, reading the index's state), the others at a random moment
    while documents are embedded and written. Each run resumes what the last one left; the
    number of documents a run may write before its kill is capped so that work remains for
    every later kill. With ``aim_at_end``, one more kill then aims at the very end of a sync
    (after the last write: stale-chunk deletion, BM25 rebuild and publish).

    Returns:
        Where each kill landed, in order (the final aimed kill included when it hit).
    """
    rng = random.Random(seed)
    startup = 2.0  # seconds before indexing starts; re-estimated from each run
    landed: list[str] = []
    while len(landed) < kills:
        run = Ingest(docs, index)
        left = kills - len(landed)
        if len(landed) % 4 == 1:
            point = rng.uniform(0.1, startup)
            run.sleep(point)
            where = f"start-up, {point:.1f} s in"
        else:
            assert run.wait(lambda r: r.indexing_at is not None), run.seen[-2000:]
            # Documents that must stay pending for the kills still to come. The progress bar
            # lags the writes (tqdm redraws at most every 0.1 s, a write can hold several
            # small documents), so keep a margin of a few documents per kill.
            reserve = 3 * left + 3
            target = rng.randint(0, max(0, run.total - reserve) // (left + 1))
            run.wait(lambda r, t=target: r.done >= t)
            extra = rng.uniform(0.0, 0.8)
            end = time.monotonic() + extra
            run.wait(lambda r, e=end, k=reserve: time.monotonic() >= e or r.done >= r.total - k)
            where = f"indexing, {run.done}/{run.total} pending documents written, +{extra:.1f} s"
        if run.indexing_at is not None:
            startup = min(startup if landed else run.indexing_at, run.indexing_at)
        assert run.kill(), f"kill {len(landed) + 1} came too late: the ingest had finished"
        landed.append(where)
    if aim_at_end:
        run = Ingest(docs, index)
        if run.wait(lambda r: r.total > 0 and r.done >= r.total) and run.kill():
            landed.append("end of sync, after the last document was written")
        else:
            run.kill()
    return landed


def index_contents(path: Path) -> dict[str, Any]:
    """Everything the index stores, read back through a fresh Retriever."""
    retriever = Retriever.open(path, progress=False)
    rows = retriever._collection.get(include=["documents", "metadatas", "embeddings"])
    ids = list(rows["ids"])
    return {
        "retriever": retriever,
        "ids": ids,
        "texts": dict(zip(ids, rows["documents"] or [], strict=True)),
        "metas": dict(zip(ids, rows["metadatas"] or [], strict=True)),
        "vectors": dict(zip(ids, np.asarray(rows["embeddings"], np.float32), strict=True)),
        "count": retriever._collection.count(),
        "bm25": BM25Index.load(path / "bm25"),
    }


def assert_consistent(path: Path) -> dict[str, Any]:
    """No duplicate chunks, BM25 matching Chroma exactly, every vector findable."""
    got = index_contents(path)
    assert len(got["ids"]) == len(set(got["ids"])) == got["count"], "duplicate chunks"
    # The BM25 side index holds exactly the chunks in Chroma: no orphans, none missing.
    bm25 = got["bm25"]
    assert bm25 is not None
    assert len(bm25.ids) == len(set(bm25.ids)) and set(bm25.ids) == set(got["ids"])
    assert bm25.fingerprint == ids_fingerprint(got["ids"])
    generations = [p for p in (path / "bm25").iterdir() if p.name != "CURRENT"]
    assert len(generations) == 1, f"leftover BM25 generations: {generations}"
    # The vector index (HNSW) holds every chunk: each one finds itself.
    collection = got["retriever"]._collection
    sample = sorted(got["ids"])[:: max(1, len(got["ids"]) // 25)]
    found = collection.query(
        query_embeddings=[got["vectors"][cid] for cid in sample],
        n_results=1,
        include=["distances"],
    )
    for cid, distances in zip(sample, found["distances"], strict=True):
        assert distances[0] < 1e-4, cid
    return got


def assert_same_index(got_path: Path, want_path: Path) -> dict[str, Any]:
    got, want = assert_consistent(got_path), index_contents(want_path)
    assert sorted(got["ids"]) == sorted(want["ids"])
    assert got["texts"] == want["texts"]
    assert got["metas"] == want["metas"]
    for cid, vector in want["vectors"].items():
        np.testing.assert_allclose(got["vectors"][cid], vector, atol=1e-5)
    return got


def reference_index(docs: Path, path: Path) -> None:
    config = RetrieverConfig(
        path=str(path), batch_size=1, embedding_backend="torch", progress=False
    )
    Retriever(config).sync([docs])


def _kill_test(tmp_path: Path, n_docs: int, kills: int, seed: int, aim_at_end: bool) -> None:
    docs = real_corpus(tmp_path / "docs", n_docs)
    reference_index(docs, tmp_path / "reference")
    index = tmp_path / "index"
    landed = kill_repeatedly(docs, index, kills, seed, aim_at_end)
    Ingest(docs, index).finish()  # the final, uninterrupted sync
    got = assert_same_index(index, tmp_path / "reference")
    report = got["retriever"].sync([docs])
    assert len(report.unchanged) == n_docs and report.chunks_written == 0
    print(f"\n{len(landed)} kills survived ({len(got['ids'])} chunks, {n_docs} documents):")
    print("\n".join(f"  {i}. {where}" for i, where in enumerate(landed, 1)))


def test_ingest_survives_three_kills(tmp_path: Path) -> None:
    _kill_test(tmp_path, n_docs=12, kills=3, seed=11, aim_at_end=False)


@pytest.mark.slow  # about 4 minutes on 2 busy cores: 12 ingest processes
def test_ingest_survives_ten_kills_in_a_row(tmp_path: Path) -> None:
    _kill_test(tmp_path, n_docs=40, kills=10, seed=2024, aim_at_end=True)


def test_second_writer_process_gets_a_clear_lock_error_and_readers_keep_answering(
    tmp_path: Path,
) -> None:
    docs = real_corpus(tmp_path / "docs", 16)
    index = tmp_path / "index"
    writer = Ingest(docs, index)
    answered: list[tuple[int, int]] = []

    def query(reader: Retriever) -> None:
        for hybrid in (False, True):
            hits = reader.search("database migrations", k=200, hybrid=hybrid)
            answered.append((len(hits), reader._collection.count()))

    try:
        assert writer.wait(lambda r: r.done > 0), writer.seen[-2000:]
        # Paused mid-ingest, holding the lock, so the second writer surely meets it.
        writer.proc.send_signal(signal.SIGSTOP)
        reader = Retriever.open(index, progress=False)
        query(reader)
        second = subprocess.run(
            [str(CLI), "ingest", str(docs), "--index", str(index)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        writer.proc.send_signal(signal.SIGCONT)
        while writer.proc.poll() is None:  # queries while the ingest writes
            query(reader)
            writer.sleep(0.3)
    finally:
        writer.proc.send_signal(signal.SIGCONT)
    writer.finish()
    assert second.returncode == 1, second.stderr
    assert "Traceback" not in second.stderr
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [second.stderr.strip().splitlines()[-1]]  # one line, the last
    assert errors[0].startswith(f"Error: Another process (pid {writer.proc.pid}) is writing")
    assert len({count for _, count in answered}) > 1, f"no query saw a write: {answered}"
    # The long-lived reader sees the finished index (dense search, k=200: every chunk, the
    # near-identical ones collapsed into one hit, as a fresh reader finds them).
    seen = [h.id for h in reader.search("database migrations", k=200)]
    fresh = Retriever.open(index, progress=False)
    assert seen == [h.id for h in fresh.search("database migrations", k=200)]
    assert len(seen) <= reader._collection.count() == fresh._collection.count()
    # Nothing was lost to the refused writer or the readers: the index is complete.
    got = assert_consistent(index)
    assert len(got["retriever"].sync([docs]).unchanged) == 16


# -- training into an output_dir that is in use -----------------------------------------------


def _tuner(tiny_phi3_dir: Path, out: Path, **overrides: Any) -> Any:
    from phi3industry import Tuner, TunerConfig

    settings: dict[str, Any] = {
        "model": str(tiny_phi3_dir),
        "output_dir": str(out),
        "max_steps": 2,
        "save_steps": 1,
        "batch_size": 2,
        "max_length": 48,
        "eval_fraction": 0.0,
        "progress": False,
        **overrides,
    }
    return Tuner(TunerConfig(**settings))


ROWS = [{"prompt": f"What is code E{i}?", "completion": f"Fault number {i}."} for i in range(6)]


def test_bad_training_data_leaves_no_output_dir(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "never-created" / "adapter"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok", "completion": "fine"}\n{"prompt": \n')
    with pytest.raises(DataFormatError, match="line 2"):
        _tuner(tiny_phi3_dir, out).train(str(bad))
    assert not out.exists() and not out.parent.exists()


def test_unfinished_run_is_neither_restarted_nor_overwritten_silently(
    tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    from phi3industry.errors import ConfigError
    from phi3industry.tuning.tuner import ADAPTER_FILES, CHECKPOINT_DIR

    out = tmp_path / "run"
    checkpoint = out / CHECKPOINT_DIR / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"unfinished run.*--resume.*--overwrite-output-dir"):
        _tuner(tiny_phi3_dir, out).train(ROWS)
    assert (checkpoint / "trainer_state.json").read_text() == "{}"
    # Starting over is an explicit choice, and then the old run's checkpoints go.
    result = _tuner(tiny_phi3_dir, out, overwrite_output_dir=True).train(ROWS)
    assert result.global_step == 2 and (out / ADAPTER_FILES[1]).is_file()
    assert sorted(p.name for p in (out / CHECKPOINT_DIR).iterdir()) == [
        "checkpoint-1",
        "checkpoint-2",
    ]
    assert (out / CHECKPOINT_DIR / "checkpoint-1" / "trainer_state.json").read_text() != "{}"
    with pytest.raises(ConfigError, match="already holds an adapter"):
        _tuner(tiny_phi3_dir, out).train(ROWS)


# -- the server keeps serving after a failed, timed-out or abandoned request -------------------

KEY = "reliability-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}


def ask(question: str = "What does error E4711 mean?", **kwargs: object) -> dict:
    return {"model": "phi3industry", "messages": [{"role": "user", "content": question}], **kwargs}


@pytest.fixture(scope="module")
def pipe(
    tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None
) -> Pipeline:
    from _corpus import write_corpus

    root = tmp_path_factory.mktemp("reliability-kb")
    retriever = Retriever(RetrieverConfig(path=str(root / "index"), progress=False))
    retriever.sync([write_corpus(root / "docs")])
    return Pipeline(
        retriever=retriever,
        model=str(tiny_phi3_dir),
        config=PipelineConfig(max_new_tokens=8, min_score=None),
    )


SERVER = ServerConfig(port=0, api_key=KEY, request_timeout=2.0, max_queue=1)


@pytest.fixture(scope="module")
def server(pipe: Pipeline) -> Iterator[BackgroundServer]:
    with BackgroundServer(pipe, SERVER) as srv:
        yield srv


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        yield client


def _serves(http: httpx.Client) -> None:
    """One plain and one streamed request succeed (and the queue slot was given back)."""
    r = http.post("/chat/completions", json=ask(max_tokens=4))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] is not None
    with http.stream("POST", "/chat/completions", json=ask(max_tokens=4, stream=True)) as s:
        assert s.status_code == 200
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and '"error"' not in "".join(events)


def _slow(func: Any) -> Any:
    """Wrap a generator method so that the model is too slow for the request's deadline."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        deadline = kwargs.get("deadline")
        if deadline is not None:
            time.sleep(max(0.0, deadline - time.monotonic()) + 0.05)
        return func(*args, **kwargs)

    return wrapper


def test_timeouts_plain_and_streamed_then_the_next_requests_succeed(
    http: httpx.Client, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipe.generator, "generate", _slow(pipe.generator.generate))
    monkeypatch.setattr(pipe.generator, "stream", _slow(pipe.generator.stream))
    r = http.post("/chat/completions", json=ask())
    assert r.status_code == 504 and "timed out" in r.json()["error"]["message"]
    with http.stream("POST", "/chat/completions", json=ask(stream=True)) as s:
        body = "".join(s.iter_lines())
    assert "timed out" in body and body.endswith("data: [DONE]")
    monkeypatch.undo()
    _serves(http)


def test_streamed_generator_error_then_the_next_requests_succeed(
    http: httpx.Client, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> Iterator[object]:
        raise GenerationError("stream broke")
        yield

    monkeypatch.setattr(pipe.generator, "stream", boom)
    with http.stream("POST", "/chat/completions", json=ask(stream=True)) as s:
        assert "stream broke" in "".join(s.iter_lines())
    monkeypatch.undo()
    _serves(http)


def test_client_gone_mid_stream_stops_generating_and_frees_its_slot(
    server: BackgroundServer, pipe: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # max_queue=1: a slot leaked by the abandoned stream would turn the next request into 503.
    assert SERVER.max_queue == 1
    real_stream = pipe.generator.stream

    def slow_stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for piece in real_stream(*args, **kwargs):
            time.sleep(0.1)  # 64 tokens: about 6 s if nobody stops it
            yield piece

    monkeypatch.setattr(pipe.generator, "stream", slow_stream)
    client = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=60)
    stream = client.chat.completions.create(**ask(max_tokens=64), stream=True)
    next(iter(stream))
    started = time.monotonic()
    stream.close()  # the client goes away after the first chunk
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as http:
        while True:
            r = http.post("/chat/completions", json=ask(max_tokens=2))
            if r.status_code != 503 or time.monotonic() - started > 30:
                break
            time.sleep(0.05)  # the abandoned generation is still stopping
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3, "the abandoned generation ran on"
