"""FLOP and parameter counting that sees ``scaled_dot_product_attention``.

mmengine's module-hook counter cannot see a functional call, and torch's ``FlopCounterMode`` has no
formula for the CPU flash kernel that ``scaled_dot_product_attention`` dispatches to. We count with
``FlopCounterMode`` plus formulas for every SDPA kernel, and report multiply-accumulates (MACs), the
unit the papers' "FLOPs" columns use. :func:`backbone_complexity` and :func:`config_complexity` give
the rows ``tools/get_flops.py`` prints (:func:`format_complexity`).
"""
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .build import build_backbone, build_config_model

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


class ComplexityRow(NamedTuple):
    """One line of ``tools/get_flops.py``: what was counted, its parameters and its MACs (``None``
    when only parameters are counted)."""
    name: str
    params: int
    macs: Optional[int]


def backbone_complexity(spec: str, shape: Sequence[int] = (224, 224)) -> List[ComplexityRow]:
    """Parameters and MACs of the backbone ``spec`` (``family:arch``) on a 1x3xHxW input, with and
    without the products inside attention."""
    backbone = build_backbone(spec).eval()
    x = torch.randn(1, 3, *shape)
    params = count_params(backbone)
    return [ComplexityRow('backbone', params, count_macs(backbone, x)),
            ComplexityRow('backbone without attention', params,
                          count_macs(backbone, x, attention=False))]


class _ExtractFeat(nn.Module):
    """``model.extract_feat`` (backbone + neck) as a module to count."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> Any:
        return self.model.extract_feat(inputs)


def config_complexity(config: str, shape: Sequence[int] = (224, 224)) -> List[ComplexityRow]:
    """Parameters and MACs of an mmdet/mmseg config's backbone and backbone + neck on a 1x3xHxW
    input (heads are not counted), and the parameters of the whole model. The backbone starts
    from scratch (``init_cfg=None``)."""
    model = build_config_model(config).eval()
    x = torch.randn(1, 3, *shape)
    feat = nn.ModuleList([model.backbone] + ([model.neck] if hasattr(model, 'neck') else []))
    backbone = model.backbone
    return [ComplexityRow('backbone', count_params(backbone), count_macs(backbone, x)),
            ComplexityRow('backbone + neck', count_params(feat),
                          count_macs(_ExtractFeat(model), x)),
            ComplexityRow('whole model (params only)', count_params(model), None)]


def format_complexity(rows: Sequence[ComplexityRow], shape: Sequence[int]) -> str:
    """The table ``tools/get_flops.py`` prints."""
    lines = [f'input shape: 1x3x{shape[0]}x{shape[1]}']
    for row in rows:
        flops = f'{row.macs / 1e9:.3f} GFLOPs (MACs)' if row.macs is not None else '-'
        lines.append(f'{row.name:28s} params {row.params / 1e6:8.2f} M   {flops}')
    return '\n'.join(lines)
