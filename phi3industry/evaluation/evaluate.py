"""Measure RAG vs fine-tuning vs both on the user's own questions.

:func:`evaluate` asks every held-out question under each strategy with one
:class:`~phi3industry.pipeline.Pipeline` and scores the answers: exact match, token F1,
ROUGE-L (of the final answer and of the whole text), an optional LLM judge, retrieval
recall@k and MRR, groundedness (claims supported by the sources shown), gold support (claims
supported by the gold document, for every strategy), citation rate, precision and recall,
the "answered from sources" and abstention rates, and latency, each with a 95% bootstrap
confidence interval, plus paired comparisons between strategies (Holm-corrected p-values).
:func:`run_eval` is the whole run behind ``phi3industry eval --config eval.yaml``: build or
reuse the index, load or generate the questions, tune the adapters the strategies need
(plain and RAFT), evaluate, and write ``report.json``, ``report.md`` and PNG charts.
Finished work is kept on disk and not redone.

Strategies:
    ``base`` (model alone), ``rag`` (retrieval), ``finetuned`` (plain LoRA adapter),
    ``rag+finetuned`` (retrieval + plain adapter), ``raft+rag`` (retrieval + RAFT adapter,
    trained with hard-negative distractors), ``raft`` (RAFT adapter, no retrieval) and
    ``raft-random+rag`` (retrieval + RAFT adapter trained with random distractors).

Answers are scored two ways: on their final answer (when the text has an ``Answer:`` line,
as the RAFT format writes after quoting its source, what follows it) and on their whole
text; ``[n]`` citation markers are removed from both.

Example:
    >>> from phi3industry import Pipeline
    >>> from phi3industry.evaluation import evaluate
    >>> pipe = Pipeline(retriever="kb-index", model="smollm2-135m-instruct",
    ...                 adapter="finetuned=out/adapter")  # doctest: +SKIP
    >>> report = evaluate(pipe, "questions.jsonl",
    ...                   strategies=["base", "rag", "finetuned"])  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.evaluation.judge import Judge
from phi3industry.evaluation.metrics import (
    Comparison,
    Estimate,
    bootstrap_ci,
    citation_precision,
    citation_recall,
    holm,
    mrr,
    paired_comparison,
    recall_at_k,
    rouge_l,
    says_dont_know,
)
from phi3industry.evaluation.report import COMPARED, LATENCY, METRICS, Report, StrategyResult
from phi3industry.pipeline.answer import Answer
from phi3industry.pipeline.attribution import Attributor, grounded_share
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.pipeline.pipeline import Pipeline
from phi3industry.pipeline.prompt import CITATION_MARKER
from phi3industry.qa import QAItem, exact_match, load_qa, source_matches, token_f1
from phi3industry.retrieval.search import Hit
from phi3industry.strategies import DEFAULT_EVAL_STRATEGIES, STRATEGIES, split_strategy

_ANSWER_LINE = re.compile(r"(?:^|\n)\s*(?:final\s+)?answer\s*:\s*", re.I)
_MARKER = re.compile(r"\s*" + CITATION_MARKER.pattern, re.I)  # a marker and the space before it
#: Where :func:`run_eval` keeps each strategy's answers, under its output directory.
RUNS_DIR = "runs"


def final_answer(text: str) -> str:
    """The part of an answer that is scored: after the last ``Answer:`` line, no ``[n]``."""
    parts = _ANSWER_LINE.split(text)
    answer = parts[-1] if len(parts) > 1 and parts[-1].strip() else text
    return _MARKER.sub("", answer).strip()


def answer_text(text: str) -> str:
    """The whole answer without its ``[n]`` markers (the other way an answer is scored)."""
    return _MARKER.sub("", text).strip()


def say(progress: bool, text: str) -> None:
    """Print a progress line on stderr (when ``progress``)."""
    if progress:
        print(text, file=sys.stderr, flush=True)


def _hit_key(hit: Hit) -> tuple[str, str]:
    ids = [hit.id, *[i for i in hit.metadata.get("merged_ids", []) if i != hit.id]]
    return ",".join(ids), hit.source


# Part of every cached answer's fingerprint: raise it when scoring changes, so that answers
# scored the old way are redone (2: no retrieval metrics for strategies that do not retrieve;
# 3: retrieval scored on the sources shown to the model; 4: groundedness, gold support,
# citation recall, the whole text scored too).
_SCORING_VERSION = 4


def _file_stamp(path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    weights = Path(path) / "adapter_model.safetensors"
    target = weights if weights.exists() else Path(path)
    try:
        st = target.stat()
    except OSError:
        return os.fspath(path)
    return f"{os.fspath(path)}:{st.st_size}:{st.st_mtime_ns}"


def fingerprint(data: Any) -> str:
    """A short, stable hash of JSON-able ``data`` (what a cached result was made from)."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def score_answer(
    item: QAItem,
    answer: Answer,
    k: int,
    *,
    gold_passages: list[Hit] | None = None,
    attributor: Attributor | None = None,
    judge: Judge | None = None,
) -> dict[str, Any]:
    """Score one answer; returns the per-question record (metrics, prediction, sources).

    Retrieval is scored on the sources the model was shown (``answer.sources``: after
    ``min_score``, MMR, merging and packing), not on a separate search. The answer is scored
    two ways: its final answer (after an ``Answer:`` line, when it has one) and its whole
    text, so that the answer's format alone cannot decide a comparison.

    Args:
        item: The question with its reference answers and gold sources.
        answer: The pipeline's answer.
        k: Cut-off of ``recall@k``.
        gold_passages: The chunks of the gold sources: with ``attributor``, the share of the
            answer's claims they support (``gold_support``, for every strategy).
        attributor: What attributes claims (the pipeline's).
        judge: An optional LLM judge (``judge``: its verdict against the reference).
    """
    uses_sources = STRATEGIES[answer.strategy].retrieves
    gold = item.sources
    final = final_answer(answer.text)
    whole = answer_text(answer.text)
    answered = not answer.abstained
    cited = [_hit_key(h) for h in answer.citations]
    ranked = [_hit_key(h) for h in answer.sources] if uses_sources else None
    gold_support = None
    if gold_passages and attributor is not None and answered:
        gold_support = grounded_share(
            attributor.attribute(
                answer.text, gold_passages, unfinished=answer.finish_reason == "length"
            )
        )
    judged = judge.score(item.question, item.answers, final) if judge is not None else None
    scores: dict[str, float | None] = {
        "exact_match": exact_match(final, item.answers),
        "token_f1": token_f1(final, item.answers),
        "token_f1_text": token_f1(whole, item.answers),
        "rouge_l": rouge_l(final, item.answers),
        "rouge_l_text": rouge_l(whole, item.answers),
        "judge": judged,
        "recall@k": recall_at_k(ranked, gold, k) if ranked is not None and gold else None,
        "mrr": mrr(ranked, gold) if ranked is not None and gold else None,
        "groundedness": answer.grounded if uses_sources and answered else None,
        "gold_support": gold_support,
        "cited": float(bool(cited)) if uses_sources and answered else None,
        "citation_precision": citation_precision(cited, gold) if uses_sources and gold else None,
        "citation_recall": (
            citation_recall(cited, gold) if uses_sources and gold and answered else None
        ),
        "answered_from_sources": float(answered and bool(cited)) if uses_sources else None,
        "abstention": float(answer.abstained or says_dont_know(answer.text)),
        LATENCY: float(answer.timings.get("total", 0.0)),
    }
    return {
        "question": item.question,
        "reference": item.answers,
        "gold_sources": gold,
        "prediction": answer.text,
        "final_answer": final,
        "abstained": answer.abstained,
        "answer_mode": answer.mode,
        "cited": [list(c) for c in cited],
        "claims": [c.to_dict() for c in answer.claims],
        "retrieved": [list(r) for r in ranked] if ranked is not None else None,
        "usage": dict(answer.usage),
        "scores": scores,
    }


def gold_chunks(retriever: Any, items: Sequence[QAItem]) -> list[list[Hit]]:
    """Per question, the indexed chunks of its gold sources (documents or chunk ids)."""
    if retriever is None or not any(i.sources for i in items):
        return [[] for _ in items]
    chunks = list(retriever.iter_chunks())
    return [
        [h for h in chunks if any(source_matches(g, h.id, h.source) for g in i.sources)]
        for i in items
    ]


class _RunCache:
    """Per-strategy answers on disk: a header line (fingerprint), then one record per line."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, strategy: str) -> Path | None:
        if self.directory is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", strategy)
        return self.directory / f"{safe}.jsonl"

    def load(self, strategy: str, fingerprint: str) -> list[dict[str, Any]]:
        path = self._path(strategy)
        if path is None or not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
            if header.get("fingerprint") != fingerprint:
                return []
            return [json.loads(line) for line in lines[1:] if line.strip()]
        except ValueError:  # a line cut by a crash: redo from the last complete record
            good = []
            for line in lines[1:]:
                try:
                    good.append(json.loads(line))
                except ValueError:
                    break
            return good

    def start(self, strategy: str, fingerprint: str, records: list[dict[str, Any]]) -> None:
        path = self._path(strategy)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"fingerprint": fingerprint, "strategy": strategy})]
        lines += [json.dumps(r) for r in records]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def append(self, strategy: str, record: dict[str, Any]) -> None:
        path = self._path(strategy)
        if path is None:
            return
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def _summarize(
    name: str, records: list[dict[str, Any]], n_bootstrap: int, seed: int
) -> StrategyResult:
    metrics: dict[str, Estimate] = {}
    for key in (*METRICS, LATENCY):
        values = [r["scores"].get(key) for r in records]
        if any(v is not None for v in values):
            metrics[key] = bootstrap_ci(values, n_resamples=n_bootstrap, seed=seed)
    return StrategyResult(name, metrics, records)


def _compare(results: dict[str, StrategyResult], n_bootstrap: int, seed: int) -> list[Comparison]:
    """Every pair of strategies on every compared metric, Holm-corrected per metric."""
    comparisons: list[Comparison] = []
    for metric in COMPARED:
        family: list[Comparison] = []
        for a, b in itertools.combinations(results, 2):
            x = [r["scores"].get(metric) for r in results[a].records]
            y = [r["scores"].get(metric) for r in results[b].records]
            if not any(u is not None and v is not None for u, v in zip(x, y, strict=True)):
                continue  # not measured for both (gold support without gold, no judge)
            family.append(paired_comparison(a, x, b, y, metric, n_resamples=n_bootstrap, seed=seed))
        adjusted = holm([c.p_value for c in family])
        comparisons += [
            dataclasses.replace(c, p_holm=p) for c, p in zip(family, adjusted, strict=True)
        ]
    return comparisons


def _pipeline_from(obj: Any) -> Pipeline:
    if isinstance(obj, Pipeline):
        return obj
    if isinstance(obj, PipelineConfig):
        return Pipeline(config=obj)
    raise ConfigError(
        f"evaluate() needs a Pipeline or a PipelineConfig, got {type(obj).__name__}; for a "
        "whole run from an EvalConfig use run_eval()."
    )


def evaluate(
    pipeline_or_config: Any,
    qa: Any,
    strategies: Sequence[str] = DEFAULT_EVAL_STRATEGIES,
    *,
    adapters: dict[str, str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 1,
    judge: Judge | None = None,
) -> Report:
    """Ask every question under every strategy and measure the answers.

    Args:
        pipeline_or_config: A :class:`~phi3industry.pipeline.Pipeline` (or a
            ``PipelineConfig`` to build one). It must have a retriever for the strategies that
            retrieve and the adapters the tuned strategies use.
        qa: The held-out questions: anything :func:`~phi3industry.qa.load_qa` reads.
        strategies: Strategies to run (see :data:`phi3industry.strategies.STRATEGIES`); a
            strategy that retrieves may name its answer mode, ``rag@extract`` (quoted from
            the sources) or ``rag@generate`` (written by the model), to compare the two.
        adapters: Adapter role (``finetuned``, ``raft``, ``raft-random``) -> name of the
            adapter loaded in the pipeline. Default: ``finetuned`` -> the pipeline's
            default adapter; ``raft``/``raft-random`` -> the adapter of that name.
        cache_dir: Directory where each strategy's answers are stored as they come; a
            later call with the same questions and settings reuses them instead of asking
            again (finished strategies are not recomputed; an interrupted one resumes).
        n_bootstrap: Bootstrap resamples for the 95% confidence intervals.
        seed: Bootstrap seed.
        progress: Print progress on stderr.
        batch_size: Questions answered together in one left-padded batch (at most the
            pipeline's ``batch_size``). Above 1 it is several times faster on CPU, and each
            answer's latency is its share of the batch's time.
        judge: An LLM :class:`~phi3industry.evaluation.judge.Judge` grading every answer
            against its reference (the ``judge`` metric); None: no judge.

    Returns:
        The :class:`Report` (``to_dict()``, ``table()``, ``save(dir)``).

    Raises:
        ConfigError: For an unknown strategy, or one the pipeline cannot run.
        DataFormatError: For a malformed QA set.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not strategies:
        raise ConfigError(f"No strategy to evaluate; choose from {', '.join(STRATEGIES)}.")
    rows = {name: split_strategy(name) for name in strategies}
    items = qa if isinstance(qa, list) and all(isinstance(i, QAItem) for i in qa) else load_qa(qa)
    if not items:
        raise DataFormatError("The QA set is empty; give at least one question.")
    pipe = _pipeline_from(pipeline_or_config)
    names = dict(adapters or {})
    loaded = list(pipe.generator.adapter_names)
    if "finetuned" not in names and pipe.adapter is not None:
        names["finetuned"] = pipe.adapter
    for raft_role in ("raft", "raft-random"):
        if raft_role not in names and raft_role in loaded:
            names[raft_role] = raft_role
    plan: dict[str, tuple[str, str | None, str | None]] = {}
    for strategy, (row, mode) in rows.items():
        pipe_strategy, role = row.pipeline_strategy, row.adapter
        adapter = names.get(role) if role else None
        if role and adapter not in loaded:
            raise ConfigError(
                f"Strategy {strategy!r} needs the {role!r} adapter, but the pipeline has "
                f"{', '.join(loaded) or 'no adapter'}; load it ('name=DIR' in adapters) and "
                f"pass adapters={{{role!r}: NAME}}."
            )
        if row.retrieves and pipe.retriever is None:
            raise ConfigError(f"Strategy {strategy!r} needs a retriever; the pipeline has none.")
        plan[strategy] = (pipe_strategy, adapter, mode)

    cfg = pipe.config
    k = cfg.k
    adapter_paths: dict[str, str] = getattr(pipe.generator, "adapter_paths", {})
    common = {
        "scoring": _SCORING_VERSION,
        "questions": [i.to_dict() for i in items],
        "model": getattr(pipe.generator, "name", cfg.model),
        "k": k,
        "hybrid": cfg.hybrid,
        "batch_size": batch_size,  # batched greedy answers may differ in the last float bits
        "mmr": cfg.mmr,
        "min_score": cfg.min_score,
        "max_new_tokens": cfg.max_new_tokens,
        "context_tokens": cfg.context_tokens,
        "system_prompt": cfg.system_prompt,
        "index": cfg.index,
        "attribution": cfg.attribution,
        "attributor": pipe.attributor.describe() if pipe.attributor is not None else None,
        "min_support": cfg.min_support,
        "low_support": cfg.low_support,
        "judge": judge.describe() if judge is not None else None,
    }
    cache = _RunCache(Path(cache_dir) if cache_dir is not None else None)
    gold = gold_chunks(pipe.retriever, items)
    results: dict[str, StrategyResult] = {}
    for strategy, (pipe_strategy, adapter, mode) in plan.items():
        fp = fingerprint(
            {
                **common,
                "strategy": strategy,
                "answer_mode": (
                    (mode or cfg.answer_mode) if STRATEGIES[pipe_strategy].retrieves else None
                ),
                "adapter": _file_stamp(adapter_paths.get(adapter)) if adapter else None,
            }
        )
        records = cache.load(strategy, fp)[: len(items)]
        if len(records) == len(items):
            say(progress, f"[{strategy}] {len(items)} answers reused from {cache_dir}")
        else:
            cache.start(strategy, fp, records)
            started = time.perf_counter()
            for at in range(len(records), len(items), batch_size):
                batch = list(range(at, min(at + batch_size, len(items))))
                asked = time.perf_counter()
                answers = pipe.batch(
                    [items[i].question for i in batch],
                    strategy=pipe_strategy,
                    adapter=adapter,
                    answer_mode=mode,
                )
                amortized = (time.perf_counter() - asked) / len(batch)
                for i, answer in zip(batch, answers, strict=True):
                    record = score_answer(
                        items[i],
                        answer,
                        k,
                        gold_passages=gold[i],
                        attributor=pipe.attributor,
                        judge=judge,
                    )
                    if len(batch) > 1:  # answered together: each one's share of the batch
                        record["scores"][LATENCY] = amortized
                    records.append(record)
                    cache.append(strategy, record)
                    say(
                        progress,
                        f"[{strategy}] {i + 1}/{len(items)}  "
                        f"F1 {record['scores']['token_f1']:.2f}  "
                        f"{record['scores'][LATENCY]:.1f}s  "
                        f"(elapsed {time.perf_counter() - started:.0f}s)",
                    )
        results[strategy] = _summarize(strategy, records, n_bootstrap, seed)

    comparisons = _compare(results, n_bootstrap, seed)
    settings = {
        **{key: v for key, v in common.items() if key != "questions"},
        "strategies": list(plan),
        "adapters": {
            role: {"name": name, "path": adapter_paths.get(name)} for role, name in names.items()
        },
        "n_bootstrap": n_bootstrap,
        "seed": seed,
    }
    return Report(results, comparisons, len(items), k, settings)


__all__ = [
    "RUNS_DIR",
    "answer_text",
    "evaluate",
    "final_answer",
    "fingerprint",
    "gold_chunks",
    "say",
    "score_answer",
]
