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
    for label in ("[base]", "[rag, quoted]", "[rag, written]", "[finetuned]", "[rag+finetuned"):
        assert label in out
    assert "tiny-phi3" in out
    # The quoted RAG answer cites its source, with the quote and its offsets.
    quoted = out.split("[rag, quoted]", 1)[1].split("[rag, written]", 1)[0]
    assert "Sources:\n    [1] " in quoted and '"  (chars ' in quoted
    assert "claims supported by a quote of the sources" in quoted
