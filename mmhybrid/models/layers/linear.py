"""Linear layers whose CPU products run in oneDNN.

PyTorch's CPU ``F.linear`` calls the BLAS it was built with, MKL for the official wheels. MKL
chooses its kernels by CPU vendor: on an AMD processor it runs its AVX2 code even where the CPU
has AVX-512. oneDNN (PyTorch's convolution library, also in every official CPU build) chooses by
instruction set and there runs the same float32 products about twice as fast
(docs/benchmarks.md, session 14: 330-385 against 145-184 GFLOP/s on the backbones' shapes and a
4096² product, 2 threads of an AVX-512 AMD EPYC); on session 12's machine the two were on par.
So in eager mode on the CPU, where :data:`ENABLED` (the default below), :func:`linear` runs
oneDNN's inner product: at inference the product alone, in training :class:`OneDNNLinear` (the
forward and both backward products in oneDNN). Traced graphs (compile, export: they keep
``F.linear``), Python dispatch modes (the FLOP counter), torch.func transforms, other devices
and dtypes, autocast and ``torch.backends.mkldnn.enabled = False`` keep ``F.linear``. Results
equal ``F.linear``'s up to float rounding (the two sum in blocks of their own).

The products are not free in memory: oneDNN compiles a kernel (a "primitive") for every distinct
product shape and keeps it, in its own primitive cache and in ideep's (1024 entries each by
default), about 0.45 MB per shape here (docs/benchmarks.md, session 15). The number of rows
changes with the input size, so a process that sees many sizes grows (CrossFormer-S at detection
sizes: about 8 MB per new size, up to some hundreds of MB when both caches are full), where MKL
keeps no state per shape. So the oneDNN products are the default only where they are faster:
on an x86 CPU with AVX-512 not made by Intel (:func:`onednn_linear_default`). The environment
variable ``MMHYBRID_ONEDNN_LINEAR=1`` or ``0`` (read at import) chooses explicitly;
``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` and ``LRU_CACHE_CAPACITY`` (read by oneDNN and ideep at their
first use) bound the caches.
"""
import os
from typing import Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .chunking import untraced_eager

ENV_SWITCH = 'MMHYBRID_ONEDNN_LINEAR'


def cpu_vendor(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU's vendor as Linux's ``cpuinfo`` names it (``'GenuineIntel'``, ``'AuthenticAMD'``),
    or ``''`` where there is no such file or line."""
    try:
        with open(cpuinfo) as info:
            for line in info:
                if line.startswith('vendor_id'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return ''


def onednn_linear_default(environ: Mapping[str, str] = os.environ,
                          vendor: Optional[str] = None,
                          capability: Optional[str] = None) -> bool:
    """Whether :func:`linear` runs oneDNN's products unless told otherwise.

    ``MMHYBRID_ONEDNN_LINEAR`` in ``environ`` decides when set (``'1'`` or ``'0'``; anything
    else is an error). Otherwise: on an x86 CPU with AVX-512 (``capability``, PyTorch's
    ``torch.backends.cpu.get_cpu_capability()``) whose ``vendor`` is known and not Intel, where
    MKL runs its AVX2 code while oneDNN uses AVX-512 (twice the speed on an AMD EPYC). MKL
    chooses its AVX-512 kernels on Intel CPUs (not measured on a known Intel CPU here; session
    12's machine, vendor unrecorded, ran the two on par), and nothing was measured elsewhere:
    there ``F.linear``, which keeps no kernels per shape (module docstring)."""
    setting = environ.get(ENV_SWITCH, '').strip()
    if setting:
        if setting not in ('0', '1'):
            raise ValueError(f'{ENV_SWITCH} must be 1 (oneDNN products) or 0 (F.linear), '
                             f'got {setting!r}')
        return setting == '1'
    if capability is None:
        capability = torch.backends.cpu.get_cpu_capability()
    if vendor is None:
        vendor = cpu_vendor()
    return capability.startswith('AVX512') and vendor not in ('', 'GenuineIntel')


# The switch (tests and A/B measurements set it): False keeps ``F.linear`` everywhere.
ENABLED = onednn_linear_default()
# The weight gradient's operands are copied in chunks of about this many bytes.
GRAD_WEIGHT_CHUNK_BYTES = 4 * 2**20

# Whether this torch build has oneDNN's inner product (every official CPU build does).
ONEDNN_LINEAR = (torch.backends.mkldnn.is_available()
                 and hasattr(torch.ops.mkldnn, '_linear_pointwise'))
# torch.func transforms (grad, vmap) reject autograd functions not written for them: F.linear.
_functorch_active = getattr(torch._C, '_are_functorch_transforms_active', lambda: False)


def inner_product(x: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x @ weight^T + bias`` over the last dimension of ``x`` in oneDNN, with no autograd
    (strided operands accepted; needs :data:`ONEDNN_LINEAR`)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')


def onednn_linear_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` runs oneDNN's products for ``x`` and ``weight``."""
    return (ENABLED and ONEDNN_LINEAR and torch.backends.mkldnn.enabled
            and x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.dim() >= 2 and x.numel() > 0
            and not torch.is_autocast_enabled('cpu') and untraced_eager()
            and not _functorch_active())


def _weight_gradient(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad^T @ x`` for ``(rows, out)`` and ``(rows, in)``, summed over chunks of rows: oneDNN
    copies each transposed operand before its product, so that whole ones would add both maps
    to the training peak; chunks keep that copy near ``GRAD_WEIGHT_CHUNK_BYTES``."""
    rows = max(1, GRAD_WEIGHT_CHUNK_BYTES // (x.element_size() * (grad.shape[1] + x.shape[1])))
    total = None
    for top in range(0, grad.shape[0], rows):
        part = inner_product(grad[top:top + rows].t(), x[top:top + rows].t())
        total = part if total is None else total.add_(part)
    return total


class OneDNNLinear(torch.autograd.Function):
    """``F.linear`` with its forward and backward products in oneDNN; the tensors it saves are
    those of ``F.linear`` (the input and the weight). A backward that builds a graph
    (``create_graph=True``) runs as differentiable ops instead."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
        # x: (rows, in); the result is a fresh (rows, out) tensor, not a view, so that callers
        # may add to it in place.
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return inner_product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        if torch.is_grad_enabled():  # double backward: ops autograd can differentiate again
            if need_x:
                grad_x = grad.mm(weight)
            if need_weight:
                grad_weight = grad.t().mm(x)
        else:
            if need_x:  # grad @ weight, i.e. a linear layer with weight^T
                grad_x = inner_product(grad, weight.t())
            if need_weight:
                grad_weight = _weight_gradient(grad, x)
        if ctx.has_bias and need_bias:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` with oneDNN's products in eager CPU float32 (see the
    module docstring)."""
    if not onednn_linear_applies(x, weight):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        out = OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])
    return inner_product(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` that calls :func:`linear` (same parameters, state-dict keys and hooks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
