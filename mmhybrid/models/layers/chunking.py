"""Inference on large maps in bands of rows, to bound the size of hidden activations, the
test of when such eager-only inference paths may run, and the test of a map's layout."""
from typing import Callable

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is a 4-D map laid out channels-last (and not also contiguous NCHW, as a
    map with one channel or one position is)."""
    return (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous())


# A band's hidden maps stay near this size (bytes).
DEFAULT_BAND_BYTES = 8 * 2**20


def eager_inference() -> bool:
    """Whether eager-only inference paths (row bands, chunks of groups, folded weights) may run:
    no gradient recorded, not traced (compile, export, ``torch.jit.trace``: a traced graph keeps
    one size-agnostic call) and no Python dispatch mode active (e.g. ``FlopCounterMode``, which
    counts the modules' own ops). Every such path gives the plain modules' results."""
    return not torch.is_grad_enabled() and untraced_eager()


def untraced_eager() -> bool:
    """Whether the call runs eagerly as written: not traced (``torch.compile``, export,
    ``torch.jit.trace``) and under no Python dispatch mode (such as ``FlopCounterMode``). Eager
    rewrites of a module's computation (:func:`eager_inference`'s paths, and the training-safe
    ones that also run with gradients) apply only then."""
    return (not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and not torch.jit.is_tracing() and _get_current_dispatch_mode() is None)


def lowering_for_inductor() -> bool:
    """Whether the call is being traced by ``torch.compile`` for inductor (not exported): where
    torch 2.13's inductor cannot lower a form with dynamic sizes, the layers give it an
    equivalent one (a permuted or transposed view fed to a conv fails with ``ValueRangeError``
    while inductor orders its symbolic strides; see ``LayerNorm2d._normalize_channels``)."""
    return torch.compiler.is_compiling() and not torch.compiler.is_exporting()


def frozen_inductor_inference() -> bool:
    """Whether the call is being traced by ``torch.compile`` for an inductor inference graph
    with frozen weights (inductor's ``freezing`` config on, no gradient recorded): there the
    weights are constants of the graph and inductor packs every convolution's weights for
    oneDNN once (``mkldnn._convolution_pointwise``), where a linear layer's go to MKL."""
    if not lowering_for_inductor() or torch.is_grad_enabled():
        return False
    import torch._inductor.config as inductor_config  # loaded: inductor is compiling
    return bool(inductor_config.freezing)


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
    format. Meant for inference: the bands are written into a preallocated map. Outside
    :func:`eager_inference` (with gradients, or traced: a loop over the traced height would fix
    the graph to it) it is one call of ``fn``.
    """
    height = x.shape[2]
    if rows >= height or not eager_inference():
        return fn(x)
    out = None
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        lo, hi = max(top - halo, 0), min(bottom + halo, height)
        band = fn(x[:, :, lo:hi])[:, :, top - lo:bottom - lo]
        if out is None:
            channels_last = is_channels_last(x)
            out = torch.empty((x.shape[0], band.shape[1], height, x.shape[3]),
                              dtype=band.dtype, device=band.device,
                              memory_format=torch.channels_last if channels_last else
                              torch.contiguous_format)
        out[:, :, top:bottom] = band
    return out
