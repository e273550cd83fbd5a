"""QA sets, and how an answer or a source is matched against them.

A QA set is the user's own questions with reference answers and gold sources. RAFT training
data (:mod:`phi3industry.tuning.raft`) is built from one, and the evaluation
(:mod:`phi3industry.evaluation`) scores answers against one; both match text the same way:
SQuAD normalisation (lower-case, no punctuation or articles), token F1, the share of an
answer's words found in a passage, and gold sources given as chunk ids or document paths.

Example:
    >>> from phi3industry.qa import load_qa, token_f1
    >>> items = load_qa([{"question": "Max payload?", "answer": "12 kg", "sources": ["ar7.md"]}])
    >>> items[0].answer, round(token_f1("The payload is 12 kg.", items[0].answer), 2)
    ('12 kg', 0.67)
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phi3industry._textfiles import iter_csv, iter_jsonl, parse_json, read_utf8
from phi3industry.errors import DataFormatError

QA_FIELDS = ("question", "answer", "sources")
_OPTIONAL = ("id", "metadata")
# A JSON "\ud800" escape decodes to a lone surrogate, which no tokenizer can encode.
_SURROGATE = re.compile("[\ud800-\udfff]")


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-./'][A-Za-z0-9]+)*")
#: Words too common to tell two passages apart ("content words" are the others).
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "done",
        "down",
        "during",
        "each",
        "either",
        "else",
        "few",
        "for",
        "from",
        "further",
        "get",
        "gets",
        "got",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "like",
        "make",
        "makes",
        "me",
        "more",
        "most",
        "much",
        "must",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "per",
        "same",
        "shall",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "via",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yes",
        "yet",
        "you",
        "your",
    ]
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {"dozen": "12"}
_PUNCT = str.maketrans(dict.fromkeys(string.punctuation, " "))


def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation and articles, and collapse whitespace (SQuAD)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _stem(word: str) -> str:
    """A light stem: the forms of a word look alike to a reader.

    The plural, the past tense and the -ing form lose their ending (a doubled consonant left
    by it too: stopped, stop), and so does a final "e", so that "activate", "activated" and
    "activating" meet.
    """
    for suffix, keep, shortest in (("ies", "y", 3), ("ied", "y", 3), ("es", "", 4), ("s", "", 3)):
        if (
            word.endswith(suffix)
            and len(word) - len(suffix) >= shortest
            and not word.endswith("ss")
        ):
            word = word[: len(word) - len(suffix)] + keep
            break
    for suffix, longest in (("ed", 6), ("ing", 7)):  # cleaned, sending; not speed, string
        if word.endswith(suffix) and len(word) >= longest:
            word = word[: -len(suffix)]
            if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "aeioulsz":
                word = word[:-1]  # stopp -> stop, runn -> run; not call, pass
            break
    if word.endswith("e") and len(word) >= 4 and not word.endswith("ee"):
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry meaning: lower-cased, lightly stemmed, no stopwords.

    Numbers and codes are left to :func:`key_terms`.

    Example:
        >>> content_words("The robots stopped at the docks after charging.")
        ['robot', 'stop', 'dock', 'charg']
    """
    words = []
    for token in _TOKEN.findall(text):
        low = token.lower().removesuffix("'s")  # the load's weight: load
        if any(c.isdigit() for c in low):
            continue  # numbers and codes are key terms, matched whole
        parts = [low, *low.split("-")] if "-" in low else [low]  # lint-free: also lint, free
        words += [_stem(w) for w in parts if len(w) > 1 and w not in STOPWORDS]
    return words


_CODE = re.compile(
    r"(?<![\w-])[A-Za-z]{1,5}(?:-[A-Za-z]{1,5})*-?\d+[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*(?![\w])"
)
# The head of a code with more after its number: NW-DOC-AR7 of NW-DOC-AR7-PM, AR7 of ar7-spec.
_CODE_HEAD = re.compile(r"[a-z]{1,5}(?:-[a-z]{1,5})*-?\d+[a-z0-9]*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE_KIND = re.compile(r"[a-z]+(?:-[a-z]+)*-?")  # the letters that open a (lower-cased) code
# A setting or argument with its value names one exact choice: null=True is not null=False.
_ASSIGNMENT = re.compile(r"(?<![\w-])[A-Za-z_]\w*=[\w-]+(?:\.[\w-]+)*")
# Identifiers name one thing exactly: snake_case, CamelCase and ALL-CAPS words of 3+ letters.
_IDENTIFIER = re.compile(
    r"(?<![\w-])(?:[A-Za-z]+_[A-Za-z0-9_]+|[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+|[A-Z]{3,})(?![\w-])"
)


def key_terms(text: str) -> set[str]:
    """Numbers, codes, part numbers and identifiers in ``text``, lower-cased.

    These decide whether a claim is supported in technical text: a passage with the right
    words and another code does not support it. Codes (letters then digits: ``E-214``,
    ``CD-2``, ``AR7``) and settings with their value (``null=True``) stay whole, and a code
    with more after its number also counts as its head (``NW-DOC-AR7-PM``: ``nw-doc-ar7``,
    so that ``AR7-spec`` is about the AR7); other
    numbers count alone (``20-80 %`` holds 20 and 80,
    ``36-month`` holds 36, ``2,000`` is 2000); number words count as their digits; so do
    identifiers (``is_staff``, ``ManyToManyField``, ``RESUME``).

    Example:
        >>> sorted(key_terms("E-214 occurs three times; replace NW-SP-2210 (450 kg, 20-80 %)."))
        ['20', '3', '450', '80', 'e-214', 'nw-sp-2210']
    """
    lowered = text.lower()
    terms = {m.group() for m in _ASSIGNMENT.finditer(lowered)}
    lowered = _ASSIGNMENT.sub(" ", lowered)
    codes = {m.group() for m in _CODE.finditer(lowered)}
    terms |= codes | {_CODE_HEAD.match(c).group() for c in codes}  # type: ignore[union-attr]
    terms |= {m.group().lower() for m in _IDENTIFIER.finditer(text)}
    rest = _CODE.sub(" ", lowered)
    terms |= {m.group().replace(",", "") for m in _NUMBER.finditer(rest)}
    terms |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", rest) if w in _NUMBER_WORDS}
    return terms


def code_kind(term: str) -> str | None:
    """The letters that open a code (``"e-"`` for ``e-214``), or None for other key terms.

    Codes of one kind name rows of one table: E-810 and E-811 are two errors, NW-SP-5120 is
    a part.
    """
    return _CODE_KIND.match(term).group() if _CODE.fullmatch(term) else None  # type: ignore[union-attr]


def answer_list(answers: str | Sequence[str]) -> list[str]:
    """One reference answer, or several, as a list."""
    return [answers] if isinstance(answers, str) else list(answers)


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 if the normalized prediction equals a normalized acceptable answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answer_list(answers)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: str | Sequence[str]) -> float:
    """Best token-level F1 between the prediction and any acceptable answer (SQuAD)."""
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(a).split()) for a in answer_list(answers))


def answer_recall(text: str, answer: str) -> float:
    """Fraction of the answer's normalized tokens that occur in ``text`` (grounding check)."""
    gold = normalize_answer(answer).split()
    if not gold:
        return 0.0
    have = set(normalize_answer(text).split())
    return sum(1 for t in gold if t in have) / len(gold)


def source_matches(gold: str, hit_id: str, hit_source: str) -> bool:
    """Whether a gold source (chunk id or document path) designates a retrieved hit.

    A gold path matches when it equals the hit's source or is a trailing part of it at a
    path boundary (``docs/a.md`` matches ``/kb/docs/a.md``, not ``/kb/docs/aa.md``). A hit
    merged from several chunks carries their ids comma-separated in ``hit_id``.
    """
    gold = gold.strip().replace("\\", "/")
    if not gold:
        return False
    if gold == hit_source or gold in hit_id.split(","):  # merged hits list their ids
        return True
    while gold.startswith("./"):
        gold = gold[2:]
    return hit_source.endswith("/" + gold.lstrip("/"))


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
