"""What the pipeline returns: an :class:`Answer`, or streamed :class:`AnswerChunk` pieces.

Chunks add up the way LangChain's ``AIMessageChunk`` do: ``sum`` of a stream (``a + b + ...``)
is the :class:`Answer` that ``invoke`` returns for the same question. Every chunk but the last
carries a piece of text; the last carries the sources, citations, usage and timings.

Example:
    >>> from phi3industry.pipeline.answer import AnswerChunk
    >>> first = AnswerChunk.delta("The AR7 carries ", strategy="rag")
    >>> whole = first + AnswerChunk.delta("12 kg [1].", strategy="rag")
    >>> whole.text
    'The AR7 carries 12 kg [1].'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from phi3industry.pipeline.attribution import Claim
from phi3industry.pipeline.prompt import CITATION_MARKER
from phi3industry.retrieval.search import Hit

_MARKER_WITH_SPACE = re.compile(r"\s*" + CITATION_MARKER.pattern, re.I)


@dataclass
class Answer:
    """The pipeline's answer to one question.

    Attributes:
        text: The answer, as the model wrote it (with any ``[n]`` markers of its own).
        citations: The sources that support at least one claim of the answer (``Hit``
            objects), in the order of first use: computed by attribution, not read from the
            model's markers (see :attr:`claims`).
        strategy: ``base``, ``rag``, ``finetuned`` or ``rag+finetuned``.
        usage: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``.
        timings: Seconds: ``retrieve``, ``prompt``, ``first_token`` (from the start), ``total``.
        sources: Every source shown to the model; ``[n]`` refers to ``sources[n - 1]``.
        question: The question asked.
        query: The (condensed) query sent to the retriever, if any.
        abstained: True when nothing relevant was found and the pipeline did not generate.
        finish_reason: ``stop`` or ``length`` (None when abstaining).
        adapter: The adapter that generated the answer (None for the base model).
        claims: The answer's claims, each with the quotes of the sources that support it.
        grounded: The share of claims that are supported (None without claims or sources).
        flagged: True when ``grounded`` is below the pipeline's ``min_support``, or the
            answer holds no claim while ``min_support`` is set.
        mode: How the text was made: ``generate`` (by the model) or ``extract`` (quoted).
        quoted_instead: True when the model's answer was below ``min_support`` and was
            replaced by a quote of the sources (``low_support="extract"``); ``claims`` and
            ``grounded`` are then the quote's.
    """

    text: str
    citations: list[Hit]
    strategy: str
    usage: dict[str, int]
    timings: dict[str, float]
    sources: list[Hit] = field(default_factory=list)
    question: str = ""
    query: str | None = None
    abstained: bool = False
    finish_reason: str | None = None
    adapter: str | None = None
    claims: list[Claim] = field(default_factory=list)
    grounded: float | None = None
    flagged: bool = False
    mode: str = "generate"
    quoted_instead: bool = False

    @property
    def unsupported_markers(self) -> list[int]:
        """``[n]`` markers the model wrote whose source does not support their claim."""
        return list(dict.fromkeys(n for c in self.claims for n in c.unsupported_markers))

    def citation_numbers(self) -> list[int]:
        """The ``[n]`` numbers of :attr:`citations`."""
        ids = [s.id for s in self.sources]
        return [ids.index(c.id) + 1 for c in self.citations if c.id in ids]

    def to_dict(self) -> dict[str, Any]:
        """Return the answer as a JSON-ready dict (hits via ``Hit.to_dict``)."""
        return {
            "text": self.text,
            "citations": [
                {"n": n, **hit.to_dict()}
                for n, hit in zip(self.citation_numbers(), self.citations, strict=False)
            ],
            "strategy": self.strategy,
            "usage": dict(self.usage),
            "timings": dict(self.timings),
            "sources": [hit.to_dict() for hit in self.sources],
            "question": self.question,
            "query": self.query,
            "abstained": self.abstained,
            "finish_reason": self.finish_reason,
            "adapter": self.adapter,
            "claims": [claim.to_dict() for claim in self.claims],
            "grounded": self.grounded,
            "flagged": self.flagged,
            "unsupported_markers": self.unsupported_markers,
            "mode": self.mode,
            "quoted_instead": self.quoted_instead,
        }

    def cited_text(self) -> str:
        """The text with ``[n]`` after each supported claim (the model's own markers removed)."""
        if not self.claims:
            return self.text.strip()
        text = self.text
        inserts: dict[int, str] = {}
        for claim in self.claims:
            if claim.sources:
                end = claim.span[1]
                while end > claim.span[0] and text[end - 1] in ".!?;:,":
                    end -= 1  # before the sentence's closing mark
                inserts[end] = " " + "".join(f"[{n}]" for n in claim.sources)
        deleted = {m.start(): m.end() for m in _MARKER_WITH_SPACE.finditer(text)}
        out: list[str] = []
        at = 0
        while at < len(text):
            if at in inserts:
                out.append(inserts.pop(at))
            if at in deleted:
                end = deleted[at]
                out += [inserts.pop(p) for p in sorted(k for k in inserts if at < k <= end)]
                at = end
                continue
            out.append(text[at])
            at += 1
        out += [inserts[p] for p in sorted(inserts)]
        return "".join(out).strip()

    def format(self) -> str:
        """The answer with ``[n]`` after each supported claim, then the sources and their quotes."""
        lines = [self.cited_text()]
        if self.quoted_instead:
            lines.append("(the written answer had low support: quoted from the sources instead)")
        elif self.flagged:
            supported = sum(c.supported for c in self.claims)
            lines.append(f"(low support: {supported} of {len(self.claims)} claims supported)")
        if self.citations:
            lines.append("")
            lines.append("Sources:")
            for n, hit in zip(self.citation_numbers(), self.citations, strict=False):
                where = hit.source + (f" > {hit.section}" if hit.section else "")
                if hit.page is not None:
                    where += f" (page {hit.page})"
                lines.append(f"[{n}] {where}  chars {hit.span[0]}-{hit.span[1]}")
                quotes = {q.text: q for c in self.claims for q in c.quotes if q.n == n}
                for quote in quotes.values():
                    text = " ".join(quote.text.split())
                    lines.append(f'    "{text}"  (chars {quote.start}-{quote.end})')
        return "\n".join(lines)


@dataclass
class AnswerChunk(Answer):
    """A piece of a streamed :class:`Answer`; chunks add up (``+``) to the whole answer.

    Text deltas are in :attr:`text`; the last chunk of a stream (:attr:`last`) has no text
    and carries everything else (sources, citations, usage, timings, finish reason).
    """

    last: bool = False

    @classmethod
    def delta(cls, text: str, *, strategy: str = "", question: str = "") -> AnswerChunk:
        """A chunk holding only a piece of text."""
        return cls(
            text=text, citations=[], strategy=strategy, usage={}, timings={}, question=question
        )

    @classmethod
    def closing(cls, answer: Answer) -> AnswerChunk:
        """The last chunk of a stream: ``answer`` without its text (the deltas carried it)."""
        values = {f.name: getattr(answer, f.name) for f in dataclasses.fields(Answer)}
        return cls(**{**values, "text": "", "last": True})

    def __add__(self, other: Any) -> AnswerChunk:
        if not isinstance(other, AnswerChunk):
            return NotImplemented
        merged: dict[str, Any] = {"text": self.text + other.text}
        for f in dataclasses.fields(Answer):
            if f.name == "text":
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            unset = theirs is None or theirs is False or theirs in ("", [], {})
            merged[f.name] = mine if unset else theirs
        return AnswerChunk(**merged, last=self.last or other.last)

    def to_answer(self) -> Answer:
        """The same content as a plain :class:`Answer`."""
        return Answer(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Answer)})


__all__ = ["Answer", "AnswerChunk"]
