"""A scheduled job: sync a documents folder, answer a CSV of questions, write a CSV of answers.

Run it from cron, a CI schedule or Airflow as often as you like; it is safe to re-run:

* the index is synced, not rebuilt: unchanged documents are not re-read or re-embedded;
* the answers file is written to a temporary file and renamed into place, so readers never
  see a half-written CSV, and a crash leaves the previous answers intact;
* when neither the documents, the questions nor the settings changed since the last run,
  nothing is generated again (``--force`` re-answers anyway);
* a second copy started while one is syncing stops with ``IndexLockedError`` and exit code 1.

Input CSV: a ``question`` column, optionally an ``id`` column. Output CSV columns:
``id, question, answer, citations, sources, abstained, strategy, model, seconds``, where
``citations`` are the sources the answer cites as ``[n]`` and ``sources`` every source the
model was shown (``path > section``, one per line).

Example (offline, on the bundled sample knowledge base and model)::

    python examples/automation/sync_and_answer.py \\
        --docs phi3industry/assets/sample_kb/docs --index kb-index \\
        --questions examples/automation/questions.csv --output answers.csv \\
        --model smollm2-135m-instruct --max-new-tokens 48

    # crontab: every night at 02:15
    15 2 * * * cd /srv/assistant && .venv/bin/python sync_and_answer.py --docs /srv/docs ...
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi3industry import Phi3IndustryError, Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.retrieval.index import INDEX_FILE

FIELDS = (
    "id",
    "question",
    "answer",
    "citations",
    "sources",
    "abstained",
    "strategy",
    "model",
    "seconds",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", action="append", required=True, help="Documents folder (repeat).")
    parser.add_argument("--index", required=True, help="Index directory (created if missing).")
    parser.add_argument("--questions", required=True, help="CSV with a 'question' column.")
    parser.add_argument("--output", required=True, help="CSV of answers (replaced atomically).")
    parser.add_argument("--config", help="PipelineConfig YAML (model, strategy, k, ...).")
    parser.add_argument("--model", help="Model (default: the config's, else Phi-3-mini).")
    parser.add_argument("--adapter", help="LoRA adapter directory ('name=DIR').")
    parser.add_argument("--strategy", help="base, rag, finetuned or rag+finetuned.")
    parser.add_argument("--k", type=int, help="Sources retrieved per question.")
    parser.add_argument("--max-new-tokens", type=int, help="Tokens generated per answer.")
    parser.add_argument("--force", action="store_true", help="Answer even if nothing changed.")
    return parser.parse_args(argv)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The YAML config (if any), then the flags that were given, as one PipelineConfig."""
    data = PipelineConfig.from_yaml(args.config).to_dict() if args.config else {}
    flags = {
        "model": args.model,
        "adapter": args.adapter,
        "strategy": args.strategy,
        "k": args.k,
        "max_new_tokens": args.max_new_tokens,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    data["index"] = args.index
    return PipelineConfig.from_dict(data)


def open_index(path: str) -> Retriever:
    """Reopen an existing index with the embedder it was built with, or create one."""
    if (Path(path) / INDEX_FILE).exists():
        return Retriever.open(path, progress=False)
    return Retriever(RetrieverConfig(path=path, progress=False))


def read_questions(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and "question" not in rows[0]:
        raise SystemExit(f"{path}: needs a 'question' column, has {', '.join(rows[0])}.")
    questions = []
    for n, row in enumerate(rows, 1):
        text = (row.get("question") or "").strip()
        if text:
            questions.append({"id": (row.get("id") or str(n)).strip(), "question": text})
    return questions


def fingerprint(retriever: Retriever, questions: list[dict[str, str]], cfg: PipelineConfig) -> str:
    """What the answers depend on: the indexed chunks, the questions and the settings."""
    digest = hashlib.sha256()
    for chunk_id in sorted(hit.id for hit in retriever.iter_chunks()):
        digest.update(chunk_id.encode())
    digest.update(json.dumps(questions, sort_keys=True).encode())
    settings = cfg.to_dict()
    settings["endpoint"].pop("api_key")  # a secret: never written anywhere
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _where(hit: Any) -> str:
    return hit.source + (f" > {hit.section}" if hit.section else "")


def answer_rows(pipe: Pipeline, questions: list[dict[str, str]]) -> list[dict[str, Any]]:
    start = time.perf_counter()
    answers = pipe.batch([q["question"] for q in questions])
    per_question = (time.perf_counter() - start) / max(1, len(questions))
    rows = []
    for q, answer in zip(questions, answers, strict=True):
        cited = zip(answer.citation_numbers(), answer.citations, strict=False)
        rows.append(
            {
                "id": q["id"],
                "question": q["question"],
                "answer": answer.text.strip(),
                "citations": "\n".join(f"[{n}] {_where(hit)}" for n, hit in cited),
                "sources": "\n".join(_where(hit) for hit in answer.sources),
                "abstained": answer.abstained,
                "strategy": answer.strategy,
                "model": pipe.config.model,
                "seconds": round(answer.timings.get("total", per_question), 2),
            }
        )
    return rows


def write_atomically(path: Path, write: Any) -> None:
    """Write ``path`` via a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; readers of the CSV need more
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    def write(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    write_atomically(path, write)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the job; return what it did (also printed as one JSON line)."""
    args = parse_args(argv)
    cfg = pipeline_config(args)
    output = Path(args.output)
    state_file = output.with_name(output.name + ".state.json")

    retriever = open_index(args.index)
    report = retriever.sync(args.docs)
    print(report.summary(), flush=True)

    questions = read_questions(args.questions)
    key = fingerprint(retriever, questions, cfg)
    previous = json.loads(state_file.read_text()) if state_file.exists() else {}
    done = {"sync": report.to_dict(), "questions": len(questions), "output": str(output)}
    if not args.force and output.exists() and previous.get("fingerprint") == key:
        print("Documents, questions and settings unchanged: answers are up to date.", flush=True)
        return {**done, "answered": 0}

    pipe = Pipeline(retriever=retriever, config=cfg)
    rows = answer_rows(pipe, questions)
    write_csv(output, rows)
    # The state is written after the answers: a crash in between only costs a re-answer.
    write_atomically(state_file, lambda fh: json.dump({"fingerprint": key}, fh))
    print(f"Wrote {len(rows)} answers to {output}", flush=True)
    return {**done, "answered": len(rows)}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = run(argv)
    except Phi3IndustryError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in result.items() if k != "sync"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
