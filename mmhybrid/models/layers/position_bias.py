"""Dense attention biases stored at one grid size and resized to another."""
from typing import Tuple

import torch
import torch.nn.functional as F

Grid = Tuple[int, int]


def cubic_resize_matrix(size_in: int, size_out: int, dtype: torch.dtype,
                        device: torch.device) -> torch.Tensor:
    """The ``(size_out, size_in)`` matrix of 1-D bicubic resizing (``align_corners=False``).

    Bicubic interpolation is separable and linear, so resizing one axis is a product with this
    matrix. Its rows are read off ``F.interpolate`` applied to the identity, so they are
    PyTorch's own weights (cubic coefficient -0.75, border taps clamped onto the edge).
    """
    eye = torch.eye(size_in, dtype=dtype, device=device).reshape(size_in, 1, 1, size_in)
    rows = F.interpolate(eye, size=(1, size_out), mode='bicubic', align_corners=False)
    return rows.reshape(size_in, size_out).t()


def resize_position_bias(bias: torch.Tensor, src_query: Grid, src_key: Grid, dst_query: Grid,
                         dst_key: Grid) -> torch.Tensor:
    """Resizes a dense ``(heads, Hq*Wq, Hk*Wk)`` attention bias to other query/key grids.

    The bias is a 5-D field ``(heads, Hq, Wq, Hk, Wk)``; the key plane and then the query plane
    are interpolated bicubically (``align_corners=False``), each axis as a product with
    :func:`cubic_resize_matrix` (the same operator as ``F.interpolate`` per plane, up to
    rounding, and several times faster on large biases: matrix products instead of a gather
    per output value). The last product writes the result directly in its
    ``(heads, Hq*Wq, Hk*Wk)`` layout. Returns ``bias`` itself when both grids are unchanged.
    Differentiable with respect to ``bias``.
    """
    heads = bias.shape[0]
    (hq0, wq0), (hk0, wk0) = src_query, src_key
    (hq, wq), (hk, wk) = dst_query, dst_key
    if bias.shape[1:] != (hq0 * wq0, hk0 * wk0):
        raise ValueError(f'position bias of shape {tuple(bias.shape)} does not match query grid '
                         f'{src_query} and key grid {src_key}')
    if (hq0, wq0, hk0, wk0) == (hq, wq, hk, wk):
        return bias
    if bias.dtype not in (torch.float32, torch.float64):
        bias = bias.float()  # keep the interpolation weights in full precision

    def matrix(size_in: int, size_out: int) -> torch.Tensor:
        return cubic_resize_matrix(size_in, size_out, bias.dtype, bias.device)

    if (hk0, wk0) != (hk, wk):
        planes = bias.reshape(heads * hq0 * wq0, hk0, wk0)
        if wk0 != wk:
            planes = planes @ matrix(wk0, wk).t()
        if hk0 != hk:
            planes = matrix(hk0, hk) @ planes
        bias = planes.reshape(heads, hq0 * wq0, hk * wk)
    if (hq0, wq0) != (hq, wq):
        num_keys = hk * wk
        if hq0 != hq:  # rows of the query grid: (Hq, Hq0) @ (heads, Hq0, Wq0 * Nk)
            bias = matrix(hq0, hq) @ bias.reshape(heads, hq0, wq0 * num_keys)
        if wq0 != wq:  # columns: (Wq, Wq0) @ (heads * Hq, Wq0, Nk), already the final layout
            bias = matrix(wq0, wq) @ bias.reshape(heads * hq, wq0, num_keys)
        bias = bias.reshape(heads, hq * wq, num_keys)
    return bias
