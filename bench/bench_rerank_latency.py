"""What a cross-encoder reranker adds to the latency of one search, side by side.

No cross-encoder can be downloaded here, so the reranker is built from the bundled
all-MiniLM-L6-v2 with a fresh one-logit head: the architecture and size of
``cross-encoder/ms-marco-MiniLM-L-6-v2`` (6 layers, 384 wide, 22.7M parameters), hence the
same work per (query, passage) pair. Its scores are meaningless; its cost is the real one.
(``BAAI/bge-reranker-base``: 12 layers, 768 wide, about 4x the work per pair.)

Over the Django docs index of ``bench_retrieval_quality.py`` (built if missing; contextual
headers on), the Django FAQ questions and the scenario queries, one process, each arm in
turn over the same queries: hybrid search without a reranker, then with the reranker scoring
the top 10 and the top 30 candidates (``rerank_top_n``; 30 is the default).

Usage::

    python bench/bench_rerank_latency.py [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import pct

RESULTS = Path(__file__).parent / "results"


def build_cross_encoder(directory: Path) -> Path:
    """A MiniLM-L6 cross-encoder (fresh head) saved where ``load_reranker`` can read it."""
    from sentence_transformers import CrossEncoder

    from phi3industry.retrieval.embeddings import bundled_model_dir

    model = CrossEncoder(str(bundled_model_dir()), num_labels=1, max_length=512, device="cpu")
    model.save(str(directory))
    return directory


def timed(search: Any, queries: list[str], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            search(query)
            times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * pct(times, 50), 1),
        "p95_ms": round(1000 * pct(times, 95), 1),
        "mean_ms": round(1000 * statistics.fmean(times), 1),
        "searches": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default="bench-out/quality/django-ctx")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bench_retrieval_quality as quality
    import torch

    from phi3industry import Retriever

    if args.threads:
        torch.set_num_threads(args.threads)
    files, faq = quality.django_set(None)
    queries = [item["query"] for item in faq + quality._scenarios()]
    quality.our_index(files, Path(args.index), contextual_headers=True)  # built once, reused
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_cross_encoder(Path(tmp) / "minilm-l6-cross-encoder"))
        plain = Retriever.open(args.index, progress=False, reranker=None)
        arms: dict[str, Any] = {
            "hybrid, no reranker": lambda q: plain.search(q, k=5, hybrid=True),
        }
        for top_n in (10, 30):
            reranking = Retriever.open(args.index, progress=False, rerank_top_n=top_n)
            arms[f"hybrid + reranker, top {top_n}"] = lambda q, r=reranking: r.search(
                q, k=5, hybrid=True, reranker=model
            )
        for search in arms.values():  # warm-up: load the models, fill the caches
            search(queries[0])
        results = {
            name: summary(timed(search, queries, args.rounds)) for name, search in arms.items()
        }
    base = results["hybrid, no reranker"]["p50_ms"]
    lines = [
        "# Reranker latency per search (Django docs index, CPU)",
        "",
        f"Written by `python bench/bench_rerank_latency.py` ({len(queries)} queries x "
        f"{args.rounds} round(s): the Django FAQ questions and the scenario queries; k=5; "
        f"torch threads {torch.get_num_threads()}). Reranker: MiniLM-L6 cross-encoder, the "
        "size of `cross-encoder/ms-marco-MiniLM-L-6-v2` (see the script's docstring).",
        "",
        "| arm | p50 ms | p95 ms | mean ms | p50 vs no reranker |",
        "|---|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['p50_ms']} | {row['p95_ms']} | {row['mean_ms']} | "
            f"{row['p50_ms'] / base:.1f}x |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rerank-latency.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "rerank-latency.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
