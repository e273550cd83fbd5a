"""Issue 5 acceptance: RAG vs fine-tuning vs both (and RAFT) on the Django docs + Django FAQ.

Offline, on CPU, with smollm2-135m-instruct. The questions are real: every <h2> question of
the Django FAQ (faq/*.html of the Debian package python-django-doc), the reference answer
is the opening of that section's text (its first sentences, at most 300 characters: the
part of a FAQ section that answers), the gold source is the FAQ page. The index holds the
FAQ, the intro and the topic guides (faq/, intro/, topics/), so that retrieval has to find
the FAQ page among ~90 pages. The FAQ questions are split once (seeded): --questions are
held out for the evaluation and never trained on; the rest train three adapters (plain: the
Q&A as chat + the indexed pages as text; RAFT: the Q&A with the oracle chunk + 2 distractors,
once hard negatives from the retriever, once random chunks, to measure which helps).

Budget (<= 30 minutes on 2 CPU cores), what the defaults are sized for (measured: 9.8 min
for 16 questions, 16 steps, 48 tokens and 2 adapters): index ~1.5 min (reused on a second
run), 3 adapters x 24 steps of 2 x 512 tokens ~12 min with the before/after metrics,
6 strategies x 20 questions x 96-token answers ~6-8 min.

Run:
  apt-get install python-django-doc      # if /usr/share/doc/python-django-doc/html is missing
  python bench/bench_eval_django.py --output bench-out/django-eval
  python bench/bench_eval_django.py --smoke      # 3 questions, 2 steps: checks the wiring

Everything lands in --output (report.md, report.json, metrics.png, latency.png, and
eval.yaml: the same run as `phi3industry eval --config OUTPUT/eval.yaml`); a second run
reuses the index, the adapters and every finished strategy.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from phi3industry.evaluation import EvalConfig, run_eval
from phi3industry.pipeline import PipelineConfig
from phi3industry.tuning import TunerConfig

DJANGO_HTML = Path("/usr/share/doc/python-django-doc/html")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def faq_questions(html_root: Path) -> list[dict]:
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
            body = " ".join(section.get_text(" ", strip=True).replace("¶", " ").split())
            if not question or len(body) < 20:
                continue
            answer = ""
            for sentence in _SENTENCE_END.split(body):
                if answer and len(answer) + len(sentence) > 300:
                    break
                answer = f"{answer} {sentence}".strip()
            rows.append(
                {"question": question, "answer": answer[:400], "sources": [f"faq/{page.name}"]}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="bench-out/django-eval")
    parser.add_argument("--html", default=str(DJANGO_HTML))
    parser.add_argument("--questions", type=int, default=20, help="held-out questions")
    parser.add_argument("--steps", type=int, default=24, help="training steps per adapter")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a busy box)")
    parser.add_argument("--smoke", action="store_true", help="3 questions, 2 steps")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    html = Path(args.html)
    if not (html / "faq").is_dir():
        sys.exit(f"{html}/faq not found: apt-get install python-django-doc (or pass --html).")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = faq_questions(html)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    n_test = 3 if args.smoke else args.questions
    held = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    for name, part in (("django_faq_heldout.jsonl", held), ("django_faq_train.jsonl", train)):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    print(f"Django FAQ: {len(rows)} questions, {len(held)} held out, {len(train)} for training")

    cfg = EvalConfig(
        output_dir=str(out),
        docs=[str(html / "faq"), str(html / "intro"), str(html / "topics")],
        qa=str(out / "django_faq_heldout.jsonl"),
        train=[str(out / "django_faq_train.jsonl")],
        train_on_docs=True,
        strategies=["base", "rag", "finetuned", "rag+finetuned", "raft+rag", "raft-random+rag"],
        raft_distractors=2,
        raft_p_oracle=0.8,
        raft_distractor_type="hard",
        pipeline=PipelineConfig(
            model="smollm2-135m-instruct",
            k=3,
            context_tokens=768,
            max_new_tokens=args.max_new_tokens,
        ),
        tuner=TunerConfig(
            max_steps=2 if args.smoke else args.steps,
            learning_rate=1e-3,
            lora_r=16,
            lora_alpha=32,
            batch_size=2,
            max_length=512,
            seed=0,
        ),
    )
    cfg.to_yaml(out / "eval.yaml")  # the same run: phi3industry eval --config OUT/eval.yaml
    started = time.perf_counter()
    report = run_eval(cfg)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{report.table()}\n\nTotal {minutes:.1f} min; report in {out / 'report.md'}")


if __name__ == "__main__":
    main()
