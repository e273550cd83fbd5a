"""A small OpenAI-compatible engine over a real loopback socket, for the fast tests.

It serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (plain and SSE), answers
after ``delay`` seconds, records every request and counts how many were in flight at once:
what a server in front of an engine must not serialize.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 32+ clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a deadline test) is not an error here


class FakeEngine:
    """Serve ``models``, answering every chat with ``reply`` after ``delay`` seconds."""

    def __init__(
        self, models: list[str], reply: str = "Hello there.", delay: float = 0.0, port: int = 0
    ):
        self.models = models
        self.reply = reply
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    data = [{"id": m, "object": "model", "owned_by": "fake"} for m in engine.models]
                    self._json(200, {"object": "list", "data": data})
                elif self.path == "/health":
                    self._json(200, {})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with engine._lock:
                    engine.requests.append(body)
                    engine.active += 1
                    engine.max_active = max(engine.max_active, engine.active)
                try:
                    time.sleep(engine.delay)
                finally:
                    with engine._lock:
                        engine.active -= 1
                if body.get("model") not in engine.models:
                    self._json(404, {"error": {"message": f"model {body.get('model')} not found"}})
                    return
                words = engine.reply.split(" ")
                usage = {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 0}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                base = {"id": "cmpl-1", "created": 0, "model": body["model"]}
                if not body.get("stream"):
                    message = {"role": "assistant", "content": engine.reply}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    self._json(
                        200,
                        {**base, "object": "chat.completion", "choices": [choice], "usage": usage},
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

                def send(choices: list[dict[str, Any]], **extra: Any) -> None:
                    chunk = {**base, "object": "chat.completion.chunk", "choices": choices}
                    self.wfile.write(f"data: {json.dumps({**chunk, **extra})}\n\n".encode())
                    self.wfile.flush()

                for i, word in enumerate(words):
                    text = word if i == 0 else " " + word
                    send([{"index": 0, "delta": {"content": text}, "finish_reason": None}])
                send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                send([], usage=usage)
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeEngine:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
