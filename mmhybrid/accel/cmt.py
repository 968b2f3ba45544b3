"""CMT's modules for CPU inference and for training with less memory.

Inference (:func:`optimize_cmt_for_inference`, on a deployed backbone): the IRFFN in bands of
rows (its hidden maps have 4x the channels), each band's 1x1 convolutions as products over the
channels with GELU fused, its depth-wise convolution with GELU fused; a position bias too large
to build whole handed to the blocks in bands of query rows (:class:`RowBandBias`). Training
(:func:`optimize_cmt_for_training`): the GELUs and BatchNorms of the stem and the IRFFN store one
map instead of two (:class:`~mmhybrid.accel.layers.GeluBatchNorm2d`).
"""
import math
from typing import Callable, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmhybrid.models.backbones.cmt import CMTStage, CMTStem, IRFFN, LightweightMHSA, key_grid
from mmhybrid.models.layers import (cubic_resize_matrix, detached_without_autograd,
                                    merge_heads, resize_position_bias)
from mmhybrid.models.layers.position_bias import Grid
from .layers import GeluBatchNorm2d
from .ops import affine_, conv_gelu, map_row_bands, pointwise_conv, rows_per_band

# A stage whose resized bias would exceed BIAS_WHOLE_BYTES runs attention in bands of query
# rows with about BIAS_BAND_BYTES of bias each (RowBandBias).
BIAS_WHOLE_BYTES = 64 * 2**20
BIAS_BAND_BYTES = 16 * 2**20


class RowBandBias:
    """A resized bias handed out in bands of query rows, never whole (inference).

    The key plane and the query columns are resized once (``(heads, Hq0 * Wq, Nk)``: the
    source query rows, each already at the target width); :meth:`rows` resizes only the query
    rows a band needs, as the product of the band's rows of the bicubic row matrix with the
    few source rows they touch (four taps per row). The result equals the matching rows of
    :func:`resize_position_bias` up to rounding. At 800x1344, CMT-S's stage-1 bias is
    ``1 x 67,200 x 1,050`` floats (282 MB); this keeps 79 MB plus one band.

    Args:
        bias: ``(heads, Hq0*Wq0, Hk0*Wk0)``.
        src_query, src_key, dst_query, dst_key: As in :func:`resize_position_bias`.
        dtype: Dtype of the bands.
    """

    def __init__(self, bias: torch.Tensor, src_query: Grid, src_key: Grid, dst_query: Grid,
                 dst_key: Grid, dtype: torch.dtype) -> None:
        self.heads = bias.shape[0]
        self.src_rows = src_query[0]
        self.height, self.width = dst_query
        self.num_keys = dst_key[0] * dst_key[1]
        self.dtype = dtype
        # (heads, Hq0, Wq * Nk): the query rows still at the source height.
        self.columns = resize_position_bias(bias, src_query, src_key,
                                            (self.src_rows, self.width), dst_key).detach()
        self.columns = self.columns.reshape(self.heads, self.src_rows, -1)
        self.row_matrix = None
        if self.height != self.src_rows:
            self.row_matrix = cubic_resize_matrix(self.src_rows, self.height,
                                                  self.columns.dtype, self.columns.device)

    def rows_per_band(self, band_bytes: int) -> int:
        """Query rows whose bias takes about ``band_bytes`` (at least one)."""
        row_bytes = self.heads * self.width * self.num_keys * torch.finfo(self.dtype).bits // 8
        return max(band_bytes // row_bytes, 1)

    def rows(self, top: int, bottom: int) -> torch.Tensor:
        """The bias of query rows ``top:bottom``: ``(heads, (bottom - top) * Wq, Nk)``."""
        if self.row_matrix is None:
            band = self.columns[:, top:bottom]
        else:
            weights = self.row_matrix[top:bottom]
            used = weights.ne(0).any(0).nonzero()  # the source rows the band's taps reach
            first, last = int(used[0]), int(used[-1]) + 1
            band = weights[:, first:last] @ self.columns[:, first:last]
        return band.reshape(self.heads, -1, self.num_keys).to(self.dtype)


class FastCMTStage(CMTStage):
    """:class:`CMTStage` for inference: a bias larger than :data:`BIAS_WHOLE_BYTES` is never
    built whole; the blocks (whose attention is a :class:`FastLightweightMHSA`) get a
    :class:`RowBandBias` and resize the query rows band by band."""

    def position_bias(self, query_grid: Grid) -> Union[torch.Tensor, RowBandBias]:
        keys = key_grid(*query_grid, self.sr_ratio)
        whole_bytes = (self.relative_pos.shape[0] * math.prod(query_grid) * math.prod(keys)
                       * self.relative_pos.element_size())
        if whole_bytes > BIAS_WHOLE_BYTES:
            return RowBandBias(self.relative_pos, self.query_grid, self.key_grid, query_grid,
                               keys, self.relative_pos.dtype)
        return super().position_bias(query_grid)


class FastLightweightMHSA(LightweightMHSA):
    """:class:`LightweightMHSA` for inference: with a :class:`RowBandBias`, attention in bands
    of query rows; q, k and v are freed before the output projection (the inference peak at
    detection sizes)."""

    def forward(self, x: torch.Tensor, bias: Union[torch.Tensor, RowBandBias]) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        if isinstance(bias, RowBandBias):
            out = x.new_empty(b, h * w, c)
            rows = bias.rows_per_band(BIAS_BAND_BYTES)
            for top in range(0, h, rows):
                bottom = min(top + rows, h)
                band = F.scaled_dot_product_attention(
                    q[:, :, top * w:bottom * w], k, v, attn_mask=bias.rows(top, bottom)[None],
                    scale=self.scale)
                out[:, top * w:bottom * w] = merge_heads(band)
                del band
        else:
            mask = detached_without_autograd(bias).to(q.dtype)[None]
            out = merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                             scale=self.scale))
        del q, k, v
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class FastIRFFN(IRFFN):
    """A deployed :class:`IRFFN` for inference, in bands of rows (the 3x3 conv looks one row up
    and down), so that its hidden maps (4x the channels) are never whole at detection sizes.
    In each band: ``fc1`` as a product over the channels with GELU applied as it writes, the
    frozen ``norm1`` in place, the depth-wise conv (identity tap folded) with its GELU in one
    call, ``fc2`` (norms folded) as a product.

    Attributes set when swapped in:
        onednn: Whether the 1x1 convolutions' products run in oneDNN.
    """

    onednn = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return map_row_bands(self.band, x, halo=1, rows=rows_per_band(x, self.fc1.out_channels))

    def band(self, x: torch.Tensor) -> torch.Tensor:
        x = pointwise_conv(self.fc1, x, self.act1, self.onednn)
        x = affine_(self.norm1, x)
        x = conv_gelu(self.dwconv, self.act2, x)
        x = affine_(self.norm2, x)
        return affine_(self.norm3, pointwise_conv(self.fc2, x, onednn=self.onednn))


def optimize_cmt_for_inference(backbone: nn.Module, swap: Callable[..., bool],
                               onednn: bool) -> None:
    """Swaps the inference modules into a deployed CMT (see the module docstring)."""
    for stage in backbone.stages:
        if swap(stage, FastCMTStage):
            for block in stage.blocks:
                swap(block.attn, FastLightweightMHSA)
        for block in stage.blocks:
            if block.ffn.dw_residual_folded:
                swap(block.ffn, FastIRFFN, onednn=onednn)


def gelu_batchnorm_pairs(module: nn.Module, pairs) -> None:
    """Replaces each ``(act, norm)`` attribute pair of ``module`` whose act is an exact
    ``nn.GELU`` and whose norm a plain ``nn.BatchNorm2d`` by ``nn.Identity`` and a
    :class:`~mmhybrid.accel.layers.GeluBatchNorm2d` (the same values, one map stored)."""
    for act, norm in pairs:
        act_module, norm_module = getattr(module, act), getattr(module, norm)
        if (type(act_module) is nn.GELU and act_module.approximate == 'none'
                and type(norm_module) is nn.BatchNorm2d):
            norm_module.__class__ = GeluBatchNorm2d
            setattr(module, act, nn.Identity())


def optimize_cmt_for_training(backbone: nn.Module, swap: Callable[..., bool],
                              gelu_batchnorm: bool) -> None:
    """Swaps the training savers into CMT (see the module docstring)."""
    if not gelu_batchnorm:
        return
    if swap(backbone.stem, CMTStem):
        gelu_batchnorm_pairs(backbone.stem, [(f'act{i}', f'norm{i}') for i in range(1, 4)])
    for stage in backbone.stages:
        for block in stage.blocks:
            if swap(block.ffn, IRFFN):
                gelu_batchnorm_pairs(block.ffn, [('act1', 'norm1'), ('act2', 'norm2')])
