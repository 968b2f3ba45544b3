"""Zero padding of feature maps to a multiple of a size (bottom/right), and the crop back.

Families that need divisible maps (windows, groups, strided merges) pad on the fly, so that any
input size runs; at sizes that are already multiples nothing is padded or copied.
"""
from typing import Tuple, Union

import torch
import torch.nn.functional as F

Size = Union[int, Tuple[int, int]]


def _pair(size: Size) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _hw_dims(channels_last: bool) -> Tuple[int, int]:
    return (1, 2) if channels_last else (2, 3)


def pad_to_multiple(x: torch.Tensor,
                    multiple: Size,
                    channels_last: bool = False,
                    value: float = 0.) -> torch.Tensor:
    """Pads the spatial sides of ``x`` bottom/right up to multiples of ``multiple``.

    Args:
        x: ``(B, C, H, W)``, or ``(B, H, W, C)`` with ``channels_last=True``.
        multiple: One size for both sides or ``(mh, mw)``.
        channels_last: Layout of ``x`` (tokens ``(B, H, W, C)`` when True).
        value: Fill value.
    """
    mh, mw = _pair(multiple)
    dim_h, dim_w = _hw_dims(channels_last)
    pad_h, pad_w = -x.shape[dim_h] % mh, -x.shape[dim_w] % mw
    if not (pad_h or pad_w):
        return x
    pad = (0, 0, 0, pad_w, 0, pad_h) if channels_last else (0, pad_w, 0, pad_h)
    return F.pad(x, pad, value=value)


def crop_to(x: torch.Tensor, size: Tuple[int, int], channels_last: bool = False) -> torch.Tensor:
    """Crops the bottom/right padding of ``x`` back to ``size = (H, W)`` (no copy)."""
    dim_h, dim_w = _hw_dims(channels_last)
    if (x.shape[dim_h], x.shape[dim_w]) == tuple(size):
        return x
    return x.narrow(dim_h, 0, size[0]).narrow(dim_w, 0, size[1])


def padding_map(size: Tuple[int, int], multiple: Size, device: torch.device) -> torch.Tensor:
    """``(1, Hp, Wp, 1)`` booleans over the padded grid of ``size``: True on padding."""
    mh, mw = _pair(multiple)
    height, width = size
    padded = torch.ones((1, height + -height % mh, width + -width % mw, 1), dtype=torch.bool,
                        device=device)
    padded[:, :height, :width] = False
    return padded
