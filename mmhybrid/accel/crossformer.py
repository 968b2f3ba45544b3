"""CrossFormer's modules for CPU inference and for training.

Inference (:func:`optimize_crossformer_for_inference`): each block attends in chunks of groups
and runs its MLP in bands of rows (:class:`ChunkedCrossFormerBlock`), its windows of few keys
through :func:`~mmhybrid.accel.attention.short_key_kernel` (small chunks of logits: a lower
peak). Training (:func:`optimize_crossformer_for_training`): the first layer's 16x16 and 32x32
kernels of stride 4 as space-to-depth convolutions
(:class:`~mmhybrid.accel.layers.SpaceToDepthConv2d`).
"""
from typing import Callable, List, Tuple

import torch
import torch.nn as nn

from mmhybrid.models.backbones.crossformer import CrossFormerBlock
from mmhybrid.models.layers import (TokenAttention, crop_to, pad_to_multiple, padding_map,
                                    partition_groups, same_size)
from mmhybrid.models.layers.windows import layout_unit, resolve_layout
from .attention import short_key_kernel
from .layers import FastMlp, SpaceToDepthConv2d

# The size of one chunk's qkv tokens, or one band's MLP hidden tokens, in chunked inference.
CHUNK_BYTES = 12 * 2**20


class ChunkedCrossFormerBlock(CrossFormerBlock):
    """:class:`CrossFormerBlock` for inference, in chunks (equal to the plain block)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_chunked(x)
        return x if self.cooling is None else self.cooling(x)

    def forward_chunked(self, x: torch.Tensor) -> torch.Tensor:
        """The block up to its cooling layer for inference, in chunks (equal to the plain path).

        Attention runs on chunks of groups (whole region rows, or phases of one region row),
        each written back over its own normed input, so that only one chunk's 3C qkv tokens
        and attention outputs are alive, never the whole map's; the DPB bias is computed once.
        The MLP then runs in bands of rows, adding into the block's output in place, so that
        only one band's 4C hidden tokens are alive. Chunks and bands are large (about
        :data:`CHUNK_BYTES` each): every op is a parallel region, and few large ones are
        cheaper than many small ones on a busy CPU.
        """
        batch, height, width, channels = x.shape
        layout_h, layout_w = self.group_layout(height, width)
        unit = (layout_unit(layout_h), layout_unit(layout_w))
        normed = pad_to_multiple(self.norm1(x), unit, channels_last=True)
        size = (normed.shape[1], normed.shape[2])
        (group_h, stride_h), (group_w, stride_w) = (resolve_layout(layout_h, size[0]),
                                                    resolve_layout(layout_w, size[1]))
        regions_h = size[0] // (group_h * stride_h)
        regions_w = size[1] // (group_w * stride_w)
        tokens = group_h * group_w
        # (B, region row, region column, row phase, column phase, Gh, Gw, C): a view whose
        # flattened dims 1-4 are partition_groups' group order.
        groups = normed.view(batch, regions_h, group_h, stride_h, regions_w, group_w, stride_w,
                             channels).permute(0, 1, 4, 3, 6, 2, 5, 7)
        key_padding = None
        if not same_size(size, (height, width)):
            padding = padding_map((height, width), unit, x.device)
            key_padding = partition_groups(padding, layout_h, layout_w)[0, ..., 0].view(
                regions_h, regions_w, stride_h, stride_w, tokens)
        bias = self.attn.pos(group_h, group_w)
        budget = max(CHUNK_BYTES // (3 * channels * x.element_size() * batch), 1)
        for rows, phases in group_chunks(regions_h, stride_h, group_h * size[1], budget):
            chunk = groups[:, rows, :, phases]
            padding = (None if key_padding is None else
                       key_padding[rows, :, phases].reshape(-1, tokens))
            result = TokenAttention.forward(
                self.attn, chunk.reshape(batch, -1, tokens, channels), bias, padding)
            chunk.copy_(result.view(chunk.shape))
        out = x + crop_to(normed, (height, width), channels_last=True)
        del normed, groups
        hidden = self.mlp.fc1.out_features
        band = max(CHUNK_BYTES // (batch * width * hidden * x.element_size()), 1)
        for top in range(0, height, band):
            rows = out[:, top:top + band]
            rows += self.mlp(self.norm2(rows))
        return out


def group_chunks(regions: int, stride: int, phase_tokens: int,
                 budget: int) -> List[Tuple[slice, slice]]:
    """Chunks of groups as ``(region rows, row phases)`` slices, about ``budget`` tokens each.

    A region row holds ``stride`` phases of ``phase_tokens`` tokens. Chunks are several whole
    region rows when one fits in the budget, otherwise runs of phases of one region row (at
    least one phase each).
    """
    if stride * phase_tokens <= budget:
        step = budget // (stride * phase_tokens)
        return [(slice(top, min(top + step, regions)), slice(None))
                for top in range(0, regions, step)]
    step = max(budget // phase_tokens, 1)
    return [(slice(region, region + 1), slice(phase, min(phase + step, stride)))
            for region in range(regions) for phase in range(0, stride, step)]


def optimize_crossformer_for_inference(backbone: nn.Module, swap: Callable[..., bool],
                                       onednn: bool) -> None:
    """Swaps the inference modules into a CrossFormer (see the module docstring)."""
    for stage in backbone.stages:
        for block in stage.blocks:
            if swap(block, ChunkedCrossFormerBlock):
                swap(block.mlp, FastMlp)
                block.attn.kernel = short_key_kernel


def optimize_crossformer_for_training(backbone: nn.Module, swap: Callable[..., bool],
                                      space_to_depth: bool) -> None:
    """Swaps the training savers into CrossFormer (see the module docstring)."""
    if space_to_depth:
        for module in backbone.modules():
            if SpaceToDepthConv2d.fits(module):
                swap(module, SpaceToDepthConv2d, bypass=False)
