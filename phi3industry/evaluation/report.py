"""The evaluation report: per-strategy metrics with CIs, paired comparisons, JSON/Markdown/PNG."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3industry.evaluation.metrics import Comparison, Estimate

#: Metric keys, in report order. Scores are fractions in [0, 1]; latency is in seconds.
METRICS = (
    "exact_match",
    "token_f1",
    "token_f1_text",
    "rouge_l",
    "rouge_l_text",
    "judge",
    "recall@k",
    "mrr",
    "groundedness",
    "gold_support",
    "cited",
    "citation_precision",
    "citation_recall",
    "answered_from_sources",
    "abstention",
)
LATENCY = "latency_s"
#: Metrics the paired comparisons and the advisor use, most important first.
PRIMARY = ("token_f1", "rouge_l", "exact_match")
#: Every metric compared pair by pair (p-values Holm-corrected within each metric).
COMPARED = (*PRIMARY, "token_f1_text", "judge", "gold_support")
_LABELS = {
    "exact_match": "EM",
    "token_f1": "F1",
    "token_f1_text": "F1 (text)",
    "rouge_l": "ROUGE-L",
    "rouge_l_text": "ROUGE-L (text)",
    "judge": "Judge",
    "recall@k": "Recall@k",
    "mrr": "MRR",
    "groundedness": "Grounded",
    "gold_support": "Gold support",
    "cited": "Cites",
    "citation_precision": "Cite prec.",
    "citation_recall": "Cite recall",
    "answered_from_sources": "From sources",
    "abstention": "Abstain",
    LATENCY: "Latency s",
}
#: What each metric measures (the report's legend).
DESCRIPTIONS = {
    "exact_match": "the final answer equals a reference (SQuAD normalization)",
    "token_f1": "token F1 of the final answer (after an `Answer:` line, markers removed)",
    "token_f1_text": "token F1 of the whole answer text (markers removed)",
    "rouge_l": "ROUGE-L of the final answer",
    "rouge_l_text": "ROUGE-L of the whole answer text",
    "judge": "an LLM judge's verdict against the reference (1 correct, 0.5 partly, 0 wrong)",
    "recall@k": "share of the gold sources among the sources shown to the model",
    "mrr": "reciprocal rank of the first gold source shown",
    "groundedness": "share of the answer's claims supported by the sources it was shown",
    "gold_support": "share of the answer's claims supported by the gold document (any strategy)",
    "cited": "share of answers (not abstained) citing at least one source",
    "citation_precision": "share of the cited sources that are gold (answers that cite)",
    "citation_recall": "share of the gold sources cited (answers not abstained)",
    "answered_from_sources": "answered (not abstained) and cited a source",
    "abstention": "abstained or said it does not know",
}
_CHART_METRICS = (
    "token_f1",
    "rouge_l",
    "recall@k",
    "groundedness",
    "gold_support",
    "citation_precision",
)


@dataclass
class StrategyResult:
    """One strategy's answers and metrics.

    Attributes:
        name: The strategy (``base``, ``rag``, ``finetuned``, ``rag+finetuned``, ``raft+rag``).
        metrics: Metric key -> mean with 95% bootstrap CI (``n`` = questions where defined).
        records: One dict per question: the prediction, the per-question scores, the
            retrieved and cited sources, latency.
    """

    name: str
    metrics: dict[str, Estimate]
    records: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready dict."""
        return {
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "records": self.records,
        }


def _estimate(data: dict[str, Any]) -> Estimate:
    low, high = data.get("ci", [math.nan, math.nan])
    mean = data.get("mean")
    return Estimate(
        math.nan if mean is None else float(mean),
        math.nan if low is None else float(low),
        math.nan if high is None else float(high),
        int(data.get("n", 0)),
    )


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


@dataclass
class Report:
    """What :func:`phi3industry.evaluation.evaluate` measured.

    Attributes:
        results: Strategy name -> :class:`StrategyResult`, in evaluation order.
        comparisons: Paired comparisons of every pair of strategies on the primary metrics.
        n_questions: Held-out questions asked under every strategy.
        k: Retrieval cut-off of ``recall@k``.
        settings: The settings of the run (model, adapters, retrieval, generation).

    Example:
        >>> report = evaluate(pipe, "questions.jsonl", strategies=["base", "rag"])  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
        >>> report.save("eval-output")  # doctest: +SKIP
    """

    results: dict[str, StrategyResult]
    comparisons: list[Comparison] = field(default_factory=list)
    n_questions: int = 0
    k: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def strategies(self) -> list[str]:
        """The strategies evaluated, in order."""
        return list(self.results)

    def metric(self, strategy: str, key: str) -> Estimate:
        """Return one strategy's estimate of one metric."""
        return self.results[strategy].metrics[key]

    def best(self, metric: str = "token_f1") -> str:
        """The strategy with the highest mean ``metric`` (ties: the earlier one)."""
        scored = [
            (s, r.metrics[metric].mean)
            for s, r in self.results.items()
            if metric in r.metrics and r.metrics[metric].n > 0
        ]
        if not scored:
            raise ValueError(f"No strategy has a value for metric {metric!r}.")
        return max(scored, key=lambda item: item[1])[0]

    def comparison(self, a: str, b: str, metric: str = "token_f1") -> Comparison | None:
        """The paired comparison of ``b`` against ``a`` on ``metric`` (sign-adjusted)."""
        for c in self.comparisons:
            if c.metric != metric:
                continue
            if (c.a, c.b) == (a, b):
                return c
            if (c.a, c.b) == (b, a):
                flipped = Estimate(-c.diff.mean, -c.diff.high, -c.diff.low, c.diff.n)
                return Comparison(
                    a, b, metric, flipped, c.losses, c.ties, c.wins, c.p_value, c.p_holm
                )
        return None

    # -- serialization ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-ready dict (NaN becomes ``null``).

        Keys: ``n_questions``, ``k``, ``settings``, ``strategies`` (name -> ``metrics`` ->
        key -> ``{"mean", "ci", "n"}``, and ``records``), ``comparisons``.
        """
        return _nan_to_none(
            {
                "n_questions": self.n_questions,
                "k": self.k,
                "metric_keys": [*METRICS, LATENCY],
                "settings": self.settings,
                "strategies": {name: r.to_dict() for name, r in self.results.items()},
                "comparisons": [c.to_dict() for c in self.comparisons],
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved ``report.json``)."""
        results = {
            name: StrategyResult(
                name,
                {k: _estimate(v) for k, v in body.get("metrics", {}).items()},
                list(body.get("records", [])),
            )
            for name, body in data.get("strategies", {}).items()
        }
        comparisons = [
            Comparison(
                c["a"],
                c["b"],
                c["metric"],
                _estimate(c["diff"]),
                int(c["wins"]),
                int(c["ties"]),
                int(c["losses"]),
                float(c["p_value"]),
                None if c.get("p_holm") is None else float(c["p_holm"]),
            )
            for c in data.get("comparisons", [])
        ]
        return cls(
            results,
            comparisons,
            int(data.get("n_questions", 0)),
            int(data.get("k", 0)),
            dict(data.get("settings", {})),
        )

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read a ``report.json`` written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # -- rendering ----------------------------------------------------------------------

    def table(self) -> str:
        """Return the metric table as Markdown: mean [95% CI], in percent; latency in s."""
        keys = [
            k for k in (*METRICS, LATENCY) if any(k in r.metrics for r in self.results.values())
        ]
        header = "| strategy | " + " | ".join(_LABELS[k] for k in keys) + " |"
        lines = [header, "|" + "---|" * (len(keys) + 1)]
        for name, result in self.results.items():
            cells = []
            for key in keys:
                est = result.metrics.get(key)
                cells.append("n/a" if est is None else est.format(percent=key != LATENCY))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def comparison_table(self, metric: str = "token_f1") -> str:
        """Return the paired comparisons on ``metric`` as Markdown."""
        lines = [
            f"| a | b | mean {_LABELS.get(metric, metric)} b - a [95% CI] | b wins / ties / "
            "losses | p | p (Holm) | significant |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.comparisons:
            if c.metric != metric:
                continue
            holm = "" if c.p_holm is None else f"{c.p_holm:.3f}"
            lines.append(
                f"| {c.a} | {c.b} | {c.diff.format()} | {c.wins} / {c.ties} / {c.losses} | "
                f"{c.p_value:.3f} | {holm} | {'yes' if c.significant else 'no'} |"
            )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Return the full report as Markdown."""
        s = self.settings
        parts = [
            "# phi3industry evaluation",
            "",
            f"{self.n_questions} held-out questions; model `{s.get('model', '?')}`; "
            f"retrieval k={self.k}; max_new_tokens={s.get('max_new_tokens', '?')}.",
            "",
            "Scores are percentages: mean over the questions where the metric is defined, "
            "with a 95% bootstrap confidence interval; latency is seconds per question. A "
            "strategy written `name@mode` answered in that answer mode (`generate`: the "
            "model writes; `extract`: quoted from the sources). Paired comparisons give the "
            "sign-flip p-value and its Holm correction over the report's comparisons on the "
            "same metric; 'significant' uses the corrected one.",
            "",
            "## Metrics",
            "",
            self.table(),
            "",
        ]
        shown = [k for k in METRICS if any(k in r.metrics for r in self.results.values())]
        parts += [f"- **{_LABELS[k]}**: {DESCRIPTIONS[k]}." for k in shown] + [""]
        for metric in COMPARED:
            if any(c.metric == metric for c in self.comparisons):
                parts += [
                    f"## Paired comparison: {_LABELS[metric]}",
                    "",
                    self.comparison_table(metric),
                    "",
                ]
        if self.results:
            try:
                best = self.best("token_f1")
                parts += [f"Best mean token F1: **{best}**.", ""]
            except ValueError:
                pass
        parts += ["## Settings", "", "```json", json.dumps(self.settings, indent=2), "```", ""]
        return "\n".join(parts)

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Draw ``metrics.png`` (metric per strategy with CIs) and ``latency.png``."""
        # A Figure of its own: never switches the global backend (keeps notebooks inline).
        import numpy as np
        from matplotlib.figure import Figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        names = self.strategies
        keys = [k for k in _CHART_METRICS if any(self.results[n].metrics.get(k) for n in names)]
        written: list[Path] = []
        fig = Figure(figsize=(max(6.0, 1.6 * len(keys)), 4.0))
        ax = fig.subplots()
        width = 0.8 / max(1, len(names))
        x = np.arange(len(keys))
        for i, name in enumerate(names):
            means: list[float] = []
            errs: list[list[float]] = [[], []]
            for key in keys:
                est = self.results[name].metrics.get(key)
                ok = est is not None and est.n > 0 and not math.isnan(est.mean)
                mean = est.mean if ok and est is not None else 0.0
                means.append(100 * mean)
                errs[0].append(100 * (mean - est.low) if ok and est is not None else 0.0)
                errs[1].append(100 * (est.high - mean) if ok and est is not None else 0.0)
            ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=errs, capsize=3, label=name)
        ax.set_xticks(x, [_LABELS[k] for k in keys])
        ax.set_ylabel("score (%) with 95% CI")
        ax.set_ylim(0, 100)
        ax.set_title(f"Strategies on {self.n_questions} held-out questions")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / "metrics.png")
        fig.savefig(written[-1], dpi=110)

        fig = Figure(figsize=(max(5.0, 1.2 * len(names)), 3.5))
        ax = fig.subplots()
        lat = [self.results[n].metrics.get(LATENCY) for n in names]
        means = [e.mean if e and e.n else 0.0 for e in lat]
        errs = [
            [e.mean - e.low if e and e.n else 0.0 for e in lat],
            [e.high - e.mean if e and e.n else 0.0 for e in lat],
        ]
        ax.bar(names, means, yerr=errs, capsize=4, color="tab:gray")
        ax.set_ylabel("seconds per question (95% CI)")
        ax.set_title("Latency")
        fig.tight_layout()
        written.append(out / "latency.png")
        fig.savefig(written[-1], dpi=110)
        return written

    def save(self, out_dir: str | Path, *, charts: bool = True) -> dict[str, Path]:
        """Write ``report.json``, ``report.md`` and (with ``charts``) the PNG charts.

        Returns:
            Name -> path of every file written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "markdown": out / "report.md"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        paths["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        if charts:
            metrics_png, latency_png = self.plot(out)
            paths["metrics_chart"] = metrics_png
            paths["latency_chart"] = latency_png
        return paths
