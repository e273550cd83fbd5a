"""QA sets written from the indexed corpus, for users who have no questions yet.

An LLM (local, or at an OpenAI-compatible endpoint) reads a random chunk and writes one
question and its answer; replies that do not parse, repeated questions and answers the chunk
does not support are dropped. The chunk is the gold source.
"""

from __future__ import annotations

import random
import re
import sys
from typing import Any

from phi3industry.errors import DataFormatError
from phi3industry.qa import QAItem, answer_recall, normalize_answer

_QA_PROMPT = (
    "Read the passage below. Write one question that a user of this company's products or "
    "services could ask and that the passage answers, then its short answer taken from the "
    "passage. Reply in exactly this format and nothing else:\n"
    "Question: <the question>\nAnswer: <the answer>\n\nPassage:\n{passage}"
)
_QA_REPLY = re.compile(r"question\s*:\s*(?P<q>.+?)\s*\n+\s*answer\s*:\s*(?P<a>.+)", re.I | re.S)


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
