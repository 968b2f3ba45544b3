"""Zero padding of feature maps to a multiple of a size (bottom/right), and the crop back.

Families that need divisible maps (windows, groups, strided merges) pad on the fly, so that any
input size runs; at sizes that are already multiples nothing is padded or copied.
"""
from typing import Tuple, Union

import torch
import torch.nn.functional as F

from .tracing import compiling, exporting, traced

Size = Union[int, Tuple[int, int]]


def _pair(size: Size) -> Tuple[int, int]:
    # No int(): a traced size (SymInt) must stay symbolic, not be fixed to its traced value.
    return (size, size) if isinstance(size, (int, torch.SymInt)) else (size[0], size[1])


def _hw_dims(channels_last: bool) -> Tuple[int, int]:
    return (1, 2) if channels_last else (2, 3)


def ceil_div(size: int, divisor: int) -> int:
    """``ceil(size / divisor)`` for a non-negative ``size`` (an int or a traced SymInt).

    Written with non-negative operands only: exported graphs compute it with ONNX's integer
    ``Div``, which truncates, so the usual ``-(-size // divisor)`` would round the wrong way.
    """
    return (size + divisor - 1) // divisor


def padding_to_multiple(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach a multiple of ``multiple``."""
    return ceil_div(size, multiple) * multiple - size


def same_size(size: Tuple[int, int], other: Tuple[int, int]) -> bool:
    """Whether two ``(H, W)`` sizes are equal, to skip a pad, crop or mask that would do nothing.

    Always False while exporting or compiling: the graph then keeps the step (a no-op at sizes
    that need none) and serves every input size, instead of specialising on the size it was
    traced with (under ``torch.compile`` a branch on the size is a guard, and a new input size
    on the other side of it compiles the model again).
    """
    return not traced() and size[0] == other[0] and size[1] == other[1]


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
    height, width = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
    pad_h, pad_w = ceil_div(height, mh) * mh - height, ceil_div(width, mw) * mw - width
    if same_size((height, width), (height + pad_h, width + pad_w)):
        return x
    pad = (0, 0, 0, pad_w, 0, pad_h) if channels_last else (0, pad_w, 0, pad_h)
    return F.pad(x, pad, value=value)


def crop_to(x: torch.Tensor, size: Tuple[int, int], channels_last: bool = False) -> torch.Tensor:
    """Crops the bottom/right padding of ``x`` back to ``size = (H, W)``: a view in eager mode
    (no copy), a new tensor in traced graphs."""
    dim_h, dim_w = _hw_dims(channels_last)
    if same_size((x.shape[dim_h], x.shape[dim_w]), size):
        return x
    if exporting() or (compiling() and not torch.is_grad_enabled()):
        # A narrowed view makes the tracer decide its contiguity, which holds only at sizes
        # without padding: export fails on it, and a dynamic inference graph would guard on
        # it (one graph per padding pattern: padded or not, per side). Gather the rows and
        # columns into a new tensor instead.
        for dim, length in ((dim_h, size[0]), (dim_w, size[1])):
            x = x.index_select(dim, torch.arange(length, device=x.device))
        return x
    x = x.narrow(dim_h, 0, size[0]).narrow(dim_w, 0, size[1])
    if compiling():
        # Training graphs (specialised to their sizes by inductor anyway, see README): the
        # view's backward pads, where the gather's would scatter. A copy has contiguous
        # strides at every size (and is fused into its consumer).
        x = x.clone(memory_format=torch.contiguous_format)
    return x


def padding_map(size: Tuple[int, int], multiple: Size, device: torch.device) -> torch.Tensor:
    """``(1, Hp, Wp, 1)`` booleans over the padded grid of ``size``: True on padding."""
    mh, mw = _pair(multiple)
    height, width = size
    # Built from comparisons, not by slice assignment, which a traced graph would specialise
    # to the padding of the traced size.
    rows = torch.arange(ceil_div(height, mh) * mh, device=device) >= height
    cols = torch.arange(ceil_div(width, mw) * mw, device=device) >= width
    return (rows[:, None] | cols[None, :])[None, :, :, None]
