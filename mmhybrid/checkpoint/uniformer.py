"""UniFormer checkpoints: official ImageNet files and official det/seg backbone checkpoints."""
import re
from typing import Any, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys)

_PATCH_EMBED = re.compile(r'^patch_embed([1-4])\.(.+)$')
_BLOCK = re.compile(r'^blocks([1-4])\.(\d+)\.(.+)$')
_OUT_NORM = re.compile(r'^norm([1-4])\.(weight|bias)$')  # the dense code's per-output LayerNorms
_OWN = re.compile(r'^(stages\.\d\.(downsample|blocks)\.|out_norms\.\d\.)')
# The local MHRA's depth-wise conv is called `attn` and holds a weight directly: no other family
# has `blocks...attn.weight`.
_MARK = re.compile(r'^(blocks1|stages\.0\.blocks)\.\d+\.attn\.weight$')


def is_uniformer(state_dict: Mapping[str, Any]) -> bool:
    """True for UniFormer keys: official (``blocks1.*``) or mmhybrid's (``stages.0.blocks.*``)."""
    return any(_MARK.match(k) for k in state_dict) and any(
        k.endswith('.conv1.weight') and k.startswith(('blocks1.', 'stages.0.blocks.'))
        for k in state_dict)


def _is_dropped(key: str) -> bool:
    return key.startswith(('head.', 'norm.'))


def _rename_key(key: str) -> Optional[str]:
    new_key = None
    if _OWN.match(key):
        new_key = key
    elif m := _PATCH_EMBED.match(key):
        new_key = f'stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
    elif m := _BLOCK.match(key):
        new_key = f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.{m.group(3)}'
    elif m := _OUT_NORM.match(key):
        new_key = f'out_norms.{int(m.group(1)) - 1}.{m.group(2)}'
    return new_key


def convert_uniformer(
        state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official UniFormer state dict onto :class:`mmhybrid.UniFormer`.

    Drops the classifier (``head.*``) and the classification BatchNorm (``norm.*``); the dense
    code's ``norm1..4`` become ``out_norms.0..3``. Keys in mmhybrid's layout pass unchanged.
    """
    return remap_keys(state_dict, 'uniformer', _rename_key, _is_dropped)


register_converter(FamilyConverter(family='uniformer', model_type='UniFormer',
                                   detect=is_uniformer, convert=convert_uniformer))
