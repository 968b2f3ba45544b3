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


# An axis resolved for a padded size: (regions, tokens per group, stride).
AxisGrid = Tuple[int, int, int]


def resolve_layout(layout: AxisLayout, size: int) -> Tuple[int, int]:
    """``layout`` with its tokens per group filled in for an axis of (padded) ``size``."""
    tokens, stride = layout
    return (size // stride if tokens is None else tokens), stride


def axis_grid(layout: AxisLayout, size: int) -> AxisGrid:
    """``(regions, tokens, stride)`` of ``layout`` on an axis of (padded) ``size``."""
    tokens, stride = layout
    if tokens is None:
        return 1, size // stride, stride
    return size // (tokens * stride), tokens, stride


def group_shape(layout_h: AxisLayout, layout_w: AxisLayout, size: Tuple[int, int]) -> Tuple[int, int]:
    """``(Gh, Gw)``: the tokens of each group of a map of ``size`` once padded for the layout."""
    (tokens_h, stride_h), (tokens_w, stride_w) = layout_h, layout_w
    return (ceil_div(size[0], stride_h) if tokens_h is None else tokens_h,
            ceil_div(size[1], stride_w) if tokens_w is None else tokens_w)


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
    return _partition(x, axis_grid(layout_h, x.shape[1]), axis_grid(layout_w, x.shape[2]))


def _partition(x: torch.Tensor, grid_h: AxisGrid, grid_w: AxisGrid) -> torch.Tensor:
    (rh, gh, sh), (rw, gw, sw) = grid_h, grid_w
    x = x.reshape(x.shape[0], rh, gh, sh, rw, gw, sw, x.shape[-1]).permute(0, 1, 4, 3, 6, 2, 5, 7)
    return x.reshape(x.shape[0], rh * rw * sh * sw, gh * gw, x.shape[-1])


def merge_groups(x: torch.Tensor, layout_h: AxisLayout, layout_w: AxisLayout,
                 size: Tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`partition_groups` for a map of ``size = (Hp, Wp)``."""
    return _merge(x, axis_grid(layout_h, size[0]), axis_grid(layout_w, size[1]))


def _merge(x: torch.Tensor, grid_h: AxisGrid, grid_w: AxisGrid) -> torch.Tensor:
    (rh, gh, sh), (rw, gw, sw) = grid_h, grid_w
    x = x.reshape(x.shape[0], rh, rw, sh, sw, gh, gw, x.shape[-1]).permute(0, 1, 5, 3, 2, 6, 4, 7)
    return x.reshape(x.shape[0], rh * gh * sh, rw * gw * sw, x.shape[-1])


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
    grid_h, grid_w = axis_grid(layout_h, padded.shape[1]), axis_grid(layout_w, padded.shape[2])
    if padded is x:  # nothing padded (and not traced): nothing to mask or crop
        return _merge(fn(_partition(x, grid_h, grid_w), None), grid_h, grid_w)
    key_padding = None
    if mask_padding and not same_size((padded.shape[1], padded.shape[2]), (height, width)):
        padding = padding_map((height, width), unit, x.device)
        key_padding = _partition(padding, grid_h, grid_w)[0, ..., 0]
    out = _merge(fn(_partition(padded, grid_h, grid_w), key_padding), grid_h, grid_w)
    return crop_to(out, (height, width), channels_last=True)
