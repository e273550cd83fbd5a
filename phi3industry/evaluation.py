"""Measure RAG vs fine-tuning vs both on the user's own questions.

:func:`evaluate` asks every held-out question under each strategy with one
:class:`~phi3industry.pipeline.Pipeline` and scores the answers: exact match, token F1,
ROUGE-L, retrieval recall@k and MRR, citation precision, the "answered from sources" and
abstention rates, and latency, each with a 95% bootstrap confidence interval, plus paired
comparisons between strategies. :func:`run_eval` is the whole run behind
``phi3industry eval --config eval.yaml``: build or reuse the index, load or generate the
questions, tune the adapters the strategies need (plain and RAFT), evaluate, and write
``report.json``, ``report.md`` and PNG charts. Finished work is kept on disk and not redone.

Strategies:
    ``base`` (model alone), ``rag`` (retrieval), ``finetuned`` (plain LoRA adapter),
    ``rag+finetuned`` (retrieval + plain adapter), ``raft+rag`` (retrieval + RAFT adapter,
    trained with hard-negative distractors), ``raft`` (RAFT adapter, no retrieval) and
    ``raft-random+rag`` (retrieval + RAFT adapter trained with random distractors).

Answers are scored on their final answer: when the text has an ``Answer:`` line (the RAFT
format quotes its source first), what follows it; ``[n]`` citation markers are removed.

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

import hashlib
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry._evaluation.metrics import (
    Comparison,
    Estimate,
    bootstrap_ci,
    citation_precision,
    exact_match,
    mrr,
    paired_comparison,
    recall_at_k,
    rouge_l,
    says_dont_know,
    token_f1,
)
from phi3industry._evaluation.qa import (
    QAItem,
    generate_qa,
    load_qa,
    parse_generated_qa,
    save_qa,
    split_qa,
)
from phi3industry._evaluation.report import LATENCY, METRICS, PRIMARY, Report, StrategyResult
from phi3industry.config import _check, _ConfigBase
from phi3industry.errors import ConfigError, DataFormatError

if TYPE_CHECKING:
    from phi3industry.pipeline import Answer, Pipeline
    from phi3industry.retriever import Hit

#: Evaluation strategy -> (Pipeline strategy, adapter role or None).
EVAL_STRATEGIES: dict[str, tuple[str, str | None]] = {
    "base": ("base", None),
    "rag": ("rag", None),
    "finetuned": ("finetuned", "finetuned"),
    "rag+finetuned": ("rag+finetuned", "finetuned"),
    "raft+rag": ("rag+finetuned", "raft"),
    "raft": ("finetuned", "raft"),
    "raft-random+rag": ("rag+finetuned", "raft-random"),
}
DEFAULT_STRATEGIES = ("base", "rag", "finetuned", "rag+finetuned", "raft+rag")
_ANSWER_LINE = re.compile(r"(?:^|\n)\s*(?:final\s+)?answer\s*:\s*", re.I)
_MARKER = re.compile(r"\s*\[(?:sources?\s*)?\d+(?:\s*[,;]\s*(?:sources?\s*)?\d+)*\]", re.I)
_RUNS = "runs"


def final_answer(text: str) -> str:
    """The part of an answer that is scored: after the last ``Answer:`` line, no ``[n]``."""
    parts = _ANSWER_LINE.split(text)
    answer = parts[-1] if len(parts) > 1 and parts[-1].strip() else text
    return _MARKER.sub("", answer).strip()


@dataclass
class EvalConfig(_ConfigBase):
    """An evaluation run (``phi3industry eval --config eval.yaml``).

    Example:
        >>> cfg = EvalConfig(docs=["kb/docs"], qa="kb/questions.jsonl",
        ...                  train=["kb/qa_train.jsonl"], model="smollm2-135m-instruct")
        >>> cfg.strategies
        ['base', 'rag', 'finetuned', 'rag+finetuned', 'raft+rag']
    """

    output_dir: str = field(
        default="eval-output",
        metadata={"help": "Where the index (unless 'index'), adapters, answers and report go."},
    )
    docs: list[str] | None = field(
        default=None,
        metadata={"help": "Documents to index (synced: unchanged files are not re-embedded)."},
    )
    index: str | None = field(
        default=None, metadata={"help": "Index directory (default: OUTPUT_DIR/index)."}
    )
    include: list[str] | None = field(
        default=None, metadata={"help": "Glob patterns of documents to index."}
    )
    exclude: list[str] | None = field(
        default=None, metadata={"help": "Glob patterns of documents not to index."}
    )
    chunk_size: int = field(
        default=250, metadata={"help": "Chunk size in embedder tokens (new index only)."}
    )
    qa: str | None = field(
        default=None,
        metadata={
            "help": "Held-out questions (JSONL/CSV: question, answer, sources). Unset: "
            "generate them from the index."
        },
    )
    train: list[str] | None = field(
        default=None,
        metadata={
            "help": "Training data for the adapters: QA rows, chat JSONL ('messages') or "
            "any Tuner format. Unset with generated QA: the generated training split."
        },
    )
    train_on_docs: bool = field(
        default=True,
        metadata={"help": "Also train the plain adapter on the index's chunks (raw text)."},
    )
    max_questions: int | None = field(
        default=None, metadata={"help": "Evaluate at most this many held-out questions."}
    )
    generate_questions: int = field(
        default=30, metadata={"help": "Questions to generate when no QA file is given."}
    )
    heldout_fraction: float = field(
        default=0.4,
        metadata={"help": "Share of generated questions held out (never trained on)."},
    )
    qa_model: str | None = field(
        default=None, metadata={"help": "Model that writes generated questions (default: model)."}
    )
    qa_base_url: str | None = field(
        default=None,
        metadata={"help": "OpenAI-compatible endpoint that writes generated questions."},
    )
    strategies: list[str] = field(
        default_factory=lambda: list(DEFAULT_STRATEGIES),
        metadata={"help": f"Strategies to compare: {', '.join(EVAL_STRATEGIES)}."},
    )
    model: str = field(
        default="phi-3-mini-4k-instruct",
        metadata={"help": "Base model: short name, hub id, local directory or .gguf file."},
    )
    adapter: str | None = field(
        default=None, metadata={"help": "Existing plain adapter directory (skips its tuning)."}
    )
    raft_adapter: str | None = field(
        default=None, metadata={"help": "Existing RAFT adapter directory (skips its tuning)."}
    )
    k: int = field(default=4, metadata={"help": "Hits retrieved per question (and recall@k)."})
    hybrid: bool = field(default=False, metadata={"help": "Fuse BM25 with dense search (RRF)."})
    min_score: float | None = field(
        default=0.2, metadata={"help": "Hits below this cosine score are not used."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Tokens generated per answer."})
    context_tokens: int = field(
        default=1024, metadata={"help": "Token budget for the sources in the prompt."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt (default: the Pipeline's)."}
    )
    max_steps: int = field(default=30, metadata={"help": "Optimizer steps per adapter."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adapter learning rate."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    train_batch_size: int = field(default=4, metadata={"help": "Sequences per training step."})
    train_max_length: int = field(
        default=512, metadata={"help": "Maximum tokens per training sequence."}
    )
    raft_distractors: int = field(
        default=3, metadata={"help": "RAFT: distractor chunks per training question (D)."}
    )
    raft_p_oracle: float = field(
        default=0.8, metadata={"help": "RAFT: probability that the oracle chunk is shown (P)."}
    )
    raft_distractor_type: str = field(
        default="hard",
        metadata={"help": "RAFT adapter: 'hard' (retriever's top non-oracle hits) or 'random'."},
    )
    answer_batch_size: int = field(
        default=8,
        metadata={
            "help": "Questions answered together (left-padded batch); latency is then each "
            "answer's share of its batch. 1 measures single-question latency."
        },
    )
    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for CIs."})
    seed: int = field(default=0, metadata={"help": "Seed for splits, RAFT draws, bootstrap."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, fp32, bf16, fp16."})
    device: str | None = field(default=None, metadata={"help": "Model device (cpu, cuda)."})
    progress: bool = field(default=True, metadata={"help": "Show progress on stderr."})

    def __post_init__(self) -> None:
        for name in ("docs", "train", "strategies", "include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [v.strip() for v in value.split(",") if v.strip()])
        _check(
            bool(self.strategies) and all(s in EVAL_STRATEGIES for s in self.strategies),
            f"strategies must be a non-empty list of {', '.join(EVAL_STRATEGIES)}; "
            f"got {self.strategies!r}.",
        )
        _check(
            len(set(self.strategies)) == len(self.strategies),
            f"strategies lists a strategy twice: {self.strategies!r}.",
        )
        for name in ("k", "max_new_tokens", "context_tokens", "max_steps", "generate_questions"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"{name} must be a positive integer, got {value!r}.",
            )
        for name in ("lora_r", "train_batch_size", "chunk_size", "answer_batch_size"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and value > 0,
                f"{name} must be a positive integer, got {value!r}.",
            )
        _check(
            self.train_max_length >= 64,
            f"train_max_length must be at least 64 tokens, got {self.train_max_length!r}.",
        )
        _check(
            self.max_questions is None or self.max_questions > 0,
            f"max_questions must be a positive integer or unset, got {self.max_questions!r}.",
        )
        _check(
            0.0 < self.heldout_fraction < 1.0,
            f"heldout_fraction must be between 0 and 1 (exclusive), got {self.heldout_fraction!r}.",
        )
        _check(
            self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate!r}."
        )
        _check(
            isinstance(self.raft_distractors, int) and self.raft_distractors >= 0,
            f"raft_distractors must be an integer >= 0, got {self.raft_distractors!r}.",
        )
        _check(
            0.0 <= self.raft_p_oracle <= 1.0,
            f"raft_p_oracle must be in [0, 1], got {self.raft_p_oracle!r}.",
        )
        _check(
            self.raft_distractor_type in ("hard", "random"),
            f"raft_distractor_type must be 'hard' or 'random', got {self.raft_distractor_type!r}.",
        )
        _check(
            self.n_bootstrap >= 100,
            f"n_bootstrap must be at least 100 resamples, got {self.n_bootstrap!r}.",
        )
        _check(
            self.qa_base_url is None or self.qa_base_url.startswith(("http://", "https://")),
            f"qa_base_url must start with http:// or https://, got {self.qa_base_url!r}.",
        )

    @property
    def index_dir(self) -> Path:
        """The index directory (``index``, or ``output_dir/index``)."""
        return Path(self.index) if self.index else Path(self.output_dir) / "index"

    @property
    def adapter_roles(self) -> list[str]:
        """The adapters the strategies need (``finetuned``, ``raft``, ``raft-random``)."""
        roles = [EVAL_STRATEGIES[s][1] for s in self.strategies]
        return list(dict.fromkeys(r for r in roles if r is not None))


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _hit_key(hit: Hit) -> tuple[str, str]:
    ids = [hit.id, *[i for i in hit.metadata.get("merged_ids", []) if i != hit.id]]
    return ",".join(ids), hit.source


# Part of every cached answer's fingerprint: raise it when scoring changes, so that answers
# scored the old way are redone (2: no retrieval metrics for strategies that do not retrieve).
_SCORING_VERSION = 2


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


def _fingerprint(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def score_answer(
    item: QAItem,
    answer: Answer,
    retrieved: Sequence[Hit] | None,
    k: int,
) -> dict[str, Any]:
    """Score one answer; returns the per-question record (metrics, prediction, sources).

    Args:
        item: The question with its reference answers and gold sources.
        answer: The pipeline's answer.
        retrieved: The retriever's top hits for the question (None without retrieval).
        k: Cut-off of ``recall@k``.
    """
    uses_sources = answer.strategy.startswith("rag")
    gold = item.sources
    final = final_answer(answer.text)
    cited = [_hit_key(h) for h in answer.citations]
    ranked = [_hit_key(h) for h in retrieved] if retrieved is not None else None
    scores: dict[str, float | None] = {
        "exact_match": exact_match(final, item.answers),
        "token_f1": token_f1(final, item.answers),
        "rouge_l": rouge_l(final, item.answers),
        "recall@k": recall_at_k(ranked, gold, k) if ranked is not None and gold else None,
        "mrr": mrr(ranked, gold) if ranked is not None and gold else None,
        "citation_precision": citation_precision(cited, gold) if uses_sources and gold else None,
        "answered_from_sources": (
            float(not answer.abstained and bool(answer.citations)) if uses_sources else None
        ),
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
        "cited": [list(c) for c in cited],
        "retrieved": [list(r) for r in ranked] if ranked is not None else None,
        "usage": dict(answer.usage),
        "scores": scores,
    }


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


def _pipeline_from(obj: Any) -> Pipeline:
    from phi3industry.config import PipelineConfig
    from phi3industry.pipeline import Pipeline

    if isinstance(obj, Pipeline):
        return obj
    if isinstance(obj, PipelineConfig):
        return Pipeline(config=obj)
    if isinstance(obj, EvalConfig):
        adapters = {}
        if obj.adapter:
            adapters["finetuned"] = obj.adapter
        if obj.raft_adapter:
            adapters["raft"] = obj.raft_adapter
        from phi3industry._evaluation.run import _build_pipeline

        return _build_pipeline(obj, None, adapters)
    raise ConfigError(
        f"evaluate() needs a Pipeline, PipelineConfig or EvalConfig, got {type(obj).__name__}."
    )


def evaluate(
    pipeline_or_config: Any,
    qa: Any,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    *,
    adapters: dict[str, str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
    batch_size: int = 1,
) -> Report:
    """Ask every question under every strategy and measure the answers.

    Args:
        pipeline_or_config: A :class:`~phi3industry.pipeline.Pipeline` (or a
            ``PipelineConfig`` / :class:`EvalConfig` to build one). It must have a retriever
            for the ``rag`` strategies and the adapters the tuned strategies use.
        qa: The held-out questions: anything :func:`load_qa` reads.
        strategies: Strategies to run (see :data:`EVAL_STRATEGIES`).
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

    Returns:
        The :class:`Report` (``to_dict()``, ``table()``, ``save(dir)``).

    Raises:
        ConfigError: For an unknown strategy, or one the pipeline cannot run.
        DataFormatError: For a malformed QA set.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    unknown = [s for s in strategies if s not in EVAL_STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(
            f"Unknown strategy {unknown[0] if unknown else None!r}; choose from "
            f"{', '.join(EVAL_STRATEGIES)}."
        )
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
    plan: dict[str, tuple[str, str | None]] = {}
    for strategy in strategies:
        pipe_strategy, role = EVAL_STRATEGIES[strategy]
        adapter = names.get(role) if role else None
        if role and adapter not in loaded:
            raise ConfigError(
                f"Strategy {strategy!r} needs the {role!r} adapter, but the pipeline has "
                f"{', '.join(loaded) or 'no adapter'}; load it ('name=DIR' in adapters) and "
                f"pass adapters={{{role!r}: NAME}}."
            )
        if pipe_strategy.startswith("rag") and pipe.retriever is None:
            raise ConfigError(f"Strategy {strategy!r} needs a retriever; the pipeline has none.")
        plan[strategy] = (pipe_strategy, adapter)

    cfg = pipe.config
    k = cfg.k
    adapter_paths = getattr(pipe.generator, "_adapters", {})
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
    }
    cache = _RunCache(Path(cache_dir) if cache_dir is not None else None)
    retrieved: dict[int, list[Hit]] = {}
    results: dict[str, StrategyResult] = {}
    for strategy, (pipe_strategy, adapter) in plan.items():
        fp = _fingerprint(
            {
                **common,
                "strategy": strategy,
                "adapter": _file_stamp(adapter_paths.get(adapter)) if adapter else None,
            }
        )
        records = cache.load(strategy, fp)[: len(items)]
        if len(records) == len(items):
            _say(progress, f"[{strategy}] {len(items)} answers reused from {cache_dir}")
        else:
            cache.start(strategy, fp, records)
            started = time.perf_counter()
            for at in range(len(records), len(items), batch_size):
                batch = list(range(at, min(at + batch_size, len(items))))
                for i in batch:
                    if pipe_strategy.startswith("rag") and items[i].sources and i not in retrieved:
                        retrieved[i] = pipe.retrieve(items[i].question, k=k)
                asked = time.perf_counter()
                answers = pipe.batch(
                    [items[i].question for i in batch], strategy=pipe_strategy, adapter=adapter
                )
                amortized = (time.perf_counter() - asked) / len(batch)
                for i, answer in zip(batch, answers, strict=True):
                    hits = retrieved.get(i) if pipe_strategy.startswith("rag") else None
                    record = score_answer(items[i], answer, hits, k)
                    if len(batch) > 1:  # answered together: each one's share of the batch
                        record["scores"][LATENCY] = amortized
                    records.append(record)
                    cache.append(strategy, record)
                    _say(
                        progress,
                        f"[{strategy}] {i + 1}/{len(items)}  "
                        f"F1 {record['scores']['token_f1']:.2f}  "
                        f"{record['scores'][LATENCY]:.1f}s  "
                        f"(elapsed {time.perf_counter() - started:.0f}s)",
                    )
        results[strategy] = _summarize(strategy, records, n_bootstrap, seed)

    comparisons: list[Comparison] = []
    for a, b in itertools.combinations(results, 2):
        for metric in PRIMARY:
            comparisons.append(
                paired_comparison(
                    a,
                    [r["scores"][metric] for r in results[a].records],
                    b,
                    [r["scores"][metric] for r in results[b].records],
                    metric,
                    n_resamples=n_bootstrap,
                    seed=seed,
                )
            )
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


def run_eval(config: EvalConfig | str | os.PathLike[str]) -> Report:
    """Run a whole evaluation and write its report (``phi3industry eval``).

    Steps: sync or open the index; load the held-out questions (or generate a QA set from
    the index and split it: the held-out part is never trained on); tune the adapters the
    strategies need (plain: the training questions, plus the index's chunks with
    ``train_on_docs``; RAFT: the training questions with oracle + distractor chunks from the
    index); evaluate; write ``report.json``, ``report.md``, ``metrics.png`` and
    ``latency.png`` to ``output_dir``. Answers, adapters and generated questions stay in
    ``output_dir``: running again redoes only what changed or did not finish.

    Args:
        config: An :class:`EvalConfig` or the path of its YAML file.

    Returns:
        The :class:`Report`.
    """
    from phi3industry._evaluation.run import run

    return run(config)


__all__ = [
    "DEFAULT_STRATEGIES",
    "EVAL_STRATEGIES",
    "METRICS",
    "Comparison",
    "Estimate",
    "EvalConfig",
    "QAItem",
    "Report",
    "StrategyResult",
    "bootstrap_ci",
    "citation_precision",
    "evaluate",
    "exact_match",
    "final_answer",
    "generate_qa",
    "load_qa",
    "mrr",
    "paired_comparison",
    "parse_generated_qa",
    "recall_at_k",
    "rouge_l",
    "run_eval",
    "save_qa",
    "score_answer",
    "split_qa",
    "token_f1",
]
