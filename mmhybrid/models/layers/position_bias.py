"""Dense attention biases stored at one grid size and resized to another."""
from typing import Tuple

import torch
import torch.nn.functional as F

from .tracing import exporting

Grid = Tuple[int, int]


def cubic_resize_matrix(size_in: int, size_out: int, dtype: torch.dtype,
                        device: torch.device) -> torch.Tensor:
    """The ``(size_out, size_in)`` matrix of 1-D bicubic resizing (``align_corners=False``).

    Bicubic interpolation is separable and linear, so resizing one axis is a product with this
    matrix. Its rows are read off ``F.interpolate`` applied to the identity, so they are
    PyTorch's own weights (cubic coefficient -0.75, border taps clamped onto the edge).
    """
    if exporting():
        return _cubic_weights(size_in, size_out, dtype, device)
    eye = torch.eye(size_in, dtype=dtype, device=device).reshape(size_in, 1, 1, size_in)
    rows = F.interpolate(eye, size=(1, size_out), mode='bicubic', align_corners=False)
    return rows.reshape(size_in, size_out).t()


def _cubic_weights(size_in, size_out, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`cubic_resize_matrix` from the cubic-convolution formula (coefficient -0.75, taps
    clamped onto the edge), with tensor arithmetic only: exported graphs build it for any size
    (ONNX's cubic ``Resize`` cannot shrink), equal to PyTorch's weights up to rounding."""
    a = -0.75
    out = torch.arange(size_out, device=device, dtype=torch.float64)
    src = (out + 0.5) * (size_in / size_out) - 0.5
    base = torch.floor(src)
    t = (src - base)[:, None]
    dist = torch.cat([t + 1, t, 1 - t, 2 - t], dim=1)  # distances to taps base-1 .. base+2
    near = ((a + 2) * dist - (a + 3)) * dist * dist + 1
    far = ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a
    weights = torch.where(dist <= 1, near, far)
    taps = (base[:, None].long() + torch.arange(-1, 3, device=device)).clamp(0, size_in - 1)
    onehot = (taps[..., None] == torch.arange(size_in, device=device)).to(weights.dtype)
    return (weights[..., None] * onehot).sum(1).to(dtype)


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
    def changed(old: int, new: int) -> bool:
        # While exporting every resize stays in the graph (an identity at equal sizes).
        return exporting() or old != new

    if not any(changed(o, n) for o, n in zip((hq0, wq0, hk0, wk0), (hq, wq, hk, wk))):
        return bias
    if bias.dtype not in (torch.float32, torch.float64):
        bias = bias.float()  # keep the interpolation weights in full precision

    def matrix(size_in: int, size_out: int) -> torch.Tensor:
        return cubic_resize_matrix(size_in, size_out, bias.dtype, bias.device)

    if changed(hk0, hk) or changed(wk0, wk):
        planes = bias.reshape(heads * hq0 * wq0, hk0, wk0)
        if changed(wk0, wk):
            planes = planes @ matrix(wk0, wk).t()
        if changed(hk0, hk):
            planes = matrix(hk0, hk) @ planes
        bias = planes.reshape(heads, hq0 * wq0, hk * wk)
    if changed(hq0, hq) or changed(wq0, wq):
        num_keys = hk * wk
        if changed(hq0, hq):  # rows of the query grid: (Hq, Hq0) @ (heads, Hq0, Wq0 * Nk)
            bias = matrix(hq0, hq) @ bias.reshape(heads, hq0, wq0 * num_keys)
        if changed(wq0, wq):  # columns: (Wq, Wq0) @ (heads * Hq, Wq0, Nk), final layout
            bias = matrix(wq0, wq) @ bias.reshape(heads * hq, wq0, num_keys)
        bias = bias.reshape(heads, hq * wq, num_keys)
    return bias
