"""Dense attention biases stored at one grid size and resized to another."""
from typing import Tuple

import torch
import torch.nn.functional as F

from .padding import same_size

Grid = Tuple[int, int]


def resize_position_bias(bias: torch.Tensor, src_query: Grid, src_key: Grid, dst_query: Grid,
                         dst_key: Grid) -> torch.Tensor:
    """Resizes a dense ``(heads, Hq*Wq, Hk*Wk)`` attention bias to other query/key grids.

    The bias is a 5-D field ``(heads, Hq, Wq, Hk, Wk)``; the key plane and then the query plane
    are interpolated separately (bicubic, ``align_corners=False``). Returns ``bias`` itself when
    both grids are unchanged. Differentiable with respect to ``bias``.
    """
    heads = bias.shape[0]
    (hq0, wq0), (hk0, wk0) = src_query, src_key
    (hq, wq), (hk, wk) = dst_query, dst_key
    if bias.shape[1:] != (hq0 * wq0, hk0 * wk0):
        raise ValueError(f'position bias of shape {tuple(bias.shape)} does not match query grid '
                         f'{src_query} and key grid {src_key}')
    if same_size((hq0, wq0), (hq, wq)) and same_size((hk0, wk0), (hk, wk)):
        return bias
    if bias.dtype not in (torch.float32, torch.float64):
        bias = bias.float()  # bicubic interpolation is not implemented for every dtype
    if not same_size((hk0, wk0), (hk, wk)):
        # (heads * Nq0) maps of size (Hk0, Wk0) as the channels of one image.
        planes = bias.reshape(1, heads * hq0 * wq0, hk0, wk0)
        planes = F.interpolate(planes, size=(hk, wk), mode='bicubic', align_corners=False)
        bias = planes.reshape(heads, hq0 * wq0, hk * wk)
    if not same_size((hq0, wq0), (hq, wq)):
        # (Hk*Wk) maps of size (Hq0, Wq0) per head. This view is the channels-last layout of
        # a (heads, Hk*Wk, Hq0, Wq0) batch, which interpolate keeps, so the result is already
        # laid out as (heads, Hq*Wq, Hk*Wk): the large bias is written once, never transposed.
        planes = bias.reshape(heads, hq0, wq0, hk * wk).permute(0, 3, 1, 2)
        planes = F.interpolate(planes, size=(hq, wq), mode='bicubic', align_corners=False)
        bias = planes.permute(0, 2, 3, 1).reshape(heads, hq * wq, hk * wk)
    return bias
