"""Training examples: read, detect, validate, format with the chat template, mask, pack.

Data comes as raw domain text (files, or a :class:`~phi3industry.retrieval.Retriever`'s own
chunks) or as instruction / Q&A rows in one of the formats people already have:

=====================  ==================================================================
format                 fields
=====================  ==================================================================
``messages``           ``messages: [{"role": ..., "content": ...}, ...]`` (chat)
``prompt_completion``  ``prompt`` and ``completion`` (strings, or lists of chat messages)
``alpaca``             ``instruction``, optional ``input``, ``output``
``sharegpt``           ``conversations: [{"from": "human"|"gpt"|"system", "value": ...}]``
``text``               ``text`` (raw text: the loss is on every token)
=====================  ==================================================================

Every instruction row becomes chat ``messages`` and is rendered with the model's own chat
template; the loss is on the assistant's tokens only (``completion_only_loss``), found by
rendering the conversation prefix-by-prefix and mapping character spans to tokens.

Packing puts several short examples in one row of ``max_length`` tokens. ``position_ids``
restart at 0 for each example and no ``attention_mask`` is passed: transformers (>= 4.56,
sdpa and eager, also flash-attention varlen) then builds a block-diagonal causal mask from
the position resets, so no token attends across examples and no compute goes to padding.
The model must be called with ``use_cache=False`` (a cache turns the detection off), which
:class:`PackedCollator` does. ``tests/test_data.py`` checks that packed logits equal the
logits of each example run alone.

Example:
    >>> from phi3industry.tuning.data import detect_format
    >>> detect_format({"instruction": "Define MTBF.", "output": "Mean time between failures."})
    'alpaca'
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry._textfiles import iter_csv, iter_jsonl, parse_json, read_utf8
from phi3industry.errors import DataFormatError, DocumentError
from phi3industry.retrieval.documents import SUPPORTED_SUFFIXES as DOCUMENT_SUFFIXES
from phi3industry.retrieval.documents import load_document

if TYPE_CHECKING:
    import datasets
    import torch

IGNORE_INDEX = -100
FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "text")
ROLES = ("system", "user", "assistant")
ROW_SUFFIXES = (".jsonl", ".json", ".csv")
#: Documents read as raw text, with ingest's own loaders (PDF included, HTML through lxml).
TEXT_SUFFIXES = tuple(s for s in DOCUMENT_SUFFIXES if s not in ROW_SUFFIXES)
#: What marks a directory written by ``datasets``' ``save_to_disk``.
_SAVED_DATASET_FILES = (("dataset_dict.json",), ("state.json", "dataset_info.json"))
#: A hub dataset id: ``name`` or ``owner/name``.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# A JSON "\ud800" escape decodes to a lone surrogate, which no tokenizer can encode.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}


@dataclass
class Example:
    """One training example before tokenization.

    Attributes:
        messages: Chat turns (``role``/``content``) for instruction data, else empty.
        text: Raw text for continued training, else empty.
        where: Where it came from, e.g. ``qa.jsonl line 3`` (used in error messages).
    """

    messages: list[dict[str, str]] = field(default_factory=list)
    text: str = ""
    where: str = ""

    @property
    def is_chat(self) -> bool:
        """Whether this is a chat (instruction) example rather than raw text."""
        return bool(self.messages)

    def plain_text(self) -> str:
        """The example's text without template markup (for term mining and evaluation)."""
        if self.is_chat:
            return "\n".join(m["content"] for m in self.messages)
        return self.text


# --------------------------------------------------------------------------------------
# Format detection and validation
# --------------------------------------------------------------------------------------


def detect_format(row: dict[str, Any]) -> str | None:
    """Return the format of one row (see the module docstring), or ``None`` if unknown.

    Args:
        row: One record (a JSON object, a CSV row, a dataset row).

    Returns:
        One of :data:`FORMATS`, or ``None``.
    """
    if not isinstance(row, dict):
        return None
    if row.get("messages") is not None:
        return "messages"
    if row.get("conversations") is not None:
        return "sharegpt"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "text" in row:
        return "text"
    return None


def _expected_fields() -> str:
    return (
        "'messages' (chat), 'prompt'+'completion', 'instruction'+'output' (alpaca), "
        "'conversations' (ShareGPT) or 'text'"
    )


def _check_str(value: Any, where: str, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataFormatError(
            f"{where}: field {name!r} must be a string, got {type(value).__name__} ({value!r:.60})."
        )
    if not allow_empty and not value.strip():
        raise DataFormatError(f"{where}: field {name!r} is empty.")
    if (bad := _SURROGATE.search(value)) is not None:
        raise DataFormatError(
            f"{where}: field {name!r} holds a lone UTF-16 surrogate ({bad.group()!r}, from a "
            "\\u escape), which is not text. Fix that escape."
        )
    return value


def _check_messages(value: Any, where: str, name: str = "messages") -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataFormatError(
            f"{where}: field {name!r} must be a non-empty list of {{'role', 'content'}} "
            f"objects, got {value!r:.80}."
        )
    out: list[dict[str, str]] = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise DataFormatError(
                f"{where}: {name}[{i}] must be an object with 'role' and 'content', got "
                f"{msg!r:.60}."
            )
        if "role" not in msg:
            raise DataFormatError(f"{where}: {name}[{i}] has no 'role'.")
        if "content" not in msg:
            raise DataFormatError(f"{where}: {name}[{i}] has no 'content'.")
        role = msg["role"]
        if role not in ROLES:
            raise DataFormatError(
                f"{where}: {name}[{i}] has role {role!r}; allowed roles: {', '.join(ROLES)}."
            )
        content = _check_str(
            msg["content"], where, f"{name}[{i}].content", allow_empty=role != "assistant"
        )
        out.append({"role": role, "content": content})
    return out


def _row_to_example(row: dict[str, Any], fmt: str, where: str) -> Example:
    """Validate one row of a known format and turn it into an :class:`Example`."""
    if fmt == "text":
        return Example(text=_check_str(row["text"], where, "text"), where=where)
    if fmt == "messages":
        messages = _check_messages(row["messages"], where)
    elif fmt == "sharegpt":
        turns = row["conversations"]
        if not isinstance(turns, list) or not turns:
            raise DataFormatError(
                f"{where}: field 'conversations' must be a non-empty list of "
                f"{{'from', 'value'}} objects, got {turns!r:.80}."
            )
        messages = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
                raise DataFormatError(
                    f"{where}: conversations[{i}] must have 'from' and 'value', got {turn!r:.60}."
                )
            role = _SHAREGPT_ROLES.get(str(turn["from"]).lower())
            if role is None:
                raise DataFormatError(
                    f"{where}: conversations[{i}] has 'from' {turn['from']!r}; allowed: "
                    f"{', '.join(sorted(_SHAREGPT_ROLES))}."
                )
            messages.append({"role": role, "content": turn["value"]})
        messages = _check_messages(messages, where, "conversations")
    elif fmt == "prompt_completion":
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):
            messages = _check_messages(prompt, where, "prompt")
        else:
            messages = [{"role": "user", "content": _check_str(prompt, where, "prompt")}]
        if isinstance(completion, list):
            messages += _check_messages(completion, where, "completion")
        else:
            text = _check_str(completion, where, "completion")
            messages.append({"role": "assistant", "content": text})
    elif fmt == "alpaca":
        instruction = _check_str(row["instruction"], where, "instruction")
        extra = row.get("input")
        if extra is not None:
            _check_str(extra, where, "input", allow_empty=True)
        user = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
        messages = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": _check_str(row["output"], where, "output")},
        ]
    else:  # pragma: no cover - guarded by detect_format
        raise DataFormatError(f"{where}: unknown format {fmt!r}.")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise DataFormatError(
            f"{where}: the conversation has no non-empty 'assistant' message, so there is "
            "nothing to learn. Add the answer the model should give."
        )
    if messages[0]["role"] == "assistant":
        raise DataFormatError(
            f"{where}: the conversation starts with an 'assistant' message; it must start "
            "with 'system' or 'user'."
        )
    return Example(messages=messages, where=where)


def rows_to_examples(
    rows: Iterable[tuple[str, dict[str, Any]]], *, source: str = "data"
) -> list[Example]:
    """Validate rows and convert them to examples.

    Args:
        rows: ``(where, row)`` pairs; ``where`` names the row in errors (``qa.jsonl line 3``).
        source: Name of the whole source, for the "no rows" error.

    Returns:
        The examples, in order.

    Raises:
        DataFormatError: If a row has an unknown format or a missing or wrong field.
    """
    out = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataFormatError(
                f"{where}: expected an object with {_expected_fields()}, got {type(row).__name__}."
            )
        fmt = detect_format(row)
        if fmt is None:
            raise DataFormatError(
                f"{where}: unknown row format with fields {sorted(row)}; expected "
                f"{_expected_fields()}."
            )
        out.append(_row_to_example(row, fmt, where))
    if not out:
        raise DataFormatError(f"{source}: no training rows found.")
    return out


# --------------------------------------------------------------------------------------
# Reading sources
# --------------------------------------------------------------------------------------


def _read_json(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    data = parse_json(read_utf8(path), path.name)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataFormatError(
            f"{path.name}: a .json training file must hold a list of rows (or {{'data': [...]}})."
        )
    for i, row in enumerate(data, 1):
        yield f"{path.name} item {i}", row


def _read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, row in iter_csv(read_utf8(path), path.name):
        # Empty cells of optional columns (alpaca 'input') are fine; surplus cells are not
        # a field.
        yield where, {k: v for k, v in row.items() if k is not None}


def _read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    if path.suffix == ".jsonl":
        rows = iter_jsonl(read_utf8(path), path.name)
        return [(f"{path.name} line {number}", row) for number, row in rows]
    if path.suffix == ".json":
        return list(_read_json(path))
    return list(_read_csv(path))


def _rows_as_text(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Render non-training ``.json`` rows (ingest does not read ``.json``) as text."""
    lines = []
    for _, row in rows:
        if isinstance(row, dict):
            lines.append("; ".join(f"{k}: {v}" for k, v in row.items() if v not in (None, "")))
    return _SURROGATE.sub("\ufffd", "\n".join(lines))


def _document_text(path: Path, *, strict: bool) -> list[Example]:
    """A document as ingest reads it (same loader, same text), as one raw-text example.

    A file named on its own that cannot be read is an error; one found in a directory is
    skipped with a warning naming the reason, as ingest skips it.
    """
    try:
        text = load_document(path).text.strip()
    except DocumentError as exc:
        if strict:
            raise DataFormatError(str(exc)) from exc
        warnings.warn(f"Training data: skipped {path}: {exc}", stacklevel=2)
        return []
    return [Example(text=text, where=path.name)] if text else []


def _examples_from_file(path: Path, *, strict: bool) -> list[Example]:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _document_text(path, strict=strict)
    if suffix in ROW_SUFFIXES:
        rows = _read_rows(path)
        if not rows:
            if strict:
                raise DataFormatError(f"{path.name}: no training rows found.")
            return []
        if not strict and detect_format(rows[0][1]) is None:
            # A data file of a knowledge base (not training rows): learn its text, rendered
            # as ingest renders it.
            if suffix in DOCUMENT_SUFFIXES:
                return _document_text(path, strict=False)
            text = _rows_as_text(rows)
            return [Example(text=text, where=path.name)] if text else []
        return rows_to_examples(rows, source=path.name)
    if strict:
        raise DataFormatError(
            f"{path}: unsupported file type {path.suffix!r}; use "
            f"{', '.join(ROW_SUFFIXES + TEXT_SUFFIXES)}."
        )
    return []


def _is_saved_dataset(path: Path) -> bool:
    return any(all((path / name).is_file() for name in names) for names in _SAVED_DATASET_FILES)


def _load_saved_dataset(path: Path) -> list[Example]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises many types on a damaged directory
        raise DataFormatError(
            f"{path} looks like a saved dataset (save_to_disk) but cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return load_examples(loaded)


def _load_hub_dataset(name: str) -> list[Example]:
    """The ``train`` split of a dataset on the Hugging Face hub (or in its local cache)."""
    import datasets

    try:
        loaded = datasets.load_dataset(name, split="train")
    except Exception as exc:  # offline, unknown name, no train split, gated...
        raise DataFormatError(
            f"Training data not found: {name!r} is no file or directory here, and loading it "
            f"as a hub dataset failed ({type(exc).__name__}: {str(exc)[:300]}). Check the "
            "path, or the dataset name and your connection (HF_DATASETS_OFFLINE / "
            "HF_HUB_OFFLINE turn the hub off)."
        ) from exc
    return load_examples(loaded)


def _examples_from_path(path: Path) -> list[Example]:
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise DataFormatError(f"Cannot access {str(path)[:200]!r}: {exc.strerror or exc}.") from exc
    if not exists:
        name = str(path)
        if _HUB_ID.fullmatch(name) and path.suffix.lower() not in ROW_SUFFIXES + TEXT_SUFFIXES:
            return _load_hub_dataset(name)
        raise DataFormatError(f"Training data not found: {path}. Check the path.")
    if is_file:
        return _examples_from_file(path, strict=True)
    if _is_saved_dataset(path):
        return _load_saved_dataset(path)
    out: list[Example] = []
    for child in sorted(path.rglob("*")):
        if child.is_file() and not any(p.startswith(".") for p in child.relative_to(path).parts):
            out.extend(_examples_from_file(child, strict=False))
    if not out:
        raise DataFormatError(
            f"{path}: no training data found (looked for "
            f"{', '.join(ROW_SUFFIXES + TEXT_SUFFIXES)})."
        )
    return out


def load_examples(data: Any) -> list[Example]:
    """Read training data from any supported source.

    Documents are read with ingest's own loader
    (:func:`phi3industry.retrieval.documents.load_document`), so training sees the same
    text the index holds: PDF pages, HTML without navigation or scripts, CSV/JSONL records.

    Args:
        data: A file (``.jsonl``/``.json``/``.csv`` rows, or a document: ``.txt``, ``.md``,
            ``.rst``, ``.html``, ``.pdf``, as raw text), a directory (walked recursively;
            row files that are not training rows are read as documents; a directory
            written by ``datasets``' ``save_to_disk`` is loaded as that dataset), a
            ``datasets.Dataset`` or ``IterableDataset``, a ``DatasetDict`` (its ``train``
            split), a hub dataset name (``owner/name``, its ``train`` split), a
            ``Retriever`` (its chunks become raw text), a dict row, or a list of any of these.

    Returns:
        The examples, validated.

    Raises:
        DataFormatError: If a source is missing, empty, or has a bad row (named with its
            row number and field).
    """
    if isinstance(data, (str, Path)):
        return _examples_from_path(Path(data))
    if hasattr(data, "iter_chunks"):
        texts = [hit.text for hit in data.iter_chunks() if hit.text and hit.text.strip()]
        if not texts:
            raise DataFormatError("The retriever's index holds no chunks to train on.")
        return [Example(text=t, where=f"index chunk {i}") for i, t in enumerate(texts, 1)]
    if _is_dataset_dict(data):
        if "train" not in data:
            raise DataFormatError(
                f"The DatasetDict has no 'train' split (splits: {', '.join(map(str, data))}). "
                "Pass the split to train on, e.g. dataset['validation']."
            )
        data = data["train"]
    if _is_hf_dataset(data):
        return rows_to_examples(
            ((f"dataset row {i}", row) for i, row in enumerate(data)), source="dataset"
        )
    if isinstance(data, dict):
        return rows_to_examples([("row 0", data)])
    if isinstance(data, Sequence):
        if not data:
            raise DataFormatError("No training data given (empty list).")
        out: list[Example] = []
        for i, item in enumerate(data):
            if isinstance(item, dict):
                out.extend(rows_to_examples([(f"row {i}", item)]))
            elif isinstance(item, Example):
                out.append(item)
            else:
                out.extend(load_examples(item))
        return out
    raise DataFormatError(
        f"Cannot read training data of type {type(data).__name__}; give a file, directory, "
        "list, datasets.Dataset / DatasetDict / IterableDataset, hub dataset name or Retriever."
    )


def _is_hf_dataset(data: Any) -> bool:
    import datasets

    return isinstance(data, (datasets.Dataset, datasets.IterableDataset))


def _is_dataset_dict(data: Any) -> bool:
    import datasets

    return isinstance(data, (datasets.DatasetDict, datasets.IterableDatasetDict))


def split_examples(
    examples: list[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split examples into train and held-out sets (at least one of each when possible)."""
    if eval_fraction <= 0 or len(examples) < 2:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    held = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


# --------------------------------------------------------------------------------------
# Tokenization with prompt masking
# --------------------------------------------------------------------------------------


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    )


def assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    r"""Render a conversation and find the character spans of the assistant's turns.

    A span runs from the end of the rendered prompt (with the generation prompt, e.g.
    ``<|assistant|>\\n``) to the end of that turn (its end-of-turn token included, so that
    the model learns to stop).

    Args:
        tokenizer: A tokenizer with a chat template.
        messages: The conversation.

    Returns:
        The full rendered text and the ``(start, end)`` spans.
    """
    full = _render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if full.startswith(prompt):
            start = len(prompt)
            end = start
            limit = min(len(upto), len(full))
            while end < limit and upto[end] == full[end]:
                end += 1
        else:
            # A template that is not prefix-consistent: fall back to the content itself.
            start = full.find(msg["content"], cursor)
            if start < 0:
                continue
            end = start + len(msg["content"])
        spans.append((start, end))
        cursor = end
    return full, spans


@dataclass
class TokenizedExample:
    """Token ids and labels of one example (``-100`` = no loss)."""

    input_ids: list[int]
    labels: list[int]


def tokenize_example(
    example: Example,
    tokenizer: Any,
    *,
    max_length: int,
    completion_only_loss: bool = True,
) -> list[TokenizedExample]:
    """Tokenize one example; raw text longer than ``max_length`` is split into pieces.

    Args:
        example: The example.
        tokenizer: The model's tokenizer (fast, with a chat template for chat examples).
        max_length: Maximum tokens per piece. Chat examples are truncated to it.
        completion_only_loss: Mask everything but the assistant's turns in chat examples.

    Returns:
        One or more tokenized pieces (none if nothing is left to learn).

    Raises:
        DataFormatError: If a chat example is given and the tokenizer has no chat template.
    """
    if not example.is_chat:
        ids = list(tokenizer(example.text, add_special_tokens=True)["input_ids"])
        if tokenizer.eos_token_id is not None:
            ids.append(int(tokenizer.eos_token_id))
        pieces = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
        return [TokenizedExample(p, list(p)) for p in pieces if len(p) > 1]
    if not getattr(tokenizer, "chat_template", None):
        raise DataFormatError(
            f"{example.where}: chat data needs a tokenizer with a chat template, and this "
            "model has none. Use an instruct model, or train on raw 'text'."
        )
    text, spans = assistant_spans(tokenizer, example.messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if completion_only_loss:
        labels = [IGNORE_INDEX] * len(ids)
        for j, (start, end) in enumerate(enc["offset_mapping"]):
            # A token is an answer token when it lies inside a span (the span's end may
            # overshoot into the next turn's first characters, e.g. '<|' of '<|user|>').
            if end > start and any(s <= start and end <= e for s, e in spans):
                labels[j] = ids[j]
    else:
        labels = list(ids)
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return []
    return [TokenizedExample(ids, labels)]


def tokenize_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    max_length: int,
    completion_only_loss: bool = True,
) -> list[TokenizedExample]:
    """Tokenize examples (see :func:`tokenize_example`), warning about dropped ones."""
    out: list[TokenizedExample] = []
    dropped = truncated = 0
    for ex in examples:
        pieces = tokenize_example(
            ex, tokenizer, max_length=max_length, completion_only_loss=completion_only_loss
        )
        if not pieces:
            dropped += 1
        elif ex.is_chat and len(pieces[0].input_ids) == max_length:
            truncated += 1
        out.extend(pieces)
    if dropped:
        warnings.warn(
            f"{dropped} example(s) had no answer tokens within max_length={max_length} and "
            "were dropped; raise max_length to keep them.",
            stacklevel=2,
        )
    if truncated:
        warnings.warn(
            f"{truncated} chat example(s) were cut at max_length={max_length}.", stacklevel=2
        )
    return out


# --------------------------------------------------------------------------------------
# Packing and collation
# --------------------------------------------------------------------------------------


def pack_examples(
    examples: Sequence[TokenizedExample], max_length: int, *, seed: int = 0
) -> list[dict[str, list[int]]]:
    """Pack tokenized examples into rows of at most ``max_length`` tokens (best-fit decreasing).

    ``position_ids`` restart at 0 for every example, so the model keeps the examples apart
    (see the module docstring). The first label of each example is masked: in the packed
    row it would be predicted from the previous example's last token.

    Args:
        examples: Tokenized examples, each at most ``max_length`` tokens.
        max_length: Row length.
        seed: Shuffles the rows so that long and short ones mix.

    Returns:
        Rows with ``input_ids``, ``labels`` and ``position_ids``.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    bins: list[list[int]] = []
    space: list[int] = []
    for i in order:
        n = len(examples[i].input_ids)
        best = -1
        for b, free in enumerate(space):
            if n <= free and (best < 0 or free < space[best]):
                best = b
        if best < 0:
            bins.append([i])
            space.append(max_length - n)
        else:
            bins[best].append(i)
            space[best] -= n
    rows = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for i in members:
            ex = examples[i]
            ids += ex.input_ids
            labels += [IGNORE_INDEX, *ex.labels[1:]]
            pos += list(range(len(ex.input_ids)))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": pos})
    random.Random(seed).shuffle(rows)
    return rows


def unpacked_rows(examples: Sequence[TokenizedExample]) -> list[dict[str, list[int]]]:
    """One row per example (``packing=False``)."""
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]


@dataclass
class PackedCollator:
    """Batch packed rows: pad to the longest row, no attention mask, ``use_cache=False``.

    Padding tokens get their own ``position_ids`` run (0, 1, ...), so they form a separate
    "sequence" that real tokens never attend to, and their labels are ``-100``.
    """

    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        """Collate rows into tensors."""
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, pos = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append(r["input_ids"] + [self.pad_token_id] * pad)
            labels.append(r["labels"] + [IGNORE_INDEX] * pad)
            pos.append(r["position_ids"] + list(range(pad)))
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
            "use_cache": False,
        }


@dataclass
class PaddedCollator:
    """Batch unpacked rows: right-pad to the longest row, with an attention mask."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Collate rows into tensors."""
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, mask = [], [], []
        for r in rows:
            n = len(r["input_ids"])
            ids.append(r["input_ids"] + [self.pad_token_id] * (width - n))
            labels.append(r["labels"] + [IGNORE_INDEX] * (width - n))
            mask.append([1] * n + [0] * (width - n))
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def build_rows(
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    max_length: int,
    packing: bool,
    completion_only_loss: bool,
    seed: int = 0,
) -> tuple[list[dict[str, list[int]]], Any]:
    """Tokenize and (optionally) pack examples; return the rows and the matching collator."""
    tokenized = tokenize_examples(
        examples, tokenizer, max_length=max_length, completion_only_loss=completion_only_loss
    )
    if not tokenized:
        raise DataFormatError(
            "No trainable tokens left after tokenization (every example was empty or its "
            f"answer lay beyond max_length={max_length})."
        )
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    if packing:
        return pack_examples(tokenized, max_length, seed=seed), PackedCollator(pad_id)
    return unpacked_rows(tokenized), PaddedCollator(pad_id)


def rows_to_dataset(rows: list[dict[str, list[int]]]) -> datasets.Dataset:
    """Wrap rows in a ``datasets.Dataset`` (what the Trainer expects)."""
    import datasets

    return datasets.Dataset.from_list(rows)


def count_label_tokens(rows: Iterable[dict[str, list[int]]]) -> int:
    """Number of tokens that carry loss (labels other than ``-100``)."""
    return sum(sum(1 for x in r["labels"] if x != IGNORE_INDEX) for r in rows)


__all__ = [
    "FORMATS",
    "IGNORE_INDEX",
    "Example",
    "PackedCollator",
    "PaddedCollator",
    "TokenizedExample",
    "assistant_spans",
    "build_rows",
    "detect_format",
    "load_examples",
    "pack_examples",
    "rows_to_dataset",
    "rows_to_examples",
    "split_examples",
    "tokenize_example",
    "tokenize_examples",
]
