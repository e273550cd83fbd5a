"""Attribution: its accuracy on the labelled pairs and its cost in answer latency, side by side.

1. Accuracy: the calibrated attributor (``CALIBRATED``, the bundled MiniLM) on the labelled
   (claim, passage, supported?) pairs of ``tests/data/attribution_pairs.jsonl``: precision,
   recall and F1 of "supported" on the train split and on the held-out split.
   Target: held-out F1 >= 0.9.
2. Cost: the same pipeline (SmolLM2-135M, the sample knowledge base, generated answers of up
   to --max-new-tokens tokens) with attribution on and off, asked the same questions in
   alternating order, round after round; the ratio of mean answer latencies.
   Target: <= 1.10. The quoted answer mode (``extract``) is timed beside them for reference.

Writes bench/results/attribution.json and bench/results/attribution.md. Run it on a quiet
machine (any other job skews the latencies):

    python bench/bench_attribution.py [--rounds 3] [--max-new-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch
from _stats import pct
from calibrate_attribution import evaluate, load_pairs

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.demo import sample_docs_dir, sample_questions
from phi3industry.pipeline.attribution import CALIBRATED, CALIBRATION_BATCHES, Attributor

RESULTS = Path(__file__).resolve().parent / "results"


def accuracy(retriever: Retriever) -> dict:
    """P/R/F1 of the calibrated attributor on each split of the labelled pairs."""
    attributor = Attributor(retriever.embedder.embed_documents, CALIBRATED)
    rows = load_pairs()
    out = {}
    parts = {
        "train": [r for r in rows if r["split"] == "train"],
        "heldout": [r for r in rows if r["split"] == "heldout"],
        **{
            f"heldout, batch {b}": [r for r in rows if r["split"] == "heldout" and r["batch"] == b]
            for b in sorted({r["batch"] for r in rows})
        },
        # every pair, train and held-out, of the batches written after the weights were fitted
        **{
            f"batch {b}, all pairs (written after the fit)": [r for r in rows if r["batch"] == b]
            for b in sorted({r["batch"] for r in rows} - set(CALIBRATION_BATCHES))
        },
    }
    for name, part in parts.items():
        result = evaluate(attributor, part)
        out[name] = {k: result[k] for k in ("n", "precision", "recall", "f1", "by_kind")}
    return out


def latency(retriever: Retriever, rounds: int, max_new_tokens: int) -> dict:
    """Mean answer latency with attribution on, off, and quoting, asked side by side."""
    settings = dict(model="smollm2-135m-instruct", max_new_tokens=max_new_tokens, k=3)
    on = Pipeline(retriever=retriever, config=PipelineConfig(**settings, answer_mode="generate"))
    off = Pipeline(
        retriever=retriever,
        model=on.generator,
        config=PipelineConfig(**settings, answer_mode="generate", attribution=False),
    )
    quote = Pipeline(
        retriever=retriever,
        model=on.generator,
        config=PipelineConfig(**settings, answer_mode="extract"),
    )
    arms = {"attribution on": on, "attribution off": off, "quoted (extract)": quote}
    questions = [q["question"] for q in sample_questions()]
    for pipe in arms.values():  # warm-up: weights, kernels, the embedder, the caches
        pipe.invoke(questions[0])
    times: dict[str, list[float]] = {name: [] for name in arms}
    attribute: list[float] = []
    tokens: list[int] = []
    names = list(arms)
    for r in range(rounds):
        for i, question in enumerate(questions):
            order = names if (r + i) % 2 == 0 else names[::-1]  # neither arm always goes first
            for name in order:
                answer = arms[name].invoke(question)
                times[name].append(answer.timings["total"])
                if name == "attribution on":
                    attribute.append(answer.timings["attribute"])
                    tokens.append(answer.usage["completion_tokens"])
    mean = {name: statistics.fmean(values) for name, values in times.items()}
    return {
        "answers_per_arm": len(times["attribution on"]),
        "mean_latency_s": {k: round(v, 4) for k, v in mean.items()},
        "p50_latency_s": {k: round(pct(v, 50), 4) for k, v in times.items()},
        "ratio_on_over_off": round(mean["attribution on"] / mean["attribution off"], 4),
        "attribute_s": {
            "mean": round(statistics.fmean(attribute), 4),
            "p50": round(pct(attribute, 50), 4),
            "p95": round(pct(attribute, 95), 4),
        },
        "mean_completion_tokens": round(statistics.fmean(tokens), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        retriever = Retriever(RetrieverConfig(path=str(Path(tmp) / "index"), progress=False))
        retriever.sync([str(sample_docs_dir())])
        acc = accuracy(retriever)
        cost = latency(retriever, args.rounds, args.max_new_tokens)
    result = {
        "accuracy": acc,
        "latency": cost,
        "settings": {**vars(args), "machine": platform.platform(), "torch": torch.__version__},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attribution.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    held = acc["heldout"]
    lines = [
        "# Attribution: accuracy and cost",
        "",
        "Written by `python bench/bench_attribution.py` "
        f"(rounds={args.rounds}, max_new_tokens={args.max_new_tokens}, threads={args.threads}).",
        "",
        "## Accuracy on the labelled pairs (`tests/data/attribution_pairs.jsonl`)",
        "",
        "| split | pairs | precision | recall | F1 |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {s['n']} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |"
            for name, s in acc.items()
        ),
        "",
        f"Held-out by kind (right/total): {held['by_kind']}. Target: held-out F1 >= 0.9.",
        "",
        "## Cost in answer latency (SmolLM2-135M, sample knowledge base, side by side)",
        "",
        "| arm | mean s | p50 s |",
        "|---|---|---|",
        *(
            f"| {name} | {cost['mean_latency_s'][name]:.3f} | {cost['p50_latency_s'][name]:.3f} |"
            for name in cost["mean_latency_s"]
        ),
        "",
        f"Attribution on / off: **{cost['ratio_on_over_off']:.3f}x** the mean latency "
        f"(target <= 1.10); attributing took {cost['attribute_s']['p50'] * 1000:.0f} ms at p50, "
        f"{cost['attribute_s']['p95'] * 1000:.0f} ms at p95, for answers of "
        f"{cost['mean_completion_tokens']:.0f} tokens on average "
        f"({cost['answers_per_arm']} answers per arm).",
        "",
    ]
    (RESULTS / "attribution.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
