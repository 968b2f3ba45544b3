"""Folds of eval-mode BatchNorms, layer scales and identity taps into the layers next to them.

In eval mode a BatchNorm is a fixed per-channel affine map, so it folds into a linear layer
(or 1x1 / strided conv) next to it: ``BN(conv(x))`` always, ``conv(BN(x))`` only when no zero
padding lies between the two (a padded border would see ``BN(0)`` instead of ``0``). A
depth-wise conv plus its own input (``x + dw(x)``) is the same conv with 1 added to its centre
tap. ``HybridBackbone.switch_to_deploy`` does these folds once, in place (the functions ending
in ``_``): BatchNorms into the convs next to them (:func:`fold_norms_`), the others into their
fixed affine map (:class:`ChannelAffine`), layer scales into the layer before them
(:func:`fold_layer_scale_`), identity taps into depth-wise convs (:func:`fold_identity_tap_`).
Results equal the modules' up to float rounding.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

# torch's BatchNorm layers (SyncBatchNorm converts to and from them).
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def bn_affine(bn: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``(scale, shift)`` with ``bn(x) == x * scale + shift`` per channel: computed for a
    BatchNorm using running statistics, the module's own two parameters for a
    :class:`ChannelAffine`; ``None`` for anything else (a BatchNorm in training mode or without
    running statistics, other norms)."""
    if type(bn) is ChannelAffine:
        return bn.scale, bn.shift
    if not isinstance(bn, BATCH_NORMS) or bn.training or bn.running_mean is None:
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


# ---------------------------------------------------------------------- folding in place
# The in-place counterparts of the folds above: they rewrite a module's parameters once.


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
