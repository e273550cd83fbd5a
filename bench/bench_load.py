"""Bounded load test of `phi3industry serve`: concurrent clients, 0 failures, stable memory.

Starts `phi3industry serve` as a subprocess on a free loopback port (the tiny random Phi-3,
an index of the bundled sample knowledge base, an API key), warms it up, then runs
``--clients`` concurrent clients for ``--seconds``. Each client cycles through
``POST /v1/retrieve``, a chat completion and a streamed chat completion. It stops by itself
and stops the server.

Reports total and failed requests (target: 0), p50/p99 latency per route, and the server's
resident memory (VmRSS from /proc) after warm-up and at the end (target: end within 10% of
after warm-up). Writes bench/results/load.json and bench/results/load.md.

    python bench/bench_load.py [--clients 32] [--seconds 60] [--warmup 10] [--max-tokens 16]
        [--model tiny-phi3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
from _stats import pct

ROOT = Path(__file__).resolve().parent
KB = ROOT.parent / "phi3industry" / "assets" / "sample_kb"
CLI = Path(sys.executable).with_name("phi3industry")
ROUTES = ("retrieve", "chat", "chat-stream")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    work: Path, model: str, max_tokens: int, key: str, threads: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    index = work / "index"
    subprocess.run(
        [str(CLI), "ingest", str(KB / "docs"), "--index", str(index)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    env = {**os.environ, "PHI3INDUSTRY_API_KEY": key}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(CLI),
            "serve",
            "--model",
            model,
            "--index",
            str(index),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-new-tokens",
            str(max_tokens),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start; see {work / 'server.log'}")
        time.sleep(0.5)


class Load:
    """Clients that cycle through the routes until told to stop, recording every request."""

    def __init__(self, base: str, key: str, questions: list[str], max_tokens: int) -> None:
        self.base, self.key, self.questions, self.max_tokens = base, key, questions, max_tokens
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.failures: dict[str, list[str]] = defaultdict(list)
        self.stop_at = 0.0

    def reset(self) -> None:
        with self.lock:
            self.latencies.clear()
            self.failures.clear()

    def _request(self, http: httpx.Client, route: str, question: str) -> None:
        if route == "retrieve":
            r = http.post("/v1/retrieve", json={"query": question, "k": 4})
            r.raise_for_status()
            assert r.json()["data"], "no hits"
            return
        body = {
            "model": "phi3industry",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": self.max_tokens,
        }
        if route == "chat":
            r = http.post("/v1/chat/completions", json=body)
            r.raise_for_status()
            assert r.json()["choices"][0]["message"]["content"] is not None
            return
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            r.raise_for_status()
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        assert events and events[-1] == "data: [DONE]", "stream did not finish"
        for event in events[:-1]:
            data = json.loads(event.removeprefix("data: "))
            assert "error" not in data, data.get("error")

    def client(self, i: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=600) as http:
            n = i  # clients start at different points of the cycle
            while time.monotonic() < self.stop_at:
                route = ROUTES[n % len(ROUTES)]
                question = self.questions[n % len(self.questions)]
                n += 1
                t0 = time.perf_counter()
                try:
                    self._request(http, route, question)
                except Exception as exc:
                    with self.lock:
                        self.failures[route].append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                with self.lock:
                    self.latencies[route].append(time.perf_counter() - t0)

    def run(self, clients: int, seconds: float) -> float:
        self.stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    ap.add_argument("--max-tokens", type=int, default=16, help="tokens generated per chat")
    ap.add_argument("--model", default="tiny-phi3")
    ap.add_argument("--threads", type=int, default=None, help="server torch threads")
    args = ap.parse_args()

    key = secrets.token_urlsafe(24)
    questions = [
        json.loads(line)["question"]
        for line in (KB / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    print(f"starting phi3industry serve ({args.model}) in {work}", flush=True)
    proc, base = start_server(work, args.model, args.max_tokens, key, args.threads)
    samples: list[tuple[float, float]] = []
    try:
        load = Load(base, key, questions, args.max_tokens)
        print(f"warm-up: {args.clients} clients for {args.warmup:.0f} s", flush=True)
        load.run(args.clients, args.warmup)
        warm_failures = sum(len(v) for v in load.failures.values())
        rss_warm = rss_mb(proc.pid)
        load.reset()
        print(f"load: {args.clients} clients for {args.seconds:.0f} s", flush=True)
        sampling = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not sampling.wait(1.0):
                samples.append((time.monotonic() - t0, rss_mb(proc.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        elapsed = load.run(args.clients, args.seconds)
        sampling.set()
        sampler.join()
        rss_end = rss_mb(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()

    routes = {}
    for route in ROUTES:
        lat = load.latencies.get(route, [])
        routes[route] = {
            "requests": len(lat) + len(load.failures.get(route, [])),
            "failed": len(load.failures.get(route, [])),
            "p50_s": pct(lat, 50),
            "p99_s": pct(lat, 99),
        }
    requests = sum(r["requests"] for r in routes.values())
    failed = sum(r["failed"] for r in routes.values())
    drift = (rss_end - rss_warm) / rss_warm
    result = {
        "model": args.model,
        "clients": args.clients,
        "seconds": elapsed,
        "warmup_seconds": args.warmup,
        "warmup_failures": warm_failures,
        "max_tokens": args.max_tokens,
        "requests": requests,
        "failed": failed,
        "failure_samples": [f for v in load.failures.values() for f in v][:5],
        "requests_per_s": (requests - failed) / elapsed,
        "routes": routes,
        "server_alive_at_end": alive,
        "rss_mb": {
            "after_warmup": rss_warm,
            "end": rss_end,
            "max": max([rss_warm, rss_end, *(m for _, m in samples)]),
            "drift_pct": 100 * drift,
        },
        "targets": {"no_failures": failed == 0, "rss_within_10pct": abs(drift) <= 0.10},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    rss = result["rss_mb"]
    md = [
        f"# Load test: `phi3industry serve` ({args.model}), {args.clients} clients, "
        f"{elapsed:.0f} s on loopback",
        "",
        f"Each client cycles through `/v1/retrieve`, a chat completion and a streamed one "
        f"({args.max_tokens} tokens); {args.warmup:.0f} s of warm-up load before measuring. "
        "Generation is serialized, so chat latency is mostly waiting in the queue.",
        "",
        "| route | requests | failed | p50 | p99 |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['requests']} | {r['failed']} | {r['p50_s']:.2f} s | "
            f"{r['p99_s']:.2f} s |"
            for name, r in routes.items()
        ),
        f"| all | {requests} | {failed} | | |",
        "",
        f"- failed requests: {failed} (target 0: {'met' if failed == 0 else 'NOT met'}); "
        f"{result['requests_per_s']:.1f} requests/s",
        f"- server RSS: {rss['after_warmup']:.0f} MB after warm-up, {rss['end']:.0f} MB at the "
        f"end ({rss['drift_pct']:+.1f}%; max {rss['max']:.0f} MB; target within 10%: "
        f"{'met' if result['targets']['rss_within_10pct'] else 'NOT met'})",
        f"- machine: {result['machine']}, {result['cpus']} CPUs",
        "",
    ]
    (out / "load.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    if result["failure_samples"]:
        print("failures:", *result["failure_samples"], sep="\n  ")


if __name__ == "__main__":
    main()
