"""Tried and not kept: a learned verifier trained on contrast pairs made from the documents.

The attribution rules miss claims that reuse a passage's words to say something else (a
negation flipped, "front" for "rear", another product's name). No entailment model can be
downloaded here, so this tries the next best thing: a cross-encoder made from the bundled
MiniLM (mean-pooled, with a fresh linear head), trained to tell a passage's own sentences
from altered copies of them, on the documents the labelled pairs come from (the sample
knowledge base, the Django, SQLite and Debian FAQs). Nothing of the labelled pairs is used in
training.

- supported: a sentence of the span, its first clause, the sentence without a parenthesis;
- unsupported: the sentence negated (or its negation removed), a word swapped for its
  antonym, a number changed, a name or code swapped for another of the same document, and a
  sentence of another span of the document.

It then asks whether the verifier's probability, at each labelled pair's best candidate
span, adds to the rules' signals: 5-fold cross-validation on the train split of
``tests/data/attribution_pairs.jsonl`` (the held-out split is not read), the logistic model
refitted per fold with and without it. Writes ``bench/results/contrast-verifier.{md,json}``.

Run: ``python bench/try_contrast_verifier.py`` (about 15 minutes on 2 cores; needs
python-django-doc, sqlite3-doc and debian-faq).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
from calibrate_attribution import fit_logistic, load_pairs, prf

from phi3industry.demo import sample_kb_dir
from phi3industry.pipeline.attribution import (
    CALIBRATED,
    Attributor,
    passage_spans,
    split_claims,
)
from phi3industry.retrieval.documents import load_document
from phi3industry.retrieval.embeddings import bundled_model_dir, load_embedder

RESULTS = Path(__file__).resolve().parent / "results"
DOCUMENTS = [
    *sorted(p for p in (sample_kb_dir() / "docs").rglob("*") if p.is_file()),
    *sorted(Path("/usr/share/doc/python-django-doc/html/faq").glob("*.html")),
    Path("/usr/share/doc/sqlite3/faq.html"),
    *sorted(Path("/usr/share/doc/debian/FAQ").glob("*.en.html")),
]

_AUX = r"is|are|was|were|will|must|should|does|do|did|has|have|may|could|would"
_ADD_NOT = re.compile(rf"\b(?:{_AUX})\b(?! not\b)")
_REMOVE_NOT = [
    (re.compile(rf"\b({_AUX}) not\b"), r"\1"),
    (re.compile(r"\bcannot\b|\bcan't\b"), "can"),
    (re.compile(r"\b(is|are|was|were|does|do|did|has|have|could|would|should)n't\b"), r"\1"),
    (re.compile(r"\bnever\b"), "always"),
]
_ANTONYMS = [
    ("front", "rear"),
    ("before", "after"),
    ("enabled", "disabled"),
    ("always", "never"),
    ("minimum", "maximum"),
    ("first", "last"),
    ("inside", "outside"),
    ("required", "optional"),
    ("increase", "decrease"),
    ("above", "below"),
    ("more", "less"),
    ("higher", "lower"),
    ("on", "off"),
    ("start", "stop"),
    ("automatically", "manually"),
    ("include", "exclude"),
    ("larger", "smaller"),
    ("add", "remove"),
    ("same", "different"),
    ("internal", "external"),
    ("valid", "invalid"),
]
_NUMBER = re.compile(r"(?<![\w.-])\d+(?:[.,]\d+)?(?![\w-])")
_NAME = re.compile(
    r"(?<=[a-z0-9,)] )[A-Z][A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*|\b[A-Z]{1,4}-[A-Z0-9-]+\b"
)
_CLAUSE = re.compile(r",\s+|;\s+|\s+and\s+|\s+but\s+|\s+which\s+")


def negate(s: str, rng: random.Random) -> str | None:
    for pattern, repl in _REMOVE_NOT:
        if pattern.search(s):
            return pattern.sub(repl, s, count=1)
    if m := re.search(r"\bcan\b", s):
        return s[: m.start()] + "cannot" + s[m.end() :]
    if m := _ADD_NOT.search(s):
        return s[: m.end()] + " not" + s[m.end() :]
    return None


def antonym(s: str, rng: random.Random) -> str | None:
    options = [
        (x, y) for a, b in _ANTONYMS for x, y in ((a, b), (b, a)) if re.search(rf"\b{x}\b", s)
    ]
    if not options:
        return None
    x, y = rng.choice(options)
    return re.sub(rf"\b{x}\b", y, s, count=1)


def swap(s: str, rng: random.Random, pattern: re.Pattern[str], pool: list[str]) -> str | None:
    matches = list(pattern.finditer(s))
    if not matches:
        return None
    m = rng.choice(matches)
    others = [p for p in pool if p != m.group() and p not in s]
    if pattern is _NUMBER and m.group().isdigit():
        others += [str(int(m.group()) * 2), str(int(m.group()) + 1)]
    return s[: m.start()] + rng.choice(others) + s[m.end() :] if others else None


def first_clause(s: str, rng: random.Random) -> str | None:
    parts = [p for p in _CLAUSE.split(s) if len(p.split()) >= 4]
    if len(parts) < 2:
        return None
    return parts[0].rstrip(" ,;") + "."


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]{3,}", text.lower()))


def contrast_pairs(
    paths: list[Path], per_document: int, seed: int = 0
) -> list[tuple[str, str, float, str]]:
    """(span, hypothesis, label, how it was made) from the documents' own sentences."""
    rng = random.Random(seed)
    out: list[tuple[str, str, float, str]] = []
    for path in paths:
        text = load_document(path).text
        spans = [(a, b) for a, b in passage_spans(text) if 30 <= b - a <= 600]
        numbers, names = sorted(set(_NUMBER.findall(text))), sorted(set(_NAME.findall(text)))
        sentences = list(
            dict.fromkeys(
                (text[a:b], text[a:b][x:y])
                for a, b in spans
                for x, y in split_claims(text[a:b])
                if len(text[a:b][x:y].split()) >= 4
            )
        )
        rng.shuffle(sentences)
        for span, s in sentences[:per_document]:
            out.append((span, s, 1.0, "exact"))
            for how, made in (
                ("first clause", first_clause(s, rng)),
                ("no parenthesis", re.sub(r"\s*\([^)]*\)", "", s)),
            ):
                if made and made != s and len(made.split()) >= 4:
                    out.append((span, made, 1.0, how))
            wrong = [
                (how, made)
                for how, made in (
                    ("negated", negate(s, rng)),
                    ("antonym", antonym(s, rng)),
                    ("number", swap(s, rng, _NUMBER, numbers)),
                    ("name", swap(s, rng, _NAME, names)),
                )
                if made and made != s
            ]
            other = rng.choice(sentences)[1]
            if not _words(other) <= _words(span):
                wrong.append(("other sentence", other))
            rng.shuffle(wrong)
            out += [(span, made, 0.0, how) for how, made in wrong[:3]]
    rng.shuffle(out)
    return out


class Verifier:
    """MiniLM over (span, claim), mean-pooled, with a linear head: P(span supports claim)."""

    def __init__(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
        self.encoder = AutoModel.from_pretrained(str(bundled_model_dir()))
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)

    def logits(self, pairs: list[tuple[str, str]]) -> object:
        features = self.tokenizer(
            [p for p, _ in pairs],
            [h for _, h in pairs],
            padding=True,
            truncation="longest_first",
            max_length=128,
            return_tensors="pt",
        )
        hidden = self.encoder(**features).last_hidden_state
        mask = features["attention_mask"].unsqueeze(-1).float()
        return self.head((hidden * mask).sum(1) / mask.sum(1)).view(-1)

    def train(self, rows: list[tuple[str, str, float, str]], lr: float, seed: int) -> list[float]:
        torch = self.torch
        torch.manual_seed(seed)
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        steps = (len(rows) + 15) // 16
        optimizer = torch.optim.AdamW(
            [
                {"params": self.encoder.parameters(), "lr": lr},
                {"params": self.head.parameters(), "lr": lr * 10},
            ]
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / 20) * max(0.02, 1 - s / steps)
        )
        loss_fn = torch.nn.BCEWithLogitsLoss()
        self.encoder.train()
        losses = []
        for start in range(0, len(rows), 16):
            batch = [rows[i] for i in order[start : start + 16]]
            loss = loss_fn(
                self.logits([(r[0], r[1]) for r in batch]), torch.tensor([r[2] for r in batch])
            )
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        self.encoder.eval()
        return losses

    def probabilities(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out: list[float] = []
        with self.torch.no_grad():
            for start in range(0, len(pairs), 32):
                out += self.logits(pairs[start : start + 32]).tolist()
        return 1.0 / (1.0 + np.exp(-np.asarray(out)))


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 5) -> dict[str, float]:
    """Precision, recall, F1 of the logistic model, each fold fitted on the others."""
    idx = np.random.default_rng(0).permutation(len(y))
    parts = np.array_split(idx, folds)
    predicted = np.zeros(len(y), dtype=bool)
    for k in range(folds):
        fit = np.concatenate([parts[j] for j in range(folds) if j != k])
        w = fit_logistic(x[fit], y[fit].astype(float))
        p = 1.0 / (1.0 + np.exp(-(np.c_[np.ones(len(x)), x] @ w)))
        threshold = max(np.linspace(0.2, 0.8, 61), key=lambda t: prf(p[fit] >= t, y[fit])[2])
        predicted[parts[k]] = p[parts[k]] >= threshold
    precision, recall, f1 = prf(predicted, y)
    return {"precision": precision, "recall": recall, "f1": f1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-document", type=int, default=100, help="sentences altered")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    documents = [p for p in DOCUMENTS if p.exists()]
    rows = contrast_pairs(documents, args.per_document, args.seed)
    kinds = Counter(r[3] for r in rows)
    print(f"{len(rows)} contrast pairs from {len(documents)} documents: {dict(kinds)}", flush=True)
    verifier = Verifier()
    started = time.perf_counter()
    losses = verifier.train(rows, args.lr, args.seed)
    train_seconds = time.perf_counter() - started
    print(f"trained {len(losses)} steps in {train_seconds:.0f} s", flush=True)

    attributor = Attributor(load_embedder(backend="onnx-int8").embed_documents, CALIBRATED)
    pairs = [p for p in load_pairs() if p["split"] == "train"]
    features, shown = [], []
    for pair in pairs:
        claim, spans = attributor.prepare(pair["claim"], pair["passages"], pair["contexts"])
        best = max(
            attributor.candidates(claim, spans),
            key=lambda o: attributor.weights.score(attributor.features(claim, o)),
        )
        features.append(attributor.features(claim, best))
        shown.append((" ".join(s.text for s in best), claim.text))
    x, y = np.asarray(features), np.asarray([p["supported"] for p in pairs])
    v = verifier.probabilities(shown)
    rules_say = np.asarray([CALIBRATED.score(f) for f in features]) >= CALIBRATED.threshold
    ranks = np.argsort(np.argsort(v))
    positives = y.sum()
    auc = (ranks[y].sum() - positives * (positives - 1) / 2) / (positives * (len(y) - positives))
    result = {
        "contrast_pairs": len(rows),
        "by_kind": dict(kinds),
        "documents": len(documents),
        "train_steps": len(losses),
        "train_seconds": round(train_seconds, 1),
        "last_loss": round(float(np.mean(losses[-20:])), 3),
        "labelled_train_pairs": len(pairs),
        "verifier_auc": round(float(auc), 3),
        "cv_rules": cross_validated(x, y),
        "cv_rules_and_verifier": cross_validated(np.c_[x, v], y),
        "cv_verifier_alone": cross_validated(v[:, None], y),
        "verifier_median": {
            name: round(float(np.median(v[mask])), 3)
            for name, mask in (
                ("rules right, supported", rules_say & y),
                ("rules wrong, unsupported passed", rules_say & ~y),
                ("rules wrong, supported missed", ~rules_say & y),
                ("rules right, unsupported", ~rules_say & ~y),
            )
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "contrast-verifier.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    lines = [
        "# Tried and not kept: a contrast-trained verifier (`bench/try_contrast_verifier.py`)",
        "",
        f"{result['contrast_pairs']} contrast pairs from {result['documents']} documents "
        f"({', '.join(f'{k} {n}' for k, n in kinds.most_common())}); MiniLM, mean-pooled, "
        f"linear head, {result['train_steps']} steps of 16 in {result['train_seconds']:.0f} s "
        f"(last loss {result['last_loss']}).",
        "",
        f"On the {len(pairs)} train pairs of `tests/data/attribution_pairs.jsonl` "
        f"(5-fold cross-validation; AUC of the verifier alone {result['verifier_auc']}):",
        "",
        "| signals | precision | recall | F1 |",
        "|---|---|---|---|",
    ]
    for name, key in (
        ("the rules' five", "cv_rules"),
        ("the rules' five + verifier", "cv_rules_and_verifier"),
        ("verifier alone", "cv_verifier_alone"),
    ):
        r = result[key]
        lines.append(f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |")
    lines += ["", "Median verifier probability, by what the shipped rules say:", ""]
    lines += [f"- {k}: {m}" for k, m in result["verifier_median"].items()]
    (RESULTS / "contrast-verifier.md").write_text("\n".join(lines) + "\n", "utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
