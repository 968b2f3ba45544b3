"""Normalisation layers for NCHW feature maps."""
from typing import Any, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer

from .tracing import lowering_for_inductor


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor.

    Numerically the same as flattening the map to ``(B, H*W, C)`` tokens and applying
    ``nn.LayerNorm(C)``, which is how the official codes write it.

    Args:
        num_channels: Number of channels ``C``.
        eps: Added to the variance for numerical stability.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if lowering_for_inductor():
            return self._normalize_channels(x)
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)

    def _normalize_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The same norm as reductions over dim 1, for compiled graphs: no permuted view.

        Inductor (torch 2.13) fails to lower a graph with dynamic sizes in which a permuted
        view of a strided conv's output feeds a conv (``ValueRangeError`` / "cannot determine
        truth value of Relational" while ordering its symbolic strides); the reductions fuse
        into one kernel as ``F.layer_norm``'s decomposition does, and keep ``x``'s layout.
        """
        mean = x.mean(1, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(1, keepdim=True)
        return (centered * torch.rsqrt(var + self.eps) * self.weight[:, None, None]
                + self.bias[:, None, None])


def build_out_norm(cfg: Dict[str, Any], num_channels: int) -> nn.Module:
    """Builds a norm for an NCHW output map; ``LN`` means LayerNorm over channels."""
    cfg = dict(cfg)
    if cfg.get('type') in ('LN', 'LN2d', 'LayerNorm', 'LayerNorm2d'):
        return LayerNorm2d(num_channels, eps=cfg.get('eps', 1e-6))
    return build_norm_layer(cfg, num_channels)[1]
