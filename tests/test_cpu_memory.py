"""glibc hands back what training frees once the Tuner fixes its mmap threshold."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    if sys.argv[1] == "limit":
        from phi3industry.tuning.cpu_memory import limit_heap_retention
        print(limit_heap_retention(), end=" ")
    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    size = 24 << 20  # under glibc's 32 MiB ceiling for its dynamic threshold
    start = rss()
    for _ in range(3):  # what a training step does with an activation: use it, free it
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
    print((rss() - start) >> 20)
    """
)


def _probe(mode: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc only",
)
def test_freed_blocks_are_handed_back_once_the_threshold_is_fixed() -> None:
    (kept_by_default,) = _probe("default")
    assert int(kept_by_default) >= 20, "glibc's own behaviour: the freed 24 MiB stays resident"
    applied, kept = _probe("limit")
    assert applied == "True" and int(kept) <= 2


def test_a_threshold_from_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi3industry.tuning import cpu_memory

    monkeypatch.setattr(cpu_memory, "_applied", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "33554432")
    assert cpu_memory.limit_heap_retention() is False
