"""Evaluation: which of RAG, fine-tuning or both helps, measured on the user's own questions.

:func:`evaluate` asks held-out questions under each strategy with one pipeline and scores the
answers; :func:`run_eval` is the whole run behind ``phi3industry eval`` (index, questions,
adapters, answers, report); :func:`advise` turns rules of thumb and a report into advice.

Example:
    >>> from phi3industry.evaluation import EvalConfig, run_eval
    >>> report = run_eval(EvalConfig.from_yaml("eval.yaml"))  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phi3industry._lazy import lazy_exports

if TYPE_CHECKING:
    from phi3industry.evaluation.advisor import Advice, Profile, advise
    from phi3industry.evaluation.config import EvalConfig
    from phi3industry.evaluation.evaluate import evaluate, final_answer, score_answer
    from phi3industry.evaluation.judge import Judge
    from phi3industry.evaluation.metrics import (
        Comparison,
        Estimate,
        bootstrap_ci,
        citation_precision,
        citation_recall,
        holm,
        mrr,
        paired_comparison,
        recall_at_k,
        rouge_l,
    )
    from phi3industry.evaluation.questions import generate_qa, parse_generated_qa
    from phi3industry.evaluation.report import METRICS, Report, StrategyResult
    from phi3industry.evaluation.run import run_eval

_LAZY = {
    "Advice": "phi3industry.evaluation.advisor",
    "Comparison": "phi3industry.evaluation.metrics",
    "Estimate": "phi3industry.evaluation.metrics",
    "EvalConfig": "phi3industry.evaluation.config",
    "METRICS": "phi3industry.evaluation.report",
    "Profile": "phi3industry.evaluation.advisor",
    "Report": "phi3industry.evaluation.report",
    "StrategyResult": "phi3industry.evaluation.report",
    "advise": "phi3industry.evaluation.advisor",
    "bootstrap_ci": "phi3industry.evaluation.metrics",
    "citation_precision": "phi3industry.evaluation.metrics",
    "citation_recall": "phi3industry.evaluation.metrics",
    "holm": "phi3industry.evaluation.metrics",
    "Judge": "phi3industry.evaluation.judge",
    "evaluate": "phi3industry.evaluation.evaluate",
    "final_answer": "phi3industry.evaluation.evaluate",
    "generate_qa": "phi3industry.evaluation.questions",
    "mrr": "phi3industry.evaluation.metrics",
    "paired_comparison": "phi3industry.evaluation.metrics",
    "parse_generated_qa": "phi3industry.evaluation.questions",
    "recall_at_k": "phi3industry.evaluation.metrics",
    "rouge_l": "phi3industry.evaluation.metrics",
    "run_eval": "phi3industry.evaluation.run",
    "score_answer": "phi3industry.evaluation.evaluate",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "METRICS",
    "Advice",
    "Comparison",
    "Estimate",
    "EvalConfig",
    "Judge",
    "Profile",
    "Report",
    "StrategyResult",
    "advise",
    "bootstrap_ci",
    "citation_precision",
    "citation_recall",
    "evaluate",
    "final_answer",
    "generate_qa",
    "holm",
    "mrr",
    "paired_comparison",
    "parse_generated_qa",
    "recall_at_k",
    "rouge_l",
    "run_eval",
    "score_answer",
]
