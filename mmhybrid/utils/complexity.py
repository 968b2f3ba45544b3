"""FLOP and parameter counting that sees ``scaled_dot_product_attention``.

mmengine's module-hook counter cannot see a functional call, and torch's ``FlopCounterMode`` has no
formula for the CPU flash kernel that ``scaled_dot_product_attention`` dispatches to. We count with
``FlopCounterMode`` plus formulas for every SDPA kernel, and report multiply-accumulates (MACs), the
unit the papers' "FLOPs" columns use.
"""
from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _sdpa_flops(query_shape: Tuple[int, ...], key_shape: Tuple[int, ...],
                value_shape: Tuple[int, ...]) -> int:
    # q @ k^T and attn @ v: 2 FLOPs per multiply-accumulate each.
    *batch, q_len, dim = query_shape
    k_len = key_shape[-2]
    v_dim = value_shape[-1]
    b = 1
    for size in batch:
        b *= size
    return 2 * b * q_len * k_len * (dim + v_dim)


def _shape(x: Any) -> Tuple[int, ...]:
    # FlopCounterMode hands formulas shapes in place of tensors.
    return tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(x)


def _forward_formula(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return _sdpa_flops(_shape(query), _shape(key), _shape(value))


def _sdpa_mapping(attention: bool = True) -> Dict[Any, Callable[..., int]]:
    mapping: Dict[Any, Callable[..., int]] = {}
    for name in ('_scaled_dot_product_flash_attention_for_cpu',
                 '_scaled_dot_product_fused_attention_overrideable',
                 '_scaled_dot_product_flash_attention',
                 '_scaled_dot_product_efficient_attention',
                 '_scaled_dot_product_cudnn_attention'):
        op = getattr(aten, name, None)
        if op is not None:
            # FlopCounterMode passes (args..., out_shape=...) to formulas.
            mapping[op] = (lambda *a, out_shape=None, **k: _forward_formula(*a)) if attention \
                else (lambda *a, out_shape=None, **k: 0)
    return mapping


def count_macs(model: nn.Module, *inputs: Any, attention: bool = True) -> int:
    """Multiply-accumulates of one forward pass of ``model(*inputs)`` (convs, linears, bmm, SDPA).

    ``attention=False`` leaves out the products inside ``scaled_dot_product_attention`` (the
    convention of counters that cannot see them, e.g. the HAT-Net paper's table).
    """
    with FlopCounterMode(display=False, custom_mapping=_sdpa_mapping(attention)) as counter, \
            torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
