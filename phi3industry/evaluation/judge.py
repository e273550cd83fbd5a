"""An LLM judge: is an answer correct against the reference? Asked through any OpenAI endpoint.

Token overlap misses a correct answer in other words and rewards a wrong one that reuses
the reference's words. A judge model reads the question, the reference and the answer and
replies with strict JSON, ``{"verdict": "correct" | "partially correct" | "incorrect"}``;
a reply that does not parse is asked again (up to ``retries`` times, with the parse error
shown to the model), and a verdict that never comes is recorded as missing, never as NaN or
as a guess. Verdicts are cached on disk by (model, question, reference, answer), so a
re-run of an evaluation does not pay for them twice.

Example:
    >>> judge = Judge("http://127.0.0.1:8000/v1", "gpt-4o-mini",
    ...               cache_dir="eval-out/judge")  # doctest: +SKIP
    >>> judge.score("What is the payload?", ["12 kg"], "It carries 12 kg.")  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi3industry.generation.base import Generator
from phi3industry.generation.endpoint import OpenAIGenerator
from phi3industry.qa import answer_list

#: Verdict -> score.
VERDICTS = {"correct": 1.0, "partially correct": 0.5, "incorrect": 0.0}
JUDGE_PROMPT = (
    "You grade an answer to a question against the reference answer. The answer is correct "
    "if it states what the reference states (other words are fine), partially correct if it "
    "states part of it and nothing that contradicts it, incorrect otherwise (wrong, "
    "contradicting, or no answer).\n\n"
    "Question: {question}\nReference answer: {reference}\nAnswer to grade: {answer}\n\n"
    'Reply with JSON only, exactly one object: {{"verdict": "correct"}} or '
    '{{"verdict": "partially correct"}} or {{"verdict": "incorrect"}}.'
)
_RETRY = (
    "That reply could not be read ({error}). Reply with exactly one JSON object and nothing "
    'else: {{"verdict": "correct"}}, {{"verdict": "partially correct"}} or '
    '{{"verdict": "incorrect"}}.'
)
_OBJECT = re.compile(r"\{[^{}]*\}")
_CACHE_FILE = "judge-cache.jsonl"


def parse_verdict(text: str) -> float:
    """The score of a judge's reply: its JSON object's ``verdict`` (or ``score`` in [0, 1]).

    Only the first JSON object in the reply is read (a model may wrap it in a code fence).

    Raises:
        ValueError: Naming what is wrong: no JSON object, no verdict, an unknown verdict.
    """
    match = _OBJECT.search(text)
    if match is None:
        raise ValueError("no JSON object in the reply")
    try:
        data = json.loads(match.group(0))
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the JSON is not an object")
    if "verdict" in data:
        verdict = " ".join(str(data["verdict"]).lower().replace("_", " ").split())
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {data['verdict']!r}")
        return VERDICTS[verdict]
    score = data.get("score")
    if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 1:
        return float(score)
    raise ValueError('no "verdict" key')


class Judge:
    """Grades answers with a model behind an OpenAI-compatible endpoint (or any generator).

    Args:
        base_url: The endpoint (``http://host:port/v1``); or pass ``generator``.
        model: The judge model's name at the endpoint.
        api_key: Key for the endpoint (default: ``$OPENAI_API_KEY``).
        generator: A :class:`~phi3industry.generation.base.Generator` to ask instead.
        cache_dir: Where verdicts are kept (``judge-cache.jsonl``); None: in memory only.
        retries: Times a reply that does not parse is asked again.
        max_new_tokens: Token budget of a reply.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        api_key: str | None = None,
        generator: Generator | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        retries: int = 2,
        max_new_tokens: int = 32,
    ) -> None:
        if generator is None:
            if not base_url or not model:
                raise ValueError("Judge needs base_url and model (or a generator).")
            generator = OpenAIGenerator(base_url, model, api_key=api_key)
        self.generator = generator
        self.model = model or str(getattr(generator, "name", "judge"))
        self.retries = retries
        self.max_new_tokens = max_new_tokens
        self.failures = 0  # answers left without a verdict after every retry
        self._lock = threading.Lock()
        self._path = Path(cache_dir) / _CACHE_FILE if cache_dir is not None else None
        self._cache: dict[str, float | None] = {}
        if self._path is not None and self._path.is_file():
            for line in self._path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._cache[row["key"]] = row["score"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a crash: that verdict is asked again

    def _key(self, question: str, references: Sequence[str], answer: str) -> str:
        blob = json.dumps([self.model, question, list(references), answer]).encode()
        return hashlib.sha256(blob).hexdigest()[:24]

    def score(self, question: str, reference: str | Sequence[str], answer: str) -> float | None:
        """1.0 correct, 0.5 partially correct, 0.0 incorrect; None if no reply parsed.

        Args:
            question: The question asked.
            reference: The reference answer(s) (several are shown joined with " / ").
            answer: The answer to grade.
        """
        references = answer_list(reference)
        key = self._key(question, references, answer)
        with self._lock:
            if key in self._cache and self._cache[key] is not None:
                return self._cache[key]
        prompt = JUDGE_PROMPT.format(
            question=question, reference=" / ".join(references), answer=answer or "(no answer)"
        )
        messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
        verdict: float | None = None
        for _ in range(self.retries + 1):
            reply = self.generator.generate(
                messages, max_new_tokens=self.max_new_tokens, temperature=0.0
            ).text
            try:
                verdict = parse_verdict(reply)
                break
            except ValueError as exc:
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": _RETRY.format(error=exc)},
                ]
        with self._lock:
            if verdict is None:
                self.failures += 1
                return None
            self._cache[key] = verdict
            if self._path is not None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "score": verdict}) + "\n")
        return verdict

    def describe(self) -> dict[str, Any]:
        """What a cached evaluation records about the judge (a change re-grades)."""
        return {"model": self.model, "prompt": JUDGE_PROMPT, "retries": self.retries}


__all__ = ["JUDGE_PROMPT", "VERDICTS", "Judge", "parse_verdict"]
