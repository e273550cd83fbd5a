"""Search results and how rankings are combined: :class:`Hit`, reciprocal-rank fusion, MMR.

Dense search ranks chunks by cosine similarity; BM25 ranks them by keywords. Hybrid search
fuses both rankings by reciprocal rank (each list gives ``1 / (rrf_k + rank)``); maximal
marginal relevance then picks hits that are relevant and unlike those already picked.
Exact and near-identical passages collapse into one hit that lists every source holding
them (:func:`collapse_duplicates`). Chroma access stays in
:mod:`phi3industry.retrieval.index`; these are pure functions.

Example:
    >>> from phi3industry.retrieval.search import rrf_fuse
    >>> order, scores = rrf_fuse([["a", "b", "c"], ["c", "a"]], rrf_k=60)
    >>> order
    ['a', 'c', 'b']
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk, its score and where it comes from.

    Attributes:
        text: The chunk's text.
        score: Cosine similarity for dense search; the reciprocal-rank-fusion score for
            hybrid search (the cosine is in ``metadata["dense_score"]``).
        source: Path of the source document.
        section: Heading path of the chunk's section, if any.
        span: ``(start, end)`` character offsets of the chunk in the document's text.
        id: The chunk's id in the index.
        page: PDF page (1-based), if any.
        metadata: All stored metadata of the chunk.
        sources: Every document holding this passage, or a near-identical one (``source``
            first).
    """

    text: str
    score: float
    source: str
    section: str | None
    span: tuple[int, int]
    id: str
    page: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            object.__setattr__(self, "sources", (self.source,))

    @classmethod
    def from_row(
        cls,
        chunk_id: str,
        text: str,
        meta: dict[str, Any],
        score: float,
        sources: Sequence[str] = (),
    ) -> Hit:
        """A hit from one Chroma row (id, document, metadata), its score and other sources."""
        page = meta.get("page")
        source = str(meta.get("source", ""))
        return cls(
            text=text,
            score=float(score),
            source=source,
            section=meta.get("section"),
            span=(int(meta.get("start", 0)), int(meta.get("end", 0))),
            id=chunk_id,
            page=int(page) if page is not None else None,
            metadata=dict(meta),
            sources=(source, *dict.fromkeys(s for s in sources if s != source)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the hit as a JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["span"] = list(self.span)
        data["sources"] = list(self.sources)
        return data

    def to_langchain(self) -> LCDocument:
        """Return the hit as a LangChain ``Document`` (metadata carries score, span and id)."""
        from langchain_core.documents import Document

        meta = {
            **self.metadata,
            "source": self.source,
            "section": self.section,
            "page": self.page,
            "score": self.score,
            "id": self.id,
            "span": list(self.span),
            "sources": list(self.sources),
        }
        return Document(page_content=self.text, metadata=meta, id=self.id)

    def format(self, rank: int, width: int = 240) -> str:
        """Return a human-readable, two-line rendering of the hit."""
        where = self.source + (f" > {self.section}" if self.section else "")
        if self.page is not None:
            where += f" (page {self.page})"
        preview = " ".join(self.text.split())
        if len(preview) > width:
            preview = preview[: width - 3] + "..."
        return (
            f"[{rank}] {self.score:.3f}  {where}  chars {self.span[0]}-{self.span[1]}\n"
            f"    {preview}"
        )


def rrf_fuse(
    rankings: Sequence[Sequence[str]], rrf_k: int, weights: Sequence[float] | None = None
) -> tuple[list[str], dict[str, float]]:
    """Fuse rankings of ids by reciprocal rank.

    Args:
        rankings: Lists of ids, best first (e.g. the dense and the BM25 ranking).
        rrf_k: The fusion constant: larger values flatten the differences between ranks.
        weights: Each ranking's weight (default: 1 each); a ranking adds
            ``weight / (rrf_k + rank)`` to every id it holds.

    Returns:
        The fused order (best first) and each id's fused score.
    """
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights.")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking):
            fused[item] = fused.get(item, 0.0) + weight / (rrf_k + rank + 1)
    return sorted(fused, key=lambda item: -fused[item]), fused


#: Queries up to this many words give BM25 its full weight in hybrid search (``"auto"``).
KEYWORD_FULL_WEIGHT_WORDS = 25
#: The least weight ``"auto"`` gives BM25, however long the query.
KEYWORD_MIN_WEIGHT = 0.3


def keyword_weight(query: str, weight: float | None = None) -> float:
    """BM25's weight beside the dense ranking (1) when fusing the two for ``query``.

    A short query's words are what it asks for: a code, a name, a heading. A long one (a
    customer describing their situation in five sentences) carries many words that are
    not, and BM25 sums them all. With ``weight=None`` BM25 keeps its full weight up to
    :data:`KEYWORD_FULL_WEIGHT_WORDS` words and ``KEYWORD_FULL_WEIGHT_WORDS / words`` beyond,
    never below :data:`KEYWORD_MIN_WEIGHT`. Chosen on the retrieval-quality benchmark's four
    sets (``bench/bench_retrieval_quality.py``): on the situation-style queries it raised
    recall@10 from 0.803 (equal weights) to 0.817, and it changed nothing on the three FAQ sets,
    whose questions are short.

    Args:
        query: The search query.
        weight: A fixed weight instead (``RetrieverConfig.bm25_weight``).

    Example:
        >>> keyword_weight("What does error E-214 mean?")
        1.0
        >>> keyword_weight(" ".join(["word"] * 50))
        0.5
    """
    if weight is not None:
        return float(weight)
    words = len(_WORD.findall(query))
    if words <= KEYWORD_FULL_WEIGHT_WORDS:
        return 1.0
    return max(KEYWORD_MIN_WEIGHT, KEYWORD_FULL_WEIGHT_WORDS / words)


_WORD = re.compile(r"\w+")
#: Word-trigram Jaccard similarity from which two passages count as the same.
NEAR_DUPLICATE_JACCARD = 0.9


def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return frozenset([tuple(words)])
    return frozenset(zip(words, words[1:], words[2:], strict=False))


def collapse_duplicates(
    order: Sequence[str], texts: Mapping[str, str], threshold: float = NEAR_DUPLICATE_JACCARD
) -> tuple[list[str], dict[str, list[str]]]:
    """Keep the best-ranked of each group of exact or near-identical passages.

    Two passages are the same when their words are (case, punctuation and spacing aside), or
    when their word-trigram sets overlap by at least ``threshold`` (Jaccard).

    Args:
        order: Ids, best first.
        texts: Each id's text.
        threshold: Jaccard similarity from which two passages are one.

    Returns:
        The kept ids (best first), and for each the ids it absorbed (itself excluded).

    Example:
        >>> collapse_duplicates(["a", "b", "c"], {"a": "Reset it.", "b": "reset  it", "c": "No"})
        (['a', 'c'], {'a': ['b'], 'c': []})
    """
    kept: list[str] = []
    absorbed: dict[str, list[str]] = {}
    keys: dict[str, str] = {}
    shingles: list[frozenset[tuple[str, ...]]] = []
    for item in order:
        key = " ".join(_WORD.findall(texts[item].lower()))
        if key in keys:
            absorbed[keys[key]].append(item)
            continue
        mine = _shingles(texts[item])
        twin = None
        for other, theirs in zip(kept, shingles, strict=True):
            union = len(mine | theirs)
            if union and len(mine & theirs) / union >= threshold:
                twin = other
                break
        if twin is not None:
            absorbed[twin].append(item)
            keys[key] = twin
            continue
        kept.append(item)
        shingles.append(mine)
        absorbed[item] = []
        keys[key] = item
    return kept, absorbed


def spread_over_sources(
    order: Sequence[str], source_of: Mapping[str, str], per_source: int
) -> list[str]:
    """Reorder ids so that no source gives more than ``per_source`` before the others.

    Ids beyond a source's first ``per_source`` keep their order but move behind every other
    id: they fill a result only when too few other sources were found (a knowledge base of one
    long manual still gives ``k`` hits).

    Example:
        >>> sources = {"a1": "a", "a2": "a", "a3": "a", "b1": "b"}
        >>> spread_over_sources(["a1", "a2", "a3", "b1"], sources, 2)
        ['a1', 'a2', 'b1', 'a3']
    """
    seen: dict[str, int] = {}
    first: list[str] = []
    rest: list[str] = []
    for item in order:
        source = source_of[item]
        seen[source] = seen.get(source, 0) + 1
        (first if seen[source] <= per_source else rest).append(item)
    return first + rest


def mmr_select(query_vector: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Pick up to ``k`` rows of ``vectors`` by maximal marginal relevance.

    Args:
        query_vector: The (normalised) query embedding.
        vectors: Candidate embeddings, one row each, in ranking order.
        k: How many to pick.
        lam: 1 = relevance only, 0 = diversity only.

    Returns:
        Indices of the picked rows, in the order picked.
    """
    if len(vectors) == 0:
        return []
    relevance = vectors @ query_vector
    chosen: list[int] = []
    remaining = list(range(len(vectors)))
    while remaining and len(chosen) < k:
        if chosen:
            redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        best = int(np.argmax(lam * relevance[remaining] - (1 - lam) * redundancy))
        chosen.append(remaining.pop(best))
    return chosen


__all__ = [
    "KEYWORD_FULL_WEIGHT_WORDS",
    "KEYWORD_MIN_WEIGHT",
    "NEAR_DUPLICATE_JACCARD",
    "Hit",
    "collapse_duplicates",
    "keyword_weight",
    "mmr_select",
    "rrf_fuse",
    "spread_over_sources",
]
