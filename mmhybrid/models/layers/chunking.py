"""Inference on large maps in bands of rows, to bound the size of hidden activations."""
from typing import Callable

import torch

# A band's hidden maps stay near this size (bytes).
DEFAULT_BAND_BYTES = 8 * 2**20


def rows_per_band(x: torch.Tensor, hidden_channels: int,
                  band_bytes: int = DEFAULT_BAND_BYTES) -> int:
    """Rows of ``x`` (NCHW) whose ``hidden_channels``-channel map takes about ``band_bytes``."""
    batch, _, _, width = x.shape
    row_bytes = batch * hidden_channels * width * x.element_size()
    return max(band_bytes // max(row_bytes, 1), 1)


def map_row_bands(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, halo: int,
                  rows: int) -> torch.Tensor:
    """``fn(x)`` computed band by band over the rows of an NCHW map.

    ``fn`` must keep the spatial size and look at most ``halo`` rows up and down (a chain of
    pointwise ops and ``k x k`` convolutions with ``halo = sum((k - 1) // 2 * dilation)`` and
    zero padding). Each band of ``rows`` output rows is computed from its input rows plus
    ``halo`` rows on either side, so every output value sees the same inputs as in ``fn(x)``;
    only one band's intermediate maps are alive at a time. The result has ``x``'s memory
    format. Meant for inference (under ``torch.no_grad``): the bands are written into a
    preallocated map.
    """
    if torch.compiler.is_compiling():
        # Traced graphs (compile, export) keep one size-agnostic call: a loop over the traced
        # height would fix the graph to it.
        return fn(x)
    height = x.shape[2]
    if rows >= height:
        return fn(x)
    out = None
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        lo, hi = max(top - halo, 0), min(bottom + halo, height)
        band = fn(x[:, :, lo:hi])[:, :, top - lo:bottom - lo]
        if out is None:
            channels_last = (x.is_contiguous(memory_format=torch.channels_last)
                             and not x.is_contiguous())
            out = torch.empty((x.shape[0], band.shape[1], height, x.shape[3]),
                              dtype=band.dtype, device=band.device,
                              memory_format=torch.channels_last if channels_last else
                              torch.contiguous_format)
        out[:, :, top:bottom] = band
    return out
