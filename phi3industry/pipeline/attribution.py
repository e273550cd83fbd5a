"""Attribution: which passage of the sources supports each claim of an answer.

An answer is split into claims: its sentences, and the clauses of a sentence that joins two
facts (``;``, ``, and``). Each claim is scored against the spans of the sources the model was
shown: a sentence, two adjacent sentences, or a short paragraph such as a table row. Three
signals make the score, combined by weights calibrated on labelled pairs
(``bench/calibrate_attribution.py``, data in ``tests/data/attribution_pairs.jsonl``):

* the cosine similarity of claim and span in the index's own embedder;
* the share of the claim's content words found in the span;
* whether every number and code of the claim (``E-214``, ``450``, ``NW-SP-2210``) is in the
  span: a passage with the right words and another row's code does not support a claim.

A claim is supported when its best span scores at least the threshold, or when two spans of
two different sources do together (a claim that merges two facts). The quotes carry
character offsets inside the source document, so that a UI can highlight them. A ``[n]``
the model wrote is kept only when source ``n`` supports its claim.

Example:
    >>> from phi3industry.pipeline.attribution import split_claims
    >>> text = "The AR7 carries 450 kg [1]. It runs for 10 h; charging takes 75 min."
    >>> [text[a:b] for a, b in split_claims(text)]
    ['The AR7 carries 450 kg [1].', 'It runs for 10 h', 'charging takes 75 min.']
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from phi3industry.pipeline.prompt import CITATION_MARKER, parse_citations
from phi3industry.qa import code_kind, content_words, key_terms
from phi3industry.retrieval.search import Hit

#: Embeds texts into normalised vectors (one row per text).
Embed = Callable[[Sequence[str]], Any]

# A sentence ends at . ! ? (not after a number or another dot: "1." opens a list item,
# "......" leads a spec line to its value), closing marks included.
_END = r"(?<=[^.\d\s][.!?])[\"')\]]*\s+(?=\S)"
_SENTENCE = re.compile(rf"{_END}|\n+")
_SENTENCE_IN_UNIT = re.compile(_END)
_PARAGRAPH = re.compile(r"\n\s*\n")
_MARKER = re.compile(r"\s*" + CITATION_MARKER.pattern, re.I)  # a [n] and the space before it
_LINE = re.compile(r"[^\n]*\S[^\n]*")
# A line that is an item of its own: a list item, a table row, a "key: value" field, a spec
# line with dotted leaders. Other lines may just continue the line above (wrapped prose).
# A line of one word is an item too (a heading, a label), unless it ends a sentence: then it
# is the last word of the line above, wrapped.
_ITEM = re.compile(
    r"\s*(?:[-*+|\u2022]|\d+[.)]\s|[A-Za-z_][\w ./()-]{0,40}:\s|.*\S\s*\.{2,}\s|.*\s\|\s"
    r"|\S*[^\s.!?]\s*$)"
)
_FIELD = re.compile(r"\s*[A-Za-z_][\w ./()-]{0,40}:\s+\S")
_CLAUSE = re.compile(r";\s+|,\s+(?:and|but|while|whereas)\s+|\s+(?:but|whereas)\s+")
# Where one fact ends and the next begins inside a sentence or a row: "above 450 kg (error
# E-810) or with the center of gravity out of limits (error E-811)" binds 450 to E-810.
_JOIN = r"\s+(?:and|or|but|whereas|while)\s+"
_BINDING = re.compile(rf"[;,]\s+|{_JOIN}")
# A source's clause, for what a figure is said about: a comma does not end it ("the dock
# takes 30 minutes, from 0 to 80 %" binds 30 to the dock's charging).
_SOURCE_CLAUSE = re.compile(rf";\s+|{_JOIN}")
# A section's number ("3.1 Battery work") orders a document; it is not a fact of the section.
_HEADING_NUMBER = re.compile(r"(?:^|(?<=>)|(?<=\|))\s*\d+(?:\.\d+)*\.?(?=\s)")
# A text whose last sentence is finished: . ! ? (closing marks and [n] markers after it).
_ENDED = re.compile(r"[.!?][\"')\]]*(?:\s*\[\d+\])*\s*$")
_LABEL = re.compile(r"\s*(?:(?:final\s+)?answer\s*:|[-*\u2022]|\d+[.)])\s+", re.I)
_QUESTION = re.compile(r"\?[\"')\]\u201d]*\s*$")  # a sentence that asks
_LEAD_IN = re.compile(r":\s*$")  # "The steps are:" introduces what follows, asserts nothing
_MAX_PARAGRAPH = 600  # a paragraph up to this long is also a span (a table row, a short note)
_MIN_SHARE = 0.25  # each span of a two-source support holds this share of the claim's words
_MIN_CLAUSE_WORDS = 2  # each side of a split clause keeps at least this many content words
_CACHE_SIZE = 4096  # sentence embeddings kept (the same sources come back question after question)


#: The signals, in the order :class:`Weights` weighs them.
FEATURES = ("cosine", "recall", "keys_missing", "negation_mismatch", "words_missing")


@dataclass(frozen=True)
class Weights:
    """The calibrated scoring: a logistic model over the signals, and its threshold.

    Attributes:
        bias: The intercept.
        cosine: Weight of the embedding similarity of claim and span.
        recall: Weight of the share of the claim's content words found in the span.
        keys_missing: Weight of "a number or code of the claim is missing from the span".
        negation_mismatch: Weight of "one of claim and span is negated, the other is not".
        words_missing: Weight of how many of the claim's content words the span lacks (0 to
            3, as a share of 3): a claim that adds one substantive word to a passage ("the
            *customer* pays") says something the passage does not.
        threshold: Score from which a claim counts as supported.
    """

    bias: float
    cosine: float
    recall: float
    keys_missing: float
    negation_mismatch: float
    words_missing: float
    threshold: float

    def score(self, features: Sequence[float]) -> float:
        """The probability that the span supports the claim (``features`` as in FEATURES)."""
        weights = (
            self.cosine,
            self.recall,
            self.keys_missing,
            self.negation_mismatch,
            self.words_missing,
        )
        z = self.bias + sum(w * f for w, f in zip(weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


#: Fitted by ``bench/calibrate_attribution.py`` on the train split of the labelled pairs
#: (``tests/data/attribution_pairs.jsonl``, CALIBRATION_BATCHES) with the bundled MiniLM and
#: the rules of RULES_VERSION 3 (4 changed no labelled pair). Held-out figures: docs/grounding.md.
CALIBRATED = Weights(
    bias=-0.856,
    cosine=1.187,
    recall=1.753,
    keys_missing=-2.621,
    negation_mismatch=-0.837,
    words_missing=-0.867,
    threshold=0.53,
)
#: The version of the rules behind the signals (claims, spans, key terms, negations, names,
#: units, rows). An evaluation's cached answers record it with the weights, so raise it when
#: a rule changes: answers scored the old way are then redone. 2: names, units, a
#: negation's reach, bounds, another row's words in a two-source support, table headers.
#: 3: a figure must be in a source clause about what the claim's clause is about (unbound);
#: the context's words (title, section: a FAQ's question) count half towards recall; codes
#: with more after their number; wrapped one-word sentence ends; a span of a two-source
#: support may hold one clause of the claim; a question is neither a claim nor support.
#: 4: a lead-in ending with a colon ("The answer to your question is:") is not a claim, nor
#: an extractive answer.
RULES_VERSION = 4

#: The batches of labelled pairs whose train split fitted CALIBRATED. A later batch was
#: written after the fit, so it measures the weights on claims they never saw.
CALIBRATION_BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 9)
_NEGATIONS = frozenset(
    {"not", "no", "never", "cannot", "without", "nope", "neither", "nor"}
)  # and every "...n't"


# "no more than 2 m" bounds a figure; it does not say that something is not so.
_BOUND = re.compile(
    r"\b(?:no|not)\s+(?:more|less|fewer|later|earlier|longer|shorter|greater|higher|lower)\s+than\b",
    re.I,
)
# Where a negation's reach ends: "No action needed: the robot drives to a dock" denies only
# the action.
_NEGATION_REACH = re.compile(rf"[;:,]\s+|{_JOIN}")


def negated(text: str) -> bool:
    """Whether ``text`` says something is not so (a negation word, or ``n't``).

    A bound ("no more than 2 m") is not a negation.
    """
    text = _BOUND.sub(" ", text).lower().replace("\u2019", "'")
    words = [w.strip('.,;:!?()"') for w in text.split()]
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def negations(text: str) -> tuple[frozenset[str], ...]:
    """The content words and key terms of each negated clause of ``text``.

    A span is negated for a claim only where a negated clause is about what the claim is
    about (shares a word or a key term with it), or says nothing else ("No.").
    """
    return tuple(
        frozenset(content_words(c)) | frozenset(key_terms(c))
        for c in _NEGATION_REACH.split(text)
        if negated(c)
    )


# Units that bind a figure: "within 24 hours" is not supported by "24/7" and "24 months".
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "min"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks"), "week"),
    **dict.fromkeys(("month", "months"), "month"),
    **dict.fromkeys(("year", "years"), "year"),
    **dict.fromkeys(("kg", "kilogram", "kilograms"), "kg"),
    **dict.fromkeys(("m", "meter", "meters", "metre", "metres"), "m"),
    **dict.fromkeys(("%", "percent"), "%"),
    **{u: u for u in ("ms", "g", "t", "mm", "cm", "km", "m/s", "km/h", "mph", "°c", "°f")},
    **{u: u for u in ("v", "mv", "kv", "w", "kw", "kwh", "wh", "ah", "mah", "db", "dbm")},
    **{u: u for u in ("kb", "mb", "gb", "tb", "hz", "khz", "mhz", "ghz", "rpm", "lb", "lbs")},
}
_QUANTITY = re.compile(
    r"(?<![\w.])(\d+(?:[.,]\d+)*)(?:\s*-\s*|\s*)(%|°[cf]|[a-z]+(?:/[a-z]+)?)(?!\w)"
)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def quantities(text: str) -> frozenset[tuple[str, str]]:
    """The figures of ``text`` that carry a unit, as ``(number, unit)``: "4-hour" is (4, h)."""
    return frozenset(
        (m[1].replace(",", ""), _UNITS[m[2]])
        for m in _QUANTITY.finditer(text.lower())
        if m[2] in _UNITS
    )


def other_unit(claim: frozenset[tuple[str, str]], found: set[tuple[str, str]]) -> bool:
    """Whether a figure of the claim appears in ``found`` only with other units."""
    for number, unit in claim:
        units = {u for n, u in found if n == number}
        if units and unit not in units:
            return True
    return False


# A name inside a sentence ("ship from Seattle"): a place, a company, a product.
_NAME = re.compile(r"(?<=[a-z0-9,)] )[A-Z][a-z]{2,}\b")
_PROMPT_WORDS = frozenset(content_words("source sources answer question"))


def names(text: str) -> set[str]:
    """The (stemmed) capitalised words of ``text`` that do not open a sentence or clause.

    The prompt's own words ("according to Source 2") are not names.
    """
    found = {w for m in _NAME.finditer(text) for w in content_words(m.group())}
    # a word as the claim's own words have it ("Lawrence.com" is one word, not "Lawrence")
    return (found & set(content_words(text))) - _PROMPT_WORDS


@dataclass(frozen=True)
class Quote:
    """A span of a source that supports a claim.

    Attributes:
        n: The source's number: ``[n]`` is ``Answer.sources[n - 1]``.
        start: Offset of the quote in the source document's text (what ``Hit.span`` counts).
        end: End offset (exclusive).
        text: The quoted text.
        score: How strongly it supports the claim (0 to 1).
    """

    n: int
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The quote as a JSON-ready dict."""
        return asdict(self)


@dataclass
class Claim:
    """One claim of an answer and the evidence for it.

    Attributes:
        text: The claim (model-written markers removed).
        span: ``(start, end)`` offsets of the claim in the answer's text.
        quotes: Supporting spans of the sources, best first (empty when unsupported).
        score: The best support score found (0 to 1).
        supported: Whether the score reaches the calibrated threshold.
        markers: The ``[n]`` the model wrote for this claim.
        unsupported_markers: Those of ``markers`` whose source does not support it.
    """

    text: str
    span: tuple[int, int]
    quotes: list[Quote] = field(default_factory=list)
    score: float = 0.0
    supported: bool = False
    markers: list[int] = field(default_factory=list)
    unsupported_markers: list[int] = field(default_factory=list)

    @property
    def sources(self) -> list[int]:
        """The numbers of the sources that support the claim, best first."""
        return list(dict.fromkeys(q.n for q in self.quotes))

    def to_dict(self) -> dict[str, Any]:
        """The claim as a JSON-ready dict."""
        return {
            "text": self.text,
            "span": list(self.span),
            "supported": self.supported,
            "score": round(self.score, 4),
            "sources": self.sources,
            "quotes": [q.to_dict() for q in self.quotes],
            "markers": list(self.markers),
            "unsupported_markers": list(self.unsupported_markers),
        }


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(
    text: str, pattern: re.Pattern[str], start: int, end: int, keep: bool = True
) -> list[tuple[int, int]]:
    """``text[start:end]`` cut at ``pattern``; ``keep``: a cut's closing marks stay left."""
    out, at = [], start
    for match in pattern.finditer(text, start, end):
        cut = match.end() if keep and match.group().strip() else match.start()
        out.append(_strip(text, at, cut))
        at = match.end()
    out.append(_strip(text, at, end))
    return [(a, b) for a, b in out if b > a]


_ENUMERATOR = re.compile(r"\s*(?:\d+|[a-z])[.)]\s*", re.I)  # "1." alone: a list's numbering


def _is_claim(text: str) -> bool:
    if _ENUMERATOR.fullmatch(text) or _LEAD_IN.search(text):
        return False
    words = content_words(text)
    return len(words) >= 2 or bool(key_terms(text)) or (bool(words) and len(text.split()) >= 3)


def _facts(text: str) -> int:
    """Content words and key terms: how much a clause asserts."""
    return len(content_words(text)) + len(key_terms(text))


def split_claims(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each claim in ``text``: sentences, and clauses joining two facts.

    Fragments without content (``"Sure!"``) are not claims, nor are questions and lead-ins
    ending with a colon (they assert nothing); a clause is split off only when both sides
    keep a few content words.
    """
    claims = []
    for a, b in _pieces(text, _SENTENCE, 0, len(text)):
        if _QUESTION.search(CITATION_MARKER.sub(" ", text[a:b])):
            continue
        label = _LABEL.match(text, a, b)
        a = label.end() if label else a
        parts = _pieces(text, _CLAUSE, a, b, keep=False)
        if len(parts) > 1 and all(_facts(text[x:y]) >= _MIN_CLAUSE_WORDS for x, y in parts):
            claims += parts
        else:
            claims.append((a, b))
    return [(a, b) for a, b in claims if _is_claim(CITATION_MARKER.sub(" ", text[a:b]))]


def _units(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The lines of a paragraph, with wrapped prose lines joined to the line they continue."""
    units: list[tuple[int, int]] = []
    for match in _LINE.finditer(text, start, end):
        a, b = _strip(text, match.start(), match.end())
        if units:
            previous = text[units[-1][0] : units[-1][1]]
            if not _ITEM.match(text, a, b) and not previous.endswith((".", "!", "?", ":")):
                units[-1] = (units[-1][0], b)
                continue
        units.append((a, b))
    return units


def _sentences(text: str, start: int, end: int) -> list[list[tuple[int, int]]]:
    """Per unit (line, or wrapped prose) of ``text[start:end]``, its sentences."""
    return [
        _pieces(text, _SENTENCE_IN_UNIT, a, b)
        for pa, pb in _pieces(text, _PARAGRAPH, start, end)
        for a, b in _units(text, pa, pb)
    ]


def passage_spans(text: str) -> list[tuple[int, int]]:
    """Candidate supporting spans of a passage.

    Sentences; two adjacent sentences of one line or wrapped paragraph; a whole short
    paragraph of prose; and a whole record (``key: value`` lines, as the loaders render CSV
    and JSONL rows). Table rows, list items and spec lines are never joined to their
    neighbours: a row's figure must not support a claim about the next row.
    """
    spans: list[tuple[int, int]] = []
    for pa, pb in _pieces(text, _PARAGRAPH, 0, len(text)):
        units = _units(text, pa, pb)
        for a, b in units:
            sentences = _pieces(text, _SENTENCE_IN_UNIT, a, b)
            spans += sentences
            spans += [(s[0], t[1]) for s, t in itertools.pairwise(sentences)]
            if len(sentences) > 2 and b - a <= _MAX_PARAGRAPH:
                spans.append((a, b))
        fields = [u for u in units if _FIELD.match(text, *u)]
        if len(units) > 1 and len(fields) == len(units) and pb - pa <= _MAX_PARAGRAPH:
            spans.append((pa, pb))  # a record
    return list(dict.fromkeys(spans))


def _codes(keys: set[str]) -> set[str]:
    """The codes among key terms (``e-214``, ``nw-sp-2210``; not figures or identifiers)."""
    return {k for k in keys if code_kind(k)}


def crossed(keys: set[str], text: str) -> bool:
    """Whether ``text`` binds a figure of ``keys`` to another code than the claim's.

    A claim "loads above 450 kg are refused with error E-811" finds both 450 and E-811 in
    "refuses missions above 450 kg (error E-810) or with the center of gravity out of limits
    (error E-811)", yet 450 belongs to E-810 there: each clause holding the figure holds a
    code of the same kind as the claim's (another error) and not the claim's own.
    """
    codes = _codes(keys)
    figures = keys - codes
    if not codes or not figures:
        return False
    kinds = {code_kind(c) for c in codes}
    found, clauses = _clause_keys(text)
    if not any(code_kind(k) in kinds for k in found - codes):
        return False
    for figure in figures:
        holding = [c for c in clauses if figure in c]
        if holding and all(
            not c & codes and any(code_kind(k) in kinds for k in c) for c in holding
        ):
            return True
    return False


def _table_header(text: str, start: int, end: int) -> tuple[int, set[str]]:
    """Where the header row of the table ``text[start:end]`` ends, and its words.

    A table is a paragraph of two or more lines that all hold a column separator ``|``;
    anything else has no header (``(-1, set())``).
    """
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text, start, end)]
    if len(lines) < 2 or not all("|" in text[a:b] for a, b in lines):
        return -1, set()
    a, b = lines[0]
    return b, set(content_words(text[a:b]))


@dataclass
class _Paragraph:
    """What the spans of one paragraph of a passage share."""

    start: int
    end: int
    codes: set[str] = field(default_factory=set)  # a record's codes: what row it is about
    header_end: int = -1  # where its table header ends (-1: no table) ...
    header_words: set[str] = field(default_factory=set)  # ... and the words naming the columns


def _paragraphs(text: str, context_keys: set[str]) -> list[_Paragraph]:
    """The paragraphs of a passage, with their codes and table headers."""
    out = []
    for a, b in _pieces(text, _PARAGRAPH, 0, len(text)):
        codes = _codes(key_terms(text[a:b]) | context_keys)
        header_end, header_words = _table_header(text, a, b)
        out.append(_Paragraph(a, b, codes, header_end, header_words))
    return out


def _stems(words: set[str]) -> set[str]:
    """Words cut to their first letters: the forms of a word meet (brake, braking)."""
    return {w[:_PREFIX] for w in words}


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _clause_words(
    text: str, source: bool
) -> tuple[tuple[frozenset[str], frozenset[str], bool], ...]:
    """Per clause of ``text``: its key terms, its content words, and whether it is a row.

    A source's clauses end at ";" and conjunctions, a claim's at commas too. Cached: the
    same spans come back for every claim of every answer.
    """
    pattern = _SOURCE_CLAUSE if source else _BINDING
    return tuple(
        (frozenset(key_terms(c)), frozenset(content_words(c)), "|" in c)
        for c in pattern.split(text)
    )


def unbound(text: str, keys: set[str], spans: Sequence[_Span]) -> bool:
    """Whether a figure of the claim is, in the spans, only in clauses about other things.

    "The AR7 brakes at up to 0.8 m/s2" is not supported by "Acceleration ... up to 0.8 m/s2;
    braking up to 1.2 m/s2": the source's only clause holding 0.8 shares no word with the
    claim's clause holding it. Words of the source's title and section bind nothing (every
    clause has them), nor does a clause of figures alone (a bare list); a table row binds
    its figures by its columns, so the rule leaves it alone.
    """
    figures = {k for k in keys if not code_kind(k) and k[:1].isdigit()}
    if not figures:
        return False
    context: set[str] = set().union(*(s.context for s in spans))
    claim = _clause_words(text, source=False)
    source = [c for s in spans for c in _clause_words(s.text, source=True)]
    for figure in figures:
        own = _stems(set().union(*(w for k, w, _ in claim if figure in k)) - context)
        holding = [(w, row) for k, w, row in source if figure in k]
        if not own:
            continue  # the claim says nothing about the figure beyond its topic
        if any(row for _, row in holding):
            continue  # a table row binds its figures by its columns
        stems = [_stems(set(w)) for w, _ in holding if w]
        if stems and not any(h & own for h in stems):
            return True
    return False


def _says_part(claim: _Claim, span: _Span) -> bool:
    """Whether ``span`` says part of ``claim`` itself.

    A share of its words, or most of one of its clauses ("the pendant is part NW-PD-0100"
    of a longer claim that merges two facts).
    """
    if _recall(claim.words, span.words) >= _MIN_SHARE:
        return True
    return any(
        len(words) >= _MIN_CLAUSE_WORDS and _recall(set(words), span.words) >= 2 * _MIN_SHARE
        for _, words, _ in _clause_words(claim.text, source=False)
    )


def _other_row(keys: set[str], spans: Sequence[_Span]) -> bool:
    """Whether a span of a two-source support is about another code than the claim's.

    "E-230 means the drive motor is over temperature" takes E-230 from its own row and the
    words from E-214's: a span without the claim's code but with another code of the same
    kind describes that other row.
    """
    codes = _codes(keys)
    kinds = {code_kind(c) for c in codes}
    return any(not s.codes & codes and any(code_kind(k) in kinds for k in s.codes) for s in spans)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _clause_keys(text: str) -> tuple[frozenset[str], tuple[frozenset[str], ...]]:
    """The key terms of ``text``, and of each of its clauses.

    Cached: the same spans come back for every claim of every answer.
    """
    return frozenset(key_terms(text)), tuple(frozenset(key_terms(c)) for c in _BINDING.split(text))


@dataclass
class _Span:
    n: int
    start: int  # offsets in the passage text
    end: int
    text: str
    vector: np.ndarray
    words: set[str]  # its own and its context's
    keys: set[str]
    negations: tuple[frozenset[str], ...]
    codes: frozenset[str]  # the codes of its paragraph (a record: its row) and context
    context: frozenset[str]  # the words of its title and section
    # words - context, computed once: features() reads it for every claim
    own: frozenset[str]  # its words beyond its title and section: what it says of its topic


@dataclass
class _Claim:
    text: str
    vector: np.ndarray
    words: set[str]
    keys: set[str]
    negated: bool
    quantities: frozenset[tuple[str, str]]
    names: set[str]


class Attributor:
    """Scores claims against source spans with an embedder and the calibrated weights.

    Args:
        embed: Embeds a list of texts into normalised vectors (e.g. ``Embedder.embed_documents``).
        weights: The scoring (default: :data:`CALIBRATED`).
        lock: Held while embedding (an embedder shared with a server's search).

    Example:
        >>> from phi3industry.retrieval.embeddings import load_embedder
        >>> embedder = load_embedder()  # doctest: +SKIP
        >>> attributor = Attributor(embedder.embed_documents)  # doctest: +SKIP
        >>> claim, passage = "The AR7 carries 450 kg.", "Maximum payload: 450 kg"
        >>> attributor.score(claim, [passage])  # doctest: +SKIP
        0.93
    """

    def __init__(
        self, embed: Embed, weights: Weights = CALIBRATED, lock: threading.Lock | None = None
    ) -> None:
        self._embed = embed
        self.weights = weights
        self._lock = lock or threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def describe(self) -> dict[str, Any]:
        """The scoring and extraction settings (what an evaluation's cache records)."""
        return {
            "weights": asdict(self.weights),
            "rules": RULES_VERSION,
            "extract": [_EXTRACT_RECALL, _EXTRACT_KEYS, _EXTRACT_NEW, _EXTRACT_RANK],
        }

    # -- embedding, with a cache of the sentences seen --------------------------------------

    def _vectors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if wanted:
            with self._lock:
                rows = np.asarray(self._embed(wanted), dtype=np.float32)
            for text, row in zip(wanted, rows, strict=True):
                self._cache[text] = row
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return {t: self._cache[t] for t in texts}

    def _spans(self, passages: Sequence[tuple[int, str, str]]) -> list[_Span]:
        """Every candidate span of the passages ``(n, text, context)``, embedded."""
        sentences = {
            text[x:y]
            for _, text, _ in passages
            for unit in _sentences(text, 0, len(text))
            for x, y in unit
        }
        vectors = self._vectors(sorted(sentences))
        spans = []
        for n, text, context in passages:
            context_words = set(content_words(context))
            context_keys = key_terms(_HEADING_NUMBER.sub(" ", context))
            paragraphs = _paragraphs(text, context_keys)
            for a, b in passage_spans(text):
                p = next((p for p in paragraphs if p.start <= a < p.end), _Paragraph(a, b))
                header = p.header_words if a >= p.header_end else set()
                spans += self._span(
                    n, text, a, b, vectors, context_words, header, context_keys, p.codes
                )
        return spans

    @staticmethod
    def _span(
        n: int,
        text: str,
        a: int,
        b: int,
        vectors: dict[str, np.ndarray],
        context_words: set[str],
        header_words: set[str],
        context_keys: set[str],
        codes: set[str],
    ) -> list[_Span]:
        parts = [text[x:y] for unit in _sentences(text, a, b) for x, y in unit] or [text[a:b]]
        if all(_QUESTION.search(p) for p in parts):
            return []  # a question asserts nothing (a FAQ's own question above its answer)
        vector = np.sum([vectors[p] for p in parts if p in vectors], axis=0)
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            return []
        span = text[a:b]
        own = set(content_words(span)) | header_words
        return [
            _Span(
                n,
                a,
                b,
                span,
                vector / norm,
                own | context_words,
                key_terms(span) | context_keys,
                negations(span),
                frozenset(codes),
                frozenset(context_words),
                frozenset(own - context_words),
            )
        ]

    def _claim(self, text: str, vector: np.ndarray) -> _Claim:
        return _Claim(
            text,
            vector,
            set(content_words(text)),
            key_terms(text),
            negated(text),
            quantities(text),
            names(text),
        )

    # -- scoring ----------------------------------------------------------------------------

    @staticmethod
    def features(claim: _Claim, spans: Sequence[_Span]) -> tuple[float, ...]:
        """The signals (see FEATURES) of ``claim`` against the union of ``spans``."""
        cosine = max(0.0, max(float(claim.vector @ s.vector) for s in spans))
        found_words: set[str] = set().union(*(s.words for s in spans))
        found_keys: set[str] = set().union(*(s.keys for s in spans))
        # the context (title, section: in a FAQ, the question) names what a span is about, so
        # its words count half: a claim that only repeats the topic is half supported at most
        # ("No, your ticket is not ready for checkin.")
        own: set[str] = set().union(*(s.own for s in spans))
        recall = (_recall(claim.words, found_words) + _recall(claim.words, own)) / 2
        missing = (
            bool(claim.keys - found_keys)
            or bool(claim.names - found_words)
            or other_unit(claim.quantities, set().union(*(quantities(s.text) for s in spans)))
            or any(crossed(claim.keys, s.text) for s in spans)
            or unbound(claim.text, claim.keys, spans)
        )
        about = claim.words | claim.keys
        span_negated = any(not n or n & about for s in spans for n in s.negations)
        mismatch = 1.0 if claim.negated != span_negated else 0.0
        lacking = min(3, round((1.0 - recall) * len(claim.words))) / 3
        return cosine, recall, 1.0 if missing else 0.0, mismatch, lacking

    def candidates(self, claim: _Claim, spans: Sequence[_Span]) -> list[list[_Span]]:
        """What may support ``claim``: each span, and pairs of the best spans of two sources."""
        singles = sorted(spans, key=lambda s: -self.weights.score(self.features(claim, [s])))
        # Each span of a pair must say part of the claim itself: a row's code beside another
        # row's words is not support ("the right number from the wrong row").
        top = [s for s in singles[:8] if _says_part(claim, s)]
        pairs = [[a, b] for i, a in enumerate(top) for b in top[i + 1 :] if a.n != b.n]
        return [[s] for s in singles] + [p for p in pairs if not _other_row(claim.keys, p)]

    def _support(self, claim: _Claim, spans: Sequence[_Span]) -> tuple[float, list[_Span]]:
        """The best support of ``claim`` and the span(s) that give it (none: unsupported).

        A single span wins when it reaches the threshold; otherwise two spans of two
        different sources may, together (a claim that merges two facts).
        """
        options = self.candidates(claim, spans)
        if not options:
            return 0.0, []
        scored = [(self.weights.score(self.features(claim, o)), o) for o in options]
        best_single = max((x for x in scored if len(x[1]) == 1), key=lambda x: x[0])
        if best_single[0] >= self.weights.threshold:
            return best_single
        best_pair = max((x for x in scored if len(x[1]) == 2), key=lambda x: x[0], default=None)
        if best_pair is not None and best_pair[0] >= self.weights.threshold:
            return best_pair
        return best_single[0], []

    def prepare(
        self, claim: str, passages: Sequence[str], contexts: Sequence[str] | None = None
    ) -> tuple[_Claim, list[_Span]]:
        """The claim and the spans of ``passages``, embedded (for scoring and calibration).

        ``contexts``: per passage, what it is about (document title, section path); its words
        count as the passage's own (a claim about "the AR7" is supported by a line of the
        AR7's specification that does not repeat the name).
        """
        contexts = contexts or [""] * len(passages)
        items = [(n, p, c) for n, (p, c) in enumerate(zip(passages, contexts, strict=True), 1)]
        return self._claim(claim, self._vectors([claim])[claim]), self._spans(items)

    def score(
        self, claim: str, passages: Sequence[str], contexts: Sequence[str] | None = None
    ) -> float:
        """How strongly ``passages`` (together) support ``claim``, from 0 to 1."""
        prepared, spans = self.prepare(claim, passages, contexts)
        return self._support(prepared, spans)[0]

    def extract(self, question: str, sources: Sequence[Hit]) -> Quote | None:
        """The span of ``sources`` that best answers ``question`` (extractive answering).

        Spans are scored by their similarity to the question, the share of the question's
        content words and of its numbers and codes they hold, and whether they say something
        beyond the question (a heading that repeats the question is no answer), with a small
        preference for better-ranked sources.

        Returns:
            The best span as a :class:`Quote` (offsets in its source document), or None
            when there is no source.
        """
        spans = self._spans([(n, hit.text, context(hit)) for n, hit in enumerate(sources, 1)])
        if not spans:
            return None
        vector = self._vectors([question])[question]
        words, keys = set(content_words(question)), key_terms(question)

        def relevance(span: _Span) -> float:
            keys_found = len(keys & span.keys) / len(keys) if keys else 0.0
            # what it says beyond the question: an answer that adds nothing is no answer
            new = len(set(content_words(span.text)) - words) + len(key_terms(span.text) - keys)
            return (
                float(vector @ span.vector)
                + _EXTRACT_RECALL * _recall(words, span.words)
                + _EXTRACT_KEYS * keys_found
                + _EXTRACT_NEW * min(new, 2) / 2
                - _EXTRACT_RANK * (span.n - 1)
            )

        # a lead-in ("... using this command:") announces an answer it does not hold
        best = max([s for s in spans if not _LEAD_IN.search(s.text)] or spans, key=relevance)
        hit = sources[best.n - 1]
        return Quote(
            best.n,
            hit.span[0] + best.start,
            hit.span[0] + best.end,
            best.text,
            round(relevance(best), 4),
        )

    def attribute(
        self, text: str, sources: Sequence[Hit], *, unfinished: bool = False
    ) -> list[Claim]:
        """Split ``text`` into claims and find each one's support among ``sources``.

        Args:
            text: The answer.
            sources: What the model was shown; ``[n]`` is ``sources[n - 1]``.
            unfinished: The text was cut (the model reached its token limit). Its last
                sentence, when it does not end like one, is not a claim: "The error code"
                asserts nothing yet, and a quote under it would mislead.

        Returns:
            The claims in order, with their quotes (offsets in the source documents).
        """
        bounds = split_claims(text)
        if unfinished and bounds and not _ENDED.search(text, bounds[-1][0]):
            bounds = bounds[:-1]
        if not bounds:
            return []
        spans = self._spans([(n, hit.text, context(hit)) for n, hit in enumerate(sources, 1)])
        texts = [" ".join(_MARKER.sub("", text[a:b]).split()) for a, b in bounds]
        vectors = self._vectors(texts)
        claims = []
        for i, ((a, b), claim_text) in enumerate(zip(bounds, texts, strict=True)):
            # The markers of a claim: inside it, or right after it (before the next claim).
            tail = bounds[i + 1][0] if i + 1 < len(bounds) else len(text)
            markers = parse_citations(text[a:tail], len(sources))
            prepared = self._claim(claim_text, vectors[claim_text])
            score, support = self._support(prepared, spans)
            quotes = [
                Quote(
                    s.n,
                    sources[s.n - 1].span[0] + s.start,
                    sources[s.n - 1].span[0] + s.end,
                    s.text,
                    round(score, 4),
                )
                for s in support
            ]
            by_source = {n: [s for s in spans if s.n == n] for n in markers}
            unsupported = [
                n
                for n in markers
                if n not in {q.n for q in quotes} and self._support(prepared, by_source[n])[1] == []
            ]
            claims.append(
                Claim(
                    text=claim_text,
                    span=(a, b),
                    quotes=quotes,
                    score=score,
                    supported=bool(quotes),
                    markers=markers,
                    unsupported_markers=unsupported,
                )
            )
        return claims


# Extractive answering: how much a span's share of the question's words and codes, what it
# adds beyond the question and its source's rank count beside its similarity to the question.
# Chosen by bench/tune_extraction.py on the Django FAQ's training questions (token F1 of the
# quote 0.487, was 0.124 with a length penalty and a small weight on what a span adds).
_EXTRACT_RECALL = 0.3
_EXTRACT_KEYS = 0.3
_EXTRACT_NEW = 0.9
_EXTRACT_RANK = 0.02
_PREFIX = 5  # words sharing their first five letters are one word to a reader (clean, cleaned)


def _recall(words: set[str], found: set[str]) -> float:
    """The share of ``words`` found among ``found``, up to their first five letters."""
    if not words:
        return 0.0
    prefixes = {w[:_PREFIX] for w in found if len(w) >= _PREFIX}
    hits = sum(w in found or (len(w) >= _PREFIX and w[:_PREFIX] in prefixes) for w in words)
    return hits / len(words)


def context(hit: Hit) -> str:
    """What a source is about: its document's title and its section path."""
    return f"{hit.metadata.get('title') or ''} {hit.section or ''}".strip()


def grounded_share(claims: Sequence[Claim]) -> float | None:
    """The share of claims that are supported (None when the answer makes no claim)."""
    return sum(c.supported for c in claims) / len(claims) if claims else None


__all__ = [
    "CALIBRATED",
    "Attributor",
    "Claim",
    "Quote",
    "Weights",
    "grounded_share",
    "split_claims",
]
