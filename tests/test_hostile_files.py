"""A corpus of hostile files, generated in a temporary directory (nothing big is committed).

Binaries posing as text, empty files, a 100 MB single line, mixed and invalid encodings,
HTML nested 100,000 deep, decompression bombs posing as PDFs, ragged CSV, JSONL with a broken
line in the middle, a symlink loop. Each must be loaded or refused with a
:class:`~phi3industry.errors.DocumentError` that names the file and says why, quickly and in
bounded memory; ``Retriever.sync`` must skip the refused ones with that reason and index the
rest. The training-data, QA and config loaders get the same treatment where it applies.
"""

from __future__ import annotations

import io
import os
import random
import re
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from phi3industry import Retriever, RetrieverConfig
from phi3industry.errors import ConfigError, DataFormatError, DocumentError
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.qa import load_qa
from phi3industry.retrieval.documents import MAX_TITLE_CHARS, Chunker, Document, load_document
from phi3industry.tuning.data import load_examples

HUGE = 100_000_000  # bytes in the single-line file: twice the default max_file_bytes
SECONDS = 10.0  # every hostile file is loaded or refused within this (a hang is minutes)
GOOD = {
    "battery.md": "# Battery\n\nError code E4711 means the battery pack overheated. Let it cool "
    "for thirty minutes before charging again.\n",
    "returns.txt": "Customers may return unused parts within 30 days of delivery.\n",
}

# --------------------------------------------------------------------------- builders


def _pdf(objects: dict[int, bytes]) -> bytes:
    """A PDF whose object 1 is the catalog, with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def _deflate(head: bytes, filler: bytes, total: int) -> bytes:
    """``head`` then ``filler`` repeated up to ``total`` bytes, zlib-compressed as a stream."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(head)]
    block = filler * (10_000_000 // len(filler))
    for _ in range(total // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


def _bomb_pdf(stream: bytes, pages: int) -> bytes:
    """``pages`` pages that all draw the same Flate-compressed content stream (object 3)."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (4 + i) for i in range(pages))
        + b"] /Count %d >>" % pages,
        3: b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
        + stream
        + b"\nendstream",
    }
    for i in range(pages):
        objects[4 + i] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"
    return _pdf(objects)


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manual.pdf", b"\0" * 200_000_000)  # ~200 KB once compressed
    return buffer.getvalue()


def _write_huge_line(path: Path) -> Path:
    """One 100 MB line: a Markdown heading whose blanks once made a regex backtrack."""
    block = b" \t" * 500_000
    with path.open("wb") as handle:
        handle.write(b"# Title")
        for _ in range(HUGE // len(block)):
            handle.write(block)
        handle.write(b"end\n")
    return path


rng = random.Random(7)
# name -> (bytes, what load_document must do: a regex its DocumentError matches, or a check
# of the loaded Document)
Check = Callable[[Document], None]


def _check_mixed(doc: Document) -> None:
    assert "Café in UTF-8 — fine" in doc.text and "Café in latin-1" in doc.text
    assert doc.metadata["encoding"] == "utf-8+cp1252"


def _check_ragged(doc: Document) -> None:
    assert [s.title for s in doc.sections] == ["row 1", "row 2", "row 3"]
    assert "part: NW-1\nqty: 2\ncolumn 3: extra\ncolumn 4: cells" in doc.text
    assert "part: NW-2" in doc.text and "qty: 5" in doc.text


def _check_redos(doc: Document) -> None:
    assert doc.title is not None and doc.title.startswith("a") and doc.text.endswith("body")
    assert len(doc.title) <= MAX_TITLE_CHARS


def _check_long_word(doc: Document) -> None:
    chunks = Chunker(lambda text: len(text.split()), 250, 0).split(doc)
    assert len(chunks) >= 2_000_000 // (16 * 250)  # a chunk stays a bounded length
    assert all(len(c.text) <= 16 * 250 for c in chunks)


def _check_long_heading(doc: Document) -> None:
    assert doc.title is not None and len(doc.title) == MAX_TITLE_CHARS
    assert doc.title.endswith("…")
    assert all(s.title is None or len(s.title) <= MAX_TITLE_CHARS for s in doc.sections)


def _check_deep_html(doc: Document) -> None:  # libxml2 may refuse; if not, nothing is lost
    assert "deep text" in doc.text and "after" in doc.text


HOSTILE: dict[str, tuple[bytes | Callable[[], bytes], str | Check]] = {
    "binary.txt": (b"\x00\x01" + rng.randbytes(4000), r"looks binary \(it contains NUL bytes\)"),
    "binary.md": (bytes(rng.randrange(1, 256) for _ in range(4000)), r"looks binary"),
    "utf16-no-bom.txt": ("plain words".encode("utf-16-le"), r"looks binary"),
    "empty.txt": (b"", r"is empty \(0 bytes\)"),
    "empty.pdf": (b"", r"is empty \(0 bytes\)"),
    "blank.rst": (b" \n\t\r\n  \n", r"holds only whitespace"),
    "mixed.txt": (
        "Café in UTF-8 — fine\n".encode() + "Café in latin-1\n".encode("latin-1"),
        _check_mixed,
    ),
    "invalid-utf8.txt": (b"caf\xe9 \x81\x8d menu\n", r"not valid UTF-8 \(byte 0xe9 .*nor cp1252"),
    "deep.html": (
        (
            "<html><body><p>top</p>"
            + "<div>" * 100_000
            + "deep text"
            + "</div>" * 100_000
            + "<p>after</p></body></html>"
        ).encode(),
        _check_deep_html,
    ),
    "unclosed.html": (b"<p>start</p>" + b"<b>" * 100_000 + b"x", r"Cannot parse HTML|no text"),
    "zipbomb.pdf": (_zip_bomb, r"Cannot parse PDF"),
    "flatebomb.pdf": (  # one stream over pypdf's 75 MB decompression limit
        lambda: _bomb_pdf(_deflate(b"BT /F1 12 Tf (x) Tj ET\n", b" ", 100_000_000), 1),
        r"safety limits.*decompression bomb",
    ),
    "sharedbomb.pdf": (  # 50 pages share one stream under that limit: 3.5 GB to parse
        lambda: _bomb_pdf(_deflate(b"", b" ", 70_000_000), 50),
        r"inflates to over 200,000,000 bytes of page content by page 3 of 50",
    ),
    "ragged.csv": (b"part,qty\nNW-1,2,extra,cells\nNW-2\n\n,5\n", _check_ragged),
    "quote.csv": (
        b'part,qty\nNW-1,"2\n' + b"x" * 200_000 + b"\n",
        r"near line 2, where that row starts: .*field limit",
    ),
    "broken.jsonl": (
        b'{"text": "one"}\n{"text": "two"}\n{"text": "three\n{"text": "four"}\n',
        r"broken\.jsonl line 3: not valid JSON",
    ),
    "deep.jsonl": (b'{"text": "ok"}\n' + b"[" * 100_000 + b"]" * 100_000, r"line 2: JSON nested"),
    "surrogate.jsonl": (b'{"text": "ok \\ud800"}\n', r"line 1: .*lone UTF-16 surrogate"),
    "redos.md": (b"# a" + b" \t" * 500_000 + b"x\n\nbody", _check_redos),
    "long-word.txt": (b"x" * 2_000_000, _check_long_word),
    "long-heading.md": (b"# " + b"word " * 200_000 + b"\n\nbody\n", _check_long_heading),
}


@cache
def hostile_bytes(name: str) -> bytes:
    """The bytes of a hostile file (bombs are built on first use, not at import)."""
    data = HOSTILE[name][0]
    return data if isinstance(data, bytes) else data()


IN_SYNC = [n for n in HOSTILE if n not in ("long-heading.md", "long-word.txt", "redos.md")]
"""Hostile files also put through Retriever.sync (the rest would only add embedding time)."""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile files, two good documents, the 100 MB line and a symlink loop."""
    root = tmp_path_factory.mktemp("hostile") / "docs"
    root.mkdir()
    for name in IN_SYNC:
        (root / name).write_bytes(hostile_bytes(name))
    for name, text in GOOD.items():
        (root / name).write_text(text, encoding="utf-8")
    _write_huge_line(root / "huge.md")
    os.symlink("loop.txt", root / "loop.txt")
    return root


@pytest.fixture(scope="module")
def synced(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    index = tmp_path_factory.mktemp("hostile-index")
    retriever = Retriever(RetrieverConfig(path=str(index), progress=False))
    started = time.perf_counter()
    report = retriever.sync([corpus])
    yield retriever, report, time.perf_counter() - started


# --------------------------------------------------------------------------- documents


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_loads_or_is_refused_clearly(name: str, tmp_path: Path) -> None:
    expected = HOSTILE[name][1]
    path = tmp_path / name
    path.write_bytes(hostile_bytes(name))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        doc = load_document(path)
    except DocumentError as exc:
        refused: DocumentError | None = exc
    else:
        refused = None
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < SECONDS, f"{name} took {elapsed:.1f} s"
    # Bombs are refused before they inflate: 200 MB zip, 1 GB stream, 50 x 70 MB pages.
    assert peak < 400_000_000, f"{name} peaked at {peak / 1e6:.0f} MB of Python memory"
    if isinstance(expected, str):
        assert refused is not None, f"{name} loaded but should be refused ({expected})"
        assert name in str(refused) and re.search(expected, str(refused)), str(refused)
    elif refused is not None:
        assert expected is _check_deep_html, f"{name} refused: {refused}"
        assert name in str(refused) and "Cannot parse HTML" in str(refused)
    else:
        expected(doc)


@pytest.mark.timeout(120)
def test_100mb_single_line_is_refused_by_the_size_limit_then_loads_when_raised(
    corpus: Path,
) -> None:
    path = corpus / "huge.md"
    assert path.stat().st_size > HUGE
    with pytest.raises(DocumentError, match=r"huge\.md is 100 MB, over the 50 MB limit"):
        load_document(path)
    with pytest.raises(DocumentError, match=r"max_file_bytes"):
        load_document(path, max_bytes=RetrieverConfig(path="x").max_file_bytes)
    started = time.perf_counter()
    doc = load_document(path, max_bytes=2 * HUGE)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"loading 100 MB took {elapsed:.1f} s"
    assert len(doc.text) > HUGE and doc.text.rstrip().endswith("end")
    assert doc.title is not None and len(doc.title) <= MAX_TITLE_CHARS


def test_symlink_loop_is_refused_clearly(corpus: Path) -> None:
    with pytest.raises(DocumentError, match=r"Cannot access .*loop\.txt.*(loop|levels)"):
        load_document(corpus / "loop.txt")


@pytest.mark.timeout(300)
def test_sync_skips_hostile_files_with_reasons_and_indexes_the_rest(
    corpus: Path, synced: tuple
) -> None:
    retriever, report, seconds = synced
    skipped = {Path(path).name: reason for path, reason in report.skipped}
    added = {Path(path).name for path in report.added}
    for name in IN_SYNC:
        expected = HOSTILE[name][1]
        if isinstance(expected, str):
            assert name in skipped, f"{name} was not skipped"
            assert re.search(expected, skipped[name]), skipped[name]
        elif expected is not _check_deep_html or name not in skipped:
            assert name in added, f"{name}: {skipped.get(name)}"
    assert re.search(r"over the 50 MB limit \(max_file_bytes\)", skipped["huge.md"])
    assert re.search(r"cannot resolve the path.*loop", skipped["loop.txt"])
    assert set(GOOD) <= added
    assert retriever.search("What does error E4711 mean?", k=1)[0].source.endswith("battery.md")
    assert seconds < 120, f"sync took {seconds:.0f} s"


# --------------------------------------------------------------------------- training data, QA


BROKEN_LINE = b"\n{broken\n"
DEEP = b"[" * 100_000 + b"]" * 100_000 + b"\n"


# (loader, a good first line, the word its messages use for a JSONL line)
GOOD_TRAINING = b'{"prompt": "a?", "completion": "b"}\n'
GOOD_QA = b'{"question": "a?", "answer": "b"}\n'
LOADERS = [
    pytest.param(load_examples, GOOD_TRAINING, "line", id="training"),
    pytest.param(load_qa, GOOD_QA, "row", id="qa"),
]


@pytest.mark.parametrize(("load", "good", "word"), LOADERS)
@pytest.mark.parametrize("case", ["broken", "binary", "deep-jsonl", "deep-json"])
def test_unreadable_json_is_refused_naming_the_line(
    load: Callable[[Path], object], good: bytes, word: str, case: str, tmp_path: Path
) -> None:
    name, content, match = {
        "broken": (
            "broken.jsonl",
            good + BROKEN_LINE + good,
            rf"broken\.jsonl {word} 3: not valid JSON \(.*: column 2\)\. Fix or remove that {word}",
        ),
        "binary": (
            "binary.jsonl",
            good + b"\xff\xfe" + rng.randbytes(2000),
            rf"binary\.jsonl line 2: not UTF-8 text \(byte 0xff at offset {len(good)}\)\. Re-save",
        ),
        "deep-jsonl": ("deep.jsonl", good + DEEP, rf"deep\.jsonl {word} 2: JSON nested too deeply"),
        "deep-json": ("deep.json", DEEP, r"deep\.json: JSON nested too deeply"),
    }[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=match):
        load(path)


# (loader, file name, content, the error it must raise)
HOSTILE_DATA_FILES = [
    (
        load_examples,
        "surrogate.jsonl",
        b'{"prompt": "a?", "completion": "b \\udfff"}\n',
        r"surrogate\.jsonl line 1: field 'completion' holds a lone UTF-16 surrogate",
    ),
    (
        load_examples,
        "ragged.csv",
        b"prompt,completion\nWhat is E4711?,Overheating.,extra\nA question alone\n",
        r"ragged\.csv row 2: field 'completion' must be a string, got NoneType",
    ),
    (
        load_examples,
        "quote.csv",
        b'prompt,completion\n"never closed,x\n' + b"y" * 200_000 + b"\n",
        r"quote\.csv line 2: not valid CSV \(field larger than field limit",
    ),
    (load_examples, "empty.jsonl", b"", r"empty\.jsonl: no training rows"),
    (
        load_qa,
        "surrogate.jsonl",
        b'{"question": "a?", "answer": ["b", "\\ud800"]}\n',
        r"surrogate\.jsonl row 1: field 'answer' holds a lone UTF-16 surrogate",
    ),
    (
        load_qa,
        "ragged.csv",
        b"question,answer\nWhat is E4711?,Overheating.,extra\nA question alone?\n",
        r"ragged\.csv row 3: missing field 'answer'",
    ),
    (
        load_qa,
        "quote.csv",
        b'question,answer\n"never closed,x\n' + b"y" * 200_000 + b"\n",
        r"quote\.csv line 2: not valid CSV",
    ),
    (load_qa, "empty.jsonl", b"", r"QA set is empty \(.*empty\.jsonl holds no question\)"),
]


@pytest.mark.parametrize(
    ("load", "name", "content", "match"),
    [pytest.param(*case, id=f"{case[0].__name__}-{case[1]}") for case in HOSTILE_DATA_FILES],
)
def test_hostile_data_file_is_refused_naming_the_row(
    load: Callable[[Path], object], name: str, content: bytes, match: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=match):
        load(path)


def test_ragged_qa_csv_keeps_the_complete_rows(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_bytes(b"question,answer\nWhat is E4711?,Overheating.,extra cell\n")
    (item,) = load_qa(path)
    assert (item.question, item.answers) == ("What is E4711?", ["Overheating."])


# --------------------------------------------------------------------------- configs


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "match"),
    [
        (  # a billion laughs: nine aliases of nine, nested, under a real setting
            "stop:\n  - &a ['x','x','x','x','x','x','x','x','x']\n"
            + "".join(
                f"  - &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
            ),
            r"setting 'stop' must be a list of strings or null, got list \[\[",
        ),
        ("stop: &a [*a]\n", r"setting 'stop' must be a list of strings"),
        ("stop: " + "[" * 100_000 + "\n", r"nested too deeply"),
        ("seed: !!python/object/apply:os.system ['true']\n", r"not valid YAML"),
        ("temperature: 1e-3\n", r"must be a number.*write 1\.0e-3"),
        ("seed: 99999999999999999999\n", r"seed must be a signed 64-bit integer"),
        ("max_queue: .nan\n", r"must be an integer, got float nan"),
    ],
)
def test_hostile_yaml_config_is_refused_quickly(text: str, match: str, tmp_path: Path) -> None:
    from phi3industry.cli.options import build_configs
    from phi3industry.serving import ServerConfig

    path = tmp_path / "serve.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=match):
        build_configs((PipelineConfig, ServerConfig), path, {})  # what `serve --config` reads
    assert time.perf_counter() - started < 5


def test_minilm_tokenizer_counts_a_long_word_as_one_token(
    minilm_count: Callable[[str], int],
) -> None:
    """Why chunks have a length cap in characters (see ``_check_long_word``)."""
    assert minilm_count("x" * 10_000) == 1
