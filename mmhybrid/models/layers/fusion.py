"""Inference-only rewrites of conv/linear, BatchNorm and GELU chains that keep their values.

In eval mode a BatchNorm is a fixed per-channel affine map, so it folds into a linear layer
(or 1x1 / strided conv) next to it: ``BN(conv(x))`` always, ``conv(BN(x))`` only when no zero
padding lies between the two (a padded border would see ``BN(0)`` instead of ``0``). A
depth-wise conv plus its own input (``x + dw(x)``) is the same conv with 1 added to its
centre tap. On the CPU, oneDNN runs a convolution with GELU applied to its output as it is
written (one pass over the map instead of two). A GELU or an eval BatchNorm applied to a
fresh map the caller owns runs in place (:func:`gelu_`, :func:`batch_norm_`): each map a module
would allocate is memory the process touches for the first time (page faults cost more than
the pass itself on a large map), so fewer fresh maps are faster. A module's output is
overwritten only when no forward hook could hold it (:func:`unhooked`).

The folded weights are computed from the parameters and running statistics at every call (a
few small ops; nothing is cached, so ``load_state_dict``, optimiser steps, ``.data`` writes and
``train()`` take effect at once). A cache keyed on the tensors' ``_version`` would not be safe:
BatchNorm's running statistics are updated inside the kernel and writes through ``.data`` do
not bump the version (mmengine's EMA swaps weights through ``.data``). The rewrites apply
only under ``torch.no_grad`` in eager mode (:func:`fusion_enabled`,
:func:`.chunking.eager_inference`): training keeps the modules' own autograd path, and traced
graphs (``torch.compile``, ONNX export) keep the plain modules. Results equal the modules' up
to float rounding. Forward hooks of modules whose calls a fold replaces do not run.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from .chunking import eager_inference

# Switch for tests and A/B measurements: False runs the plain modules everywhere.
ENABLED = True

_ONEDNN_POINTWISE = (torch.backends.mkldnn.is_available()
                     and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def fusion_enabled(x: torch.Tensor) -> bool:
    """Whether the inference rewrites apply to a call on ``x`` (:func:`eager_inference`)."""
    return ENABLED and eager_inference()


def bn_affine(bn: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(scale, shift)`` with ``bn(x) == x * scale + shift`` per channel, or ``None`` when
    ``bn`` is not a BatchNorm using running statistics (training mode, no running stats)."""
    if not isinstance(bn, _BatchNorm) or bn.training or bn.running_mean is None:
        return None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    if bn.bias is None:
        return scale, -bn.running_mean * scale
    return scale, torch.addcmul(bn.bias, bn.running_mean, scale, value=-1)


def fold_bn_after(weight: torch.Tensor, bias: Optional[torch.Tensor],
                  affine: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``BN(conv(x))`` (or of a linear layer) for ``affine = bn_affine(BN)``;
    ``weight``'s first dimension is the output channels."""
    scale, shift = affine
    folded = weight * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    return folded, shift if bias is None else torch.addcmul(shift, bias, scale)


def fold_bn_before(weight: torch.Tensor, bias: Optional[torch.Tensor],
                   affine: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``linear(BN(x))`` for a ``(out, in)`` weight (a 1x1 conv's, reshaped):
    exact because a 1x1 conv without padding sees every value through the BatchNorm."""
    scale, shift = affine
    folded_bias = weight @ shift if bias is None else torch.addmv(bias, weight, shift)
    return weight * scale, folded_bias


def fold_bn_around(weight: torch.Tensor, bias: Optional[torch.Tensor],
                   pre: Tuple[torch.Tensor, torch.Tensor],
                   post: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``BN_post(linear(BN_pre(x)))`` for a ``(out, in)`` weight: one new
    weight tensor (the two scalings as one product and one in-place product)."""
    (pre_scale, pre_shift), (post_scale, post_shift) = pre, post
    folded_bias = weight @ pre_shift if bias is None else torch.addmv(bias, weight, pre_shift)
    folded = (weight * pre_scale).mul_(post_scale[:, None])
    return folded, torch.addcmul(post_shift, folded_bias, post_scale)


def add_identity_tap(weight: torch.Tensor) -> torch.Tensor:
    """The weight of ``x + dw(x)`` for a depth-wise ``(C, 1, k, k)`` conv of odd ``k`` that keeps
    the size (stride 1, padding ``k // 2``): its centre tap plus one."""
    weight = weight.clone()
    # The centre of the flattened k x k taps, through views (no indexing copy-back).
    weight.view(weight.shape[0], -1).select(1, weight.shape[-1] * weight.shape[-2] // 2).add_(1)
    return weight


def _onednn_gelu(act: Optional[nn.Module], x: torch.Tensor) -> bool:
    return (_ONEDNN_POINTWISE and type(act) is nn.GELU and act.approximate == 'none'
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and torch.backends.mkldnn.enabled and not torch.is_autocast_enabled('cpu'))


def unhooked(*modules: nn.Module) -> bool:
    """Whether no forward hook (the modules' own or a global one) sees the outputs of
    ``modules``: only then may such an output be overwritten in place (a hook may have kept a
    reference)."""
    return not (nn.modules.module._global_forward_hooks
                or any(module._forward_hooks for module in modules))


def batch_norm_(norm: nn.Module, x: torch.Tensor, *producers: nn.Module) -> torch.Tensor:
    """``norm(x)``, overwriting ``x`` (NCHW, any memory format) when ``norm`` is a BatchNorm in
    eval mode, ``x`` has its parameters' dtype and no forward hook of ``producers`` (the modules
    whose call may have returned ``x``) saw it: one multiply-add per value over the channels
    (:func:`bn_affine`); otherwise ``norm(x)`` (a new map). Inference only: ``x`` must be a
    fresh map nothing else reads."""
    affine = bn_affine(norm)
    if affine is None or affine[0].dtype != x.dtype or not unhooked(*producers):
        return norm(x)
    scale, shift = affine
    channels_last = x.movedim(1, -1)  # the channels as the broadcast (last) dimension
    torch.addcmul(shift, channels_last, scale, out=channels_last)
    return x


def gelu_(act: nn.Module, x: torch.Tensor, *producers: nn.Module) -> torch.Tensor:
    """``act(x)``, overwriting ``x`` when ``act`` is an ``nn.GELU`` (either approximation) and
    no forward hook of ``producers`` (the modules whose call returned ``x``) saw it; otherwise
    ``act(x)`` (a new map). Inference only: ``x`` must be a fresh map nothing else reads."""
    if type(act) is nn.GELU and unhooked(*producers):
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    return act(x)


def conv_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
             act: Optional[nn.Module], stride: int = 1, padding: int = 0,
             groups: int = 1) -> torch.Tensor:
    """``act(conv2d(x, weight, bias))``, in one oneDNN call when ``act`` is exact GELU on a CPU
    fp32 tensor (inference only: the fused op has no backward)."""
    if _onednn_gelu(act, x):
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, [padding] * 2, [stride] * 2, [1, 1], groups, 'gelu', [], 'none')
    x = F.conv2d(x, weight, bias, stride, padding, 1, groups)
    return x if act is None else act(x)
