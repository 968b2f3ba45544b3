"""``norm(act(x))`` for GELU then BatchNorm in training, storing one map instead of two.

Autograd keeps GELU's input and, for the BatchNorm backward, GELU's output: two maps of the
same size per pair (in CMT's IRFFN, 4x the block's channels; twice per block). In training
mode :class:`GeluBatchNorm` keeps only GELU's input and recomputes its output in the backward.
The forward runs the same kernels as the two modules (the running statistics are updated once,
in the forward) and the backward the same ones autograd would run, so outputs and gradients are
unchanged.
"""
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


class GeluBatchNorm(torch.autograd.Function):
    """``batch_norm(gelu(x))`` with batch statistics; saves ``x``, not ``gelu(x)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: Optional[torch.Tensor],
                bias: Optional[torch.Tensor], running_mean: Optional[torch.Tensor],
                running_var: Optional[torch.Tensor], momentum: float,
                eps: float) -> torch.Tensor:
        hidden = F.gelu(x)
        out, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
            hidden, weight, bias, running_mean, running_var, True, momentum, eps)
        del hidden
        # The running statistics are not read by a training-mode backward (and are updated in
        # place by later forwards): not saved.
        ctx.save_for_backward(x, weight, save_mean, save_invstd)
        ctx.eps = eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight, save_mean, save_invstd = ctx.saved_tensors
        hidden = F.gelu(x)
        grad_hidden, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_out, hidden, weight, None, None, save_mean, save_invstd, True, ctx.eps,
            list(ctx.needs_input_grad[:3]))
        del hidden
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.gelu_backward(grad_hidden, x)
        return grad_x, grad_weight, grad_bias, None, None, None, None


def gelu_then_norm(act: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(act(x))``; through :class:`GeluBatchNorm` when ``act`` is an exact ``nn.GELU``,
    ``norm`` a plain ``nn.BatchNorm2d`` using batch statistics, and a gradient is recorded.
    Anything else (eval, ``norm_eval``, SyncBN, other activations) calls the two modules."""
    if (torch.is_grad_enabled() and type(act) is nn.GELU and act.approximate == 'none'
            and type(norm) is nn.BatchNorm2d and norm.training and x.dim() == 4
            and x.numel() > x.shape[1]  # else BatchNorm's own error (one value per channel)
            and not torch.is_autocast_enabled(x.device.type)
            and (norm.track_running_stats is False or norm.running_mean is not None)):
        momentum = 0.0 if norm.momentum is None else norm.momentum
        if norm.track_running_stats and norm.num_batches_tracked is not None:
            norm.num_batches_tracked.add_(1)
            if norm.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(norm.num_batches_tracked)
        return GeluBatchNorm.apply(x, norm.weight, norm.bias, norm.running_mean,
                                   norm.running_var, momentum, norm.eps)
    return norm(act(x))
