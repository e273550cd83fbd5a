"""Find, load and chunk a company's documents.

:func:`discover_files` turns files, directories and glob patterns into a list of supported
files; :func:`load_document` reads one into a :class:`Document` (text, title, sections);
:class:`Chunker` cuts a document into :class:`Chunk` objects of at most ``chunk_size`` tokens of
the embedder's tokenizer, whose ``start``/``end`` always point back into ``Document.text``.

Example:
    >>> from phi3industry.retrieval.documents import Chunker, load_document
    >>> doc = load_document("docs/manual.md")  # doctest: +SKIP
    >>> chunks = Chunker(lambda s: len(s.split()), chunk_size=64).split(doc)  # doctest: +SKIP
    >>> all(doc.text[c.start : c.end] == c.text for c in chunks)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import bisect
import fnmatch
import glob
import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from phi3industry.errors import ConfigError, DocumentError
from phi3industry.retrieval import loaders

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt",
    ".md",
    ".markdown",
    ".rst",
    ".html",
    ".htm",
    ".pdf",
    ".csv",
    ".jsonl",
)

Metadata = dict[str, str | int | float | bool]
MAX_TITLE_CHARS = 300
"""Longer document and section titles are cut to this many characters (ending in "…")."""


def file_hash(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes, read in 1 MiB blocks.

    Args:
        path: The file.

    Returns:
        64 hex characters; equal to :attr:`Document.doc_hash` of the loaded file.

    Raises:
        DocumentError: If the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise DocumentError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return digest.hexdigest()


# --------------------------------------------------------------------------- discovery


def _unsupported(suffix: str) -> str:
    supported = " ".join(SUPPORTED_SUFFIXES)
    return f"unsupported file type '{suffix or '(none)'}' (supported: {supported})"


def _why(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc).rstrip(".")


def _matches(relative: str, name: str, patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        if (
            fnmatch.fnmatch(relative, pattern)
            or fnmatch.fnmatch(name, pattern)
            or (pattern.startswith("**/") and fnmatch.fnmatch(relative, pattern[3:]))
        ):
            return pattern
    return None


def _walk(directory: Path) -> list[tuple[Path, str]]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                path = Path(root, name)
                found.append((path, path.relative_to(directory).as_posix()))
    return found


def discover_files(
    paths: Sequence[str | Path],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, directories and glob patterns into the supported files to ingest.

    Directories are walked recursively, skipping hidden files and directories (``.git``) and
    not following symlinked directories; files with unsupported suffixes found there are
    ignored. A glob pattern (``docs/**/*.md``,
    ``**`` spans directories) contributes the files it matches. ``include``/``exclude`` are
    :mod:`fnmatch` patterns tested against both the file's bare name (``ar7.md``) and its path
    relative to the directory it was found in (``manuals/ar7.md``; for a named file or a glob
    match, the path as given). ``*`` also matches ``/``, so ``manuals/*`` covers sub-folders.

    Args:
        paths: Files, directories and glob patterns.
        include: If given, keep only files matching one of these patterns.
        exclude: Drop files matching any of these patterns.

    Returns:
        ``(files, skipped)``: sorted unique absolute resolved paths, and ``(path, reason)``
        for each explicitly named file that was left out (unsupported type or filtered out)
        and for each file whose path cannot be resolved (a symlink loop).

    Raises:
        DocumentError: If a path does not exist and is not a glob pattern matching files.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    candidates: list[tuple[Path, str, bool]] = []  # (path, relative, named explicitly)
    skipped: list[tuple[str, str]] = []
    for entry in paths:
        try:
            path = Path(entry).expanduser()
            is_dir, exists = path.is_dir(), path.exists()
        except (OSError, RuntimeError) as exc:  # a name too long, an unknown ~user
            raise DocumentError(
                f"Cannot access {str(entry)[:200]!r}: {_why(exc)}. Check the path."
            ) from exc
        if is_dir:
            candidates.extend((p, rel, False) for p, rel in _walk(path))
        elif exists:
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                candidates.append((path, str(entry), True))
            else:
                skipped.append((str(entry), _unsupported(path.suffix.lower())))
        elif any(char in str(entry) for char in "*?["):
            matches = sorted(glob.glob(str(path), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise DocumentError(f"No files match the pattern {str(entry)!r}. Check it.")
            candidates.extend(
                (p, p.as_posix(), False) for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES
            )
        else:
            where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
            raise DocumentError(
                f"No such file or directory: {str(entry)!r}{where}. Check the path."
            )
    kept: set[Path] = set()
    for path, relative, named in candidates:
        why = None
        if include and not _matches(relative, path.name, include):
            why = f"does not match any include pattern ({', '.join(include)})"
        elif exclude and (pattern := _matches(relative, path.name, exclude)):
            why = f"matches exclude pattern {pattern!r}"
        if why is None:
            try:
                kept.add(path.resolve())
            except (OSError, RuntimeError) as exc:  # a symlink loop
                skipped.append((relative, f"cannot resolve the path: {_why(exc)}"))
        elif named:
            skipped.append((relative, why))
    return sorted(kept), skipped


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Section:
    """A structural part of a document: a span of :attr:`Document.text`.

    Attributes:
        title: Heading path ("Install > Linux"), "row 3" / "line 7" for CSV/JSONL records,
            or None (text before the first heading, PDF pages, plain text).
        start: Offset of the first character.
        end: Offset just past the last character.
        page: 1-based PDF page number, else None.
    """

    title: str | None
    start: int
    end: int
    page: int | None = None


@dataclass(frozen=True)
class Document:
    r"""A loaded file.

    Attributes:
        source: Absolute POSIX path of the file.
        text: The text that gets chunked: the decoded file (newlines normalized to ``\\n``)
            for txt/md/rst; extracted text for HTML/PDF; rendered records for CSV/JSONL.
        title: First heading, ``<title>``, PDF metadata title, or else the file stem; this
            and section titles are cut to :data:`MAX_TITLE_CHARS`.
        doc_hash: SHA-256 of the file's bytes (equal to :func:`file_hash`).
        sections: Structure of ``text``, in order.
        metadata: Scalars such as ``{"format": "pdf", "pages": 3}``.
    """

    source: str
    text: str
    title: str | None
    doc_hash: str
    sections: tuple[Section, ...]
    metadata: Metadata


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".removesuffix(".0") + " MB"
    if n >= 1_000:
        return f"{n / 1_000:.1f}".removesuffix(".0") + " KB"
    return f"{n} bytes"


def _read(path: Path, max_bytes: int) -> bytes:
    name = str(path)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise DocumentError(f"No such file: {name}. Check the path.") from exc
    except OSError as exc:
        raise DocumentError(f"Cannot access {name}: {exc.strerror or exc}.") from exc
    if stat.S_ISDIR(info.st_mode):
        raise DocumentError(
            f"{name} is a directory; pass a file, or use discover_files() to find the files in it."
        )
    if not stat.S_ISREG(info.st_mode):
        raise DocumentError(f"{name} is not a regular file (a FIFO, socket or device); skip it.")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"Cannot load {name}: {_unsupported(suffix)}.")
    if info.st_size > max_bytes:
        raise DocumentError(
            f"{name} is {_size(info.st_size)}, over the {_size(max_bytes)} limit "
            "(max_file_bytes); raise the limit or exclude it."
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except PermissionError as exc:
        raise DocumentError(
            f"Cannot read {name}: permission denied. Check its permissions (chmod +r)."
        ) from exc
    except OSError as exc:
        raise DocumentError(f"Cannot read {name}: {exc.strerror or exc}.") from exc
    if len(data) > max_bytes:
        raise DocumentError(f"{name} grew past the {_size(max_bytes)} limit while being read.")
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes). Add content or exclude it.")
    return data


def load_document(
    path: str | Path, *, max_bytes: int = 50_000_000, max_pages: int = loaders.MAX_PDF_PAGES
) -> Document:
    """Read one supported file into a :class:`Document`.

    Text files are decoded as UTF-8 (BOM honoured; UTF-16/32 need a BOM). Bytes that are not
    UTF-8 are read as cp1252 only if they hold no control bytes; anything else is refused
    rather than turned into mojibake.

    Args:
        path: The file; its suffix picks the parser (see :data:`SUPPORTED_SUFFIXES`).
        max_bytes: Refuse files larger than this (``RetrieverConfig.max_file_bytes``).
        max_pages: Refuse PDFs with more pages than this.

    Returns:
        The document.

    Raises:
        DocumentError: Naming the file and the reason, if it is missing, a directory,
            unreadable, too large, empty or whitespace-only, binary, undecodable, or malformed
            (corrupt PDF, unparsable CSV, JSONL line that is not a JSON object).
    """
    try:
        path = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # NUL byte, unknown ~user, symlink loop
        raise DocumentError(
            f"Cannot access {str(path)[:200]!r}: {_why(exc)}. Check the path."
        ) from exc
    name = str(path)
    data = _read(path, max_bytes)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        parsed = loaders.parse_pdf(data, name, max_pages)
    else:
        text, encoding = loaders.decode_text(data, name)
        if not text.strip():
            raise DocumentError(f"{name} holds only whitespace. Add content or exclude it.")
        if suffix in (".md", ".markdown"):
            parsed = loaders.parse_markdown(text)
        elif suffix == ".rst":
            parsed = loaders.parse_rst(text)
        elif suffix in (".html", ".htm"):
            parsed = loaders.parse_html(text, name)
        elif suffix == ".csv":
            parsed = loaders.parse_csv(text, name)
        elif suffix == ".jsonl":
            parsed = loaders.parse_jsonl(text, name)
        else:
            parsed = loaders.parse_plain(text)
        parsed.metadata["encoding"] = encoding
    return Document(
        source=path.as_posix(),
        text=parsed.text,
        title=_short_title(parsed.title) or path.stem,
        doc_hash=hashlib.sha256(data).hexdigest(),
        sections=tuple(
            Section(_short_title(title), start, end, page)
            for title, start, end, page in parsed.sections
        ),
        metadata=parsed.metadata,
    )


def _short_title(title: str | None) -> str | None:
    # Every chunk carries its section and document titles in the index: a "# heading" line of
    # megabytes would otherwise be copied into the metadata of each of its thousands of chunks.
    if title is None or len(title) <= MAX_TITLE_CHARS:
        return title
    return title[: MAX_TITLE_CHARS - 1].rstrip() + "…"


# --------------------------------------------------------------------------- chunking


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed.

    Attributes:
        text: The chunk's text, exactly ``document.text[start:end]``.
        source: The document's source path.
        section: Heading path of the section it comes from, or None.
        page: 1-based PDF page, or None.
        start: Offset of the first character in ``Document.text``.
        end: Offset just past the last character.
        index: Position among the document's chunks, from 0.
        chunk_hash: SHA-256 hex of ``text``.
        doc_hash: The document's hash.
        title: The document's title.
        tokens: Its length in the chunker's tokens, counted when it was cut (None: unknown).
    """

    text: str
    source: str
    section: str | None
    page: int | None
    start: int
    end: int
    index: int
    chunk_hash: str
    doc_hash: str
    title: str | None
    tokens: int | None = None

    def metadata(self) -> Metadata:
        """Return Chroma-safe metadata: scalar values only, None values left out."""
        values = {
            "source": self.source,
            "section": self.section,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "chunk_index": self.index,
            "chunk_hash": self.chunk_hash,
            "doc_hash": self.doc_hash,
            "title": self.title,
        }
        return {key: value for key, value in values.items() if value is not None}


def chunk_header(title: str | None, section: str | None) -> str:
    """The context a chunk is matched with: its document's title and its section path.

    The title is left out when the section path already starts with it (HTML and Markdown
    documents often repeat their title as the first heading).

    Example:
        >>> chunk_header("Battery manual", "Charging > Error E4711")
        'Battery manual > Charging > Error E4711'
        >>> chunk_header("FAQ: Installation — Django docs", "FAQ: Installation > Python")
        'FAQ: Installation > Python'
    """
    first = (section or "").split(" > ", 1)[0].strip().lower()
    parts = []
    if title and not (first and (first in title.lower() or title.lower() in first)):
        parts.append(title)
    if section:
        parts.append(section)
    return " > ".join(parts)


def contextual_text(
    text: str,
    header: str,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
    text_tokens: int | None = None,
) -> str:
    """``header`` on a line before ``text``, the header cut so that the whole fits the window.

    Args:
        text: The chunk's exact text (never cut).
        header: From :func:`chunk_header`.
        count_tokens: The embedder's token counter (None: no window to fit).
        max_tokens: The embedder's window in tokens (None: no window to fit).
        text_tokens: ``count_tokens(text)`` when already known (:attr:`Chunk.tokens`).

    Returns:
        The text to embed or keyword-index; just ``text`` when no header fits.
    """
    if not header:
        return text
    if count_tokens is None or max_tokens is None:
        return f"{header}\n\n{text}"
    room = max_tokens - (count_tokens(text) if text_tokens is None else text_tokens)
    words = header.split()
    # Keep the end of the header (the most specific section) when it must be cut.
    while words and count_tokens(" ".join(words)) > room:
        words = words[max(1, len(words) // 4) :]
    return f"{' '.join(words)}\n\n{text}" if words else text


def embedded_text(
    chunk: Chunk,
    contextual_headers: bool,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int | None = None,
) -> str:
    """What an index embeds for ``chunk``: its text, after its header when headers are on.

    Args:
        chunk: From :class:`Chunker`.
        contextual_headers: ``RetrieverConfig.contextual_headers``.
        count_tokens: The embedder's token counter (None: no window to fit).
        max_tokens: The embedder's window in tokens (None: no window to fit).
    """
    if not contextual_headers:
        return chunk.text
    header = chunk_header(chunk.title, chunk.section)
    return contextual_text(chunk.text, header, count_tokens, max_tokens, chunk.tokens)


# Preferred cut points, best first; a chunk ends just after one.
_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", " ")
_WHITESPACE = re.compile(r"\s")
_FILL = 0.95  # aim a bit under chunk_size so the estimate rarely overshoots
_MIN_FILL = 0.65  # a separator this far into the window is strong enough to cut at
_FIRST_RATIO = 0.25  # tokens per character before anything has been counted
# Longest chunk, in characters per token of chunk_size. WordPiece counts a "word" of over 100
# characters as one [UNK] token, so without a cap a 100 MB run of letters would be one chunk.
_MAX_CHARS_PER_TOKEN = 16
_PREFIX_CHARS_PER_TOKEN = 8  # prefix counted first when only the size class matters
_HEADED_FORMATS = ("markdown", "rst", "html")  # sections from headings: small ones are joined


class Chunker:
    r"""Split documents into chunks of at most ``chunk_size`` tokens, section by section.

    Chunks never cross a section (heading, PDF page, CSV row, JSONL record). Inside a section
    a chunk ends at the best separator (blank line, line, sentence, word) near the length that
    the running tokens-per-character estimate predicts, and is then counted exactly; an
    overshoot is cut shorter and counted again. A chunk is also at most ``16 * chunk_size``
    characters long, however few tokens a tokenizer counts in it (WordPiece counts any run of
    over 100 letters as one token). This is the recursive-separator strategy of
    LangChain's ``RecursiveCharacterTextSplitter`` with about one ``count_tokens`` call per
    chunk instead of one per piece, which keeps chunking far cheaper than embedding.

    Args:
        count_tokens: Length of a text in the embedder's tokens (no special tokens).
        chunk_size: Maximum tokens per chunk.
        chunk_overlap: Tokens (estimated, at a word boundary) repeated from the end of a chunk
            at the start of the next one within the same section.

    Raises:
        ConfigError: If ``chunk_size`` is not positive or ``chunk_overlap`` is negative or not
            smaller than ``chunk_size``.

    Example:
        >>> from phi3industry.retrieval.documents import Chunker, Document, Section
        >>> text = "Dock the robot.\nClean the pads.\nCheck the LED."
        >>> doc = Document("/kb/a.txt", text, "a", "0" * 64, (Section(None, 0, len(text)),), {})
        >>> chunks = Chunker(lambda s: len(s.split()), chunk_size=6, chunk_overlap=0).split(doc)
        >>> [c.text for c in chunks]
        ['Dock the robot.', 'Clean the pads.', 'Check the LED.']
    """

    def __init__(
        self, count_tokens: Callable[[str], int], chunk_size: int = 256, chunk_overlap: int = 32
    ) -> None:
        if not callable(count_tokens):
            raise ConfigError(
                f"count_tokens must be a function str -> int, got {type(count_tokens).__name__}."
            )
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ConfigError(
                f"chunk_size must be a positive number of tokens, got {chunk_size!r}."
            )
        if not isinstance(chunk_overlap, int) or not 0 <= chunk_overlap < chunk_size:
            raise ConfigError(
                f"chunk_overlap must be >= 0 and smaller than chunk_size ({chunk_size}), got "
                f"{chunk_overlap!r}. Lower chunk_overlap or raise chunk_size."
            )
        self.count_tokens = count_tokens
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_chars = chunk_size * _MAX_CHARS_PER_TOKEN

    def split(self, document: Document) -> list[Chunk]:
        """Split a document into chunks, in text order.

        Args:
            document: A loaded document.

        Returns:
            Its chunks; whitespace-only pieces are dropped. The result depends only on the
            document and the settings (no state is carried between documents).
        """
        sections = document.sections or (Section(None, 0, len(document.text)),)
        blocks = sections
        if document.metadata.get("format") in _HEADED_FORMATS:
            blocks = self._merge_small_sections(document.text, sections)
        starts = [section.start for section in sections]
        ratio = _FIRST_RATIO  # tokens per character, re-measured on every chunk
        chunks: list[Chunk] = []
        for block in blocks:
            spans, ratio = self._split_span(document.text, block.start, block.end, ratio)
            for start, end, tokens in spans:
                # Label a chunk with the section it starts in (blocks may join several).
                section = sections[max(0, bisect.bisect_right(starts, start) - 1)]
                text = document.text[start:end]
                chunks.append(
                    Chunk(
                        text=text,
                        source=document.source,
                        section=section.title,
                        page=section.page,
                        start=start,
                        end=end,
                        index=len(chunks),
                        chunk_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                        doc_hash=document.doc_hash,
                        title=document.title,
                        tokens=tokens,
                    )
                )
        return chunks

    def _merge_small_sections(self, text: str, sections: Sequence[Section]) -> tuple[Section, ...]:
        """Join runs of consecutive small sections into blocks of up to ``chunk_size`` tokens.

        A heading with a line or two under it makes a chunk too short to embed well: in the
        Django docs such chunks outranked the real answers for dense search. The merged block
        keeps the first section's title; PDF pages are never joined.
        """
        merged: list[Section] = []
        budget = self.chunk_size * _FILL
        tokens = 0
        for section in sections:
            n = self._count_beyond(text[section.start : section.end], budget)
            last = merged[-1] if merged else None
            if last is not None and last.page == section.page and tokens + n <= budget:
                merged[-1] = Section(last.title, last.start, section.end, last.page)
                tokens += n
            else:
                merged.append(section)
                tokens = n
        return tuple(merged)

    def _count_beyond(self, text: str, limit: float) -> int:
        """``count_tokens(text)``, or a smaller count that is still above ``limit``.

        Only whether a section fits matters when merging: a long one is told by counting a
        prefix of whole words, whose tokens are the first of the text's (tokenizers split
        words at whitespace first), instead of tokenizing all of it.
        """
        cut = int(limit) * _PREFIX_CHARS_PER_TOKEN
        if len(text) > cut:
            space = _WHITESPACE.search(text[cut::-1])
            if space is not None:
                n = self.count_tokens(text[: cut - space.start()])
                if n > limit:
                    return n
        return self.count_tokens(text)

    def _split_span(
        self, text: str, start: int, end: int, ratio: float
    ) -> tuple[list[tuple[int, int, int]], float]:
        """``(start, end, tokens)`` of each chunk of ``text[start:end]``; the ratio learnt."""
        spans: list[tuple[int, int, int]] = []
        pos = _skip_space(text, start, end)
        while pos < end:
            limit = max(1, min(int(self.chunk_size * _FILL / ratio), self.max_chars))
            # Try the whole rest first when it is about one chunk long, to avoid a tiny tail.
            cut = end if end - pos <= limit * 1.2 else _find_cut(text, pos, pos + limit)
            while True:
                chunk_end = _trim_end(text, pos, cut)
                n = self.count_tokens(text[pos:chunk_end])
                length = chunk_end - pos
                if length >= 16 and n:
                    ratio = n / length
                if n <= self.chunk_size or length <= 1:
                    break
                limit = max(1, min(length - 1, int(length * self.chunk_size / n * 0.95)))
                cut = _find_cut(text, pos, pos + limit)
            spans.append((pos, chunk_end, n))
            if cut >= end:
                break
            pos = _skip_space(text, self._overlap_start(text, pos, chunk_end, n, cut), end)
        return spans, ratio

    def _overlap_start(self, text: str, start: int, end: int, tokens: int, cut: int) -> int:
        """Where the next chunk starts: a line or word start ~chunk_overlap tokens back."""
        if not self.chunk_overlap or not tokens:
            return cut
        back = max(start + 1, end - int(self.chunk_overlap * (end - start) / tokens))
        line = text.find("\n", back - 1, end)
        if line != -1:
            return line + 1
        match = _WHITESPACE.search(text, back - 1, end)
        return match.end() if match else cut


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _find_cut(text: str, start: int, stop: int) -> int:
    """Best cut in ``(start, stop]``: after the strongest separator that keeps the chunk full."""
    floor = start + int((stop - start) * _MIN_FILL)
    for separator in _SEPARATORS:
        found = text.rfind(separator, floor, stop)
        if found != -1:
            return found + len(separator)
    return stop
