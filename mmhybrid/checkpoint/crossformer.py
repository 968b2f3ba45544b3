"""CrossFormer checkpoints: the official ``crossformer-{t,s,b,l}.pth`` and CrossFormer++
ImageNet files.

The released CrossFormer files (``{'model': state_dict}``, written by the ICLR'22 code) hold the
classification head, the final ``norm`` and two geometry buffers per attention
(``attn.biases``, ``attn.relative_position_index``), which mmhybrid derives from the group
shape at run time. The CrossFormer++ files (``{'model': state_dict}``, written by the main-branch
code, whose geometry buffers are not persistent) add the activation cooling layers of every
third block, ``layers.i.blocks.j.{ex_conv,ex_ln}.*`` (mmhybrid: ``blocks.j.cooling.{conv,norm}``).
Official dense (det/seg) checkpoints use the same key names under ``backbone.`` (stripped by the
loader).
"""
import re
from typing import Any, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys, rename_prefix)

_DPB_KEY = re.compile(r'^(layers|stages)\.\d+\.blocks\.\d+\.attn\.pos\.pos_proj\.weight$')
_PATCH_EMBED = re.compile(r'^patch_embed\.((?:projs\.\d+|norm)\..+)$')
_BLOCK = re.compile(r'^layers\.(\d+)\.blocks\.(.+)$')
_MERGE = re.compile(r'^layers\.(\d+)\.downsample\.(.+)$')
_OWN = re.compile(r'^stages\.\d+\.(downsample|blocks)\.')
_COOLING = re.compile(r'^(layers|stages)\.\d+\.blocks\.\d+\.(ex_conv|ex_ln|cooling)\.')
# Inside a block: the official names of CrossFormer++'s activation cooling layer.
_BLOCK_RENAMES = (('ex_conv.', 'cooling.conv.'), ('ex_ln.', 'cooling.norm.'))
_DROPPED = re.compile(r'^(head\.|norm\.)|\.attn\.(biases|relative_position_index)$|\.attn_mask$')


def is_crossformer(state_dict: Mapping[str, Any]) -> bool:
    """True for CrossFormer weights: a dynamic position bias MLP inside numbered blocks."""
    return any(_DPB_KEY.match(k) for k in state_dict)


def is_crossformerpp(state_dict: Mapping[str, Any]) -> bool:
    """True for CrossFormer++ weights (official or mmhybrid layout): activation cooling layers.
    """
    return any(_COOLING.match(k) for k in state_dict)


def _is_dropped(key: str) -> bool:
    return bool(_DROPPED.search(key))


def _rename_key(key: str) -> Optional[str]:
    new_key = None
    if _OWN.match(key):
        new_key = key
    elif m := _PATCH_EMBED.match(key):
        new_key = f'stages.0.downsample.{m.group(1)}'
    elif m := _BLOCK.match(key):
        block, _, rest = m.group(2).partition('.')
        new_key = f'stages.{m.group(1)}.blocks.{block}.{rename_prefix(rest, _BLOCK_RENAMES)}'
    elif m := _MERGE.match(key):
        new_key = f'stages.{int(m.group(1)) + 1}.downsample.{m.group(2)}'
    return new_key


def convert_crossformer(
        state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official CrossFormer state dict onto :class:`mmhybrid.CrossFormer`.

    ``patch_embed.*`` → ``stages.0.downsample.*``, ``layers.i.blocks.*`` →
    ``stages.i.blocks.*`` (CrossFormer++: ``ex_conv`` / ``ex_ln`` → ``cooling.conv`` /
    ``cooling.norm``), ``layers.i.downsample.*`` → ``stages.{i+1}.downsample.*``; drops
    ``head.*``, the final ``norm.*`` and the derived ``attn.biases`` /
    ``attn.relative_position_index`` buffers. Keys already in mmhybrid's layout pass unchanged.
    """
    return remap_keys(state_dict, 'crossformer', _rename_key, _is_dropped)


register_converter(FamilyConverter(family='crossformer', model_type='CrossFormer',
                                   detect=is_crossformer, convert=convert_crossformer))
