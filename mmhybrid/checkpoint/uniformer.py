"""UniFormer and UniFormer-light checkpoints: official ImageNet files and official det/seg
backbone checkpoints."""
import re
from typing import Any, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys)

_PATCH_EMBED = re.compile(r'^patch_embed([1-4])\.(.+)$')
_BLOCK = re.compile(r'^blocks([1-4])\.(\d+)\.(.+)$')
_OUT_NORM = re.compile(r'^norm([1-4])\.(weight|bias)$')  # the dense code's per-output LayerNorms
_OWN = re.compile(r'^(stages\.\d\.(downsample|blocks)\.|out_norms\.\d\.)')
# UniFormer-light's class token (stage 3) and its projection to stage 4's width.
_CLASS_TOKEN = {'cls_token': 'stages.2.cls_token',
                'cls_upsample.weight': 'stages.3.cls_upsample.weight',
                'cls_upsample.bias': 'stages.3.cls_upsample.bias'}
# The local MHRA's depth-wise conv is called `attn` and holds a weight directly: no other family
# has `blocks...attn.weight`.
_MARK = re.compile(r'^(blocks1|stages\.0\.blocks)\.\d+\.attn\.weight$')


def _has_uniformer_blocks(state_dict: Mapping[str, Any]) -> bool:
    return any(_MARK.match(k) for k in state_dict) and any(
        k.endswith('.conv1.weight') and k.startswith(('blocks1.', 'stages.0.blocks.'))
        for k in state_dict)


def _has_class_token(state_dict: Mapping[str, Any]) -> bool:
    return any(k in _CLASS_TOKEN or k in _CLASS_TOKEN.values() for k in state_dict)


def is_uniformer(state_dict: Mapping[str, Any]) -> bool:
    """True for UniFormer keys: official (``blocks1.*``) or mmhybrid's (``stages.0.blocks.*``),
    without UniFormer-light's class token."""
    return _has_uniformer_blocks(state_dict) and not _has_class_token(state_dict)


def is_uniformer_light(state_dict: Mapping[str, Any]) -> bool:
    """True for UniFormer-light keys: UniFormer's blocks and a class token (``cls_token``,
    ``cls_upsample``; mmhybrid's ``stages.2.cls_token``, ``stages.3.cls_upsample``)."""
    return _has_uniformer_blocks(state_dict) and _has_class_token(state_dict)


def _is_dropped(key: str) -> bool:
    return key.startswith(('head.', 'norm.'))


def _is_dropped_light(key: str) -> bool:
    # The ImageNet model's second classifier (on the class token) and its LayerNorm.
    return _is_dropped(key) or key.startswith(('head_cls.', 'norm_cls.'))


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


def _rename_key_light(key: str) -> Optional[str]:
    if key in _CLASS_TOKEN.values():
        return key
    return _CLASS_TOKEN.get(key) or _rename_key(key)


def convert_uniformer(
        state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official UniFormer state dict onto :class:`mmhybrid.UniFormer`.

    Drops the classifier (``head.*``) and the classification BatchNorm (``norm.*``); the dense
    code's ``norm1..4`` become ``out_norms.0..3``. Keys in mmhybrid's layout pass unchanged.
    """
    return remap_keys(state_dict, 'uniformer', _rename_key, _is_dropped)


register_converter(FamilyConverter(family='uniformer', model_type='UniFormer',
                                   detect=is_uniformer, convert=convert_uniformer))


def convert_uniformer_light(
        state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official UniFormer-light state dict onto :class:`mmhybrid.UniFormerLight`.

    As :func:`convert_uniformer`, and ``cls_token`` / ``cls_upsample`` become
    ``stages.2.cls_token`` / ``stages.3.cls_upsample``; the ImageNet model's class-token
    classifier (``head_cls.*``, ``norm_cls.*``) is dropped too.
    """
    return remap_keys(state_dict, 'uniformer_light', _rename_key_light, _is_dropped_light)


register_converter(FamilyConverter(family='uniformer_light', model_type='UniFormerLight',
                                   detect=is_uniformer_light, convert=convert_uniformer_light))
