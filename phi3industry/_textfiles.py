"""Reading user text files: UTF-8 with errors that name the line, and JSON Lines.

Training data, QA sets and ``.jsonl`` documents all come from files users write by hand or
export from other tools, so every failure names the file and line and says how to fix it.
The caller picks the exception class (:class:`~phi3industry.errors.DataFormatError` for data,
:class:`~phi3industry.errors.DocumentError` for documents) and the word for a line ("line",
"row").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phi3industry.errors import DataFormatError, Phi3IndustryError


def read_utf8(path: Path, what: str = "", error: type[Phi3IndustryError] = DataFormatError) -> str:
    """A text file's contents (UTF-8, BOM dropped).

    Args:
        path: The file.
        what: What the file is, for the message (e.g. ``"QA file "``), with a trailing space.
        error: The exception class to raise.

    Raises:
        Phi3IndustryError: ``error``, if the file cannot be read or is not UTF-8 (naming the
            line and byte).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"Cannot read {what}{path}: {exc.strerror or exc}.") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path.name} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}). Re-save the file as UTF-8."
        ) from exc


def iter_jsonl(
    text: str,
    name: str,
    *,
    label: str = "line",
    error: type[Phi3IndustryError] = DataFormatError,
) -> Iterator[tuple[int, Any]]:
    """Parse JSON Lines, skipping blank lines.

    Lines end at universal newlines, as ``open()`` in text mode reads them (``str.splitlines``
    would also split at U+2028 inside a JSON string).

    Args:
        text: The file's text.
        name: The file's name, for messages.
        label: The word for a line in messages ("line", "row").
        error: The exception class to raise.

    Yields:
        ``(line number, value)``, counted from 1.

    Raises:
        Phi3IndustryError: ``error``, naming the line, if a line is not valid JSON or is
            nested too deeply.
    """
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        if not line.strip():
            continue
        where = f"{name} {label} {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(
                f"{where}: not valid JSON ({exc.msg}: column {exc.colno}). Fix or remove that "
                f"{label}."
            ) from exc
        except RecursionError as exc:
            raise error(f"{where}: JSON nested too deeply.") from exc
        yield number, value


def parse_json(text: str, name: str, error: type[Phi3IndustryError] = DataFormatError) -> Any:
    """Parse a whole JSON document.

    Raises:
        Phi3IndustryError: ``error``, naming the file and line, if it is not valid JSON or
            is nested too deeply.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno}).") from exc
    except RecursionError as exc:
        raise error(f"{name}: JSON nested too deeply.") from exc


def iter_csv(
    text: str, name: str, *, delimiter: str = ",", first_row: int = 1
) -> Iterator[tuple[str, dict[str | None, Any]]]:
    """Parse CSV with a header line.

    Args:
        text: The file's text.
        name: The file's name, for messages.
        delimiter: The cell separator: a comma, or a tab for TSV.
        first_row: The number given to the first row after the header.

    Yields:
        ``(location, row)``, e.g. ``("qa.csv row 2", {...})``; surplus cells are under the
        key None, missing ones are None.

    Raises:
        DataFormatError: Naming the line where the broken row starts, if the CSV is not valid
            (a quote that is never closed swallows the rest of the file).
    """
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1  # the line where the row being read starts: where an open quote would be
    try:
        _ = reader.fieldnames  # reads the header
        start = reader.line_num + 1
        for number, row in enumerate(reader, first_row):
            start = reader.line_num + 1
            yield f"{name} row {number}", row
    except csv.Error as exc:
        raise DataFormatError(
            f"{name} line {start}: not valid CSV ({exc}). Fix the quoting of the row that "
            "starts there (a quote that is never closed swallows the rest of the file)."
        ) from exc
