"""Inference-only ops that keep the values of the plain modules and touch memory less.

On the CPU oneDNN runs a convolution or a linear product with GELU applied to its output as it
is written, one pass over the map instead of two (:func:`conv_gelu`, :func:`linear_act`). A
GELU or a per-channel affine map applied to a fresh map the caller owns runs in place
(:func:`act_`, :func:`affine_`): each map a module would allocate is memory the process
touches for the first time (page faults cost more than the pass itself on a large map). A 1x1
convolution on a channels-last map is a matrix product over the channels
(:func:`pointwise_conv`). Wide hidden maps of a convolutional MLP are computed in bands of rows
(:func:`map_row_bands`), so that they never exist whole. None of these records a gradient.
"""
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmhybrid.models.layers.folding import ChannelAffine
from . import internals
from .linear import OneDNNLinear, inner_product, onednn_applies

# A band's hidden maps stay near this size (bytes).
DEFAULT_BAND_BYTES = 8 * 2**20


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a 4-D map laid out channels-last (and not also contiguous NCHW, as a
    map with one channel or one position is)."""
    return (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous())


def act_(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)``, overwriting ``x`` for an ``nn.GELU`` (either approximation); any other
    activation is called. ``x`` must be a fresh map nothing else reads."""
    if type(act) is nn.GELU:
        return torch.ops.aten.gelu_(x, approximate=act.approximate)
    return act(x)


def affine_(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` for an NCHW map, overwriting ``x`` when ``norm`` is a
    :class:`~mmhybrid.models.layers.folding.ChannelAffine` of ``x``'s dtype (a BatchNorm frozen by
    ``switch_to_deploy``); any other norm is called. ``x`` must be a fresh map."""
    if type(norm) is ChannelAffine and norm.scale.dtype == x.dtype:
        channels = x.movedim(1, -1)  # the channels as the broadcast (last) dimension
        torch.addcmul(norm.shift, channels, norm.scale, out=channels)
        return x
    return norm(x)


def gelu_conv_fuses(conv: nn.Conv2d, act: nn.Module, x: torch.Tensor) -> bool:
    """Whether oneDNN can run ``act(conv(x))`` as one call: exact GELU, a zero-padded conv with
    integer padding, float32 CPU operands."""
    return (internals.ONEDNN_CONVOLUTION and type(act) is nn.GELU
            and act.approximate == 'none' and conv.padding_mode == 'zeros'
            and not isinstance(conv.padding, str) and x.device.type == 'cpu'
            and x.dtype == torch.float32 and conv.weight.dtype == torch.float32)


def conv_gelu(conv: nn.Conv2d, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(conv(x))``, in one oneDNN call where :func:`gelu_conv_fuses`."""
    if gelu_conv_fuses(conv, act, x):
        return internals.convolution_pointwise(x, conv.weight, conv.bias, conv.padding,
                                               conv.stride, conv.dilation, conv.groups)
    return act_(act, conv(x))


def linear_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               act: Optional[nn.Module], onednn: bool) -> torch.Tensor:
    """``act(x @ weight^T + bias)`` over the last dimension of ``x`` (``act=None``: none). With
    ``onednn`` the product runs in oneDNN where it applies, an ``nn.GELU`` applied as it writes;
    otherwise ``F.linear`` and :func:`act_` on its fresh output."""
    if onednn and onednn_applies(x, weight):
        if type(act) is nn.GELU:
            return internals.linear_pointwise(x, weight, bias, 'gelu', act.approximate)
        out = inner_product(x, weight, bias)
    else:
        out = F.linear(x, weight, bias)
    return out if act is None else act_(act, out)


def linear_module_act(linear: nn.Linear, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(linear(x))`` through :func:`linear_act` (oneDNN where ``linear`` is a
    :class:`~mmhybrid.accel.linear.OneDNNLinear`)."""
    return linear_act(x, linear.weight, linear.bias, act, type(linear) is OneDNNLinear)


def is_pointwise(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain 1x1 convolution (stride 1, no padding, one group)."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1)


def pointwise_conv(conv: nn.Conv2d, x: torch.Tensor, act: Optional[nn.Module] = None,
                   onednn: bool = False) -> torch.Tensor:
    """``act(conv(x))`` (``act=None``: ``conv(x)``) for a plain 1x1 ``conv``: on a channels-last
    map a product over the channels (:func:`linear_act`, channels-last result), else the conv."""
    if is_pointwise(conv) and is_channels_last(x):
        weight = conv.weight.reshape(conv.out_channels, conv.in_channels)
        out = linear_act(x.permute(0, 2, 3, 1), weight, conv.bias, act, onednn)
        return out.permute(0, 3, 1, 2)
    out = conv(x)
    return out if act is None else act_(act, out)


def rows_per_band(x: torch.Tensor, hidden_channels: int,
                  band_bytes: int = DEFAULT_BAND_BYTES) -> int:
    """Rows of ``x`` (NCHW) whose ``hidden_channels``-channel map takes about ``band_bytes``."""
    batch, _, _, width = x.shape
    row_bytes = batch * hidden_channels * width * x.element_size()
    return max(band_bytes // max(row_bytes, 1), 1)


def map_row_bands(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, halo: int,
                  rows: int) -> torch.Tensor:
    """``fn(x)`` computed band by band over the rows of an NCHW map (inference).

    ``fn`` must keep the spatial size and look at most ``halo`` rows up and down (a chain of
    pointwise ops and ``k x k`` convolutions with ``halo = sum((k - 1) // 2 * dilation)`` and
    zero padding). Each band of ``rows`` output rows is computed from its input rows plus
    ``halo`` rows on either side, so every output value sees the same inputs as in ``fn(x)``;
    only one band's intermediate maps are alive at a time. The result has ``x``'s memory
    format; the bands are written into a preallocated map.
    """
    height = x.shape[2]
    if rows >= height:
        return fn(x)
    out = None
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        lo, hi = max(top - halo, 0), min(bottom + halo, height)
        band = fn(x[:, :, lo:hi])[:, :, top - lo:bottom - lo]
        if out is None:
            out = torch.empty((x.shape[0], band.shape[1], height, x.shape[3]),
                              dtype=band.dtype, device=band.device,
                              memory_format=torch.channels_last if is_channels_last(x) else
                              torch.contiguous_format)
        out[:, :, top:bottom] = band
    return out
