"""Keep glibc from holding on to the memory torch frees during CPU training.

glibc serves a large allocation with its own ``mmap`` (handed back on ``free``) only above a
threshold that starts at 128 KiB and rises, up to 32 MiB, each time such a block is freed.
Training frees activations and (QLoRA) dequantized weights of a few MiB every step, so the
threshold soon passes them; from then on they come from the heap, whose freed holes the
process keeps. Fixing the threshold stops that climb. Measured on SmolLM2-135M, 4 x 512
tokens, 2 threads (``bench/results/tuner-qa.md``): with gradient checkpointing, peak RSS
5475 -> 3153 MiB at 8 MiB, same speed; at 2 MiB, 2064 MiB but ~20-30 % slower, because
every smaller block then costs fresh page faults.

For QLoRA, chosen to save memory, :func:`training_threshold` goes down to 4 MiB when one
hidden-state tensor of the batch is small enough to fall under 8 MiB: packed rows stop short
of ``max_length``, and on ``phi3-1b`` (2 x 512 x 2048) each 7.97 MiB activation stayed on
the heap (QLoRA 0.66x LoRA's peak RSS; 0.43x at 4 MiB, ``bench/results/tuner-qlora-memory.md``).
LoRA, with or without gradient checkpointing, keeps 8 MiB: on SmolLM2 a 1-2 MiB threshold
cut its peak RSS by a third but its speed by 30-40 % (bench/results/tuner-qa.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's ``M_MMAP_THRESHOLD`` parameter number (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Blocks from this size up are mapped on their own and returned when freed.
DEFAULT_THRESHOLD = 8 * 1024 * 1024
#: The lowest threshold :func:`training_threshold` picks: at 1-2 MiB page faults cost
#: SmolLM2 30-40 % of its speed.
MIN_THRESHOLD = 4 * 1024 * 1024
_ENV = "MALLOC_MMAP_THRESHOLD_"
_applied: int | None = None


def limit_heap_retention(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process (Linux, glibc).

    A threshold the user set in the environment (``MALLOC_MMAP_THRESHOLD_``, read by glibc
    at start-up) is left alone: that is also how to keep glibc's own behaviour (set it to
    33554432, its ceiling).

    Args:
        threshold: Allocations from this many bytes up get their own mapping.

    Returns:
        True if the threshold is (now) fixed at ``threshold`` by this function.
    """
    global _applied
    if _applied == threshold:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(_ENV):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    if mallopt(_M_MMAP_THRESHOLD, threshold) != 1:
        return False
    _applied = threshold
    return True


def training_threshold(
    batch_size: int, max_length: int, hidden_size: int, *, save_memory: bool, bytes_per: int = 4
) -> int:
    """The mmap threshold for a training run: 8 MiB, or lower when memory comes first.

    With ``save_memory`` the threshold is the largest power of two at most half of one
    hidden-state tensor of a full batch (``batch_size x max_length x hidden_size x
    bytes_per``), so that a batch padded to only half of ``max_length`` still has its
    activations mapped and handed back; never above 8 MiB nor below 4 MiB.

    Args:
        batch_size: Sequences per device per step.
        max_length: Tokens per training row.
        hidden_size: The model's hidden size.
        save_memory: True where memory comes before speed (the Tuner: QLoRA).
        bytes_per: Bytes per activation element (4 for fp32, 2 under bf16/fp16 autocast).

    Returns:
        The threshold in bytes.

    Examples:
        >>> training_threshold(2, 512, 2048, save_memory=True) >> 20  # phi3-1b, 8 MiB each
        4
        >>> training_threshold(2, 512, 2048, save_memory=False) >> 20
        8
    """
    if not save_memory or hidden_size <= 0:
        return DEFAULT_THRESHOLD
    half = max(1, batch_size * max_length * hidden_size * bytes_per // 2)
    power = 1 << (half.bit_length() - 1)
    return max(MIN_THRESHOLD, min(DEFAULT_THRESHOLD, power))
