"""RAG vs fine-tuning vs both, generated vs quoted answers, on real FAQs (Django, SQLite).

Offline, on CPU, with smollm2-135m-instruct. The questions are real: every question of the
FAQ that ships with the docs (Debian packages ``python-django-doc``: faq/*.html, ``<h2>``
questions; ``sqlite3-doc``: faq.html, ``(N) question`` entries), the reference answer is the
opening of that question's text (its first sentences, at most 300 characters), the gold
source is the FAQ page. The index holds the FAQ and the surrounding docs (Django: faq/,
intro/, topics/, ~90 pages; SQLite: every page under 120 kB, ~180 pages), so that retrieval
has to find the FAQ page.

Django: the questions are split once (seeded); --questions are held out and never trained
on; the rest train three adapters (plain: the Q&A as chat + the indexed pages; RAFT: the Q&A
with the oracle chunk and 2 distractors, hard negatives or random chunks). SQLite: every
question is held out and only base and RAG run (no training set that small is worth it).

Each retrieving strategy answers in both answer modes: ``@generate`` (the model writes from
the sources) and ``@extract`` (the best-supported span of the sources is quoted); adapters
make no difference to a quoted answer, so only ``rag@extract`` runs. Every answer is
attributed (groundedness, citations computed by the library) and scored two ways (the final
``Answer:`` line and the whole text); comparisons carry Holm-corrected p-values.

Run:
  apt-get install python-django-doc sqlite3-doc
  python bench/bench_eval_faq.py --corpus django               # ~30 min on 2 cores
  python bench/bench_eval_faq.py --corpus sqlite               # ~10 min
  python bench/bench_eval_faq.py --corpus django --prepare     # index + split only
  python bench/bench_eval_faq.py --corpus django --smoke       # 3 questions, 2 steps

Everything lands in --output (default bench-out/{corpus}-eval: report.md, report.json,
metrics.png, latency.png, and eval.yaml, the same run as ``phi3industry eval --config``); a
second run reuses the index, the adapters and every finished strategy. With --results the
report is also copied to bench/results/eval-{corpus}.{md,json} and the chart to
bench/results/eval-{corpus}-metrics.png (eval-{corpus}-min-support-{action}.* with
--min-support: the answer policy; e.g. --min-support 0.5 --low-support extract quotes the
sources instead of a written answer with fewer than half of its claims supported).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import shutil
import sys
import time
from pathlib import Path

from phi3industry.evaluation import EvalConfig, run_eval
from phi3industry.pipeline import PipelineConfig
from phi3industry.pipeline.config import LOW_SUPPORT_ACTIONS
from phi3industry.retrieval import Retriever
from phi3industry.tuning import TunerConfig

DJANGO_HTML = Path("/usr/share/doc/python-django-doc/html")
SQLITE_HTML = Path("/usr/share/doc/sqlite3")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SQLITE_PAGE_LIMIT = 120_000  # bytes: the index skips the few huge reference pages
RESULTS = Path(__file__).parent / "results"


def opening(body: str, limit: int = 300) -> str:
    """The first sentences of ``body``, at most ``limit`` characters (the part that answers)."""
    answer = ""
    for sentence in _SENTENCE_END.split(" ".join(body.split())):
        if answer and len(answer) + len(sentence) > limit:
            break
        answer = f"{answer} {sentence}".strip()
    return answer[: limit + 100]


def django_questions(html_root: Path) -> list[dict]:
    """Every <h2> question of faq/*.html with the opening of its section as the answer."""
    from bs4 import BeautifulSoup

    rows = []
    for page in sorted((html_root / "faq").glob("*.html")):
        if page.name == "index.html":
            continue
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for h2 in soup.find_all("h2"):
            section = h2.parent
            if section is None or section.find("h3") is not None:
                continue  # a heading that groups sub-questions, not a question
            question = h2.get_text(" ", strip=True).replace("¶", "").strip()
            h2.extract()
            body = section.get_text(" ", strip=True).replace("¶", " ")
            if not question or len(body) < 20:
                continue
            rows.append(
                {"question": question, "answer": opening(body), "sources": [f"faq/{page.name}"]}
            )
    return rows


def sqlite_questions(html_root: Path) -> list[dict]:
    """Every ``(N) question`` of faq.html with the opening of its answer block."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((html_root / "faq.html").read_text(encoding="utf-8"), "html.parser")
    rows = []
    for bold in soup.find_all("b"):
        text = " ".join(bold.get_text(" ", strip=True).split())
        match = re.match(r"\((\d+)\)\s*(.+)", text)
        block = bold.find_parent("p")
        answer = block.find_next_sibling("blockquote") if block is not None else None
        if match is None or answer is None:
            continue
        body = answer.get_text(" ", strip=True)
        if len(body) >= 20:
            rows.append(
                {"question": match.group(2), "answer": opening(body), "sources": ["faq.html"]}
            )
    return rows


def sqlite_pages(html_root: Path) -> list[str]:
    """The SQLite pages indexed: the FAQ and every page under the size limit."""
    pages = [p for p in sorted(html_root.glob("*.html")) if p.stat().st_size < _SQLITE_PAGE_LIMIT]
    if html_root / "faq.html" not in pages:
        pages.append(html_root / "faq.html")
    return [str(p) for p in pages]


def build_config(args: argparse.Namespace, out: Path) -> EvalConfig:
    """The evaluation of one corpus (questions written to OUT first)."""
    if args.corpus == "django":
        html = Path(args.html or DJANGO_HTML)
        if not (html / "faq").is_dir():
            sys.exit(f"{html}/faq not found: apt-get install python-django-doc (or --html).")
        rows, docs = django_questions(html), [str(html / d) for d in ("faq", "intro", "topics")]
    else:
        html = Path(args.html or SQLITE_HTML)
        if not (html / "faq.html").is_file():
            sys.exit(f"{html}/faq.html not found: apt-get install sqlite3-doc (or --html).")
        rows, docs = sqlite_questions(html), sqlite_pages(html)
    trains = args.corpus == "django"
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    n_test = 3 if args.smoke else (args.questions if trains else len(rows))
    held = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]] if trains else []
    prefix = f"{args.corpus}_faq"
    for name, part in ((f"{prefix}_heldout.jsonl", held), (f"{prefix}_train.jsonl", train)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    print(f"{args.corpus} FAQ: {len(rows)} questions, {len(held)} held out, {len(train)} train")
    if args.strategies:
        strategies = args.strategies.split(",")
    elif trains:
        strategies = [
            "base",
            "rag@generate",
            "rag@extract",
            "finetuned",
            "rag+finetuned@generate",
            "raft+rag@generate",
            "raft-random+rag@generate",
        ]
    else:
        strategies = ["base", "rag@generate", "rag@extract"]
    return EvalConfig(
        output_dir=str(out),
        docs=docs,
        qa=str(out / f"{prefix}_heldout.jsonl"),
        train=[str(out / f"{prefix}_train.jsonl")] if trains else None,
        train_on_docs=trains,
        strategies=strategies,
        raft_distractors=2,
        raft_p_oracle=0.8,
        raft_distractor_type="hard",
        pipeline=PipelineConfig(
            model="smollm2-135m-instruct",
            k=3,
            context_tokens=768,
            max_new_tokens=args.max_new_tokens,
            min_support=args.min_support,
            low_support=args.low_support,
        ),
        tuner=TunerConfig(
            max_steps=2 if args.smoke else args.steps,
            learning_rate=1e-3,
            lora_r=16,
            lora_alpha=32,
            batch_size=2,
            max_length=512,
            eval_fraction=0.02,  # the adapters' own before/after metrics: a small sample
            seed=0,
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=("django", "sqlite"), default="django")
    parser.add_argument("--output", help="default: bench-out/{corpus}-eval")
    parser.add_argument("--html", help="the docs' HTML root (default: the Debian package's)")
    parser.add_argument("--questions", type=int, default=20, help="Django: held-out questions")
    parser.add_argument("--steps", type=int, default=24, help="training steps per adapter")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy box)")
    parser.add_argument("--smoke", action="store_true", help="3 questions, 2 steps")
    parser.add_argument("--prepare", action="store_true", help="index and questions only")
    parser.add_argument(
        "--strategies", help="comma-separated subset (default: every strategy of the corpus)"
    )
    parser.add_argument(
        "--min-support", type=float, help="the answer policy's threshold (default: none)"
    )
    parser.add_argument(
        "--low-support",
        choices=LOW_SUPPORT_ACTIONS,
        default="flag",
        help="below --min-support: flag, abstain, or quote the sources instead (extract)",
    )
    parser.add_argument("--results", action="store_true", help="copy the report to bench/results")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.output or f"bench-out/{args.corpus}-eval")
    out.mkdir(parents=True, exist_ok=True)
    cfg = build_config(args, out)
    cfg.to_yaml(out / "eval.yaml")  # the same run: phi3industry eval --config OUT/eval.yaml
    started = time.perf_counter()
    if args.prepare:
        retriever = Retriever(dataclasses.replace(cfg.retriever, path=str(cfg.index_dir)))
        report = retriever.sync(cfg.docs)
        print(report.summary())
        return
    report = run_eval(cfg)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{report.table()}\n\nTotal {minutes:.1f} min; report in {out / 'report.md'}")
    if args.results:
        RESULTS.mkdir(exist_ok=True)
        name = f"eval-{args.corpus}"
        if args.min_support is not None:
            name += f"-min-support-{args.low_support}"
        for src, dst in (
            ("report.md", f"{name}.md"),
            ("report.json", f"{name}.json"),
            ("metrics.png", f"{name}-metrics.png"),
        ):
            shutil.copyfile(out / src, RESULTS / dst)


if __name__ == "__main__":
    main()
