"""The README's main job: `phi3industry demo`."""

from __future__ import annotations

from pathlib import Path

import pytest

from phi3industry.demo import run_demo, sample_docs_dir, sample_questions


def test_demo_search_part_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_demo(tmp_path, search_only=True)
    first = capsys.readouterr().out
    n_docs = sum(1 for p in sample_docs_dir().rglob("*") if p.is_file())
    assert f"added {n_docs}," in first
    question = sample_questions()[0]
    assert question["question"] in first
    assert question["sources"][0].split("/")[-1] in first  # the gold source is among the hits
    run_demo(tmp_path, search_only=True)
    second = capsys.readouterr().out
    assert f"unchanged {n_docs}," in second
    assert "(0 embedded" in second


@pytest.mark.slow
def test_full_demo_tunes_and_answers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_demo(tmp_path, questions=1, tune_steps=4, max_new_tokens=16)
    out = capsys.readouterr().out
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    for strategy in ("[base]", "[rag]", "[finetuned]", "[rag+finetuned]"):
        assert strategy in out
    assert "tiny-phi3" in out
    # RAG answers show their sources: cited ones, or those the model was given.
    assert "Sources:" in out or "sources given to the model: [1]" in out
