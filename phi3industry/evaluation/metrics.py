"""Answer and retrieval metrics, bootstrap confidence intervals and paired comparisons.

Answer metrics follow the SQuAD conventions (lower-case, drop punctuation and the articles
``a``/``an``/``the``, collapse whitespace) and take the best score over the acceptable
answers. Retrieval metrics compare retrieved hits with gold sources, which may be chunk ids
or document paths (a gold path matches a hit whose source path ends with it, so paths
relative to the knowledge base's root work).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from phi3industry.qa import (
    answer_list,
    source_matches,
)

_DONT_KNOW = re.compile(
    r"\b(i (do not|don't|cannot|can't|could not|couldn't) (know|find|answer|tell)|"
    r"(the )?sources? (do|does) not (contain|say|mention)|not (found|mentioned) in the sources?|"
    r"no information (about|on))\b",
    re.I,
)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, answers: str | Sequence[str]) -> float:
    """Best ROUGE-L F-measure (rouge-score, Porter stemming) over the acceptable answers."""
    scorer = _rouge_scorer()
    return max(float(scorer.score(a, prediction)["rougeL"].fmeasure) for a in answer_list(answers))


def says_dont_know(text: str) -> bool:
    """Whether an answer declines to answer ("I do not know", "the sources do not say")."""
    return bool(_DONT_KNOW.search(text))


def _is_gold(hit: tuple[str, str], gold: Sequence[str]) -> bool:
    return any(source_matches(g, hit[0], hit[1]) for g in gold)


def recall_at_k(retrieved: Sequence[tuple[str, str]], gold: Sequence[str], k: int) -> float:
    """Fraction of the gold sources found among the first ``k`` retrieved hits.

    Args:
        retrieved: ``(chunk_id, source_path)`` of the hits, best first.
        gold: Gold chunk ids or document paths.
        k: Cut-off.

    Returns:
        Found gold sources / gold sources (0.0 when ``gold`` is empty).
    """
    if not gold:
        return 0.0
    top = list(retrieved)[:k]
    found = sum(1 for g in gold if any(source_matches(g, cid, src) for cid, src in top))
    return found / len(gold)


def mrr(retrieved: Sequence[tuple[str, str]], gold: Sequence[str]) -> float:
    """Reciprocal rank of the first retrieved hit that is a gold source (0.0 if none)."""
    for rank, hit in enumerate(retrieved, 1):
        if _is_gold(hit, gold):
            return 1.0 / rank
    return 0.0


def citation_precision(cited: Sequence[tuple[str, str]], gold: Sequence[str]) -> float | None:
    """Fraction of the cited sources that are gold sources; None when nothing is cited."""
    if not cited:
        return None
    return sum(1 for hit in cited if _is_gold(hit, gold)) / len(cited)


def citation_recall(cited: Sequence[tuple[str, str]], gold: Sequence[str]) -> float:
    """Fraction of the gold sources that the answer cites (0 when it cites nothing)."""
    if not gold:
        raise ValueError("citation_recall needs at least one gold source")
    return sum(1 for g in gold if any(source_matches(g, *hit) for hit in cited)) / len(gold)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    The family-wise error rate stays under alpha when every adjusted p-value under alpha is
    called significant, however many comparisons a report makes.

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = round(running, 12)
    return adjusted


# --------------------------------------------------------------------------------------
# Uncertainty
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval.

    Attributes:
        mean: Mean over the questions where the metric is defined.
        low: Lower bound of the confidence interval.
        high: Upper bound of the confidence interval.
        n: Number of questions where the metric is defined.
    """

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"mean", "ci": [low, high], "n"}`` (JSON-ready)."""
        return {"mean": self.mean, "ci": [self.low, self.high], "n": self.n}

    def format(self, percent: bool = True) -> str:
        """Return ``"mean [low, high]"``, as percentages by default."""
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        if percent:
            return f"{100 * self.mean:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def bootstrap_ci(
    values: Sequence[float | None],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Estimate:
    """Percentile bootstrap confidence interval of the mean (``None`` values are skipped).

    Args:
        values: Per-question scores.
        n_resamples: Bootstrap resamples.
        confidence: Coverage of the interval.
        seed: Random seed (the same seed gives the same interval).
        statistic: Applied to a ``(n_resamples, n)`` array along axis 1 (default: mean).

    Returns:
        The :class:`Estimate` (NaNs and ``n=0`` when no value is defined).
    """
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    stat = statistic or (lambda a: a.mean(axis=1))
    point = float(stat(data[None, :])[0])
    if data.size == 1:
        return Estimate(point, point, point, 1)
    rng = np.random.default_rng(seed)
    samples = stat(data[rng.integers(0, data.size, size=(n_resamples, data.size))])
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return Estimate(point, float(low), float(high), int(data.size))


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two strategies on one metric, over the same questions.

    Attributes:
        a: First strategy.
        b: Second strategy.
        metric: The metric compared.
        diff: Mean of ``b - a`` with its bootstrap confidence interval.
        wins: Questions where ``b`` scored higher.
        ties: Questions where both scored the same.
        losses: Questions where ``b`` scored lower.
        p_value: Two-sided paired sign-flip permutation test of "no difference".
        p_holm: ``p_value`` corrected for the report's other comparisons on the same metric
            (Holm-Bonferroni); None for a comparison made alone.
    """

    a: str
    b: str
    metric: str
    diff: Estimate
    wins: int
    ties: int
    losses: int
    p_value: float
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        """Whether the 95% interval excludes zero and the permutation test agrees (p < 0.05).

        With few questions the percentile bootstrap is too narrow; the sign-flip test
        guards against calling such a difference significant. Within a report the test's
        p-value is the Holm-corrected one, so that many comparisons do not find a difference
        by chance.
        """
        excludes_zero = self.diff.low > 0 or self.diff.high < 0
        p = self.p_value if self.p_holm is None else self.p_holm
        return self.diff.n > 1 and excludes_zero and p < 0.05

    def to_dict(self) -> dict[str, Any]:
        """Return the comparison as a JSON-ready dict."""
        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "diff": self.diff.to_dict(),
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "significant": self.significant,
        }


def paired_comparison(
    a_name: str,
    a: Sequence[float | None],
    b_name: str,
    b: Sequence[float | None],
    metric: str,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Compare two strategies question by question (``b - a``).

    Only questions where both scores are defined count. The interval is a bootstrap of the
    mean difference; the p-value comes from randomly flipping the sign of each difference.

    Raises:
        ValueError: If ``a`` and ``b`` do not have one score per question each.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    diffs = np.asarray(
        [y - x for x, y in zip(a, b, strict=True) if x is not None and y is not None], float
    )
    estimate = bootstrap_ci(list(diffs), n_resamples=n_resamples, seed=seed)
    wins = int((diffs > 1e-12).sum())
    losses = int((diffs < -1e-12).sum())
    ties = int(diffs.size - wins - losses)
    p_value = 1.0
    if diffs.size and np.any(np.abs(diffs) > 1e-12):
        rng = np.random.default_rng(seed + 1)
        signs = rng.choice([-1.0, 1.0], size=(n_resamples, diffs.size))
        null = np.abs((signs * diffs).mean(axis=1))
        observed = abs(diffs.mean())
        p_value = float((1 + np.sum(null >= observed - 1e-12)) / (n_resamples + 1))
    return Comparison(a_name, b_name, metric, estimate, wins, ties, losses, p_value)
