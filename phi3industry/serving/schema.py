"""The OpenAI-compatible request and error bodies the server speaks.

``ChatRequest`` is OpenAI's chat completion request plus an optional ``strategy``; unknown
fields are accepted and ignored, as OpenAI-compatible servers do. Errors use OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phi3industry.errors import QueryError


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One OpenAI chat message (text content only)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_ContentPart] | None = None

    def text(self) -> str:
        """The message's text; non-text parts are refused."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise QueryError(f"Only text content is supported, got a {part.type!r} part.")
            texts.append(part.text)
        return "".join(texts)


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``: OpenAI's, plus ``strategy``, ``answer_mode``."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(default=1, ge=1, le=1)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)  # OpenAI's int64 range
    strategy: str | None = None
    answer_mode: Literal["auto", "generate", "extract"] | None = None


class RetrieveRequest(BaseModel):
    """The body of ``POST /v1/retrieve``."""

    query: str = Field(min_length=1)
    k: int | None = Field(default=None, ge=1, le=100)


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


__all__ = ["ChatMessage", "ChatRequest", "RetrieveRequest", "error_body"]
