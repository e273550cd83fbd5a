"""Calibrate attribution's weights on the labelled pairs, and report held-out F1.

Reads ``tests/data/attribution_pairs.jsonl`` (built by ``bench/make_attribution_pairs.py``),
embeds with the bundled MiniLM (the default index embedder), and fits the logistic weights of
``phi3industry.pipeline.attribution.Weights`` on the *train* split only: the features of each
pair are taken at its best candidate span (one span, or two spans of two passages together),
which depends on the weights, so fitting alternates with re-selecting (a few rounds). The
threshold is then chosen for F1 on the train split. Prints the weights to paste into
``CALIBRATED``, and precision/recall/F1 on train and held-out, overall and per kind of pair.

Usage: ``python bench/calibrate_attribution.py [--backend onnx-int8] [--batches 1,2,3,4|all]``
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from phi3industry.pipeline.attribution import (
    CALIBRATED,
    CALIBRATION_BATCHES,
    FEATURES,
    Attributor,
    Weights,
)
from phi3industry.retrieval.embeddings import load_embedder

PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "attribution_pairs.jsonl"


def load_pairs() -> list[dict]:
    return [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line]


def best_features(attributor: Attributor, rows: list[dict]) -> np.ndarray:
    """Each pair's features at the candidate the current weights score highest."""
    out = []
    for row in rows:
        claim, spans = attributor.prepare(row["claim"], row["passages"], row["contexts"])
        options = attributor.candidates(claim, spans)
        feats = [attributor.features(claim, o) for o in options]
        out.append(max(feats, key=attributor.weights.score))
    return np.asarray(out, dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 20000) -> np.ndarray:
    """Plain gradient descent on the L2-regularised log loss; returns [bias, *weights]."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) / len(y) + l2 * np.r_[0.0, w[1:]]
        w -= 0.5 * grad
    return w


def prf(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum(pred & y))
    precision = tp / max(1.0, float(np.sum(pred)))
    recall = tp / max(1.0, float(np.sum(y)))
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return precision, recall, f1


def evaluate(attributor: Attributor, rows: list[dict]) -> dict:
    scores = np.asarray([attributor.score(r["claim"], r["passages"], r["contexts"]) for r in rows])
    pred = scores >= attributor.weights.threshold
    y = np.asarray([r["supported"] for r in rows])
    p, r, f1 = prf(pred, y)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(rows, pred == y, strict=True):
        by_kind[row["kind"]].append(bool(ok))
    return {
        "n": len(rows),
        "precision": p,
        "recall": r,
        "f1": f1,
        "accuracy": float(np.mean(pred == y)),
        "by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_kind.items())},
        "errors": [
            {"claim": row["claim"], "supported": row["supported"], "score": round(float(s), 3)}
            for row, s, ok in zip(rows, scores, pred == y, strict=True)
            if not ok
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="onnx-int8", help="the index embedder's backend")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--batches",
        default=",".join(map(str, CALIBRATION_BATCHES)),
        help="the batches of pairs to fit and check on, comma-separated, or 'all' "
        "(default: CALIBRATION_BATCHES; set it to what the pasted weights were fitted on)",
    )
    args = parser.parse_args()
    embedder = load_embedder(backend=args.backend)
    rows = load_pairs()
    if args.batches != "all":
        batches = {int(b) for b in args.batches.split(",")}
        later = [r for r in rows if r["batch"] not in batches]
        rows = [r for r in rows if r["batch"] in batches]
    else:
        later = []
    train = [r for r in rows if r["split"] == "train"]
    heldout = [r for r in rows if r["split"] == "heldout"]
    y = np.asarray([r["supported"] for r in train], dtype=np.float64)
    attributor = Attributor(embedder.embed_documents, CALIBRATED)
    for _ in range(args.rounds):
        x = best_features(attributor, train)
        w = fit_logistic(x, y)
        attributor.weights = Weights(*[float(round(v, 3)) for v in w], threshold=0.5)
    # the threshold: best F1 on train
    x = best_features(attributor, train)
    probs = np.asarray([attributor.weights.score(f) for f in x])
    thresholds = np.linspace(0.2, 0.8, 61)
    best = max(thresholds, key=lambda t: (prf(probs >= t, y.astype(bool))[2], -abs(t - 0.5)))
    fields = dict(zip(("bias", *FEATURES), [float(round(v, 3)) for v in w], strict=True))
    attributor.weights = Weights(**fields, threshold=float(round(best, 3)))
    print(f"CALIBRATED = {attributor.weights!r}\n")
    for name, part in (("train", train), ("heldout", heldout), ("later batches, all", later)):
        if not part:
            continue
        result = evaluate(attributor, part)
        print(
            f"{name}: n={result['n']} precision={result['precision']:.3f} "
            f"recall={result['recall']:.3f} F1={result['f1']:.3f} "
            f"accuracy={result['accuracy']:.3f}\n  by kind: {result['by_kind']}"
        )
        for err in result["errors"]:
            print(f"  wrong: {err}")


if __name__ == "__main__":
    main()
