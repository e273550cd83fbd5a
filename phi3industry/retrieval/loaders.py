"""Byte decoding and the per-format parsers behind ``documents.load_document``.

Each parser takes decoded text (or raw bytes for PDF) and returns a :class:`Parsed`: the text
that will be chunked, a title, and the sections as ``(title, start, end, page)`` spans into
that text. Every problem with a file becomes a :class:`~phi3industry.errors.DocumentError`
naming the file, so a bad document never surfaces as a ``KeyError`` from a third-party parser.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from phi3industry._textfiles import iter_jsonl
from phi3industry.errors import DocumentError

SectionSpan = tuple[str | None, int, int, int | None]
"""``(title, start, end, page)`` of one section, a half-open span of :attr:`Parsed.text`."""

MAX_PDF_PAGES = 5_000
MAX_PDF_CONTENT_BYTES = 200_000_000
"""Decompressed page content a PDF may hold; a small file whose pages share one stream that
inflates to tens of MB (each under pypdf's own per-stream limit) would take minutes to parse."""


@dataclass
class Parsed:
    """What a parser extracted from one file."""

    text: str
    title: str | None
    sections: list[SectionSpan]
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


# --------------------------------------------------------------------------- decoding

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls other than \t \n \v \f \r, plus DEL: never in real text, common in binaries.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Lone UTF-16 surrogates: a JSON "\ud800" escape or a broken PDF font map yields them, and
# neither a tokenizer nor UTF-8 can encode them.
_SURROGATE = re.compile("[\ud800-\udfff]")


# A well-formed UTF-8 multibyte character (rare by chance in cp1252 text: "Ã©" is one).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _decode_lines(data: bytes) -> str:
    lines = []
    for line in data.split(b"\n"):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("cp1252"))
    return "\n".join(lines)


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    r"""Decode a text file's bytes, refusing binaries.

    UTF-8 (with or without BOM) and UTF-16/32 with a BOM are decoded as such. Bytes that are
    not valid UTF-8 fall back to cp1252 (the usual legacy Windows encoding, a superset of
    printable latin-1) only when they hold no control bytes, which rules out binaries posing
    as text; a file mixing UTF-8 and cp1252 lines is decoded line by line. The fallback is
    silent (the encoding is returned) since cp1252 text is common.

    Args:
        data: The raw bytes.
        name: The file name, for error messages.

    Returns:
        ``(text, encoding)``, the text with ``\\r\\n`` and ``\\r`` newlines turned into ``\\n``.

    Raises:
        DocumentError: If the bytes are binary or in no encoding we can decode with confidence.
    """
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"Cannot decode {name}: it starts with a {encoding} byte-order mark but is "
                f"not valid {encoding} ({exc.reason} at byte {exc.start}). Re-save it as UTF-8."
            ) from exc
    elif b"\x00" in data:
        raise DocumentError(
            f"{name} looks binary (it contains NUL bytes), not text. Exclude it, or convert it "
            "to a text format (UTF-8)."
        )
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
            if _CONTROL_BYTES.search(data):
                raise DocumentError(
                    f"Cannot decode {name}: not valid UTF-8 ({where}) and it contains control "
                    "bytes, so it looks binary. Re-save it as UTF-8 or exclude it."
                ) from exc
            try:
                if _UTF8_MULTIBYTE.search(data):
                    # UTF-8 lines mixed with cp1252 ones (files pasted together): decode each
                    # line on its own, so that neither half turns into mojibake.
                    text, encoding = _decode_lines(data), "utf-8+cp1252"
                else:
                    text, encoding = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                raise DocumentError(
                    f"Cannot decode {name}: not valid UTF-8 ({where}) nor cp1252. "
                    "Re-save it as UTF-8."
                ) from exc
    controls = len(_CONTROL_CHARS.findall(text))
    if controls and controls > 0.05 * len(text):
        raise DocumentError(
            f"{name} looks binary: {controls} of its {len(text)} characters are control "
            "characters. Exclude it, or convert it to a text format."
        )
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


# --------------------------------------------------------------------------- headings


@dataclass(frozen=True)
class Heading:
    """A heading found in the text: its span (underlines included), level and title."""

    start: int
    end: int
    level: int
    title: str


def sections_from_headings(text: str, headings: list[Heading]) -> list[SectionSpan]:
    """Turn headings into sections titled by their heading path ("Install > Linux").

    Each section runs from its heading to the next one, so a chunk carries its heading line.
    Text before the first heading is a section with no title. A heading with no body of its
    own (``# Guide`` directly followed by ``## Install``) is folded into the next section.

    Args:
        text: The document text.
        headings: The headings, in text order.

    Returns:
        Sections covering every non-blank part of ``text``.
    """
    sections: list[SectionSpan] = []
    if not headings or text[: headings[0].start].strip():
        first = headings[0].start if headings else len(text)
        sections.append((None, 0, first, None))
    stack: list[tuple[int, str]] = []
    carried_start: int | None = None
    for i, heading in enumerate(headings):
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        stack.append((heading.level, heading.title))
        end = headings[i + 1].start if i + 1 < len(headings) else len(text)
        start = heading.start if carried_start is None else carried_start
        if i + 1 < len(headings) and not text[heading.end : end].strip():
            carried_start = start
            continue
        carried_start = None
        sections.append((" > ".join(title for _, title in stack), start, end, None))
    return sections


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Only the opening of an ATX heading: a regex for the whole line with an optional closing
# "###" backtracks quadratically on long runs of blanks (16 KB of " \t" took seconds).
_ATX = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_LIST_OR_QUOTE = re.compile(r" {0,3}(?:[-*+>]|\d+[.)])(?:\s|$)")


def _atx_title(line: str, opening: re.Match[str]) -> str:
    """The title of an ATX heading line: blanks and a closing run of ``#`` removed."""
    body = line[opening.end() :].strip(" \t")
    bare = body.rstrip("#")
    if bare != body and bare and bare[-1] in " \t":
        body = bare
    return body.strip()


def markdown_headings(text: str) -> list[Heading]:
    """Find ATX (``## Title``) and setext (``===`` / ``---`` underlined) headings.

    Lines inside fenced code blocks and a leading ``---`` front-matter block are ignored.
    """
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    headings: list[Heading] = []
    fence: str | None = None
    first = 0
    if lines and lines[0].strip() == "---":
        closing = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
        first = closing + 1
    for i in range(first, len(lines)):
        line = lines[i]
        if match := _FENCE.match(line):
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip(" `~"):
                fence = None
            continue
        if fence is not None:
            continue
        if match := _ATX.match(line):
            title = _atx_title(line, match)
            if title:
                headings.append(Heading(offsets[i], offsets[i + 1] - 1, len(match.group(1)), title))
            continue
        previous = lines[i - 1] if i > first else ""
        if (
            _SETEXT.match(line)
            and previous.strip()
            and not previous.startswith(("    ", "\t"))
            and not _ATX.match(previous)
            and not _LIST_OR_QUOTE.match(previous)
            and not _SETEXT.match(previous)
            and not _FENCE.match(previous)
            and not previous.lstrip().startswith(("|", "<"))
            and not (headings and headings[-1].start == offsets[i - 1])
        ):
            level = 1 if line.strip()[0] == "=" else 2
            headings.append(Heading(offsets[i - 1], offsets[i + 1] - 1, level, previous.strip()))
    return headings


_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1+[ \t]*$")


def rst_headings(text: str) -> list[Heading]:
    """Find reStructuredText section titles (underlined, optionally overlined, too).

    Levels follow the order in which adornment styles first appear, as docutils does.
    """
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    styles: list[tuple[str, bool]] = []
    headings: list[Heading] = []
    i = 1
    while i < len(lines):
        under = _ADORNMENT.match(lines[i])
        title = lines[i - 1]
        if not under or not title.strip() or _ADORNMENT.match(title) or title[0].isspace():
            i += 1
            continue
        char = under.group(1)
        over = i >= 2 and lines[i - 2].rstrip() == lines[i].rstrip()
        if len(lines[i].rstrip()) < len(title.rstrip()):
            i += 1
            continue
        style = (char, over)
        if style not in styles:
            styles.append(style)
        start = offsets[i - 2] if over else offsets[i - 1]
        level = styles.index(style) + 1
        headings.append(Heading(start, offsets[i + 1] - 1, level, title.strip()))
        i += 2
    # Overlined titles: "=====\nTitle\n=====" is seen at the underline; indented titles
    # under an overline are allowed by docutils, so look for them too.
    i = 0
    found = {h.start for h in headings}
    while i + 2 < len(lines):
        top = _ADORNMENT.match(lines[i])
        if (
            top
            and offsets[i] not in found
            and lines[i + 1].strip()
            and lines[i + 1][0].isspace()
            and lines[i + 2].rstrip() == lines[i].rstrip()
        ):
            style = (top.group(1), True)
            if style not in styles:
                styles.append(style)
            level = styles.index(style) + 1
            headings.append(Heading(offsets[i], offsets[i + 3] - 1, level, lines[i + 1].strip()))
            i += 3
            continue
        i += 1
    return sorted(headings, key=lambda h: h.start)


def parse_markdown(text: str) -> Parsed:
    """Parse Markdown: sections at headings, title from the first heading."""
    headings = markdown_headings(text)
    title = headings[0].title if headings else None
    return Parsed(text, title, sections_from_headings(text, headings), {"format": "markdown"})


def parse_rst(text: str) -> Parsed:
    """Parse reStructuredText: sections at titles, title from the first one."""
    headings = rst_headings(text)
    title = headings[0].title if headings else None
    return Parsed(text, title, sections_from_headings(text, headings), {"format": "rst"})


def parse_plain(text: str) -> Parsed:
    """Plain text: one untitled section."""
    return Parsed(text, None, [(None, 0, len(text), None)], {"format": "text"})


# --------------------------------------------------------------------------- HTML

_DROP = frozenset({"script", "style", "nav", "noscript", "template", "head", "svg", "iframe"})
_BREAK = {
    **dict.fromkeys(
        [
            *("p", "pre", "ul", "ol", "dl", "table", "blockquote", "section", "article"),
            *("aside", "main", "header", "footer", "figure", "form", "fieldset", "details"),
            *("hr", "address"),
        ],
        2,
    ),
    **dict.fromkeys(
        ["div", "li", "tr", "dt", "dd", "br", "caption", "figcaption", "summary", "legend"], 1
    ),
}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _TextBuilder:
    """Accumulates extracted text with collapsed whitespace and block-level line breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pending = 0  # newlines owed before the next text: 1 line break, 2 blank line
        self.space = False

    def add(self, text: str) -> None:
        if self.pending and self.length:
            self._emit("\n" * self.pending)
        elif self.space and self.parts and not self.parts[-1][-1].isspace():
            self._emit(" ")
        self.pending = 0
        self.space = False
        self._emit(text)

    def add_inline(self, raw: str) -> None:
        core = " ".join(raw.split())
        if not core:
            self.space = self.space or bool(raw)
            return
        self.space = self.space or raw[0].isspace()
        self.add(core)
        self.space = raw[-1].isspace()

    def flush_break(self) -> None:
        if self.pending and self.length:
            self._emit("\n" * self.pending)
        self.pending = 0
        self.space = False

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def parse_html(text: str, name: str) -> Parsed:
    """Extract readable text from HTML, with sections at ``<h1>``-``<h6>``.

    Parsed by lxml (libxml2: about 8x less CPU than a pure-Python parser on Sphinx pages).
    Scripts, styles, navigation (``<nav>``, ``role="navigation"``) and Sphinx's "¶" header
    links are dropped. The tree is walked with an explicit stack so deep nesting cannot
    exhaust Python's recursion limit.

    Raises:
        DocumentError: If the HTML cannot be parsed or holds no text.
    """
    from lxml import etree
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = lxml_html.document_fromstring(text.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        if not text.strip():
            raise DocumentError(f"{name} is empty. Exclude it.") from exc
        raise DocumentError(f"Cannot parse HTML in {name}: {type(exc).__name__}: {exc}") from exc
    # libxml2 stops at a fatal error (e.g. elements nested over 256 deep, often unclosed tags)
    # and keeps what came before: refuse the file rather than index part of it in silence.
    fatal = next((e for e in parser.error_log if e.level_name == "FATAL"), None)
    if fatal is not None:
        raise DocumentError(
            f"Cannot parse HTML in {name}: libxml2 stopped at line {fatal.line} "
            f"({fatal.message}), so the rest would be lost. Fix the markup there (unclosed "
            "tags?) or exclude it."
        )

    out = _TextBuilder()
    headings: list[Heading] = []
    first_h1: str | None = None
    stack: list[tuple[Any, int]] = []  # (element, index in out.parts where it starts)
    pre_depth = 0
    row_cells = 0  # cells seen in the current table row, to put " | " between them

    def emit(piece: str | None) -> None:
        if piece:
            if pre_depth:
                out.add(piece)
            else:
                out.add_inline(piece)

    iterators: list[Iterator[Any]] = [iter((root,))]
    while iterators:
        node = next(iterators[-1], None)
        if node is None:
            iterators.pop()
            if not stack:
                continue
            element, first_part = stack.pop()
            tag = element.tag
            if tag == "pre":
                pre_depth -= 1
            if tag in _HEADINGS:
                heading_text = "".join(out.parts[first_part:])
                title = " ".join(heading_text.split())
                if title:
                    start = out.length - len(heading_text)
                    headings.append(Heading(start, out.length, _HEADINGS[tag], title))
                    if tag == "h1" and first_h1 is None:
                        first_h1 = title
            out.pending = max(out.pending, 2 if tag in _HEADINGS else _BREAK.get(tag, 0))
            emit(element.tail)  # text after the element belongs to its parent
            continue
        tag = node.tag
        if (
            not isinstance(tag, str)  # entities and other non-element nodes
            or tag in _DROP
            or node.get("role") in ("navigation", "search")
            or (tag == "a" and "headerlink" in (node.get("class") or "").split())
        ):
            emit(node.tail)
            continue
        if tag in _HEADINGS:
            out.pending = 2
            out.flush_break()
        else:
            out.pending = max(out.pending, _BREAK.get(tag, 0))
        if tag == "tr":
            row_cells = 0
        elif tag in ("td", "th"):
            if row_cells:
                out.add_inline(" | ")
            row_cells += 1
        if tag == "pre":
            pre_depth += 1
        stack.append((node, len(out.parts)))
        emit(node.text)
        iterators.append(iter(node))

    body = out.text()
    if not body.strip():
        raise DocumentError(f"{name} holds no text once markup is removed. Exclude it.")
    title_tag = root.find(".//title")
    title = " ".join(title_tag.text_content().split()) if title_tag is not None else ""
    return Parsed(
        body,
        title or first_h1,
        sections_from_headings(body, headings),
        {"format": "html"},
    )


# --------------------------------------------------------------------------- PDF


def parse_pdf(data: bytes, name: str, max_pages: int = MAX_PDF_PAGES) -> Parsed:
    """Extract text page by page with pypdf; one section per page (1-based ``page``).

    Raises:
        DocumentError: If the PDF cannot be parsed, is encrypted, has more than
            ``max_pages`` pages, inflates to more than :data:`MAX_PDF_CONTENT_BYTES` of page
            content or trips pypdf's decompression limits, or has no extractable text (a scan
            needs OCR first).
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(
                f"{name} is an encrypted PDF. Decrypt it (e.g. `qpdf --decrypt`) or exclude it."
            )
        count = len(reader.pages)
        if count > max_pages:
            raise DocumentError(
                f"{name} has {count} pages, over the {max_pages}-page limit for PDFs. "
                "Split it or exclude it."
            )
        content = 0
        for number, page in enumerate(reader.pages, start=1):
            stream = page.get_contents()
            content += len(stream.get_data()) if stream is not None else 0
            if content > MAX_PDF_CONTENT_BYTES:
                raise DocumentError(
                    f"{name} inflates to over {MAX_PDF_CONTENT_BYTES:,} bytes of page content "
                    f"by page {number} of {count} (a decompression bomb?). Exclude it, or split "
                    "it if it is a genuine document."
                )
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except Exception as exc:  # pypdf raises many types on corrupt files
        if type(exc).__name__ == "LimitReachedError":  # pypdf's own resource limits
            raise DocumentError(
                f"{name} was refused by pypdf's safety limits ({exc}): a compressed stream or "
                "structure is too large (a decompression bomb?). Exclude it."
            ) from exc
        raise DocumentError(
            f"Cannot parse PDF {name}: {type(exc).__name__}: {exc}. Is it a valid PDF?"
        ) from exc

    parts: list[str] = []
    sections: list[SectionSpan] = []
    length = 0
    for number, page_text in enumerate(pages, start=1):
        page_text = page_text.replace("\r\n", "\n").replace("\r", "\n").strip()
        page_text = _SURROGATE.sub("\ufffd", page_text)  # the user cannot fix an extraction
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            length += 2
        sections.append((None, length, length + len(page_text), number))
        parts.append(page_text)
        length += len(page_text)
    if not parts:
        raise DocumentError(
            f"{name} has no extractable text (a scanned PDF?). Run OCR on it first "
            "(e.g. `ocrmypdf`) or exclude it."
        )
    title = _SURROGATE.sub("\ufffd", str(meta_title)).strip() if meta_title else None
    return Parsed("".join(parts), title or None, sections, {"format": "pdf", "pages": count})


# --------------------------------------------------------------------------- records


def _join_records(records: list[tuple[str, str]], kind: str) -> Parsed:
    parts: list[str] = []
    sections: list[SectionSpan] = []
    length = 0
    for label, record in records:
        if parts:
            parts.append("\n\n")
            length += 2
        sections.append((label, length, length + len(record), None))
        parts.append(record)
        length += len(record)
    return Parsed("".join(parts), None, sections, {"format": kind, "records": len(records)})


def parse_csv(text: str, name: str) -> Parsed:
    """Render a CSV as one ``column: value`` record per row, a section per row ("row 3").

    Rows are numbered from 1 after the header row, not counting blank lines. The delimiter is
    the most frequent of ``,`` ``;`` tab and ``|`` in the header line. Ragged rows are rendered
    as they are.

    Raises:
        DocumentError: If the CSV cannot be parsed (e.g. an unterminated quote) or has no rows.
    """
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[str, str]] = []
    start = 1  # the line where the record being read starts: where an open quote would be
    try:
        header = [cell.strip() for cell in next(reader, [])]
        number = 0
        start = reader.line_num + 1
        for row in reader:
            start = reader.line_num + 1
            if not row:  # a blank line
                continue
            number += 1
            lines = []
            for column, value in enumerate(row):
                if not value.strip():
                    continue
                key = header[column] if column < len(header) and header[column] else None
                lines.append(f"{key or f'column {column + 1}'}: {value.strip()}")
            if lines:
                records.append((f"row {number}", "\n".join(lines)))
    except csv.Error as exc:
        hint = "Fix the quoting on that line."
        if "field limit" in str(exc):
            hint = "Usually a quote that is never closed; fix it, or split the oversized cell."
        raise DocumentError(
            f"Cannot parse CSV {name} near line {start}, where that row starts: {exc}. {hint}"
        ) from exc
    if not records:
        raise DocumentError(f"CSV {name} has a header but no data rows. Add rows or exclude it.")
    return _join_records(records, "csv")


_TEXT_KEYS = ("text", "content", "page_content")


def _render_scalar(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def parse_jsonl(text: str, name: str) -> Parsed:
    """Render JSON Lines: one record per object, a section per line ("line 7").

    A record's text is its ``text``, ``content`` or ``page_content`` string; an object with
    none of them is rendered as ``key: value`` lines of its scalar fields. Blank lines are
    skipped.

    Raises:
        DocumentError: If a line is not valid JSON or not an object (naming the line), or
            no line holds any text.
    """
    records: list[tuple[str, str]] = []
    for number, record in iter_jsonl(text, name, error=DocumentError):
        if not isinstance(record, dict):
            raise DocumentError(
                f"{name} line {number}: expected a JSON object, got {type(record).__name__}. "
                'Write one object per line, e.g. {"text": "..."}.'
            )
        body = next(
            (record[k] for k in _TEXT_KEYS if isinstance(record.get(k), str) and record[k].strip()),
            None,
        )
        if body is None:
            body = "\n".join(
                f"{key}: {_render_scalar(value)}"
                for key, value in record.items()
                if isinstance(value, (str, int, float, bool)) and str(value).strip()
            )
        if (bad := _SURROGATE.search(body)) is not None:
            raise DocumentError(
                f"{name} line {number}: a \\u escape encodes a lone UTF-16 surrogate "
                f"({bad.group()!r}), which is not text. Fix or remove that escape."
            )
        if body.strip():
            records.append((f"line {number}", body))
    if not records:
        raise DocumentError(
            f"{name} has no text: no line holds a 'text', 'content' or 'page_content' string "
            "or any scalar field."
        )
    return _join_records(records, "jsonl")
