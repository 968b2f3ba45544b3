"""CMT checkpoints: the official ``cmt_*.pth`` files (``ggjy/CMT.pytorch`` release-v1).

The released files hold ``model`` (and ``model_ema``), an ``optimizer`` and an argparse
``args``; core's safe loader reads them without executing code and unwraps the state dict.
Each stage's ``relative_pos`` is a dense bias fixed by the pretrain size; a file of another
size is resized to the model's on load by the backbone itself (``CMT.adapt_state_dict``).
"""
import re
from typing import Any, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys, rename_prefix)

_STAGES = 'abcd'
# Official names inside a block → mmhybrid names.
_BLOCK_RENAMES = (
    ('proj.', 'lpu.'),                    # the LPU's depth-wise conv (block-level ``proj``)
    ('attn.sr.0.', 'attn.sr.'),
    ('attn.sr.1.', 'attn.sr_norm.'),
    ('mlp.conv1.0.', 'ffn.fc1.'),
    ('mlp.conv1.2.', 'ffn.norm1.'),
    ('mlp.proj_bn.', 'ffn.norm2.'),
    ('mlp.proj.', 'ffn.dwconv.'),
    ('mlp.conv2.0.', 'ffn.fc2.'),
    ('mlp.conv2.1.', 'ffn.norm3.'),
)
_DROP = ('_fc.', '_bn.', 'head.', 'pre_logits.')
_STEM = re.compile(r'^stem_(conv|norm)([123])\.(.+)$')
_PATCH_EMBED = re.compile(r'^patch_embed_([abcd])\.(proj|norm)\.(.+)$')
_REL_POS = re.compile(r'^relative_pos_([abcd])$')
_BLOCK = re.compile(r'^blocks_([abcd])\.(\d+)\.(.+)$')
_OWN = re.compile(r'^(stem\.(conv|norm)[123]\.|stages\.\d\.(downsample\.|relative_pos$|blocks\.))')
_OFFICIAL_MARK = re.compile(r'^(relative_pos_[abcd]$|blocks_[abcd]\.\d+\.mlp\.proj_bn\.)')
_OWN_MARK = re.compile(r'^(stages\.\d\.relative_pos$|stages\.\d\.blocks\.\d+\.ffn\.norm3\.)')


def is_cmt(state_dict: Mapping[str, Any]) -> bool:
    """Official layout (``relative_pos_a``, ``blocks_a.*.mlp.proj_bn``) or mmhybrid's own."""
    return any(_OFFICIAL_MARK.match(k) or _OWN_MARK.match(k) for k in state_dict)


def _is_dropped(key: str) -> bool:
    return key.startswith(_DROP)


def _rename_key(key: str) -> Optional[str]:
    new_key = None
    if _OWN.match(key):
        new_key = key
    elif m := _STEM.match(key):
        new_key = f'stem.{m.group(1)}{m.group(2)}.{m.group(3)}'
    elif m := _PATCH_EMBED.match(key):
        new_key = f'stages.{_STAGES.index(m.group(1))}.downsample.{m.group(2)}.{m.group(3)}'
    elif m := _REL_POS.match(key):
        new_key = f'stages.{_STAGES.index(m.group(1))}.relative_pos'
    elif m := _BLOCK.match(key):
        rest = rename_prefix(m.group(3), _BLOCK_RENAMES)
        new_key = f'stages.{_STAGES.index(m.group(1))}.blocks.{m.group(2)}.{rest}'
    return new_key


def convert_cmt(state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official CMT state dict onto :class:`mmhybrid.CMT`.

    Drops the classifier (``_fc``, ``_bn``, ``head``); keys already in mmhybrid's layout pass
    unchanged.
    """
    return remap_keys(state_dict, 'cmt', _rename_key, _is_dropped)


register_converter(FamilyConverter(family='cmt', model_type='CMT', detect=is_cmt,
                                   convert=convert_cmt))
