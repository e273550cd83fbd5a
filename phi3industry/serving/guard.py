"""The ASGI guard in front of the app: the API key and the body size, before any body is read.

It wraps the FastAPI app so that an unauthenticated or oversized request is answered before
FastAPI parses anything: the key is compared in constant time and never logged, and a
chunked upload without ``Content-Length`` is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from phi3industry.serving.schema import error_body

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    """An OpenAI-shaped error response (401 also asks for a bearer token)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(message, kind), status_code=status, headers=headers)


class Guard:
    """Checks the bearer key (all routes but /health) and caps the request body size."""

    def __init__(self, app: Any, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body = max_body_bytes

    async def _reply(self, send: Send, status: int, message: str, kind: str) -> None:
        response = error_response(status, message, kind)
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer refused requests here; hand the others, body read, to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path") != "/health":
            given = headers.get("authorization", b"")
            scheme, _, token = given.partition(b" ")
            # compare_digest: the time taken does not reveal how much of the key matched.
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                await self._reply(
                    send,
                    401,
                    "Missing or invalid API key: send 'Authorization: Bearer KEY'.",
                    "authentication_error",
                )
                return
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._reply(
                send,
                413,
                f"Request body is {int(length)} bytes; the limit is {self.max_body}.",
                "invalid_request_error",
            )
            return
        # Read the body here, up to the limit, so that a chunked upload (no Content-Length)
        # is cut off as early as one that declares its size.
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_body:
                await self._reply(
                    send,
                    413,
                    f"Request body is over the limit of {self.max_body} bytes.",
                    "invalid_request_error",
                )
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)


async def _no_receive() -> MutableMapping[str, Any]:  # pragma: no cover - never awaited
    return {"type": "http.disconnect"}


__all__ = ["Guard", "error_response"]
