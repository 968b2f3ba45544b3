"""VAN checkpoints: the official ``van_*.pth.tar`` files and mmpretrain-converted ones."""
import re
from typing import Any, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys, rename_prefix)

# Official (and mmpretrain) names → mmhybrid names, applied to the part after the block index.
_BLOCK_RENAMES = (
    ('attn.spatial_gating_unit.DW_conv.', 'attn.lka.conv0.'),       # mmpretrain
    ('attn.spatial_gating_unit.DW_D_conv.', 'attn.lka.conv_spatial.'),
    ('attn.spatial_gating_unit.', 'attn.lka.'),                     # official
    ('mlp.dwconv.dwconv.', 'mlp.dwconv.'),
)
_PATCH_EMBED = re.compile(r'^patch_embed(\d)\.(proj|projection|norm)\.(.+)$')
_BLOCK = re.compile(r'^blocks?(\d)\.(\d+)\.(.+)$')
_STAGE_NORM = re.compile(r'^norm(\d)\.(weight|bias)$')
_OWN = re.compile(r'^stages\.\d\.(downsample|blocks|norm)\.')


def is_van(state_dict: Mapping[str, Any]) -> bool:
    return any(k.endswith(('attn.spatial_gating_unit.conv0.weight',
                           'attn.spatial_gating_unit.DW_conv.weight', 'attn.lka.conv0.weight'))
               for k in state_dict)


def _is_dropped(key: str) -> bool:
    return key.startswith('head.')


def _rename_key(key: str) -> Optional[str]:
    new_key = None
    if _OWN.match(key):
        new_key = key
    elif m := _PATCH_EMBED.match(key):
        part = 'proj' if m.group(2) in ('proj', 'projection') else 'norm'
        new_key = f'stages.{int(m.group(1)) - 1}.downsample.{part}.{m.group(3)}'
    elif m := _BLOCK.match(key):
        rest = rename_prefix(m.group(3), _BLOCK_RENAMES)
        new_key = f'stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.{rest}'
    elif m := _STAGE_NORM.match(key):
        new_key = f'stages.{int(m.group(1)) - 1}.norm.{m.group(2)}'
    return new_key


def convert_van(state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official or mmpretrain VAN state dict onto :class:`mmhybrid.VAN`.

    Drops the classifier (``head.*``); keys already in mmhybrid's layout pass unchanged.
    """
    return remap_keys(state_dict, 'van', _rename_key, _is_dropped)


register_converter(FamilyConverter(family='van', model_type='VAN', detect=is_van,
                                   convert=convert_van))
