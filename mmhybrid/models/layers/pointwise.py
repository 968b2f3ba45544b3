"""1x1 convolutions on channels-last maps as matrix products."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import linear as linear_module
from .chunking import frozen_inductor_inference, is_channels_last
from .fusion import activate_fresh, linear_act
from .linear import linear


def onednn_graph_conv_applies(x: torch.Tensor) -> bool:
    """Whether a 1x1 convolution on ``x`` is being traced into a frozen inductor inference
    graph on a CPU where oneDNN's products are the faster (:data:`.linear.ENABLED`): there it
    stays a convolution, whose weights inductor packs for oneDNN once, where as a linear layer
    it would run MKL's product (its AVX2 code on an AMD CPU: CMT-S at 224, 57 against 41 ms per
    forward, docs/benchmarks.md, session 18)."""
    # The tracing test first: in eager mode (every call on the hot path) it alone decides.
    return (frozen_inductor_inference() and linear_module.ENABLED
            and torch.backends.mkldnn.enabled and x.device.type == 'cpu'
            and x.dtype == torch.float32)


def pointwise_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     act: Optional[nn.Module] = None) -> torch.Tensor:
    """A 1x1 convolution with an ``(out, in)`` weight on an NCHW map, followed by ``act`` when
    given: a linear layer over the channels on a channels-last map (:func:`.linear.linear`, or
    :func:`.fusion.linear_act` with ``act``; channels-last result), ``F.conv2d`` otherwise and
    in the frozen inductor graphs where a convolution runs on oneDNN
    (:func:`onednn_graph_conv_applies`)."""
    if is_channels_last(x) and not onednn_graph_conv_applies(x):
        rows = x.permute(0, 2, 3, 1)
        out = linear(rows, weight, bias) if act is None else linear_act(rows, weight, bias, act)
        return out.permute(0, 3, 1, 2)
    out = F.conv2d(x, weight[:, :, None, None], bias)
    return out if act is None else activate_fresh(act, out)


def pointwise_conv(conv: nn.Conv2d, x: torch.Tensor,
                   act: Optional[nn.Module] = None) -> torch.Tensor:
    """``conv(x)`` for a plain 1x1 convolution, as a linear layer over the channels when ``x``
    is channels-last; ``act(conv(x))`` when ``act`` is given (:func:`pointwise_linear`).

    On a channels-last map a 1x1 convolution is a ``(H*W, C_in) @ (C_in, C_out)`` product, run
    by :func:`.linear.linear` on the ``(B, H, W, C)`` view. The result is the same map (up to
    rounding), channels-last; in the frozen inductor graphs of :func:`onednn_graph_conv_applies`
    a convolution still. Any other conv or layout calls ``conv`` itself.
    """
    if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.dilation == (1, 1) and conv.groups == 1 and is_channels_last(x)):
        weight = conv.weight.reshape(conv.out_channels, conv.in_channels)
        return pointwise_linear(x, weight, conv.bias, act)
    out = conv(x)
    return out if act is None else activate_fresh(act, out, conv)
