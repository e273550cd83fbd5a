"""QA sets: load and validate them, or generate them from the indexed corpus."""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3industry._evaluation.metrics import answer_recall, normalize_answer
from phi3industry._textfiles import iter_csv, iter_jsonl, parse_json, read_utf8
from phi3industry.errors import DataFormatError

QA_FIELDS = ("question", "answer", "sources")
_OPTIONAL = ("id", "metadata")
_QA_PROMPT = (
    "Read the passage below. Write one question that a user of this company's products or "
    "services could ask and that the passage answers, then its short answer taken from the "
    "passage. Reply in exactly this format and nothing else:\n"
    "Question: <the question>\nAnswer: <the answer>\n\nPassage:\n{passage}"
)
# A JSON "\ud800" escape decodes to a lone surrogate, which no tokenizer can encode.
_SURROGATE = re.compile("[\ud800-\udfff]")
_QA_REPLY = re.compile(r"question\s*:\s*(?P<q>.+?)\s*\n+\s*answer\s*:\s*(?P<a>.+)", re.I | re.S)


@dataclass
class QAItem:
    """One evaluation question.

    Attributes:
        question: The question.
        answers: Acceptable reference answers (at least one).
        sources: Gold sources: document paths (absolute, or relative to the knowledge
            base's root) or chunk ids. Empty when unknown (retrieval metrics are skipped).
        id: Optional identifier.
        metadata: Anything else worth keeping (e.g. how it was generated).
    """

    question: str
    answers: list[str]
    sources: list[str] = field(default_factory=list)
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> str:
        """The first (preferred) reference answer."""
        return self.answers[0]

    def to_dict(self) -> dict[str, Any]:
        """Return the row as written to a QA JSONL file."""
        row: dict[str, Any] = {
            "question": self.question,
            "answer": self.answers[0] if len(self.answers) == 1 else list(self.answers),
            "sources": list(self.sources),
        }
        if self.id is not None:
            row["id"] = self.id
        if self.metadata:
            row["metadata"] = dict(self.metadata)
        return row


def _text(value: str, where: str, name: str) -> str:
    if (bad := _SURROGATE.search(value)) is not None:
        raise DataFormatError(
            f"{where}: field {name!r} holds a lone UTF-16 surrogate ({bad.group()!r}, from a "
            "\\u escape), which is not text. Fix that escape."
        )
    return value


def _text_list(value: Any, where: str, name: str, *, allow_empty: bool) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # a JSON list in a CSV cell
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise DataFormatError(
                    f"{where}: field {name!r} is not a valid JSON list: {exc}."
                ) from exc
        elif name == "sources":
            value = [p for p in re.split(r"[;|]", text) if p.strip()]
        else:
            value = [value]
    if value is None and allow_empty:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataFormatError(
            f"{where}: field {name!r} must be a string or a list of strings, got "
            f"{type(value).__name__} ({value!r:.60})."
        )
    items = [_text(v, where, name).strip() for v in value if v.strip()]
    if not items and not allow_empty:
        raise DataFormatError(f"{where}: field {name!r} is empty; give at least one answer.")
    return items


def qa_item_from_row(row: Any, where: str) -> QAItem:
    """Validate one QA row (``question``, ``answer``, optional ``sources``).

    Args:
        row: The record.
        where: Where it comes from, for messages (``"qa.jsonl row 3"``).

    Raises:
        DataFormatError: Naming the row and the field that is missing or malformed.
    """
    if not isinstance(row, dict):
        raise DataFormatError(f"{where}: a QA row must be an object, got {type(row).__name__}.")
    if "answers" in row and "answer" not in row:
        row = {**row, "answer": row["answers"]}
        row.pop("answers")
    unknown = sorted(set(row) - set(QA_FIELDS) - set(_OPTIONAL))
    if unknown:
        raise DataFormatError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a QA row has "
            "'question', 'answer' (string or list of acceptable answers) and optional "
            "'sources' (gold document paths or chunk ids)."
        )
    for name in ("question", "answer"):
        if name not in row or row[name] is None:
            raise DataFormatError(f"{where}: missing field {name!r}.")
    question = row["question"]
    if not isinstance(question, str) or not question.strip():
        raise DataFormatError(
            f"{where}: field 'question' must be a non-empty string, got {question!r:.60}."
        )
    _text(question, where, "question")
    answers = _text_list(row["answer"], where, "answer", allow_empty=False)
    sources = _text_list(row.get("sources"), where, "sources", allow_empty=True)
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataFormatError(f"{where}: field 'metadata' must be an object.")
    ident = row.get("id")
    return QAItem(
        question.strip(), answers, sources, None if ident is None else str(ident), metadata
    )


def _rows_from_file(path: Path) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise DataFormatError(
            f"Cannot read QA file {path}: unknown extension {suffix!r}; use .jsonl, .json, "
            ".csv or .tsv."
        )
    text = read_utf8(path, "QA file ")
    if suffix in (".jsonl", ".ndjson"):
        for number, row in iter_jsonl(text, path.name, label="row"):
            yield f"{path.name} row {number}", row
    elif suffix == ".json":
        data = parse_json(text, path.name)
        if isinstance(data, dict):
            data = data.get("data", data.get("questions", [data]))
        if not isinstance(data, list):
            raise DataFormatError(f"{path.name}: expected a list of QA objects.")
        for n, row in enumerate(data, 1):
            yield f"{path.name} row {n}", row
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        for where, row in iter_csv(text, path.name, delimiter=delimiter, first_row=2):
            yield where, {k: v for k, v in row.items() if k and v != ""}  # row 1: the header


def load_qa(data: Any, *, limit: int | None = None) -> list[QAItem]:
    """Load and validate a QA set.

    Args:
        data: A ``.jsonl``/``.json``/``.csv``/``.tsv`` file, a ``datasets.Dataset``, a list
            of dict rows or :class:`QAItem` objects.
        limit: Keep only the first ``limit`` questions.

    Returns:
        The questions.

    Raises:
        DataFormatError: If the source is missing or empty, or a row is malformed (the
            message names the row and the field).
    """
    rows: Iterable[tuple[str, Any]]
    where = ""
    if isinstance(data, (str, Path)):
        path = Path(data)
        where = f" ({path} holds no question)"
        try:
            is_file = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise DataFormatError(f"Cannot access QA file {str(path)[:200]!r}: {exc}.") from exc
        if not is_file:
            raise DataFormatError(f"QA file not found: {path}. Check the path.")
        rows = _rows_from_file(path)
    elif type(data).__name__ == "Dataset" and hasattr(data, "column_names"):
        rows = ((f"dataset row {i}", dict(r)) for i, r in enumerate(data))
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        rows = ((f"row {i}", r) for i, r in enumerate(data))
    else:
        raise DataFormatError(
            f"Cannot read a QA set from {type(data).__name__}; give a file, a list of rows "
            "or a datasets.Dataset."
        )
    items: list[QAItem] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        item = row if isinstance(row, QAItem) else qa_item_from_row(row, where)
        key = normalize_answer(item.question)
        if key in seen:
            raise DataFormatError(
                f"{where}: field 'question' repeats the question of {seen[key]}; remove the "
                "duplicate so that no question counts twice."
            )
        seen[key] = where
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DataFormatError(f"The QA set is empty{where}; give at least one question.")
    return items


def save_qa(items: Sequence[QAItem], path: str | Path) -> Path:
    """Write a QA set as JSONL (the format :func:`load_qa` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(item.to_dict(), ensure_ascii=False) for item in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def split_qa(
    items: Sequence[QAItem], heldout_fraction: float, seed: int = 0
) -> tuple[list[QAItem], list[QAItem]]:
    """Split a QA set into ``(train, heldout)``; the held-out part is never trained on.

    At least one question is held out when ``heldout_fraction > 0`` and there are two or more.
    """
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1], got {heldout_fraction!r}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_held = round(len(items) * heldout_fraction)
    if heldout_fraction > 0 and len(items) >= 2:
        n_held = min(len(items) - 1, max(1, n_held))
    held = set(order[:n_held])
    train = [it for i, it in enumerate(items) if i not in held]
    return train, [it for i, it in enumerate(items) if i in held]


def parse_generated_qa(text: str) -> tuple[str, str] | None:
    """Parse a ``Question: ... / Answer: ...`` reply; None if it does not have that shape."""
    match = _QA_REPLY.search(text)
    if match is None:
        return None
    question = " ".join(match.group("q").split())
    answer = " ".join(match.group("a").strip().splitlines()[0].split()) if match.group("a") else ""
    if not question.endswith("?") or len(question) < 10 or not answer:
        return None
    return question, answer


def generate_qa(
    retriever: Any,
    generator: Any,
    n: int = 20,
    *,
    seed: int = 0,
    max_new_tokens: int = 96,
    min_answer_overlap: float = 0.6,
    min_chunk_chars: int = 200,
    max_attempts: int | None = None,
    progress: bool = True,
) -> list[QAItem]:
    """Write a QA set from the indexed corpus: an LLM asks and answers, grounded in a chunk.

    Chunks are sampled at random; the generator (a local model or an OpenAI-compatible
    endpoint, anything with ``generate(messages, max_new_tokens=, temperature=)``) writes
    one question and its answer from each. Replies that do not parse, questions seen before
    and answers not supported by the chunk (fewer than ``min_answer_overlap`` of the
    answer's tokens occur in it) are dropped. The chunk is the gold source.

    Args:
        retriever: The :class:`~phi3industry.retriever.Retriever` whose chunks are used.
        generator: The question writer.
        n: Questions wanted.
        seed: Sampling seed.
        max_new_tokens: Token budget of each reply.
        min_answer_overlap: Grounding threshold (see above).
        min_chunk_chars: Chunks shorter than this are not used (headings, fragments).
        max_attempts: Chunks tried at most (default ``3 * n``).
        progress: Print one line per kept question on stderr.

    Returns:
        Up to ``n`` questions (fewer if the corpus or the model does not give more).

    Raises:
        DataFormatError: If the index has no chunk long enough.
    """
    chunks = [h for h in retriever.iter_chunks() if len(h.text.strip()) >= min_chunk_chars]
    if not chunks:
        raise DataFormatError(
            f"The index has no chunk of {min_chunk_chars}+ characters to write questions "
            "from; ingest documents first, or pass a QA file."
        )
    chunks.sort(key=lambda h: h.id)  # Chroma's order is not guaranteed
    rng = random.Random(seed)
    rng.shuffle(chunks)
    attempts = max_attempts if max_attempts is not None else 3 * n
    items: list[QAItem] = []
    seen: set[str] = set()
    for hit in chunks[:attempts]:
        if len(items) >= n:
            break
        prompt = _QA_PROMPT.format(passage=hit.text.strip())
        reply = generator.generate(
            [{"role": "user", "content": prompt}], max_new_tokens=max_new_tokens, temperature=0.0
        )
        parsed = parse_generated_qa(reply.text)
        if parsed is None:
            continue
        question, answer = parsed
        key = normalize_answer(question)
        if key in seen or answer_recall(hit.text, answer) < min_answer_overlap:
            continue
        seen.add(key)
        items.append(
            QAItem(
                question,
                [answer],
                [hit.id],
                id=f"gen-{len(items) + 1}",
                metadata={"generated": True, "document": hit.source},
            )
        )
        if progress:
            print(f"  QA {len(items)}/{n}: {question}", file=sys.stderr, flush=True)
    return items
