"""Linear layers whose CPU products run in oneDNN.

PyTorch's CPU ``F.linear`` calls the BLAS it was built with, MKL for the official wheels. MKL
chooses its kernels by CPU vendor: on an AMD processor it runs its AVX2 code even where the CPU
has AVX-512. oneDNN (PyTorch's convolution library, also in every official CPU build) chooses by
instruction set and there runs the same float32 products about twice as fast (docs/benchmarks.md).
:class:`OneDNNLinear` (inference) and :class:`OneDNNTrainingLinear` (forward and both backward
products in oneDNN) are ``nn.Linear`` layers with the same parameters that run those products
for float32 CPU inputs, ``F.linear`` for anything else.

The products are not free in memory: oneDNN compiles a kernel for every distinct product shape
and keeps it (in its own primitive cache and in ideep's, 1024 entries each by default), about
0.45 MB per shape. The number of rows changes with the input size, so a process that sees many
sizes grows (CrossFormer-S at detection sizes: about 8 MB per new size, up to some hundreds of
MB when both caches are full), where MKL keeps no state per shape. So the oneDNN products are
used by default only where they are faster: on an x86 CPU with AVX-512 not made by Intel
(:func:`onednn_linear_default`). ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` and ``LRU_CACHE_CAPACITY``
(read by oneDNN and ideep at their first use) bound the caches.
"""
import os
from typing import Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import internals

ENV_SWITCH = 'MMHYBRID_ONEDNN_LINEAR'
# The weight gradient's operands are copied in chunks of about this many bytes.
GRAD_WEIGHT_CHUNK_BYTES = 4 * 2**20


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
    """Whether linear layers run oneDNN's products when the caller does not say.

    ``MMHYBRID_ONEDNN_LINEAR`` in ``environ`` decides when set (``'1'`` or ``'0'``; anything
    else is an error). Otherwise: where this build has the products, on an x86 CPU with AVX-512
    (``capability``, PyTorch's ``torch.backends.cpu.get_cpu_capability()``) whose ``vendor`` is
    known and not Intel: there MKL runs its AVX2 code while oneDNN uses AVX-512. MKL chooses its
    AVX-512 kernels on Intel CPUs, and nothing was measured elsewhere: there ``F.linear``, which
    keeps no kernels per shape.
    """
    setting = environ.get(ENV_SWITCH, '').strip()
    if setting:
        if setting not in ('0', '1'):
            raise ValueError(f'{ENV_SWITCH} must be 1 (oneDNN products) or 0 (F.linear), '
                             f'got {setting!r}')
        return setting == '1' and internals.ONEDNN_LINEAR
    if not internals.ONEDNN_LINEAR:
        return False
    if capability is None:
        capability = torch.backends.cpu.get_cpu_capability()
    if vendor is None:
        vendor = cpu_vendor()
    return capability.startswith('AVX512') and vendor not in ('', 'GenuineIntel')


def inner_product(x: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x @ weight^T + bias`` over the last dimension of ``x`` in oneDNN, with no autograd
    (strided operands accepted)."""
    return internals.linear_pointwise(x, weight, bias)


def onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's product serves ``F.linear(x, weight)``: float32 CPU operands, ``x`` with
    at least two dimensions and some values."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.dim() >= 2 and x.numel() > 0)


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


class OneDNNLinearFunction(torch.autograd.Function):
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


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` for inference whose float32 CPU product runs in oneDNN (no autograd:
    :func:`~mmhybrid.accel.optimize_for_inference` swaps it in for a model that only predicts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if onednn_applies(x, self.weight):
            return inner_product(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class OneDNNTrainingLinear(nn.Linear):
    """``nn.Linear`` whose float32 CPU products, forward and backward, run in oneDNN
    (:class:`OneDNNLinearFunction`); traced graphs (compile, export), dispatch modes (the FLOP
    counter), ``torch.func`` transforms and every other device or dtype keep ``F.linear``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not onednn_applies(x, self.weight) or not torch.backends.mkldnn.enabled
                or torch.compiler.is_compiling()
                or torch.compiler.is_exporting() or torch.jit.is_tracing()
                or torch.is_autocast_enabled('cpu') or internals.dispatch_mode_active()
                or internals.functorch_transforms_active()):
            return F.linear(x, self.weight, self.bias)
        out = OneDNNLinearFunction.apply(x.reshape(-1, x.shape[-1]), self.weight, self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])
