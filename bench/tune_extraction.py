"""Choose the weights of extractive answering on the Django FAQ's *training* questions.

Extractive answering (``answer_mode="extract"``) quotes the span of the shown sources that
best answers the question; a span's score mixes its similarity to the question with the
share of the question's words and codes it holds, what it adds beyond the question and its
source's rank. This grid-searches those weights by the token F1 of the quoted span against
the reference answers, on the questions ``bench/bench_eval_faq.py --corpus django`` trains
on (never its held-out ones), over the same index, shown the sources its pipeline shows
(k=3, 768 tokens of context). Prints the current and the best settings (to copy into
``phi3industry/pipeline/attribution.py``).

Usage: ``python bench/tune_extraction.py [--output bench-out/django-eval]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from phi3industry.pipeline import Pipeline, PipelineConfig, attribution
from phi3industry.qa import load_qa, token_f1
from phi3industry.retrieval import Retriever

GRID = {
    "_EXTRACT_RECALL": (0.15, 0.3, 0.5),
    "_EXTRACT_KEYS": (0.1, 0.3),
    "_EXTRACT_NEW": (0.4, 0.9, 1.5, 3.0),
    "_EXTRACT_RANK": (0.02, 0.1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="bench-out/django-eval")
    args = parser.parse_args()
    out = Path(args.output)
    train_file = out / "django_faq_train.jsonl"
    if not (out / "index").is_dir() or not train_file.is_file():
        sys.exit(f"Run bench/bench_eval_faq.py --corpus django --prepare --output {out} first.")
    retriever = Retriever.open(out / "index", progress=False)
    pipe = Pipeline(
        retriever=retriever,
        config=PipelineConfig(model="smollm2-135m-instruct", k=3, context_tokens=768),
    )
    items = load_qa(train_file)
    hits = {i.question: pipe.retrieve(i.question) for i in items}
    scorer = attribution.Attributor(retriever.embedder.embed_documents)

    def mean_f1() -> float:
        scores = []
        for item in items:
            quote = (
                scorer.extract(item.question, hits[item.question]) if hits[item.question] else None
            )
            text = " ".join(quote.text.split()) if quote is not None else ""
            scores.append(token_f1(text, item.answers))
        return sum(scores) / len(scores)

    current = {name: getattr(attribution, name) for name in GRID}
    print(f"token F1 {mean_f1():.3f}  {json.dumps(current)}  (current)")
    results = []
    for values in itertools.product(*GRID.values()):
        for name, value in zip(GRID, values, strict=True):
            setattr(attribution, name, value)
        results.append((mean_f1(), dict(zip(GRID, values, strict=True))))
    results.sort(key=lambda r: -r[0])
    for f1, setting in results[:5]:
        print(f"token F1 {f1:.3f}  {json.dumps(setting)}")
    print(f"({len(items)} training questions, {len(results)} settings)")


if __name__ == "__main__":
    main()
