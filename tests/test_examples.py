"""Every example runs: the notebooks (offline, plots rendered), the scheduled job, the
assistant's regression tests."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SAMPLE_DOCS = ROOT / "phi3industry" / "assets" / "sample_kb" / "docs"

# Each notebook must render its plots (an image/png output). 02-04 load SmolLM2 and train or
# generate: 30-50 s each on 2 idle cores (the GGUF conversion is cached once per session).
NOTEBOOKS = [
    pytest.param("01-retrieval.ipynb", id="01-retrieval"),
    pytest.param("02-tuning.ipynb", id="02-tuning"),
    pytest.param("03-pipeline.ipynb", id="03-pipeline"),
    pytest.param("04-evaluation.ipynb", id="04-evaluation"),
]


def test_every_notebook_is_tested() -> None:
    listed = {p.values[0] for p in NOTEBOOKS}
    assert {p.name for p in EXAMPLES.glob("*.ipynb")} <= listed


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: Path) -> None:
    import nbclient
    import nbformat

    path = EXAMPLES / name
    assert path.is_file(), f"{name} is missing from examples/"
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits the offline, isolated environment of the autouse fixture.
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    assert any("image/png" in out.get("data", {}) for out in outputs), "no plot was rendered"


def _load_job() -> ModuleType:
    path = EXAMPLES / "automation" / "sync_and_answer.py"
    spec = importlib.util.spec_from_file_location("sync_and_answer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sync_and_answer_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _load_job()
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "id,question\n"
        "payload,What is the maximum payload of the AR7 robot?\n"
        "e214,What does error code E-214 mean?\n",
        encoding="utf-8",
    )
    output = tmp_path / "out" / "answers.csv"
    argv = [
        *("--docs", str(docs), "--index", str(tmp_path / "index")),
        *("--questions", str(questions), "--output", str(output)),
        # tiny-phi3 (random weights) keeps this a test of the job's mechanics, not of answers
        *("--model", "tiny-phi3", "--max-new-tokens", "8", "--k", "2"),
    ]

    first = job.run(argv)
    assert first["answered"] == 2 and len(first["sync"]["added"]) == 10
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["payload", "e214"]
    assert all(r["sources"] and r["strategy"] == "rag" for r in rows)
    assert "ar7-spec.txt" in rows[0]["sources"] and "error-codes.csv" in rows[1]["sources"]
    before = output.read_bytes()

    # Re-run: nothing re-embedded, nothing re-generated, the answers untouched.
    assert job.main(argv) == 0
    assert '"answered": 0' in capsys.readouterr().out and output.read_bytes() == before
    second = job.run(argv)
    assert second["sync"]["chunks_embedded"] == 0 and second["sync"]["unchanged"]

    # A changed document: only it is re-embedded, and the answers are refreshed atomically.
    spec = docs / "specs" / "ar7-spec.txt"
    spec.write_text(spec.read_text(encoding="utf-8") + "\nColour: signal yellow.\n")
    third = job.run(argv)
    assert len(third["sync"]["updated"]) == 1 and third["sync"]["chunks_embedded"] >= 1
    assert third["answered"] == 2
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "answers.csv",
        "answers.csv.state.json",
    ]  # no temporary files left behind


def test_sync_and_answer_reports_library_errors(tmp_path: Path) -> None:
    job = _load_job()
    questions = tmp_path / "q.csv"
    questions.write_text("question\nHi?\n", encoding="utf-8")
    argv = ["--docs", str(tmp_path), "--index", str(tmp_path / "index")]
    argv += ["--questions", str(questions), "--output", str(tmp_path / "a.csv")]
    assert job.main([*argv, "--strategy", "nonsense"]) == 1  # ConfigError -> one line, exit 1


PYTEST_ASSISTANT = ["examples/pytest_assistant"]


def test_pytest_assistant_example_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PYTEST_ASSISTANT],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
