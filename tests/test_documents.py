"""Behaviour of document discovery, loading and chunking (phi3industry.retrieval.documents)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from _pdf import make_pdf  # tests/ is on sys.path (pytest rootdir conftest)
from hypothesis import given, settings
from hypothesis import strategies as st

from phi3industry.errors import ConfigError, DocumentError
from phi3industry.retrieval.documents import (
    SUPPORTED_SUFFIXES,
    Chunk,
    Chunker,
    Document,
    Section,
    discover_files,
    file_hash,
    load_document,
)

SAMPLE_KB = Path(__file__).resolve().parents[1] / "phi3industry" / "assets" / "sample_kb"


def words(text: str) -> int:
    return len(text.split())


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def check_chunks(doc: Document, chunks: list[Chunk], count: Callable[[str], int], size: int):
    for i, chunk in enumerate(chunks):
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text
        assert count(chunk.text) <= size
        assert chunk.tokens == count(chunk.text)  # measured when cut, reused by the syncer
        assert chunk.index == i
        assert chunk.chunk_hash == hashlib.sha256(chunk.text.encode()).hexdigest()
        assert chunk.doc_hash == doc.doc_hash and chunk.source == doc.source
        section = next(s for s in doc.sections if s.start <= chunk.start < s.end)
        assert (chunk.section, chunk.page) == (section.title, section.page)
        if doc.metadata["format"] in ("markdown", "rst", "html"):
            # Small heading sections may be joined, so a chunk ends within some later section.
            assert any(s.start < chunk.end <= s.end for s in doc.sections)
        else:
            assert chunk.end <= section.end  # pages, rows and records are never joined


# --------------------------------------------------------------------------- discovery


def test_supported_suffixes() -> None:
    assert set(SUPPORTED_SUFFIXES) == {
        ".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".csv", ".jsonl",
    }  # fmt: skip


def test_discover_walks_directories_and_skips_hidden_and_unknown(tmp_path: Path) -> None:
    write(tmp_path / "kb" / "a.md", "# A")
    write(tmp_path / "kb" / "sub" / "b.TXT", "b")
    write(tmp_path / "kb" / "image.png", b"\x89PNG")
    write(tmp_path / "kb" / ".git" / "c.md", "hidden")
    write(tmp_path / "kb" / ".notes.md", "hidden")
    files, skipped = discover_files([tmp_path / "kb", str(tmp_path / "kb" / "a.md")])
    kb = (tmp_path / "kb").resolve()
    assert files == [kb / "a.md", kb / "sub" / "b.TXT"]
    assert all(f.is_absolute() for f in files)
    assert skipped == []


def test_discover_reports_named_unsupported_file(tmp_path: Path) -> None:
    image = write(tmp_path / "photo.png", b"\x89PNG")
    files, skipped = discover_files([image])
    assert files == []
    supported = " ".join(SUPPORTED_SUFFIXES)
    assert skipped == [(str(image), f"unsupported file type '.png' (supported: {supported})")]


def test_discover_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "docs" / "x.md", "x")
    write(tmp_path / "docs" / "deep" / "y.md", "y")
    write(tmp_path / "docs" / "deep" / "z.rst", "z")
    monkeypatch.chdir(tmp_path)
    files, _ = discover_files(["docs/**/*.md"])
    docs = (tmp_path / "docs").resolve()
    assert files == [docs / "deep" / "y.md", docs / "x.md"]
    with pytest.raises(DocumentError, match=r"No files match the pattern 'docs/\*\.pdf'"):
        discover_files(["docs/*.pdf"])


def test_discover_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"No such file or directory: '.*nowhere\.md'"):
        discover_files([tmp_path / "nowhere.md"])


def test_discover_include_exclude(tmp_path: Path) -> None:
    write(tmp_path / "manuals" / "ar7.md", "a")
    write(tmp_path / "manuals" / "old" / "ar5.md", "a")
    write(tmp_path / "policies" / "returns.md", "a")
    write(tmp_path / "notes.txt", "a")
    names = lambda fs: sorted(f.relative_to(tmp_path.resolve()).as_posix() for f in fs)  # noqa: E731
    files, _ = discover_files([tmp_path], include=["manuals/*"])
    assert names(files) == ["manuals/ar7.md", "manuals/old/ar5.md"]
    files, _ = discover_files([tmp_path], include=["*.md"], exclude=["manuals/old/*"])
    assert names(files) == ["manuals/ar7.md", "policies/returns.md"]
    files, _ = discover_files([tmp_path], exclude=["returns.md", "**/*.txt"])  # bare name
    assert names(files) == ["manuals/ar7.md", "manuals/old/ar5.md"]
    named = tmp_path / "notes.txt"
    files, skipped = discover_files([named], exclude=["*.txt"])
    assert files == [] and skipped == [(str(named), "matches exclude pattern '*.txt'")]


# --------------------------------------------------------------------------- loading formats


def test_file_hash_matches_doc_hash_and_is_stable(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "same bytes\n")
    b = write(tmp_path / "b.txt", "same bytes\n")
    assert file_hash(a) == file_hash(b) == hashlib.sha256(b"same bytes\n").hexdigest()
    assert load_document(a).doc_hash == load_document(b).doc_hash == file_hash(a)
    write(b, "other bytes\n")
    assert load_document(b).doc_hash != file_hash(a)


def test_plain_text(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "notes.txt", "line one\r\nline two\r\n"))
    assert doc.text == "line one\nline two\n"
    assert doc.title == "notes" and doc.source == (tmp_path / "notes.txt").resolve().as_posix()
    assert doc.sections == (Section(None, 0, len(doc.text), None),)
    assert doc.metadata == {"format": "text", "encoding": "utf-8"}


def test_markdown_headings_become_sections(tmp_path: Path) -> None:
    text = (
        "Intro text.\n\n# Guide\n\n## Install\n\nSteps.\n\n```bash\n# not a heading\n```\n\n"
        "Linux\n-----\n\napt install\n\n### Deep ###\n\ndeep text\n\n# Other\n\nend\n"
    )
    doc = load_document(write(tmp_path / "g.md", text))
    assert doc.title == "Guide"
    titles = [s.title for s in doc.sections]
    assert titles == [None, "Guide > Install", "Guide > Linux", "Guide > Linux > Deep", "Other"]
    install = doc.sections[1]
    assert doc.text[install.start :].startswith("# Guide\n\n## Install")  # empty "# Guide" folded
    assert "# not a heading" in doc.text[install.start : install.end]


def test_rst_headings_become_sections(tmp_path: Path) -> None:
    text = (
        "=======\nManual\n=======\n\nIntro.\n\nSetup\n=====\n\nText.\n\nWiring\n------\n\n"
        "More.\n\nUse\n===\n\nLast.\n\n----\n\nAfter a transition.\n"
    )
    doc = load_document(write(tmp_path / "m.rst", text))
    assert doc.title == "Manual"
    assert [s.title for s in doc.sections] == [
        "Manual", "Manual > Setup", "Manual > Setup > Wiring", "Manual > Use",
    ]  # fmt: skip
    assert doc.text[doc.sections[0].start :].startswith("=======\nManual")


def test_html_extracts_text_and_sections(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Policy X</title><style>p{}</style></head><body>"
        "<nav>Home | Menu</nav><div role='navigation'>Sidebar</div><script>var x=1;</script>"
        "<h1>Safety<a class='headerlink' href='#s'>¶</a></h1><p>Keep   <b>0.5 m</b>\n away.</p>"
        "<h2>Docks</h2><ul><li>one</li><li>two</li></ul><pre>a  b\n  c</pre>"
        "<!-- a comment --></body></html>"
    )
    doc = load_document(write(tmp_path / "p.html", html))
    assert doc.title == "Policy X"
    for dropped in ("Home", "Sidebar", "var x", "p{}", "¶", "comment"):
        assert dropped not in doc.text
    assert "Keep 0.5 m away." in doc.text
    assert "one\ntwo" in doc.text and "a  b\n  c" in doc.text
    assert [s.title for s in doc.sections] == ["Safety", "Safety > Docks"]
    assert doc.text[doc.sections[1].start :].startswith("Docks\n\none")


def test_html_title_falls_back_to_first_h1_and_deep_nesting_is_fine(tmp_path: Path) -> None:
    deep = "<div>" * 5_000 + "<h1>Deep</h1>bottom" + "</div>" * 5_000
    try:
        doc = load_document(write(tmp_path / "deep.htm", deep))
    except DocumentError as exc:  # refusing is acceptable; crashing is not
        assert "deep.htm" in str(exc)
    else:
        assert doc.title == "Deep" and "bottom" in doc.text


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    pdf = make_pdf([["First page text."], [], ["Third page (with parens)."]], title="Specs")
    doc = load_document(write(tmp_path / "s.pdf", pdf))
    assert doc.title == "Specs"
    assert doc.metadata == {"format": "pdf", "pages": 3}
    assert [s.page for s in doc.sections] == [1, 3]  # the empty page 2 has no section
    assert doc.text[doc.sections[1].start : doc.sections[1].end] == "Third page (with parens)."
    chunks = Chunker(words, 50, 5).split(doc)
    assert [c.page for c in chunks] == [1, 3]
    assert load_document(write(tmp_path / "untitled.pdf", make_pdf([["x"]]))).title == "untitled"


def test_csv_rows_render_as_records(tmp_path: Path) -> None:
    text = 'code,message,action\nE-1,"Motor, hot",Cool down\nE-2,Short\n\nE-3,x,y,extra\n'
    doc = load_document(write(tmp_path / "errors.csv", text))
    assert doc.text == (
        "code: E-1\nmessage: Motor, hot\naction: Cool down\n\n"
        "code: E-2\nmessage: Short\n\n"
        "code: E-3\nmessage: x\naction: y\ncolumn 4: extra"
    )
    assert [s.title for s in doc.sections] == ["row 1", "row 2", "row 3"]
    assert doc.metadata["records"] == 3
    semicolons = load_document(write(tmp_path / "s.csv", "a;b\n1;2\n"))
    assert semicolons.text == "a: 1\nb: 2"


def test_jsonl_records(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "text": "First record."},
        {"page_content": "Second record.", "source": "x"},
        {"ticket": "T-9", "open": True, "n": 3, "nested": {"skip": 1}},
    ]
    body = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + json.dumps(lines[2])
    doc = load_document(write(tmp_path / "r.jsonl", body))
    assert doc.text == "First record.\n\nSecond record.\n\nticket: T-9\nopen: true\nn: 3"
    assert [s.title for s in doc.sections] == ["line 1", "line 2", "line 4"]


def test_decoding_boms_and_cp1252(tmp_path: Path) -> None:
    assert load_document(write(tmp_path / "a.txt", "\ufeffhé".encode())).text == "hé"
    utf16 = load_document(write(tmp_path / "b.txt", "héllo wörld".encode("utf-16")))
    assert utf16.text == "héllo wörld" and utf16.metadata["encoding"] == "utf-16"
    legacy = load_document(write(tmp_path / "c.txt", b"Caf\xe9 \x93quoted\x94"))
    assert legacy.text == "Café “quoted”" and legacy.metadata["encoding"] == "cp1252"


# --------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"No such file: .*ghost\.md"):
        load_document(tmp_path / "ghost.md")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"is a directory; .*discover_files"):
        load_document(tmp_path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"x\.docx: unsupported file type '\.docx'"):
        load_document(write(tmp_path / "x.docx", "text"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.md", b"", r"empty\.md is empty \(0 bytes\)"),
        ("blank.txt", b" \n\t\n  ", r"blank\.txt holds only whitespace"),
        ("nul.txt", b"text\x00\x00more", r"nul\.txt looks binary \(it contains NUL bytes\)"),
        ("bad.md", b"ok \xc3\x28 \x01\x02", r"bad\.md: not valid UTF-8 \(byte 0xc3 at offset 3\)"),
        ("ctl.txt", b"\x01\x02\x03\x04abc", r"ctl\.txt looks binary: 4 of its 7"),
        ("random.pdf", random.Random(0).randbytes(300), r"Cannot parse PDF .*random\.pdf"),
        ("cut.pdf", make_pdf([["text"]])[:200], r"Cannot parse PDF .*cut\.pdf"),
        ("blank.pdf", make_pdf([[], []]), r"blank\.pdf has no extractable text.*OCR"),
        ("bad.jsonl", b'{"text": "a"}\n\n{"text": "b"}\n{"text": \n', r"l line 4: not valid JSON"),
        ("list.jsonl", b'{"text": "a"}\n[1, 2]\n', r"line 2: expected a JSON object, got list"),
        ("empty.jsonl", b'{"a": null}\n', r"empty\.jsonl has no text"),
        ("quote.csv", b'a,b\n1,"unterminated\n2,3\n', r"Cannot parse CSV .*quote\.csv near line"),
        ("header.csv", b"a,b\n", r"header\.csv has a header but no data rows"),
        ("empty.html", b"<html><script>x</script></html>", r"empty\.html holds no text"),
    ],
)  # fmt: skip
def test_bad_files_raise_document_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    with pytest.raises(DocumentError, match=message):
        load_document(write(tmp_path / name, content))


def test_over_max_bytes(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", "x" * 1_234_567)
    with pytest.raises(
        DocumentError,
        match=r"big\.txt is 1\.2 MB, over the 1 MB limit \(max_file_bytes\); raise the limit or ",
    ):
        load_document(big, max_bytes=1_000_000)
    assert len(load_document(big, max_bytes=1_234_567).text) == 1_234_567
    with pytest.raises(DocumentError, match=r"is 2\.5 KB, over the 1 KB limit"):
        load_document(write(tmp_path / "small.txt", "y" * 2500), max_bytes=1000)


def test_pdf_page_limit(tmp_path: Path) -> None:
    pdf = write(tmp_path / "long.pdf", make_pdf([["a"], ["b"], ["c"]]))
    with pytest.raises(DocumentError, match=r"long\.pdf has 3 pages, over the 2-page limit"):
        load_document(pdf, max_pages=2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.md", "secret")
    locked.chmod(0)
    try:
        with pytest.raises(DocumentError, match=r"Cannot read .*locked\.md: permission denied"):
            load_document(locked)
    finally:
        locked.chmod(0o644)


def test_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it would block: it must be refused before any read
    with pytest.raises(DocumentError, match=r"pipe\.txt is not a regular file"):
        load_document(fifo)


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize(("size", "overlap"), [(10, 10), (10, 11), (0, 0), (5, -1)])
def test_bad_chunker_settings(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError, match=r"chunk_(size|overlap) must be"):
        Chunker(words, chunk_size=size, chunk_overlap=overlap)


def _doc(text: str, sections: tuple[Section, ...] | None = None) -> Document:
    sections = sections or (Section(None, 0, len(text)),)
    return Document("/kb/doc.txt", text, "Doc", "0" * 64, sections, {"format": "text"})


def test_long_section_is_split_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about robot part NW-{i:04d}." for i in range(120)]
    doc = _doc(" ".join(sentences))
    chunks = Chunker(words, chunk_size=40, chunk_overlap=8).split(doc)
    assert len(chunks) > 5
    check_chunks(doc, chunks, words, 40)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # consecutive chunks share text
        assert before.start < after.start
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
    no_overlap = Chunker(words, chunk_size=40, chunk_overlap=0).split(doc)
    assert all(a.end <= b.start for a, b in itertools.pairwise(no_overlap))


def test_unbreakable_run_is_cut_by_characters() -> None:
    doc = _doc("x" * 5000)
    chunks = Chunker(len, chunk_size=300, chunk_overlap=20).split(doc)
    check_chunks(doc, chunks, len, 300)
    assert chunks[-1].end == 5000


def test_chunks_follow_sections_and_drop_blank_pieces() -> None:
    text = "Alpha beta.\n\n   \n\nGamma delta epsilon."
    sections = (Section("A", 0, 13), Section("A > B", 13, 18), Section("C", 18, len(text), 2))
    chunks = Chunker(words, 100, 10).split(_doc(text, sections))
    assert [(c.text, c.section, c.page) for c in chunks] == [
        ("Alpha beta.", "A", None), ("Gamma delta epsilon.", "C", 2),
    ]  # fmt: skip


def test_chunk_metadata_is_chroma_safe() -> None:
    chunk = Chunker(words, 100, 10).split(_doc("Some text here."))[0]
    meta = chunk.metadata()
    assert meta == {
        "source": "/kb/doc.txt",
        "start": 0,
        "end": 15,
        "chunk_index": 0,
        "chunk_hash": chunk.chunk_hash,
        "doc_hash": "0" * 64,
        "title": "Doc",
    }  # section and page are None, so left out
    assert all(isinstance(v, (str, int, float, bool)) for v in meta.values())


def test_chunking_is_deterministic_and_stateless(minilm_count: Callable[[str], int]) -> None:
    chunker = Chunker(minilm_count, 64, 8)
    manual = load_document(SAMPLE_KB / "docs" / "manuals" / "ar7-operator-manual.md")
    dense = _doc("0123456789abcdef " * 400)  # very different tokens per character
    first = chunker.split(manual)
    chunker.split(dense)
    assert chunker.split(manual) == first == Chunker(minilm_count, 64, 8).split(manual)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab cd\n\n.é"), max_size=600),
    size=st.integers(1, 30),
    data=st.data(),
)
def test_spans_and_sizes_hold_for_any_text(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    doc = _doc(text, (Section(None, 0, len(text)),))
    chunks = Chunker(len, size, overlap).split(doc)
    check_chunks(doc, chunks, len, size)
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(text[i].isspace() or i in covered for i in range(len(text)))  # nothing lost


# --------------------------------------------------------------------------- sample KB


def test_sample_kb_loads_and_chunks(minilm_count: Callable[[str], int]) -> None:
    files, skipped = discover_files([SAMPLE_KB / "docs"])
    assert skipped == [] and len(files) >= 8
    assert {f.suffix for f in files} >= {".md", ".rst", ".html", ".pdf", ".csv", ".jsonl", ".txt"}
    chunker = Chunker(minilm_count, chunk_size=128, chunk_overlap=16)
    total = 0
    for path in files:
        doc = load_document(path)
        assert doc.title and doc.sections
        chunks = chunker.split(doc)
        check_chunks(doc, chunks, minilm_count, 128)
        total += len(chunks)
    assert total > 50


def test_sample_kb_questions_and_training_data() -> None:
    questions = [
        json.loads(line)
        for line in (SAMPLE_KB / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(questions) >= 12
    for q in questions:
        assert q["question"].strip() and q["answer"].strip() and q["sources"]
        assert all((SAMPLE_KB / source).is_file() for source in q["sources"])
    train = [
        json.loads(line)
        for line in (SAMPLE_KB / "qa_train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(train) >= 40
    for row in train:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert all(m["content"].strip() for m in row["messages"])
    asked = {q["question"].lower() for q in questions}
    assert not asked & {row["messages"][0]["content"].lower() for row in train}


def test_small_heading_sections_are_joined_up_to_chunk_size(tmp_path: Path) -> None:
    body = " ".join(f"word{i}" for i in range(120))
    text = (
        f"# Guide\n\n## Short A\n\nOne line.\n\n## Short B\n\nTwo lines.\n\n## Long\n\n{body}\n\n"
        "## Short C\n\nThree.\n\n## Short D\n\nFour.\n"
    )
    path = tmp_path / "guide.md"
    path.write_text(text)
    doc = load_document(path)
    count = lambda s: len(s.split())  # noqa: E731
    chunks = Chunker(count, chunk_size=40, chunk_overlap=0).split(doc)
    check_chunks(doc, chunks, count, 40)
    # The heading and both short sections make one chunk titled by the first of them.
    assert chunks[0].text.startswith("# Guide") and "Two lines." in chunks[0].text
    assert (
        chunks[0].section == "Guide > Short A"
    )  # the bare "# Guide" heading joins its first child
    assert all("word" not in c.text for c in chunks[:1])
    # The long section (told by a prefix: it is far over the size) is joined with neither side.
    assert len(chunks) >= 5  # the heading block, three or more of the long section, the tail
    assert all(c.section == "Guide > Long" for c in chunks[1:-1])
    assert all("Three." not in c.text for c in chunks[:-1])
    assert chunks[-1].section == "Guide > Short C" and "Four." in chunks[-1].text
    assert "word" not in chunks[-1].text
