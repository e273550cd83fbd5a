"""Property-based tests: arbitrary input gives a result or the library's own error.

Every parser that reads something a user or a client hands over (documents, training data,
QA sets, configs, server request bodies) is fed arbitrary and half-valid input. The property
is always the same: the call returns, quickly, either a well-formed result or a
:class:`~phi3industry.errors.Phi3IndustryError` (for the server: a 4xx JSON error), and never
another exception type. Hypothesis' ``deadline`` and pytest-timeout catch hangs.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from _pdf import make_pdf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from phi3industry.errors import ConfigError, DataFormatError, DocumentError, QueryError
from phi3industry.evaluation.config import EvalConfig
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.qa import QAItem, load_qa, qa_item_from_row
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.retrieval.documents import Chunker, Document, load_document
from phi3industry.tuning.config import TunerConfig
from phi3industry.tuning.data import Example, load_examples, rows_to_examples

FUZZ = settings(
    # PHI3INDUSTRY_FUZZ_EXAMPLES=2000 for a deeper run than the default test command's.
    max_examples=int(os.environ.get("PHI3INDUSTRY_FUZZ_EXAMPLES", "100")),
    deadline=timedelta(seconds=5),  # generous on a busy 2-core machine; a hang is minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CHUNK_SIZE = 48

# --------------------------------------------------------------------------- strategies

# Text with the characters that trip parsers: controls, NUL, line/paragraph separators,
# a BOM, replacement and non-BMP characters, Phi-3's special tokens.
_ODD = ["\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff", "\ufffd", "😀", "<|end|>"]
odd_text = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from([*_ODD, " ", "\n", "\t", "\r"])),
    max_size=25,
).map("".join)
_WORDS = ["robot", "E4711", "battery", "Dock.", "Ünïcödé", "日本語", "🤖", "and", "the", "\n\n"]
plain_text = st.lists(
    st.one_of(
        st.sampled_from(_WORDS),
        st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=8),
    ),
    max_size=30,
).map(" ".join)
any_text = st.one_of(plain_text, odd_text)
words = st.lists(st.sampled_from(_WORDS[:-1]), min_size=1, max_size=8).map(" ".join)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), odd_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_ROW_KEYS = [
    *("messages", "conversations", "prompt", "completion", "instruction", "input"),
    *("output", "text", "role", "content", "from", "value", "question", "answer"),
    *("answers", "sources", "id", "metadata", "page_content"),
]
_ROLES = ["user", "assistant", "system", "human", "gpt", "model", "tool", "", "USER"]
message = st.dictionaries(
    st.sampled_from(["role", "content", "from", "value"]),
    st.one_of(st.sampled_from(_ROLES), json_scalars),
    max_size=3,
)
row_value = st.one_of(json_values, st.lists(message, max_size=4), st.lists(odd_text, max_size=3))
rows = st.dictionaries(
    st.one_of(st.sampled_from(_ROW_KEYS), st.text(max_size=6)), row_value, max_size=5
)
"""Dicts shaped like training or QA rows: their keys, plausible and hostile values."""


def _csv_text(table: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    return out.getvalue()


def _lines(pieces: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(pieces), any_text), max_size=25).map("\n".join)


_TEXT_BY_SUFFIX: dict[str, st.SearchStrategy[str]] = {
    ".txt": any_text,
    ".md": _lines(
        [
            *("# Title", "## Sub ##", "#", "####### x", "Title", "=====", "-----", "---", "..."),
            *("```", "~~~", "    code", "> quote", "- item", "1. one", "| a | b |", "# a \t# ", ""),
        ]
    ),
    ".rst": _lines(
        [*("Title", "=====", "-----", "~~~~~", "  Indented", "=" * 30, ".. note::", "::", "")]
    ),
    ".html": st.lists(
        st.one_of(
            st.sampled_from(
                [
                    *("<div>", "</div>", "<h1>", "</h1>", "<h3>", "</h3>", "<p>", "<br>", "<pre>"),
                    *("</pre>", "<script>", "</script>", "<table><tr><td>", "</td><td>", "<nav>"),
                    *("<!--", "-->", "<![CDATA[", "]]>", "<title>", "</title>", "&amp;", "&#0;"),
                    *("&#xd800;", "<a class='headerlink'>¶</a>", "<", ">", "<!DOCTYPE html>"),
                ]
            ),
            any_text,
        ),
        max_size=30,
    ).map("".join),
    ".csv": st.one_of(
        st.lists(st.lists(any_text, min_size=1, max_size=4), max_size=6).map(
            lambda table: _csv_text(table)
        ),
        st.lists(
            st.lists(
                st.one_of(st.sampled_from(['"', ";", "\t", "|", '""', "\n"]), any_text),
                max_size=6,
            ).map(",".join),
            max_size=8,
        ).map("\n".join),
    ),
    ".jsonl": st.lists(
        st.one_of(
            json_values.map(json.dumps),
            rows.map(json.dumps),
            st.fixed_dictionaries({"text": any_text}).map(json.dumps),
            st.lists(st.fixed_dictionaries({"text": plain_text}), min_size=1, max_size=5).map(
                lambda records: "\n".join(map(json.dumps, records))
            ),
            st.dictionaries(st.text(max_size=6), json_scalars, max_size=3).map(json.dumps),
            st.sampled_from(['{"text": ', "[" * 50, "{", "", "null", '{"text": "\\ud800"}']),
            odd_text,
        ),
        max_size=8,
    ).map("\n".join),
}


def _encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        text.map(lambda t: t.encode("utf-16", "surrogatepass")),  # with a BOM
        text.map(lambda t: t.encode("cp1252", "replace")),
        text.map(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8", "replace")),
    )


_PDF = make_pdf([["Wear limits", "Replace the tread below 3 mm."], ["Page two."]], title="T")


@st.composite
def mutated_pdf(draw: st.DrawFn) -> bytes:
    """A valid PDF with bytes overwritten, inserted or cut off."""
    data = bytearray(_PDF)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        patch = draw(st.binary(max_size=12))
        if draw(st.booleans()):
            data[at : at + len(patch)] = patch
        else:
            data[at:at] = patch
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def file_bytes(suffix: str) -> st.SearchStrategy[bytes]:
    if suffix == ".pdf":
        return st.one_of(mutated_pdf(), st.binary(max_size=2000))
    return st.one_of(_encoded(_TEXT_BY_SUFFIX[suffix]), st.binary(max_size=2000))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the whole module; every example overwrites its own file."""
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- documents


def check_document(doc: Document, data: bytes, chunker: Chunker) -> None:
    assert doc.text.strip() and doc.doc_hash == hashlib.sha256(data).hexdigest()
    doc.text.encode("utf-8")  # no lone surrogates: the tokenizer and Chroma need real text
    for section in doc.sections:
        assert 0 <= section.start <= section.end <= len(doc.text)
    starts = [s.start for s in doc.sections]
    assert starts == sorted(starts)
    for i, chunk in enumerate(chunker.split(doc)):
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunker.count_tokens(chunk.text) <= CHUNK_SIZE
        assert len(chunk.text) <= chunker.max_chars
        assert chunk.index == i


@pytest.mark.timeout(180)
@pytest.mark.parametrize("suffix", [".txt", ".md", ".rst", ".html", ".pdf", ".csv", ".jsonl"])
@FUZZ
@given(data=st.data())
def test_any_file_loads_or_raises_document_error(
    suffix: str, data: st.DataObject, workdir: Path, minilm_count: Callable[[str], int]
) -> None:
    content = data.draw(file_bytes(suffix), "content")
    path = workdir / f"doc{suffix}"
    path.write_bytes(content)
    try:
        doc = load_document(path)
    except DocumentError as exc:
        assert path.name in str(exc)  # the message names the file
        event("refused")
        return
    event("loaded")
    check_document(doc, content, Chunker(minilm_count, CHUNK_SIZE, 8))


# --------------------------------------------------------------------------- training data


def check_examples(examples: list[Example]) -> None:
    assert examples
    for example in examples:
        example.plain_text().encode("utf-8")  # what the tokenizer will get is real text
        if example.is_chat:
            roles = [m["role"] for m in example.messages]
            assert set(roles) <= {"system", "user", "assistant"} and roles[0] != "assistant"
            assert all(isinstance(m["content"], str) for m in example.messages)
            assert any(
                r == "assistant" and m["content"].strip()
                for r, m in zip(roles, example.messages, strict=True)
            )
        else:
            assert isinstance(example.text, str) and example.text.strip()


@FUZZ
@given(items=st.lists(rows, max_size=4))
def test_any_training_rows_validate_or_raise_data_format_error(items: list[Any]) -> None:
    try:
        examples = rows_to_examples((f"row {i}", r) for i, r in enumerate(items, 1))
    except DataFormatError as exc:
        assert "row" in str(exc) or "no training rows" in str(exc)
        return
    check_examples(examples)


@FUZZ
@given(
    data=st.one_of(
        rows, st.lists(rows, max_size=3), json_scalars.filter(lambda v: not isinstance(v, str))
    )
)
def test_any_in_memory_training_data_loads_or_raises(data: Any) -> None:
    # No bare strings: a string is a path, and fuzzing the file system is not the point.
    try:
        examples = load_examples(data)
    except DataFormatError:
        return
    check_examples(examples)


good_train_rows = st.one_of(
    st.fixed_dictionaries({"text": words}),
    st.fixed_dictionaries({"prompt": words, "completion": words}),
    st.fixed_dictionaries({"instruction": words, "output": words}, optional={"input": any_text}),
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["system", "user", "assistant"]), "content": any_text}
                ),
                min_size=1,
                max_size=4,
            )
        }
    ),
)
good_qa_rows = st.fixed_dictionaries(
    {"question": words, "answer": st.one_of(words, st.lists(plain_text, max_size=2))},
    optional={"sources": st.lists(plain_text, max_size=2), "id": json_scalars},
)


def _table(columns: list[str]) -> st.SearchStrategy[str]:
    width = len(columns)
    return st.lists(st.lists(any_text, min_size=width, max_size=width), max_size=4).map(
        lambda table: _csv_text([columns, *table])
    )


def _row_files(good: st.SearchStrategy[Any], tables: list[list[str]]) -> dict[str, Any]:
    """File contents per suffix: all-good rows, good rows mixed with hostile ones, garbage."""
    good_jsonl = st.lists(good.map(json.dumps), min_size=1, max_size=4).map("\n".join)
    mixed = st.one_of(good.map(json.dumps), rows.map(json.dumps), json_values.map(json.dumps))
    return {
        ".jsonl": st.one_of(
            good_jsonl, st.lists(st.one_of(mixed, odd_text), max_size=6).map("\n".join)
        ),
        ".json": st.one_of(
            st.lists(good, min_size=1, max_size=4).map(json.dumps),
            st.lists(st.one_of(good, rows), max_size=4).map(json.dumps),
            st.fixed_dictionaries({"data": st.lists(rows, max_size=3)}).map(json.dumps),
            json_values.map(json.dumps),
            odd_text,
        ),
        ".csv": st.one_of(
            *map(_table, tables),
            st.lists(
                st.lists(st.one_of(st.sampled_from(_ROW_KEYS), odd_text), min_size=1, max_size=4),
                max_size=5,
            ).map(_csv_text),
        ),
        ".tsv": st.one_of(
            _table(tables[0]).map(lambda t: t.replace(",", "\t")),
            st.lists(st.lists(odd_text, max_size=4).map("\t".join), max_size=5).map("\n".join),
        ),
    }


def _data_file(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    # Data files must be UTF-8, so most examples are; the rest try other encodings and bytes.
    utf8 = text.map(lambda t: t.encode("utf-8"))
    return st.one_of(utf8, utf8, _encoded(text), st.binary(max_size=500))


_TRAIN_FILES = _row_files(
    good_train_rows, [["text"], ["prompt", "completion"], ["instruction", "input", "output"]]
)
_QA_FILES = _row_files(good_qa_rows, [["question", "answer"], ["question", "answer", "sources"]])

T = TypeVar("T")


def _load_or_name_the_file(load: Callable[[Path], T], path: Path) -> T | None:
    """``load(path)``, or None when it refused the file with an error naming the file."""
    try:
        loaded = load(path)
    except DataFormatError as exc:
        assert path.name in str(exc)
        event("refused")
        return None
    event("loaded")
    return loaded


@FUZZ
@given(
    suffix=st.sampled_from([".jsonl", ".json", ".csv"]),
    data=st.data(),
)
def test_any_training_file_loads_or_raises_data_format_error(
    suffix: str, data: st.DataObject, workdir: Path
) -> None:
    path = workdir / f"train{suffix}"
    path.write_bytes(data.draw(_data_file(_TRAIN_FILES[suffix]), "bytes"))
    examples = _load_or_name_the_file(load_examples, path)
    if examples is not None:
        check_examples(examples)


# --------------------------------------------------------------------------- QA sets


def check_qa(items: list[QAItem]) -> None:
    assert items
    for item in items:
        json.dumps(item.to_dict(), ensure_ascii=False).encode("utf-8")
        assert item.question.strip() and item.answers
        assert all(isinstance(a, str) and a.strip() for a in item.answers)
        assert all(isinstance(s, str) for s in item.sources)


@FUZZ
@given(row=st.one_of(rows, json_values))
def test_any_qa_row_validates_or_raises_data_format_error(row: Any) -> None:
    try:
        item = qa_item_from_row(row, "qa.jsonl row 3")
    except DataFormatError as exc:
        assert "qa.jsonl row 3" in str(exc)
        return
    check_qa([item])
    json.dumps(item.to_dict())  # what save_qa writes


@FUZZ
@given(suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv"]), data=st.data())
def test_any_qa_file_loads_or_raises_data_format_error(
    suffix: str, data: st.DataObject, workdir: Path
) -> None:
    path = workdir / f"qa{suffix}"
    path.write_bytes(data.draw(_data_file(_QA_FILES[suffix]), "bytes"))
    items = _load_or_name_the_file(load_qa, path)
    if items is not None:
        check_qa(items)


# --------------------------------------------------------------------------- configs

CONFIGS: dict[type, dict[str, Any]] = {
    RetrieverConfig: {"path": "index"},
    TunerConfig: {},
    PipelineConfig: {},
    EvalConfig: {},
}
_CHOICES = [
    *("lora", "qlora", "dora", "nf4", "fp4", "rag", "base", "finetuned", "rag+finetuned"),
    *("auto", "fp32", "bf16", "torch", "onnx", "llm", "concat", "hard", "random", "all-linear"),
    *("a,b", "http://127.0.0.1:1", "index", "x" * 600, "1e-3", "0.5", ""),
]
config_values = st.one_of(
    json_values,
    st.sampled_from(_CHOICES),
    st.integers(-3, 70_000),
    st.sampled_from([2**31, 2**32, 2**63, -(2**63) - 1, 10**400]),
    st.floats(-3, 3),
    st.lists(st.sampled_from(_CHOICES), max_size=3),
)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same type as a config default."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-2, 5000)
    if isinstance(value, float):
        return st.floats(-0.5, 2.5)
    if isinstance(value, list):
        return st.lists(st.sampled_from(_CHOICES), max_size=3)
    return st.one_of(st.sampled_from(_CHOICES), st.none(), st.integers(0, 9000))


@FUZZ
@given(cls=st.sampled_from(list(CONFIGS)), data=st.data())
def test_any_config_dict_builds_or_raises_config_error(cls: Any, data: st.DataObject) -> None:
    keys = st.one_of(st.sampled_from(cls.field_names()), st.text(max_size=12), st.integers())
    defaults = cls(**CONFIGS[cls]).to_dict()
    typed = st.sampled_from(sorted(defaults)).flatmap(
        lambda k: st.tuples(st.just(k), _like(defaults[k]))
    )
    overrides = data.draw(
        st.one_of(
            st.dictionaries(keys, config_values, max_size=5),
            st.lists(typed, max_size=4).map(dict),  # right types, maybe wrong values
        ),
        "overrides",
    )
    try:
        config = cls.from_dict({**CONFIGS[cls], **overrides})
    except ConfigError as exc:
        assert str(exc)
        event("refused")
        return
    event("built")
    assert cls.from_dict(config.to_dict()) == config


@FUZZ
@given(
    cls=st.sampled_from(list(CONFIGS)),
    text=st.one_of(
        odd_text,
        st.dictionaries(
            st.sampled_from([*_ROW_KEYS, "k", "port", "stop"]), config_values, max_size=4
        ).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
        st.lists(
            st.sampled_from(
                [
                    "a: &a [1, 2]",
                    "b: *a",
                    "k: 3",
                    "- x",
                    "? [a]",
                    ": 1",
                    "stop: [[x]]",
                    "port: 0x1F",
                    "seed: 1e3",
                    "!!python/name:os",
                ]
            ),
            max_size=5,
        ).map("\n".join),
    ),
)
def test_any_yaml_config_loads_or_raises_config_error(cls: Any, text: str, workdir: Path) -> None:
    path = workdir / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = cls.from_yaml(path)
    except ConfigError as exc:
        assert str(exc)
        event("refused")
        return
    event("built")
    assert isinstance(config, cls)


# --------------------------------------------------------------------------- server


@FUZZ
@given(body=json_values)
def test_any_json_validates_as_a_request_or_raises_validation_error(body: Any) -> None:
    pytest.importorskip("fastapi")
    from pydantic import ValidationError

    from phi3industry.serving.schema import ChatRequest, RetrieveRequest

    for schema in (ChatRequest, RetrieveRequest):
        try:
            request = schema.model_validate(body)
        except ValidationError:
            continue
        if isinstance(request, ChatRequest):
            for msg in request.messages:
                with contextlib.suppress(QueryError):  # a non-text part: the server's 400
                    assert isinstance(msg.text(), str)


@pytest.fixture(scope="module")
def client(tiny_phi3_dir: Path, one_torch_thread: None) -> Iterator[Any]:
    """The real app around a real tiny Phi-3 pipeline (no retriever), two tokens per answer."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from phi3industry import Pipeline
    from phi3industry.serving import ServerConfig, create_app

    config = PipelineConfig(strategy="base", max_new_tokens=2)
    server = ServerConfig(max_tokens_cap=4, max_messages=6, max_body_bytes=20_000)
    pipeline = Pipeline(model=str(tiny_phi3_dir), config=config)
    # raise_server_exceptions: a crash in a handler fails the test instead of becoming a 500.
    with TestClient(create_app(pipeline, server), raise_server_exceptions=True) as test_client:
        yield test_client


def _chat_bodies(models: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    content = st.one_of(
        st.none(),
        odd_text,
        st.sampled_from(["\ud800", "What is E4711?", " ", "<|assistant|>"]),
        st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url", ""])},
                optional={"text": st.one_of(odd_text, st.none())},
            ),
            max_size=2,
        ),
    )
    chat_message = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"])},
        optional={"content": content},
    )
    return st.fixed_dictionaries(
        {
            "model": st.one_of(st.sampled_from(models), st.text(max_size=5)),
            "messages": st.lists(chat_message, max_size=8),
        },
        optional={
            "max_tokens": st.one_of(st.integers(-1, 10), st.just(10**30)),
            "temperature": st.one_of(st.floats(-1, 3), st.none()),
            "top_p": st.one_of(st.floats(-1, 2), st.none()),
            "stop": st.one_of(odd_text, st.lists(odd_text, max_size=2), st.none()),
            "seed": st.one_of(st.integers(-5, 5), st.sampled_from([2**63, -(2**63) - 1, 2**64])),
            "strategy": st.sampled_from(["base", "rag", "finetuned", "rag+finetuned", "x"]),
            "stream": st.booleans(),
            "n": st.integers(0, 2),
            "stream_options": st.one_of(
                st.none(), st.dictionaries(st.just("include_usage"), json_scalars)
            ),
        },
    )


def _valid_chat_bodies(models: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Requests the server should answer with 200 (or a 4xx for a model/strategy mismatch)."""
    turn = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]), "content": any_text}
    )
    question = st.fixed_dictionaries(
        {"role": st.just("user"), "content": plain_text.filter(str.strip)}
    )
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(models),
            "messages": st.tuples(st.lists(turn, max_size=3), question).map(
                lambda t: [*t[0], t[1]]
            ),
        },
        optional={
            "max_tokens": st.integers(1, 4),
            "temperature": st.floats(0, 2),
            "top_p": st.floats(0.01, 1),
            "stop": st.lists(plain_text.filter(bool), max_size=2),
            "seed": st.integers(-(2**63), 2**63 - 1),
            "stream": st.booleans(),
        },
    )


def _bodies(models: list[str], route: str) -> st.SearchStrategy[bytes]:
    if route == "/v1/retrieve":
        shaped = st.fixed_dictionaries({"query": any_text}, optional={"k": st.integers(-1, 101)})
    else:
        shaped = st.one_of(_valid_chat_bodies(models), _chat_bodies(models))
    return st.one_of(
        shaped.map(lambda b: json.dumps(b).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.sampled_from([b"[" * 100_000, b"1e999999", b'{"model": NaN}', b"\xff\xfe{}"]),
    )


@pytest.mark.timeout(180)
@FUZZ
@given(route=st.sampled_from(["/v1/chat/completions"] * 3 + ["/v1/retrieve"]), data=st.data())
def test_any_request_body_gets_a_reply_or_a_4xx_never_a_500(
    route: str, data: st.DataObject, client: Any
) -> None:
    models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    body = data.draw(_bodies(models, route), "body")
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    event(f"{route} {response.status_code}")
    assert response.status_code in (200, 400, 404, 413), response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert "server_error" not in response.text, response.text
    else:
        assert response.json()["choices"][0]["message"]["role"] == "assistant"
