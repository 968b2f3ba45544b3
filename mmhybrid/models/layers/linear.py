"""Linear layers whose CPU inference runs oneDNN's matrix product.

PyTorch's CPU ``F.linear`` calls the BLAS it was built with, MKL for the official wheels. MKL
chooses its kernels by CPU vendor: on an AMD processor it runs its AVX2 code even where the
CPU has AVX-512. oneDNN (PyTorch's convolution library, also in every official CPU build)
chooses by instruction set, and there runs the same float32 product about twice as fast
(docs/benchmarks.md, session 14: 330-376 against 145-184 GFLOP/s on the backbones' shapes and a
4096² product, 2 threads of an AVX-512 AMD EPYC); on Intel CPUs the two were on par (session
12). So at eager CPU inference (:func:`.chunking.eager_inference`) :func:`linear` calls
oneDNN's inner product; training (oneDNN's op has no backward), traced graphs (compile,
export: they keep ``F.linear``), other devices and dtypes, autocast and
``torch.backends.mkldnn.enabled = False`` keep ``F.linear``. Results equal ``F.linear``'s up to
float rounding (the two sum in blocks of their own).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .chunking import eager_inference

# Switch for tests and A/B measurements: False keeps ``F.linear`` everywhere.
ENABLED = True

_ONEDNN_LINEAR = (torch.backends.mkldnn.is_available()
                  and hasattr(torch.ops.mkldnn, '_linear_pointwise'))


def onednn_linear_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` runs oneDNN's product for ``x`` and ``weight``."""
    return (ENABLED and _ONEDNN_LINEAR and torch.backends.mkldnn.enabled
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.dim() >= 2
            and not torch.is_autocast_enabled('cpu') and eager_inference())


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; oneDNN's product at eager CPU float32 inference (see the
    module docstring)."""
    if onednn_linear_applies(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` that calls :func:`linear` (same parameters, state-dict keys and hooks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
