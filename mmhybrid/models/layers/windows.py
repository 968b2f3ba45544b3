"""Partition of a token map into groups of tokens (windows, dilated groups) and the inverse.

A group layout is given per axis as ``(tokens per group, stride)``: along that axis the map is
``regions x tokens x stride``, and a group collects, inside one region, the tokens of one phase
of the stride. Stride 1 gives contiguous windows (Swin-style, CrossFormer's SDA, UniFormer's
windows, HAT-Net's local step); stride ``I`` gives dilated groups (CrossFormer's LDA).

Names across the package (each means one thing):

- ``window_size``: the side of square windows of one attention mode (UniFormer's
  ``'window'``/``'hybrid'`` stages, one int).
- ``window_sizes``: a per-stage arch key (HAT-Net, TransCNN), one window side per stage; ``1``
  means plain global attention in that stage.
- ``group_size``: CrossFormer's SDA group side ``G`` (one int or one per stage), with
  ``interval`` its LDA sampling stride ``I``; a group is described here by its layout.
"""
from typing import Callable, Optional, Tuple

import torch

from .padding import ceil_div, crop_to, pad_to_multiple, padding_map, same_size

# Per-axis group layout: (tokens per group along the axis, sampling stride along the axis).
# ``None`` tokens: one region spanning the whole (padded) axis, i.e. ``ceil(size / stride)``
# tokens per group (CrossFormer's ICLR LDA). Kept symbolic so that a traced graph pads to a
# multiple of the stride alone, for every input size.
AxisLayout = Tuple[Optional[int], int]


def resolve_layout(layout: AxisLayout, size: int) -> Tuple[int, int]:
    """``layout`` with its tokens per group filled in for an axis of (padded) ``size``."""
    tokens, stride = layout
    return (size // stride if tokens is None else tokens), stride


def group_shape(layout_h: AxisLayout, layout_w: AxisLayout, size: Tuple[int, int]) -> Tuple[int, int]:
    """``(Gh, Gw)``: the tokens of each group of a map of ``size`` once padded for the layout."""
    return tuple(resolve_layout(layout, ceil_div(side, layout_unit(layout)) * layout_unit(layout))[0]
                 for layout, side in ((layout_h, size[0]), (layout_w, size[1])))


def layout_unit(layout: AxisLayout) -> int:
    """The multiple an axis is padded to for ``layout``."""
    tokens, stride = layout
    return stride if tokens is None else tokens * stride


def window_layout(window_size: int) -> Tuple[AxisLayout, AxisLayout]:
    """The layout of plain ``window_size x window_size`` windows."""
    return (window_size, 1), (window_size, 1)


def partition_groups(x: torch.Tensor, layout_h: AxisLayout,
                     layout_w: AxisLayout) -> torch.Tensor:
    """Splits a ``(B, Hp, Wp, C)`` map (sides multiples of tokens x stride) into groups.

    Returns ``(B, num_groups, Gh * Gw, C)``, groups ordered region-major, then by phase; the
    tokens of a group row-major.
    """
    batch, height, width, channels = x.shape
    (gh, sh), (gw, sw) = resolve_layout(layout_h, height), resolve_layout(layout_w, width)
    rh, rw = _regions(layout_h, height), _regions(layout_w, width)
    x = x.reshape(batch, rh, gh, sh, rw, gw, sw, channels).permute(0, 1, 4, 3, 6, 2, 5, 7)
    return x.reshape(batch, rh * rw * sh * sw, gh * gw, channels)


def _regions(layout: AxisLayout, size: int) -> int:
    return 1 if layout[0] is None else size // layout_unit(layout)


def merge_groups(x: torch.Tensor, layout_h: AxisLayout, layout_w: AxisLayout,
                 size: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`partition_groups` for a map of ``size = (Hp, Wp)``."""
    batch, channels = x.shape[0], x.shape[-1]
    height, width = size
    (gh, sh), (gw, sw) = resolve_layout(layout_h, height), resolve_layout(layout_w, width)
    rh, rw = _regions(layout_h, height), _regions(layout_w, width)
    x = x.reshape(batch, rh, rw, sh, sw, gh, gw, channels).permute(0, 1, 5, 3, 2, 6, 4, 7)
    return x.reshape(batch, height, width, channels)


def apply_in_groups(x: torch.Tensor,
                    layout_h: AxisLayout,
                    layout_w: AxisLayout,
                    fn: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor],
                    mask_padding: bool = True) -> torch.Tensor:
    """Runs ``fn`` on the groups of a ``(B, H, W, C)`` map of any size.

    The map is zero-padded bottom/right to a multiple of the layout's region, split into groups
    (:func:`partition_groups`), passed to ``fn(groups, key_padding)`` and merged and cropped
    back. ``key_padding`` is ``(num_groups, N)``, True on padded tokens, when ``mask_padding``
    and the map was padded; otherwise ``None`` (padded tokens then take part as zeros).
    """
    height, width = x.shape[1], x.shape[2]
    unit = (layout_unit(layout_h), layout_unit(layout_w))
    padded = pad_to_multiple(x, unit, channels_last=True)
    size = (padded.shape[1], padded.shape[2])
    key_padding = None
    if mask_padding and not same_size(size, (height, width)):
        padding = padding_map((height, width), unit, x.device)
        key_padding = partition_groups(padding, layout_h, layout_w)[0, ..., 0]
    groups = fn(partition_groups(padded, layout_h, layout_w), key_padding)
    out = merge_groups(groups, layout_h, layout_w, size)
    return crop_to(out, (height, width), channels_last=True)
