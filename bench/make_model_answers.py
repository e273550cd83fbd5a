"""Real answers of the bundled model about a small corpus, to be labelled by hand.

Two sets of questions (``--set``):

- ``sample-kb`` (the default): the sample knowledge base's 13 questions and the 14 below,
  written for the eleventh batch of labelled attribution pairs (``MODEL_CLAIMS[11]`` in
  ``bench/make_attribution_pairs.py``).
- ``debian``: 33 questions of the Debian FAQ (debian-faq's
  ``/usr/share/doc/debian/FAQ/*.en.html``), its own question headings, every third one in
  order from the second; the index holds those FAQ pages only. Each row also names the
  question's page and heading. Used for the twelfth batch (``MODEL_CLAIMS[12]``).

The labelled batches were taken from these answers: sentences copied verbatim, labelled
against the passage that answers each question, by someone who never saw the attribution
rules or any score. Each question is answered twice by SmolLM2-135M with written answers
(``answer_mode="generate"``): without sources (``base``) and with three retrieved passages
(``rag``).

Writes one JSON object per line: strategy, question, answer, and the sources shown.

Run: ``python bench/make_model_answers.py [--set debian] [--output answers.jsonl]`` (about 3
minutes on 2 cores for ``sample-kb``, about 30 for ``debian``).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import tempfile
from pathlib import Path

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.demo import sample_docs_dir, sample_questions

EXTRA_QUESTIONS = [
    "What should the operator do after error E-102?",
    "What does error E-330 mean?",
    "How long does it take to charge the AR7 battery to 80 %?",
    "What is the maximum speed of the AR7 in shared zones?",
    "How do I clear an emergency stop on the AR7?",
    "What is the restocking fee for returning an unused product?",
    "How long is the warranty on the AR7 battery?",
    "What must pedestrians do around a moving robot?",
    "Which firmware does the AR7 run, and how is it updated?",
    "How is the charging dock anchored to the floor?",
    "What does the status light do when the robot is charging?",
    "Where is Northwind Robotics headquartered?",
    "What operating temperature range is the AR7 rated for?",
    "What does error E-810 mean and how do I fix it?",
]

DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")


def debian_questions() -> list[dict[str, str]]:
    """Every third question heading of the Debian FAQ, read as ``bench_retrieval_quality`` does."""
    items = []
    for page in sorted(DEBIAN_FAQ.glob("*.en.html")):
        raw = re.findall(r'<h2 class="title"[^>]*>(?:<a [^>]*></a>)?(.*?)</h2>', page.read_text())
        for heading in raw:
            text = " ".join(
                html.unescape(re.sub(r"<[^>]+>", " ", heading)).replace("¶", " ").split()
            )
            # Tags inside a heading leave a space before its commas and question mark.
            text = re.sub(r"\s+([,?])", r"\1", text)
            question = re.sub(r"^[\d.]+\s*", "", text)
            if question.endswith("?"):
                items.append({"question": question, "page": page.name, "heading": text})
    return items[1::3]


def _short(source: str) -> str:
    """A source's path below the sample knowledge base's ``docs/`` or the Debian FAQ folder."""
    return source.rsplit("/docs/", 1)[-1].rsplit("/FAQ/", 1)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("sample-kb", "debian"), default="sample-kb")
    parser.add_argument(
        "--output", default=None, help="default: bench-out/model-answers-<set>.jsonl"
    )
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    if args.set == "debian":
        items = debian_questions()
        docs = sorted(DEBIAN_FAQ.glob("*.en.html"))
    else:
        items = [{"question": q["question"]} for q in sample_questions()]
        items += [{"question": q} for q in EXTRA_QUESTIONS]
        docs = [sample_docs_dir()]
    with tempfile.TemporaryDirectory() as tmp:
        kb = Retriever(RetrieverConfig(path=str(Path(tmp) / "index"), progress=False))
        kb.sync(docs)
        pipe = Pipeline(
            retriever=kb,
            model="smollm2-135m-instruct",
            config=PipelineConfig(k=3, max_new_tokens=args.max_new_tokens, answer_mode="generate"),
        )
        rows = []
        for item in items:
            question = item["question"]
            for strategy in ("base", "rag"):
                answer = pipe.invoke(question, strategy=strategy)
                shown = [f"{_short(h.source)} > {h.section or ''}" for h in answer.sources]
                rows.append(
                    {
                        "strategy": strategy,
                        "question": question,
                        "answer": answer.text,
                        "sources": shown,
                        **{k: v for k, v in item.items() if k != "question"},
                    }
                )
                print(f"[{strategy}] {question} -> {answer.text[:70]!r}", flush=True)
    out = Path(args.output or f"bench-out/model-answers-{args.set}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} answers -> {out}")


if __name__ == "__main__":
    main()
