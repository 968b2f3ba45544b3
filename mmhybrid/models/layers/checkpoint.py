"""Activation checkpointing helper shared by all backbones."""
from typing import Any, Callable

import torch
import torch.utils.checkpoint as cp


def maybe_checkpoint(fn: Callable[..., Any], *args: Any, enabled: bool) -> Any:
    """Call ``fn(*args)``, through non-reentrant activation checkpointing when ``enabled``.

    Checkpointing only pays off when a backward pass follows, so it is skipped when autograd
    is off (e.g. under ``torch.no_grad()``). The RNG state is preserved, so drop-path and
    dropout give the same result in the recomputation.
    """
    if enabled and torch.is_grad_enabled():
        return cp.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
