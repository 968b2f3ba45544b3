"""1x1 convolutions on channels-last maps as matrix products."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .chunking import is_channels_last
from .linear import linear


def pointwise_linear(x: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor]) -> torch.Tensor:
    """A 1x1 convolution with an ``(out, in)`` weight on an NCHW map: a linear layer over the
    channels on a channels-last map (:func:`.linear.linear`; channels-last result),
    ``F.conv2d`` otherwise."""
    if is_channels_last(x):
        return linear(x.permute(0, 2, 3, 1), weight, bias).permute(0, 3, 1, 2)
    return F.conv2d(x, weight[:, :, None, None], bias)


def pointwise_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a plain 1x1 convolution, as a linear layer over the channels when ``x``
    is channels-last.

    On a channels-last map a 1x1 convolution is a ``(H*W, C_in) @ (C_in, C_out)`` product, run
    by :func:`.linear.linear` on the ``(B, H, W, C)`` view. The result is the same map (up to
    rounding), channels-last. Any other conv or layout calls ``conv`` itself.
    """
    if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.dilation == (1, 1) and conv.groups == 1 and is_channels_last(x)):
        weight = conv.weight.reshape(conv.out_channels, conv.in_channels)
        return pointwise_linear(x, weight, conv.bias)
    return conv(x)
