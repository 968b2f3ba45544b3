"""Inference-only rewrites of conv/linear, BatchNorm and GELU chains that keep their values.

In eval mode a BatchNorm is a fixed per-channel affine map, so it folds into a linear layer
(or 1x1 / strided conv) next to it: ``BN(conv(x))`` always, ``conv(BN(x))`` only when no zero
padding lies between the two (a padded border would see ``BN(0)`` instead of ``0``). A
depth-wise conv plus its own input (``x + dw(x)``) is the same conv with 1 added to its
centre tap. On the CPU, oneDNN runs a convolution or a linear layer with GELU applied to its
output as it is written (one pass over the map instead of two: :func:`conv_act`,
:func:`linear_act`). A GELU or an eval BatchNorm applied to a fresh map the caller owns runs
in place (:func:`gelu_`, :func:`batch_norm_`): each map a module would allocate is memory the
process touches for the first time (page faults cost more than the pass itself on a large
map), so fewer fresh maps are faster. A module's output is overwritten only when no forward
hook could hold it (:func:`unhooked`), and a fused call replaces a module's own only when no
hook of it would run (:func:`plain_calls`).

The folded weights are computed from the parameters and running statistics at every call (a
few small ops; nothing is cached, so ``load_state_dict``, optimiser steps, ``.data`` writes and
``train()`` take effect at once). A cache keyed on the tensors' ``_version`` would not be safe:
BatchNorm's running statistics are updated inside the kernel and writes through ``.data`` do
not bump the version (mmengine's EMA swaps weights through ``.data``). The rewrites apply
only under ``torch.no_grad`` in eager mode (:func:`fusion_enabled`,
:func:`.chunking.eager_inference`): training keeps the modules' own autograd path, and traced
graphs (``torch.compile``, ONNX export) keep the plain modules. Results equal the modules' up
to float rounding. Forward hooks of modules whose calls a fold replaces do not run.

For a model that will only predict, ``HybridBackbone.switch_to_deploy`` does the folds once, in
place (the functions ending in ``_`` below): BatchNorms into the convs next to them
(:func:`fold_norms_`), the others into their fixed affine map (:class:`ChannelAffine`), layer
scales into the layer before them (:func:`fold_layer_scale_`), identity taps into depth-wise
convs (:func:`fold_identity_tap_`).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from .chunking import eager_inference
from .linear import linear, onednn_linear_applies

# Switch for tests and A/B measurements: False runs the plain modules everywhere.
ENABLED = True

_ONEDNN_POINTWISE = (torch.backends.mkldnn.is_available()
                     and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def fusion_enabled(x: torch.Tensor) -> bool:
    """Whether the inference rewrites apply to a call on ``x`` (:func:`eager_inference`)."""
    return ENABLED and eager_inference()


def bn_affine(bn: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(scale, shift)`` with ``bn(x) == x * scale + shift`` per channel: computed for a
    BatchNorm using running statistics, the module's own two parameters for a
    :class:`ChannelAffine`; ``None`` for anything else (a BatchNorm in training mode or without
    running statistics, other norms)."""
    if type(bn) is ChannelAffine:
        return bn.scale, bn.shift
    if not isinstance(bn, _BatchNorm) or bn.training or bn.running_mean is None:
        return None
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    if bn.bias is None:
        return scale, -bn.running_mean * scale
    return scale, torch.addcmul(bn.bias, bn.running_mean, scale, value=-1)


class ChannelAffine(nn.Module):
    """``x * scale + shift`` per channel of an NCHW map: an eval-mode BatchNorm frozen into its
    affine map by :meth:`HybridBackbone.switch_to_deploy` (``scale = weight / sqrt(var + eps)``,
    ``shift = bias - mean * scale``), so that inference no longer recomputes the two from the
    running statistics at every call.

    Args:
        scale: ``(C,)`` per-channel factor.
        shift: ``(C,)`` per-channel offset.
    """

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone(), requires_grad=False)
        self.shift = nn.Parameter(shift.detach().clone(), requires_grad=False)

    @classmethod
    def from_batch_norm(cls, bn: nn.Module) -> nn.Module:
        """The frozen form of an eval-mode BatchNorm; any other module is returned unchanged
        (a BatchNorm in training mode or without running statistics has no fixed affine)."""
        affine = bn_affine(bn)
        return bn if affine is None else cls(*affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (-1,) + (1,) * (x.dim() - 2)
        return torch.addcmul(self.shift.reshape(view), x, self.scale.reshape(view))


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


def plain_calls(*modules: nn.Module) -> bool:
    """Whether calling ``modules`` would run their ``forward`` alone: no forward hook or
    forward pre-hook of theirs or global ones. Only then may a fused call replace theirs (a
    pre-hook may set the weights, as ``torch.nn.utils.prune`` does; a hook may read or replace
    the output)."""
    module_cls = nn.modules.module
    return not (module_cls._global_forward_hooks or module_cls._global_forward_pre_hooks
                or any(m._forward_hooks or m._forward_pre_hooks for m in modules))


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


def activate_fresh(act: nn.Module, x: torch.Tensor, *producers: nn.Module) -> torch.Tensor:
    """``act(x)`` for a fresh map ``x`` the caller owns: under :func:`.chunking.eager_inference`
    through :func:`gelu_` (in place where it may), otherwise a call of ``act``."""
    return gelu_(act, x, *producers) if eager_inference() else act(x)


def linear_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               act: nn.Module) -> torch.Tensor:
    """``act(linear(x, weight, bias))`` (:func:`.linear.linear`). Under
    :func:`.chunking.eager_inference` an ``nn.GELU`` whose call would run its forward alone
    (:func:`plain_calls`) is applied by oneDNN's product as it writes its output where
    :func:`.linear.onednn_linear_applies`; otherwise :func:`activate_fresh` on the product."""
    if (type(act) is nn.GELU and eager_inference() and plain_calls(act)
            and onednn_linear_applies(x, weight)):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu', [], act.approximate)
    return activate_fresh(act, linear(x, weight, bias))


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


# ---------------------------------------------------------------------- folding once (deploy)
# The in-place counterparts of the folds above, for ``switch_to_deploy``: they rewrite a
# module's parameters once (under ``no_grad``) instead of at every call.


def _set_params(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    layer.weight = nn.Parameter(weight.reshape(layer.weight.shape).contiguous(),
                                requires_grad=False)
    layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)


@torch.no_grad()
def fold_identity_tap_(conv: nn.Conv2d) -> None:
    """Makes ``conv(x)`` compute ``x + conv(x)`` (:func:`add_identity_tap`, once)."""
    conv.weight = nn.Parameter(add_identity_tap(conv.weight), requires_grad=False)


@torch.no_grad()
def fold_affine_after_(conv: nn.Module, affine: Tuple[torch.Tensor, torch.Tensor]) -> None:
    """Makes ``conv(x)`` (a conv or linear layer) compute ``conv(x) * scale + shift`` per
    output channel."""
    _set_params(conv, *fold_bn_after(conv.weight, conv.bias, affine))


@torch.no_grad()
def fold_affine_before_(conv: nn.Conv2d, affine: Tuple[torch.Tensor, torch.Tensor]) -> None:
    """Makes the 1x1 ``conv(x)`` compute ``conv(x * scale + shift)`` (per input channel; exact
    for a 1x1 conv without padding, :func:`fold_bn_before`)."""
    weight, bias = fold_bn_before(conv.weight.flatten(1), conv.bias, affine)
    _set_params(conv, weight, bias)


def fold_norms_(module: nn.Module, after: Sequence[Tuple[str, str]] = (),
                before: Sequence[Tuple[str, str]] = ()) -> None:
    """Folds ``module``'s norms into its convs: ``after`` holds ``(conv, norm)`` pairs where the
    norm follows the conv directly (:func:`fold_bn_after`), ``before`` ``(norm, conv)`` pairs
    where the norm feeds a 1x1 conv and nothing else (:func:`fold_bn_before`); norms are
    attributes of ``module``, convs submodule names (``'mlp.fc1'``). Each norm with a fixed
    affine map (:func:`bn_affine`) is folded and replaced by ``nn.Identity``; any other norm
    (GroupNorm, LayerNorm) stays."""
    for conv, norm in after:
        affine = bn_affine(getattr(module, norm))
        if affine is not None:
            fold_affine_after_(module.get_submodule(conv), affine)
            setattr(module, norm, nn.Identity())
    for norm, conv in before:
        affine = bn_affine(getattr(module, norm))
        if affine is not None:
            fold_affine_before_(module.get_submodule(conv), affine)
            setattr(module, norm, nn.Identity())


def fold_layer_scale_(layer: nn.Module, gamma: Optional[torch.Tensor]) -> None:
    """Makes ``layer(x)`` (a conv or linear layer) compute ``gamma * layer(x)`` per output
    channel; nothing for ``gamma = None``."""
    if gamma is not None:
        fold_affine_after_(layer, (gamma.detach(), torch.zeros_like(gamma.detach())))


@torch.no_grad()
def fold_bns_around_pointwise_(pre: nn.Module, conv: nn.Conv2d, post: nn.Module) -> bool:
    """Makes the 1x1 ``conv(x)`` compute ``post(conv(pre(x)))`` (:func:`fold_bn_around`, once)
    when both norms have a fixed affine map (:func:`bn_affine`); returns whether it did."""
    pre_affine, post_affine = bn_affine(pre), bn_affine(post)
    if pre_affine is None or post_affine is None:
        return False
    _set_params(conv, *fold_bn_around(conv.weight.flatten(1), conv.bias, pre_affine,
                                      post_affine))
    return True
