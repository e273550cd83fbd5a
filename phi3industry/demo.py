"""The offline demo: the README's main job, on the bundled sample knowledge base."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from phi3industry.config import RetrieverConfig

DEMO_QUESTIONS = 3


def sample_kb_dir() -> Path:
    """Return the bundled sample knowledge base's documents (a fictional company's)."""
    return Path(__file__).parent / "assets" / "sample_kb" / "docs"


def sample_questions() -> list[dict[str, Any]]:
    """Return the sample knowledge base's evaluation questions (question, answer, sources)."""
    path = Path(__file__).parent / "assets" / "sample_kb" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(output: Path) -> None:
    """Ingest the sample knowledge base, search it, and show cited hits.

    Args:
        output: Directory for the demo's index and outputs (reused on a second run,
            which then re-embeds nothing).
    """
    from phi3industry.retriever import Retriever

    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _say("== phi3industry demo (offline) ==")
    _say(f"Knowledge base: {sample_kb_dir()}")
    retriever = Retriever(RetrieverConfig(path=str(output / "index")))
    report = retriever.sync([sample_kb_dir()])
    _say(f"\n-- Ingest --\n{report.summary()}")
    stats = retriever.stats()
    _say(
        f"index: {stats['documents']} documents, {stats['chunks']} chunks, "
        f"embedder {stats['embedder']} ({stats['dimension']} dims), {stats['size']}"
    )
    _say("\n-- Search (hybrid: BM25 + dense, fused) --")
    for item in sample_questions()[:DEMO_QUESTIONS]:
        _say(f"\nQ: {item['question']}")
        for rank, hit in enumerate(retriever.search(item["question"], k=3, hybrid=True), 1):
            _say(hit.format(rank))
    _say(f"\nDone in {time.perf_counter() - started:.1f}s. Index kept in {output / 'index'}.")
