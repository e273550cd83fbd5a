"""Causal-LM cross-entropy computed a chunk at a time from the final hidden states.

The usual loss builds ``batch x length x vocab`` logits and keeps several copies for the
backward pass (the logits, their fp32 upcast, the log-softmax and its gradient). With
SmolLM2's 49,152-token vocabulary that is ~0.4 GB a copy at 4 x 512 tokens. Here the model
never builds them: a forward pre-hook on the output embedding (``lm_head``) keeps the final
hidden states and hands ``lm_head`` an empty slice. The loss then projects only the
positions that have a label (with ``completion_only_loss`` the prompt tokens skip the
vocabulary projection altogether), a chunk at a time, each chunk under activation
checkpointing, so at most one chunk's logits are alive. Loss and gradients are those of the
model's own loss (``tests/test_chunked_loss.py`` checks both).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from phi3industry.tuning.data import IGNORE_INDEX

#: Architectures whose forward applies a plain ``lm_head`` to the final hidden states and
#: nothing after it (no logit soft-capping or scaling), so the hook sees the right input.
SUPPORTED_MODEL_TYPES = frozenset({"phi3", "llama", "mistral", "qwen2", "qwen3"})

#: Logits per chunk: 2**25 fp32 values = 128 MiB.
_CHUNK_ELEMENTS = 1 << 25


def unsupported_reason(model: Any) -> str | None:
    """Why :class:`ChunkedCausalLMLoss` cannot serve ``model``; None if it can."""
    import torch

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {model_type!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
    head = model.get_output_embeddings()
    # A LoRA-wrapped or quantized head computes more than weight @ hidden.
    if type(head) is not torch.nn.Linear:
        kind = f"{type(head).__module__}.{type(head).__qualname__}"
        return f"its output embedding is a {kind}, not a plain torch.nn.Linear"
    return None


def _chunk_cross_entropy(hidden: Any, weight: Any, bias: Any, labels: Any) -> Any:
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, labels, reduction="sum")


class ChunkedCausalLMLoss:
    """A Trainer ``compute_loss_func`` that never materializes the full logits.

    Use :meth:`attach` around training only: while attached, the model returns empty
    logits, so generation and evaluation must run without it.

    Example:
        >>> loss_func = ChunkedCausalLMLoss(model)  # doctest: +SKIP
        >>> trainer = Trainer(model=model, compute_loss_func=loss_func, ...)  # doctest: +SKIP
        >>> with loss_func.attach():  # doctest: +SKIP
        ...     trainer.train()
    """

    def __init__(self, model: Any) -> None:
        """Serve ``model``; raises ValueError where :func:`unsupported_reason` says why not."""
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"chunked loss cannot serve this model: {reason}")
        self.head = model.get_output_embeddings()
        self._hidden: Any = None

    @contextmanager
    def attach(self) -> Iterator[ChunkedCausalLMLoss]:
        """Install the hook on ``lm_head`` for the ``with`` block; removed on exit."""
        handle = self.head.register_forward_pre_hook(self._take_hidden)
        try:
            yield self
        finally:
            handle.remove()
            self._hidden = None

    def _take_hidden(self, _module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        self._hidden = hidden
        return (hidden[..., :0, :], *args[1:])

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        """Mean next-token cross-entropy over the labelled positions.

        Args:
            outputs: The model's outputs (unused: their logits are empty).
            labels: ``(batch, length)`` labels, ``-100`` where no loss is taken; shifted
                here as in transformers' ``ForCausalLMLoss``.
            num_items_in_batch: Labelled tokens over the whole accumulated batch (the
                Trainer's count); the loss is divided by it, else by this batch's count.

        Returns:
            The loss, a scalar tensor.

        Raises:
            RuntimeError: If the model ran without the hook (see :meth:`attach`).
        """
        import torch.nn.functional as F
        from torch.utils.checkpoint import checkpoint

        hidden, self._hidden = self._hidden, None
        if hidden is None:
            raise RuntimeError("ChunkedCausalLMLoss: the model ran without attach()")
        targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].to(hidden.device)
        keep = targets != IGNORE_INDEX
        hidden, targets = hidden[keep], targets[keep]
        weight, bias = self.head.weight, self.head.bias
        chunk = max(16, _CHUNK_ELEMENTS // weight.shape[0])
        # Starts from the (empty-safe) hidden states so that a batch without labels still
        # backpropagates (zero gradients) instead of failing.
        total = hidden[:0].float().sum()
        for start in range(0, targets.shape[0], chunk):
            end = start + chunk
            total = total + checkpoint(
                _chunk_cross_entropy,
                hidden[start:end],
                weight,
                bias,
                targets[start:end],
                use_reentrant=False,
            )
        if num_items_in_batch is None:
            num_items_in_batch = max(int(targets.shape[0]), 1)
        return total / num_items_in_batch
