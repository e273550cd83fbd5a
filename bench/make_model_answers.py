"""Real answers of the bundled model about the sample knowledge base, to be labelled by hand.

The eleventh batch of labelled attribution pairs (``MODEL_CLAIMS[11]`` in
``bench/make_attribution_pairs.py``) was taken from these answers: sentences copied verbatim,
labelled against the passage that answers each question, by someone who never saw the
attribution rules or any score. The questions are the sample knowledge base's 13 and the 14
below, written for that batch. Each is answered twice by SmolLM2-135M with written answers
(``answer_mode="generate"``): without sources (``base``) and with three retrieved passages
(``rag``).

Writes one JSON object per line: strategy, question, answer, and the sources shown.

Run: ``python bench/make_model_answers.py [--output answers.jsonl]`` (about 3 minutes on
2 cores).
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="bench-out/model-answers-sample-kb.jsonl")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    questions = [q["question"] for q in sample_questions()] + EXTRA_QUESTIONS
    with tempfile.TemporaryDirectory() as tmp:
        kb = Retriever(RetrieverConfig(path=str(Path(tmp) / "index"), progress=False))
        kb.sync([sample_docs_dir()])
        pipe = Pipeline(
            retriever=kb,
            model="smollm2-135m-instruct",
            config=PipelineConfig(k=3, max_new_tokens=args.max_new_tokens, answer_mode="generate"),
        )
        rows = []
        for question in questions:
            for strategy in ("base", "rag"):
                answer = pipe.invoke(question, strategy=strategy)
                shown = [
                    f"{h.source.rsplit('/docs/', 1)[-1]} > {h.section or ''}"
                    for h in answer.sources
                ]
                rows.append(
                    {
                        "strategy": strategy,
                        "question": question,
                        "answer": answer.text,
                        "sources": shown,
                    }
                )
                print(f"[{strategy}] {question} -> {answer.text[:70]!r}", flush=True)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} answers -> {out}")


if __name__ == "__main__":
    main()
