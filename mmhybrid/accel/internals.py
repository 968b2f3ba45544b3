"""Every PyTorch internal that mmhybrid uses, in one place.

These names are not part of PyTorch's public API and may change between releases without
notice. The rest of the package reaches them only through this module, so that a new PyTorch
release needs checking here and nowhere else:

- ``torch.ops.mkldnn._linear_pointwise``: oneDNN's inner product, optionally applying an
  activation as it writes its output (:func:`linear_pointwise`);
- ``torch.ops.mkldnn._convolution_pointwise``: oneDNN's convolution with an activation applied
  as it writes (:func:`convolution_pointwise`);
- ``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu``: the CPU flash-attention
  forward that also returns the per-query log-sum-exp (:func:`flash_attention_with_lse`);
- ``torch._C._are_functorch_transforms_active`` (:func:`functorch_transforms_active`);
- ``torch.utils._python_dispatch._get_current_dispatch_mode`` (:func:`dispatch_mode_active`);
- ``torch.nn.modules.module._global_forward_hooks`` and ``_global_forward_pre_hooks``
  (:func:`global_module_hooks`);
- ``torch._inductor.config.freezing`` (:func:`inductor_freezing`).
"""
import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

# Whether this build has oneDNN's fused products (every official x86 CPU build does).
ONEDNN_LINEAR = (torch.backends.mkldnn.is_available()
                 and hasattr(torch.ops.mkldnn, '_linear_pointwise'))
ONEDNN_CONVOLUTION = (torch.backends.mkldnn.is_available()
                      and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def linear_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     activation: str = 'none', algorithm: str = '') -> torch.Tensor:
    """``act(x @ weight^T + bias)`` over the last dimension of ``x`` in oneDNN, with no autograd;
    ``activation`` is ``'none'`` or ``'gelu'`` (``algorithm`` ``'none'`` or ``'tanh'``)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], algorithm)


def convolution_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          padding: Sequence[int], stride: Sequence[int],
                          dilation: Sequence[int], groups: int,
                          activation: str = 'gelu') -> torch.Tensor:
    """A 2-D convolution with ``activation`` (exact ``'gelu'``) applied as oneDNN writes its
    output, with no autograd."""
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, list(padding), list(stride), list(dilation), groups, activation, [],
        'none')


def flash_attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             mask: Optional[torch.Tensor],
                             scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The CPU flash-attention forward: its output and the per-query log-sum-exp."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, attn_mask=mask, scale=scale)
    return out, lse


def functorch_transforms_active() -> bool:
    """Whether a ``torch.func`` transform (grad, vmap) is running, which rejects autograd
    functions not written for it."""
    query = getattr(torch._C, '_are_functorch_transforms_active', None)
    return bool(query()) if query is not None else False


def dispatch_mode_active() -> bool:
    """Whether a Python dispatch mode (e.g. ``FlopCounterMode``) sees the ops."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode
    return _get_current_dispatch_mode() is not None


def global_module_hooks() -> List[str]:
    """The kinds of global module hooks registered now (``register_module_forward_hook``,
    ``register_module_forward_pre_hook``), empty when there are none."""
    module = nn.modules.module
    kinds = []
    if module._global_forward_hooks:
        kinds.append('forward hook')
    if module._global_forward_pre_hooks:
        kinds.append('forward pre-hook')
    return kinds


@contextlib.contextmanager
def inductor_freezing() -> Iterator[None]:
    """Inductor's ``freezing`` config on for the calls inside: the weights of an inference graph
    become constants (BatchNorms fold, convolution weights are packed once)."""
    import torch._inductor.config as inductor_config
    with inductor_config.patch(freezing=True):
        yield


def module_hooks(module: nn.Module) -> bool:
    """Whether ``module`` has forward hooks or forward pre-hooks of its own."""
    return bool(module._forward_hooks or module._forward_pre_hooks)
