"""Evaluation of a (tuned) causal LM: perplexity, domain-vocabulary score, forgetting.

* Perplexity: ``exp`` of the mean next-token negative log-likelihood over every predicted
  token (exact token-weighted mean, not a mean of per-text perplexities).
* Domain terms: words frequent in the domain corpus and rare in general English, ranked by
  TF-IDF with the domain documents and the bundled general-English paragraphs as the
  document collection.
* Domain-vocabulary score: the mean log-probability (nats per token) of the domain terms'
  tokens *in context*, i.e. where the terms occur in held-out text. It rises as the model
  learns the company's vocabulary; ``exp(-score)`` is the terms' own perplexity.
* General perplexity: perplexity on the bundled general-English sample, to show forgetting.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*")
_STOPWORDS_TEXT = """
a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each few
for from further had has have having he her here hers herself him himself his how i if
in into is it its itself just me more most my myself no nor not now of off on once only
or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you
your yours yourself yourselves must may might shall use used using per via within
without each every one two three four five six seven eight nine ten
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def general_text() -> str:
    """Return the bundled general-English sample (a few KB of everyday prose)."""
    path = (
        Path(__file__).resolve().parent.parent
        / "assets"
        / "general-english"
        / "general_english.txt"
    )
    return path.read_text(encoding="utf-8")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def mine_domain_terms(
    texts: Sequence[str], *, general: str | None = None, top_k: int = 40, min_count: int = 2
) -> list[str]:
    """Find the words that make a corpus domain-specific (TF-IDF against general text).

    Args:
        texts: Domain documents (raw text, Q&A answers, chunks).
        general: General-English text to contrast with (default: the bundled sample).
        top_k: How many terms to return.
        min_count: Minimum occurrences in the domain texts (drops typos and one-offs).

    Returns:
        Lower-case terms, most domain-specific first.
    """
    general_docs = _paragraphs(general if general is not None else general_text())
    general_words = {w for doc in general_docs for w in _words(doc)}
    domain_docs = [_words(t) for t in texts if t.strip()]
    if not domain_docs:
        return []
    n_docs = len(domain_docs) + len(general_docs)
    df: Counter[str] = Counter()
    for doc in domain_docs:
        df.update(set(doc))
    for paragraph in general_docs:
        df.update(set(_words(paragraph)))
    tf: Counter[str] = Counter(w for doc in domain_docs for w in doc)
    scored = []
    for word, count in tf.items():
        if (
            count < min_count
            or len(word) < 3
            or word in _STOPWORDS
            or word in general_words
            or word.isdigit()
        ):
            continue
        idf = math.log((1 + n_docs) / (1 + df[word])) + 1.0
        scored.append((count * idf, word))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [w for _, w in scored[:top_k]]


def _windows(ids: list[int], max_length: int) -> list[list[int]]:
    return [
        ids[i : i + max_length]
        for i in range(0, len(ids), max_length)
        if len(ids[i : i + max_length]) > 1
    ]


def _token_logprobs(
    model: Any, rows: list[list[int]], batch_size: int, pad_id: int
) -> list[list[float]]:
    """Log-probability of each token given the tokens before it (first token: NaN)."""
    import torch

    device = next(model.parameters()).device
    out: list[list[float]] = []
    # no_grad, not inference_mode: peft's DoRA re-assigns a 4-bit base weight on CPU during
    # the forward, and an inference tensor left in the model breaks the training after it.
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            batch = rows[b : b + batch_size]
            width = max(len(r) for r in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, r in enumerate(batch):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
            ).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            picked = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
            for i, r in enumerate(batch):
                out.append([float("nan"), *picked[i, : len(r) - 1].tolist()])
    return out


def perplexity_of_rows(
    model: Any, rows: Iterable[dict[str, list[int]]], *, batch_size: int = 4, pad_id: int = 0
) -> tuple[float, int]:
    """Perplexity over rows of ``input_ids``/``labels`` (``-100`` labels are skipped).

    Rows may be packed (with ``position_ids``); they are scored one example at a time so
    that the result does not depend on packing.

    Returns:
        ``(perplexity, number of scored tokens)``.
    """
    seqs: list[tuple[list[int], list[int]]] = []
    for row in rows:
        ids, labels = row["input_ids"], row["labels"]
        pos = row.get("position_ids")
        if pos is None:
            seqs.append((ids, labels))
            continue
        start = 0
        for j in range(1, len(ids) + 1):
            if j == len(ids) or pos[j] == 0:
                seqs.append((ids[start:j], labels[start:j]))
                start = j
    logps = _token_logprobs(model, [s[0] for s in seqs], batch_size, pad_id)
    total, count = 0.0, 0
    for (_, labels), lp in zip(seqs, logps, strict=True):
        for j in range(1, len(labels)):
            if labels[j] != -100:
                total -= lp[j]
                count += 1
    return (math.exp(total / count) if count else float("nan")), count


def text_metrics(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    terms: Sequence[str] = (),
    max_length: int = 512,
    batch_size: int = 4,
) -> dict[str, float]:
    """Perplexity of raw texts and the mean log-prob of domain terms where they occur.

    Args:
        model: A causal LM.
        tokenizer: Its (fast) tokenizer.
        texts: Texts to score.
        terms: Domain terms (lower case); their tokens' log-probs give the vocabulary score.
        max_length: Window length; longer texts are scored in consecutive windows.
        batch_size: Windows per forward pass.

    Returns:
        ``perplexity``, ``num_tokens``, and when terms occur ``domain_term_logprob``
        (nats/token, higher is better), ``domain_term_perplexity`` and ``domain_term_tokens``.
    """
    pattern = (
        re.compile(
            r"\b(" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b",
            re.I,
        )
        if terms
        else None
    )
    rows: list[list[int]] = []
    term_flags: list[list[bool]] = []
    for text in texts:
        if not text.strip():
            continue
        enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        spans = [m.span() for m in pattern.finditer(text)] if pattern else []
        flags = [
            end > start and any(s <= start < e or s < end <= e for s, e in spans)
            for start, end in enc["offset_mapping"]
        ]
        for i in range(0, len(ids), max_length):
            if len(ids[i : i + max_length]) > 1:
                rows.append(ids[i : i + max_length])
                term_flags.append(flags[i : i + max_length])
    if not rows:
        return {"perplexity": float("nan"), "num_tokens": 0}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logps = _token_logprobs(model, rows, batch_size, int(pad_id))
    total = 0.0
    count = 0
    term_total = 0.0
    term_count = 0
    for lp, flags in zip(logps, term_flags, strict=True):
        for j in range(1, len(lp)):
            total -= lp[j]
            count += 1
            if flags[j]:
                term_total += lp[j]
                term_count += 1
    out: dict[str, float] = {"perplexity": math.exp(total / count), "num_tokens": count}
    if term_count:
        mean = term_total / term_count
        out.update(
            domain_term_logprob=mean,
            domain_term_perplexity=math.exp(-mean),
            domain_term_tokens=term_count,
        )
    return out


@lru_cache(maxsize=1)
def _general_paragraphs() -> tuple[str, ...]:
    return tuple(_paragraphs(general_text()))


def general_perplexity(model: Any, tokenizer: Any, *, max_length: int = 512) -> float:
    """Perplexity on the bundled general-English sample (forgetting check)."""
    return text_metrics(model, tokenizer, list(_general_paragraphs()), max_length=max_length)[
        "perplexity"
    ]


__all__ = [
    "general_perplexity",
    "general_text",
    "mine_domain_terms",
    "perplexity_of_rows",
    "text_metrics",
]
