"""The offline demo: the README's main job, on the bundled sample knowledge base.

It ingests the knowledge base, searches it, tunes a small LoRA adapter on it, and answers
questions with citations under every strategy, all offline on the bundled models. A second
run reuses the index (re-embedding nothing) and the adapter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from phi3industry.config import RetrieverConfig
from phi3industry.tuner import sample_kb_dir

DEMO_MODEL = "smollm2-135m-instruct"
STRATEGIES = ("base", "rag", "finetuned", "rag+finetuned")


def sample_docs_dir() -> Path:
    """Return the bundled sample knowledge base's documents (a fictional company's)."""
    return sample_kb_dir() / "docs"


def sample_questions() -> list[dict[str, Any]]:
    """Return the sample knowledge base's evaluation questions (question, answer, sources)."""
    path = sample_kb_dir() / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _say(text: str) -> None:
    print(text, flush=True)


def _quiet_libraries() -> None:
    """Keep the demo's output to what it shows: no weight-loading bars or library chatter."""
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("root").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)


def _ingest_and_search(output: Path, n_questions: int) -> Any:
    from phi3industry.retriever import Retriever

    retriever = Retriever(RetrieverConfig(path=str(output / "index")))
    report = retriever.sync([sample_docs_dir()])
    _say(f"\n-- 1. Ingest --\n{report.summary()}")
    stats = retriever.stats()
    _say(
        f"index: {stats['documents']} documents, {stats['chunks']} chunks, "
        f"embedder {stats['embedder']} ({stats['dimension']} dims), {stats['size']}"
    )
    _say("\n-- 2. Search (hybrid: BM25 + dense, fused) --")
    for item in sample_questions()[:n_questions]:
        _say(f"\nQ: {item['question']}")
        for rank, hit in enumerate(retriever.search(item["question"], k=3, hybrid=True), 1):
            _say(hit.format(rank))
    return retriever


def _tune(output: Path, steps: int, retune: bool) -> Path:
    from phi3industry.tuner import tune_sample_adapter

    adapter = output / "adapter"
    _say(f"\n-- 3. Tune a LoRA adapter on the knowledge base ({DEMO_MODEL}) --")
    if (adapter / "adapter_config.json").exists() and not retune:
        _say(f"reusing the adapter in {adapter} (run with --retune to train it again)")
        return adapter
    result = tune_sample_adapter(adapter, model=DEMO_MODEL, max_steps=steps)
    _say(result.summary())
    return adapter


def _answer(retriever: Any, adapter: Path, n_questions: int, max_new_tokens: int) -> None:
    from phi3industry.config import PipelineConfig
    from phi3industry.pipeline import Pipeline

    _say("\n-- 4. Answer with citations, under each strategy --")
    pipe = Pipeline(
        retriever=retriever,
        model=DEMO_MODEL,
        adapter=f"kb={adapter}",
        config=PipelineConfig(max_new_tokens=max_new_tokens, k=3),
    )
    for item in sample_questions()[:n_questions]:
        _say(f"\nQ: {item['question']}\n(reference: {item['answer']})")
        for strategy in STRATEGIES:
            answer = pipe.invoke(item["question"], strategy=strategy)
            body = answer.format().replace("\n", "\n    ")
            _say(f"  [{strategy}] ({answer.timings['total']:.1f}s)\n    {body}")
            if answer.sources and not answer.citations:
                # Small models often answer from the sources without writing [n] markers.
                shown = ", ".join(
                    f"[{n}] {Path(hit.source).name}" for n, hit in enumerate(answer.sources, 1)
                )
                _say(f"    (no [n] markers written; sources given to the model: {shown})")
    _say("\n-- 5. The Phi-3 path (tiny-phi3: real Phi-3 architecture and chat template) --")
    phi3 = Pipeline(
        retriever=retriever, model="tiny-phi3", config=PipelineConfig(max_new_tokens=16, k=2)
    )
    answer = phi3.invoke(sample_questions()[0]["question"], strategy="rag")
    _say(
        f"tiny-phi3 (random weights, so the text is noise) used {answer.usage['prompt_tokens']} "
        f"prompt tokens with {len(answer.sources)} numbered sources in Phi-3's "
        "<|user|>/<|assistant|>/<|end|> template, and stopped at <|end|> or max_new_tokens."
    )


def run_demo(
    output: Path,
    *,
    questions: int = 2,
    tune_steps: int = 20,
    max_new_tokens: int = 64,
    retune: bool = False,
    search_only: bool = False,
) -> None:
    """Run the demo: ingest, search, tune, answer under every strategy.

    Args:
        output: Directory for the demo's index, adapter and outputs (reused on a re-run).
        questions: How many sample questions to search and answer.
        tune_steps: Optimizer steps for the demo adapter.
        max_new_tokens: Longest answer generated.
        retune: Train the adapter again even if one exists in ``output``.
        search_only: Stop after ingest and search (no model needed).
    """
    output.mkdir(parents=True, exist_ok=True)
    _quiet_libraries()
    started = time.perf_counter()
    _say("== phi3industry demo (offline) ==")
    _say(f"Knowledge base: {sample_docs_dir()}")
    retriever = _ingest_and_search(output, questions)
    if not search_only:
        adapter = _tune(output, tune_steps, retune)
        _answer(retriever, adapter, questions, max_new_tokens)
    _say(f"\nDone in {time.perf_counter() - started:.1f}s. Outputs kept in {output}.")
