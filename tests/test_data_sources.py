"""Training reads documents exactly as ingest does, and takes the datasets people already have.

One document path: every format ingest reads (PDF included) reaches training through
:func:`phi3industry.retrieval.documents.load_document`, so an HTML page loses its navigation
in both, and the sample knowledge base's maintenance-schedule PDF reaches the demo's data.
Datasets: a ``DatasetDict`` (its train split), an ``IterableDataset``, a ``save_to_disk``
directory, a hub name (offline here: the error names the path and the hub).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phi3industry.demo import sample_kb_dir
from phi3industry.errors import DataFormatError
from phi3industry.retrieval.documents import SUPPORTED_SUFFIXES, load_document
from phi3industry.tuning.data import TEXT_SUFFIXES, load_examples

ROWS = [
    {"prompt": f"What does error E{i} mean?", "completion": f"Error E{i} is a jam."}
    for i in range(3)
]
PAGE = (
    "<html><head><title>SOP</title></head><body>"
    "<nav>Home | Products | Careers</nav><div role='navigation'>Skip to menu</div>"
    "<h1>Cryo line</h1><p>Purge the <b>cryo line</b> for 30 s.</p>"
    "<script>track()</script></body></html>"
)


def test_every_ingest_format_is_a_training_format() -> None:
    assert set(SUPPORTED_SUFFIXES) <= set(TEXT_SUFFIXES) | {".csv", ".jsonl"}
    assert ".pdf" in TEXT_SUFFIXES


def test_html_is_parsed_as_ingest_parses_it(tmp_path: Path) -> None:
    page = tmp_path / "sop.html"
    page.write_text(PAGE)
    (ex,) = load_examples(page)
    assert ex.text == load_document(page).text.strip()
    assert "Purge the cryo line for 30 s." in ex.text
    assert "Careers" not in ex.text and "Skip to menu" not in ex.text  # navigation stripped
    assert "track" not in ex.text


def test_the_sample_kb_pdf_reaches_the_demo_data() -> None:
    kb = sample_kb_dir()
    pdf = kb / "docs" / "manuals" / "ar7-maintenance-schedule.pdf"
    examples = load_examples([kb / "docs", kb / "qa_train.jsonl"])  # the demo's data
    from_pdf = [e for e in examples if e.where == pdf.name]
    assert len(from_pdf) == 1
    assert from_pdf[0].text == load_document(pdf).text.strip()
    assert len(from_pdf[0].text) > 200
    # every document ingest would index is in the training data (tickets.jsonl holds 'text'
    # rows: one example per line)
    docs = {p.name for p in (kb / "docs").rglob("*") if p.suffix in SUPPORTED_SUFFIXES}
    assert {e.where.split(" line ")[0] for e in examples if not e.is_chat} == docs


def test_a_bad_document_in_a_directory_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Valves\n\nTorque them to 12 Nm.\n")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.warns(UserWarning, match=r"skipped .*scan\.pdf: Cannot parse PDF"):
        (ex,) = load_examples(tmp_path)
    assert ex.where == "good.md"
    (tmp_path / "blank.txt").write_text("   \n")
    with pytest.raises(DataFormatError, match=r"blank\.txt holds only whitespace"):
        load_examples(tmp_path / "blank.txt")  # named on its own: an error


def test_dataset_dict_trains_on_its_train_split() -> None:
    import datasets

    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS),
            "test": datasets.Dataset.from_list(ROWS[:1]),
        }
    )
    examples = load_examples(dd)
    assert [e.messages[0]["content"] for e in examples] == [r["prompt"] for r in ROWS]
    with pytest.raises(DataFormatError, match=r"no 'train' split \(splits: test\).*'validation'"):
        load_examples(datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)}))


def test_iterable_dataset_is_read() -> None:
    import datasets

    def rows():  # type: ignore[no-untyped-def]
        yield from ROWS

    examples = load_examples(datasets.IterableDataset.from_generator(rows))
    assert len(examples) == 3 and examples[2].messages[1]["content"] == "Error E2 is a jam."
    bad = datasets.IterableDataset.from_generator(lambda: iter([{"prompt": "p", "completion": ""}]))
    with pytest.raises(DataFormatError, match="dataset row 0: field 'completion' is empty"):
        load_examples(bad)


@pytest.mark.parametrize("kind", ["dataset", "dict"])
def test_save_to_disk_directory_is_loaded(tmp_path: Path, kind: str) -> None:
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    saved = datasets.DatasetDict({"train": ds}) if kind == "dict" else ds
    saved.save_to_disk(str(tmp_path / "saved"))
    examples = load_examples(tmp_path / "saved")
    assert len(examples) == 3 and all(e.is_chat for e in examples)


def test_damaged_saved_dataset_is_named(tmp_path: Path) -> None:
    (tmp_path / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    with pytest.raises(DataFormatError, match=r"looks like a saved dataset .* cannot be loaded"):
        load_examples(tmp_path)


def test_hub_name_is_tried_on_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    asked: list[tuple[str, str]] = []

    def fake_load_dataset(name: str, split: str) -> datasets.Dataset:
        asked.append((name, split))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.chdir(Path(__file__).parent)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert len(load_examples("acme/support-qa")) == 3
    assert asked == [("acme/support-qa", "train")]


def test_hub_name_offline_names_path_and_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataFormatError,
        match=r"'acme/support-qa' is no file or directory here, and loading it as a hub "
        r"dataset failed .*HF_DATASETS_OFFLINE",
    ):
        load_examples("acme/support-qa")
    with pytest.raises(DataFormatError, match=r"Training data not found: qa\.jsonl\. Check"):
        load_examples("qa.jsonl")  # a file name is never looked up on the hub
