"""RAG, fine-tuning, or both? Rules of thumb as a start, measurement as the verdict.

The rules are those of the Phi-3 CookBook ("Let Phi-3 become an industry expert"), each
scoring for RAG or for fine-tuning with a stated reason:

=====================  ==========================================================  =========
rule                   when                                                        moves to
=====================  ==========================================================  =========
``data-changes``       the data changes weekly or faster (monthly: weaker)         RAG
``external-data``      answers need external or fresh data                         RAG
``training-data``      fewer than 100 training examples (1000+: fine-tuning)       RAG
``traceability``       sources must be traceable                                   RAG
``synthesis``          answers synthesize knowledge from several sources           RAG
``specialized-terms``  specialized vocabulary and phrasing matter                  FT
``automated-workflow`` an automated business workflow                              both
=====================  ==========================================================  =========

With an evaluation :class:`~phi3industry.evaluation.Report`, the measured best strategy
decides, and the advice says where measurement and the rules disagree.

Example:
    >>> from phi3industry.evaluation.advisor import Profile, advise
    >>> advice = advise(Profile(data_changes="daily", traceable_sources=True))
    >>> advice.strategy
    'rag'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3industry._config import ConfigBase, check
from phi3industry.evaluation.report import Report
from phi3industry.strategies import FAMILIES, split_strategy

DATA_CHANGES = ("rarely", "monthly", "weekly", "daily")
#: What the advice can be: the strategies' families.
ADVICE = FAMILIES
SMALL_DATA = 100
LARGE_DATA = 1000


@dataclass
class Profile(ConfigBase):
    """What the rules of thumb need to know about the use case.

    Example:
        >>> Profile(training_examples=5000, specialized_language=True).data_changes
        'rarely'
    """

    data_changes: str = field(
        default="rarely",
        metadata={"help": "How often the knowledge changes: rarely, monthly, weekly, daily."},
    )
    training_examples: int = field(
        default=0, metadata={"help": "Quality Q&A / instruction examples available for tuning."}
    )
    needs_external_data: bool = field(
        default=False,
        metadata={"help": "Answers need external or fresh data (not in the model)."},
    )
    specialized_language: bool = field(
        default=False,
        metadata={"help": "Specialized vocabulary, jargon and phrasing matter."},
    )
    traceable_sources: bool = field(
        default=False, metadata={"help": "Answers must show the sources they come from."}
    )
    synthesizes_sources: bool = field(
        default=False,
        metadata={"help": "Answers combine several knowledge points from different sources."},
    )
    automated_workflow: bool = field(
        default=False, metadata={"help": "It drives an automated business workflow."}
    )

    def __post_init__(self) -> None:
        check(
            self.data_changes in DATA_CHANGES,
            f"data_changes must be one of {', '.join(DATA_CHANGES)}, got {self.data_changes!r}.",
        )
        check(
            isinstance(self.training_examples, int) and self.training_examples >= 0,
            f"training_examples must be an integer >= 0, got {self.training_examples!r}.",
        )


@dataclass(frozen=True)
class Reason:
    """One rule that fired.

    Attributes:
        rule: The rule's id (``data-changes``, ``training-data``...).
        favors: ``rag``, ``fine-tuning`` or ``both``.
        weight: How much it counts (negative: it counts against ``favors``).
        because: The reason, in words.
    """

    rule: str
    favors: str
    weight: int
    because: str

    def to_dict(self) -> dict[str, Any]:
        """Return the reason as a dict."""
        return {
            "rule": self.rule,
            "favors": self.favors,
            "weight": self.weight,
            "because": self.because,
        }


@dataclass
class Advice:
    """What to do, and why.

    Attributes:
        strategy: ``rag``, ``fine-tuning``, ``both`` (or ``base`` when measurement found
            that nothing beat the base model).
        reasons: The rules that fired.
        scores: Rule points for ``rag`` and ``fine-tuning``.
        rules_strategy: What the rules alone recommend.
        measured: With a report: the metric, the best strategy and every strategy's mean.
        disagreements: Where measurement and the rules disagree, in words.
        notes: Other remarks (noise, missing strategies).
    """

    strategy: str
    reasons: list[Reason]
    scores: dict[str, int]
    rules_strategy: str
    measured: dict[str, Any] | None = None
    disagreements: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the advice as a JSON-ready dict."""
        return {
            "strategy": self.strategy,
            "rules_strategy": self.rules_strategy,
            "scores": dict(self.scores),
            "reasons": [r.to_dict() for r in self.reasons],
            "measured": self.measured,
            "disagreements": list(self.disagreements),
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """Return the advice for people."""
        names = {"rag": "RAG", "fine-tuning": "fine-tuning", "both": "RAG + fine-tuning"}
        names["base"] = "the base model (no adaptation helped)"
        lines = [f"Recommendation: {names[self.strategy]}"]
        if self.measured is not None:
            lines.append(
                f"Decided by measurement: {self.measured['best']} has the best mean "
                f"{self.measured['metric']} on {self.measured['n_questions']} questions."
            )
        lines.append(
            f"Rules of thumb: {names[self.rules_strategy]} "
            f"(RAG {self.scores['rag']} points, fine-tuning {self.scores['fine-tuning']})."
        )
        for r in self.reasons:
            lines.append(f"  - [{r.rule}] {r.because}")
        if not self.reasons:
            lines.append("  - no rule fired; RAG is the flexible default.")
        for d in self.disagreements:
            lines.append(f"Disagreement: {d}")
        for n in self.notes:
            lines.append(f"Note: {n}")
        return "\n".join(lines)


def rules(profile: Profile) -> list[Reason]:
    """Apply the rules of thumb to a profile; return the reasons that fired."""
    out: list[Reason] = []
    if profile.data_changes in ("weekly", "daily"):
        out.append(
            Reason(
                "data-changes",
                "rag",
                2,
                f"The data changes {profile.data_changes}: re-indexing takes effect at once, "
                "while keeping a fine-tuned model current means retraining each time.",
            )
        )
    elif profile.data_changes == "monthly":
        out.append(
            Reason(
                "data-changes",
                "rag",
                1,
                "The data changes monthly: an index stays current more cheaply than "
                "a model retrained every month.",
            )
        )
    if profile.needs_external_data:
        out.append(
            Reason(
                "external-data",
                "rag",
                2,
                "Answers need external or fresh data: retrieval brings it in at question "
                "time; a model knows only what it was trained on.",
            )
        )
    if profile.training_examples < SMALL_DATA:
        out.append(
            Reason(
                "training-data",
                "fine-tuning",
                -2,
                f"Only {profile.training_examples} training examples (< {SMALL_DATA}): "
                "fine-tuning on a small or narrow dataset changes little; RAG is more flexible.",
            )
        )
    elif profile.training_examples >= LARGE_DATA:
        out.append(
            Reason(
                "training-data",
                "fine-tuning",
                1,
                f"{profile.training_examples} training examples: enough high-quality data "
                "for fine-tuning to pay off.",
            )
        )
    if profile.traceable_sources:
        out.append(
            Reason(
                "traceability",
                "rag",
                2,
                "Sources must be traceable: RAG cites the passages it used; a fine-tuned "
                "model is a black box.",
            )
        )
    if profile.synthesizes_sources:
        out.append(
            Reason(
                "synthesis",
                "rag",
                1,
                "Answers synthesize knowledge from several sources: retrieval puts them side "
                "by side in the prompt.",
            )
        )
    if profile.specialized_language:
        out.append(
            Reason(
                "specialized-terms",
                "fine-tuning",
                2,
                "Specialized vocabulary and phrasing matter: fine-tuning teaches the model "
                "to speak the domain's language consistently; retrieval alone may miss nuances.",
            )
        )
    if profile.automated_workflow:
        out.append(
            Reason(
                "automated-workflow",
                "both",
                2,
                "An automated business workflow: fine-tuning for consistent, well-formed "
                "output, RAG for current facts (the CookBook's RAG + fine-tuning scenario).",
            )
        )
    return out


def _scores(reasons: list[Reason]) -> dict[str, int]:
    scores = {"rag": 0, "fine-tuning": 0}
    for r in reasons:
        for side in ("rag", "fine-tuning") if r.favors == "both" else (r.favors,):
            scores[side] += r.weight
    return scores


def _decide(scores: dict[str, int], reasons: list[Reason]) -> str:
    workflow = any(r.rule == "automated-workflow" for r in reasons)
    small_data = any(r.rule == "training-data" and r.weight < 0 for r in reasons)
    if scores["fine-tuning"] > 0 and (workflow or scores["rag"] > 0):
        return "both"
    if scores["fine-tuning"] > scores["rag"] and not small_data:
        return "fine-tuning"
    return "rag"


def _load_report(report: Any) -> Any:
    if isinstance(report, Report):
        return report
    if isinstance(report, dict):
        return Report.from_dict(report)
    path = Path(report)
    if path.is_dir():
        path = path / "report.json"
    return Report.load(path)


def _weigh_groundedness(
    rep: Report, means: dict[str, float], top: str, metric: str
) -> tuple[str, dict[str, float]]:
    """The strategy to recommend: among those within noise of ``top``, the best grounded.

    Groundedness is the share of an answer's claims supported by the sources it was shown;
    a strategy that shows no source has none to trace its claims to, and counts 0. Returns
    the chosen strategy and every strategy's groundedness (empty when none was measured).
    """
    grounding: dict[str, float] = {}
    for name in means:
        est = rep.results[name].metrics.get("groundedness")
        if est is not None and est.n > 0 and not math.isnan(est.mean):
            grounding[name] = est.mean
        elif not split_strategy(name)[0].retrieves:
            grounding[name] = 0.0
    if len(grounding) < len(means) or not any(grounding.values()):
        return top, grounding
    tied = [top]
    for name in means:
        comp = rep.comparison(top, name, metric)
        if name != top and comp is not None and not comp.significant:
            tied.append(name)
    best = max(tied, key=lambda s: (grounding[s], means[s]))
    return (best if grounding[best] > grounding[top] else top), grounding


def advise(
    profile: Profile | dict[str, Any] | None = None,
    report: Any = None,
    *,
    metric: str = "token_f1",
) -> Advice:
    """Recommend RAG, fine-tuning or both, with the reason for each rule that fired.

    Args:
        profile: The use case (a :class:`Profile` or a dict of its fields).
        report: An evaluation :class:`~phi3industry.evaluation.Report`, its ``to_dict()``,
            or the path of a ``report.json`` (or of its directory). When given, the
            measured best strategy decides; among the strategies within noise of the best
            (paired difference not significant after Holm), the one whose answers are best
            grounded in their sources wins.
        metric: The metric that decides between strategies.

    Returns:
        The :class:`Advice`.
    """
    if profile is None:
        profile = Profile()
    elif isinstance(profile, dict):
        profile = Profile.from_dict(profile)
    reasons = rules(profile)
    scores = _scores(reasons)
    by_rules = _decide(scores, reasons)
    advice = Advice(by_rules, reasons, scores, by_rules)
    if report is None:
        return advice

    rep = _load_report(report)
    means = {
        name: r.metrics[metric].mean
        for name, r in rep.results.items()
        if metric in r.metrics
        and r.metrics[metric].n > 0
        and not math.isnan(r.metrics[metric].mean)
    }
    if not means:
        advice.notes.append(f"The report has no {metric!r} values; the rules decide.")
        return advice
    top = max(means, key=lambda s: means[s])
    best, grounding = _weigh_groundedness(rep, means, top, metric)
    if best != top:
        advice.notes.append(
            f"{best} is within noise of {top} on {metric} ({100 * means[best]:.1f} vs "
            f"{100 * means[top]:.1f}; paired difference not significant after Holm) and its "
            f"answers are better grounded ({100 * grounding[best]:.0f}% vs "
            f"{100 * grounding[top]:.0f}% of claims supported by the sources shown), so it is "
            "preferred: an answer tied to its evidence can be checked."
        )
    measured = split_strategy(best)[0].family
    advice.strategy = measured
    advice.measured = {
        "metric": metric,
        "best": best,
        "means": means,
        "groundedness": grounding,
        "n_questions": rep.n_questions,
    }
    rivals = [s for s in means if split_strategy(s)[0].family == by_rules]
    if measured != by_rules:
        if rivals:
            rival = max(rivals, key=lambda s: means[s])
            comp = rep.comparison(rival, best, metric)
            gap = f"{100 * means[best]:.1f} vs {100 * means[rival]:.1f}"
            if comp is not None and comp.significant:
                verdict = "a significant difference (95% CI of the paired difference excludes 0)"
            elif comp is not None:
                verdict = (
                    f"but the paired difference {comp.diff.format()} is within noise: more "
                    "questions would settle it"
                )
            else:
                verdict = "no paired comparison available"
            advice.disagreements.append(
                f"the rules of thumb recommend {by_rules}, but on your questions {best} beats "
                f"{rival} on {metric} ({gap}; {verdict})."
            )
        else:
            advice.disagreements.append(
                f"the rules of thumb recommend {by_rules}, which the report did not measure; "
                f"of what was measured, {best} is best."
            )
    if measured == "base":
        advice.notes.append(
            "No adaptation beat the base model on these questions; check retrieval "
            "(recall@k) and the adapters' training before concluding."
        )
    if profile.traceable_sources and measured == "fine-tuning":
        advice.notes.append(
            "Sources must be traceable, which a fine-tuned model alone cannot do; consider "
            "the best retrieval strategy even at some cost in score."
        )
    return advice


__all__ = ["ADVICE", "DATA_CHANGES", "Advice", "Profile", "Reason", "advise", "rules"]
