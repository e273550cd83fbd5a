"""The advisor: every rule moves the advice the way the Phi-3 CookBook says; a measured report
decides and the advice names the disagreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phi3industry.errors import ConfigError
from phi3industry.evaluation.advisor import Profile, advise, rules
from phi3industry.evaluation.metrics import bootstrap_ci, paired_comparison
from phi3industry.evaluation.report import Report, StrategyResult

# Where each advice sits between pure fine-tuning and pure RAG.
TOWARD_RAG = {"fine-tuning": 0, "both": 1, "rag": 2}
NEUTRAL = {"training_examples": 500}  # no data-size rule fires
FT_LEANING = {"training_examples": 5000, "specialized_language": True}


def _advice(**fields: Any) -> Any:
    return advise(Profile(**fields))


@pytest.mark.parametrize(
    ("rule", "change"),
    [
        ("data-changes", {"data_changes": "daily"}),
        ("data-changes", {"data_changes": "weekly"}),
        ("data-changes", {"data_changes": "monthly"}),
        ("external-data", {"needs_external_data": True}),
        ("traceability", {"traceable_sources": True}),
        ("synthesis", {"synthesizes_sources": True}),
    ],
)
def test_rag_rules_move_toward_rag(rule: str, change: dict[str, Any]) -> None:
    before, after = _advice(**FT_LEANING), _advice(**FT_LEANING, **change)
    assert rule in {r.rule for r in after.reasons} - {r.rule for r in before.reasons}
    assert after.scores["rag"] > before.scores["rag"]
    assert after.scores["fine-tuning"] == before.scores["fine-tuning"]
    assert TOWARD_RAG[after.strategy] > TOWARD_RAG[before.strategy]


def test_small_training_data_moves_away_from_fine_tuning() -> None:
    before = _advice(**NEUTRAL, specialized_language=True)
    after = _advice(training_examples=20, specialized_language=True)
    assert before.strategy == "fine-tuning" and after.strategy == "rag"
    assert after.scores["fine-tuning"] < before.scores["fine-tuning"]
    assert "training-data" in {r.rule for r in after.reasons}


def test_large_training_data_moves_toward_fine_tuning() -> None:
    before, after = _advice(**NEUTRAL), _advice(training_examples=5000)
    assert after.scores["fine-tuning"] > before.scores["fine-tuning"]
    assert before.strategy == "rag" and after.strategy == "fine-tuning"


def test_specialized_language_moves_toward_fine_tuning() -> None:
    base = {**NEUTRAL, "traceable_sources": True}
    before, after = _advice(**base), _advice(**base, specialized_language=True)
    assert after.scores["fine-tuning"] > before.scores["fine-tuning"]
    assert TOWARD_RAG[after.strategy] < TOWARD_RAG[before.strategy]
    assert (before.strategy, after.strategy) == ("rag", "both")


def test_automated_workflow_recommends_both() -> None:
    before, after = _advice(**NEUTRAL), _advice(**NEUTRAL, automated_workflow=True)
    assert after.scores["rag"] > before.scores["rag"]
    assert after.scores["fine-tuning"] > before.scores["fine-tuning"]
    assert after.strategy == "both"


def test_every_reason_is_stated() -> None:
    profile = Profile(
        data_changes="daily",
        training_examples=5000,
        needs_external_data=True,
        specialized_language=True,
        traceable_sources=True,
        synthesizes_sources=True,
        automated_workflow=True,
    )
    fired = rules(profile)
    assert {r.rule for r in fired} == {
        "data-changes",
        "external-data",
        "training-data",
        "traceability",
        "synthesis",
        "specialized-terms",
        "automated-workflow",
    }
    text = advise(profile).format()
    for r in fired:
        assert f"[{r.rule}]" in text and r.because in text


def test_default_profile_is_rag() -> None:
    advice = advise()
    assert advice.strategy == "rag" and advice.measured is None


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"data_changes": "hourly"}, "data_changes must be one of rarely"),
        ({"training_examples": -5}, "training_examples must be an integer >= 0"),
    ],
)
def test_profile_validation(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Profile(**fields)


def _report(scores: dict[str, list[float]]) -> Report:
    results = {
        name: StrategyResult(
            name, {"token_f1": bootstrap_ci(values)}, [{"scores": {"token_f1": v}} for v in values]
        )
        for name, values in scores.items()
    }
    names = list(scores)
    comparisons = [
        paired_comparison(a, scores[a], b, scores[b], "token_f1")
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]
    return Report(results, comparisons, n_questions=len(next(iter(scores.values()))), k=4)


def test_measurement_decides_and_disagreement_is_named() -> None:
    n = 30
    report = _report(
        {
            "base": [0.1] * n,
            "rag": [0.6 + 0.01 * (i % 3) for i in range(n)],
            "finetuned": [0.2] * n,
        }
    )
    advice = advise(Profile(**FT_LEANING), report=report)
    assert advice.rules_strategy == "fine-tuning"
    assert advice.strategy == "rag" and advice.measured["best"] == "rag"
    assert len(advice.disagreements) == 1
    assert "rules of thumb recommend fine-tuning" in advice.disagreements[0]
    assert "significant" in advice.disagreements[0]


def test_agreement_has_no_disagreement_and_noise_is_flagged(tmp_path: Path) -> None:
    report = _report({"rag": [0.5, 0.6, 0.5], "finetuned": [0.5, 0.55, 0.5]})
    agree = advise(Profile(data_changes="daily"), report=report)
    assert agree.strategy == "rag" and not agree.disagreements
    close = advise(Profile(**FT_LEANING), report=report)
    assert close.strategy == "rag"
    assert "within noise" in close.disagreements[0]
    # a saved report.json (or its directory) works too
    (tmp_path / "report.json").write_text(json.dumps(report.to_dict()))
    assert advise(Profile(**FT_LEANING), report=tmp_path).strategy == "rag"


def test_base_best_is_reported() -> None:
    report = _report({"base": [0.9, 0.8], "rag": [0.1, 0.2], "rag+finetuned": [0.1, 0.1]})
    advice = advise(Profile(automated_workflow=True, training_examples=500), report=report)
    assert advice.strategy == "base"
    assert any("No adaptation beat the base model" in n for n in advice.notes)


def test_cli_advise_flags_yaml_and_json(tmp_path: Path) -> None:
    from phi3industry.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["advise", "--data-changes", "daily", "--traceable-sources"])
    assert out.exit_code == 0, out.output
    assert "Recommendation: RAG" in out.output and "[data-changes]" in out.output
    (tmp_path / "profile.yaml").write_text("specialized_language: true\ntraining_examples: 5000\n")
    out = runner.invoke(app, ["advise", "--config", str(tmp_path / "profile.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["strategy"] == "fine-tuning"


def test_cli_advise_asks_interactively(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi3industry import cli

    monkeypatch.setattr(cli.sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["daily", 5000, True, False, True, False, False])
    monkeypatch.setattr(cli.typer, "prompt", lambda *a, **k: next(answers))
    monkeypatch.setattr(cli.typer, "confirm", lambda *a, **k: next(answers))
    printed: list[str] = []
    monkeypatch.setattr(cli.typer, "echo", lambda text="", **k: printed.append(str(text)))
    cli.advise(config=None, report=None, as_json=False)
    assert "[external-data]" in printed[0] and "[traceability]" in printed[0]
