"""TransCNN (v1) and HAT-Net (v2) checkpoints: the files released in ``yun-liu/TransCNN``.

Both share the official key layout ``patch_embed.{0,1,3}``, ``blocks.<stage>.<block>.{attn,conv}``
and ``ds{2,3,4}``; they differ in their norms and downsampling:

- HAT-Net: GroupNorm (no running statistics); the inverted residual starts with a norm, so
  ``conv.conv1.0.weight`` is 1-D; ``ds*.norm``; unused ``attn.proj_norm`` (dropped).
- TransCNN: BatchNorm (``running_mean``...); ``conv.conv1.0.weight`` is a 4-D conv;
  two-branch ``ds*.{conv,norm1,residual,norm2}``.

mmhybrid's own layouts are recognised by the IRB names (``irb.norm_in`` for HAT-Net,
``irb.norm1`` for TransCNN) under ``stages.<i>.blocks.<j>.``.
"""
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from .core import (ConversionReport, FamilyConverter, StateDict, register_converter,
                   remap_keys)

_OFFICIAL_IRB = re.compile(r'^blocks\.\d+\.\d+\.conv\.conv1\.0\.weight$')
_OFFICIAL_QKV = re.compile(r'^blocks\.\d+\.\d+\.attn\.qkv\.weight$')
_OWN_QKV = re.compile(r'^stages\.\d+\.blocks\.\d+\.attn\.qkv\.weight$')
_OWN_HATNET_IRB = re.compile(r'^stages\.\d+\.blocks\.\d+\.irb\.norm_in\.weight$')
_OWN_TRANSCNN_IRB = re.compile(r'^stages\.\d+\.blocks\.\d+\.irb\.norm1\.running_mean$')
_OWN = re.compile(r'^stages\.\d+\.(downsample|blocks)\.')

_STEM = re.compile(r'^patch_embed\.(\d)\.(.+)$')
_STEM_PARTS = {'0': 'conv1', '1': 'norm', '3': 'conv2'}
_DOWNSAMPLE = re.compile(r'^ds(\d)\.(.+)$')
_BLOCK = re.compile(r'^blocks\.(\d+)\.(\d+)\.(attn|conv)\.(.+)$')
_IRB_PARTS = {
    'hatnet': {'conv1.0': 'norm_in', 'conv1.1': 'pw1', 'conv2.0': 'dw', 'conv3.0': 'pw2',
               'conv3.1': 'norm_out'},
    'transcnn': {'conv1.0': 'pw1', 'conv1.1': 'norm1', 'conv2.0': 'dw', 'conv2.1': 'norm2',
                 'conv3.0': 'pw2', 'conv3.1': 'norm3'},
}
_IRB_KEY = re.compile(r'^(conv\d\.\d)\.(.+)$')


def _official_kind(state_dict: Mapping[str, Any]) -> Optional[str]:
    """``'hatnet'`` / ``'transcnn'`` for the official layout, else ``None``."""
    if not any(_OFFICIAL_QKV.match(k) for k in state_dict):
        return None
    for key, value in state_dict.items():
        if _OFFICIAL_IRB.match(key):
            ndim = getattr(value, 'ndim', None)
            if ndim == 1:
                return 'hatnet'
            if ndim == 4:
                return 'transcnn'
    return None


def _own_kind(state_dict: Mapping[str, Any]) -> Optional[str]:
    if not any(_OWN_QKV.match(k) for k in state_dict):
        return None
    if any(_OWN_HATNET_IRB.match(k) for k in state_dict):
        return 'hatnet'
    if any(_OWN_TRANSCNN_IRB.match(k) for k in state_dict):
        return 'transcnn'
    return None


def is_hatnet(state_dict: Mapping[str, Any]) -> bool:
    return 'hatnet' in (_official_kind(state_dict), _own_kind(state_dict))


def is_transcnn(state_dict: Mapping[str, Any]) -> bool:
    return 'transcnn' in (_official_kind(state_dict), _own_kind(state_dict))


def _is_dropped(key: str) -> bool:
    # The classification head, and HAT-Net's proj_norm, which the official forward never uses
    # (kept, it would leave parameters without gradient under DDP).
    return key.startswith('classifier.') or '.attn.proj_norm.' in key


def _rename_key(key: str, irb_parts: Dict[str, str]) -> Optional[str]:
    if _OWN.match(key):
        return key
    if m := _STEM.match(key):
        part = _STEM_PARTS.get(m.group(1))
        return None if part is None else f'stages.0.downsample.{part}.{m.group(2)}'
    if m := _DOWNSAMPLE.match(key):
        if m.group(1) in '234':
            return f'stages.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
        return None
    if m := _BLOCK.match(key):
        prefix = f'stages.{m.group(1)}.blocks.{m.group(2)}.'
        if m.group(3) == 'attn':
            return prefix + 'attn.' + m.group(4)
        if (irb := _IRB_KEY.match(m.group(4))) and irb.group(1) in irb_parts:
            return f'{prefix}irb.{irb_parts[irb.group(1)]}.{irb.group(2)}'
    return None


def _convert(state_dict: Mapping[str, torch.Tensor],
             family: str) -> Tuple[StateDict, ConversionReport]:
    irb_parts = _IRB_PARTS[family]
    return remap_keys(state_dict, family, lambda key: _rename_key(key, irb_parts), _is_dropped)


def convert_hatnet(state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official HAT-Net state dict onto :class:`mmhybrid.HATNet`.

    Drops the classifier and the unused ``attn.proj_norm``; keys already in mmhybrid's layout
    pass unchanged.
    """
    return _convert(state_dict, 'hatnet')


def convert_transcnn(
        state_dict: Mapping[str, torch.Tensor]) -> Tuple[StateDict, ConversionReport]:
    """Maps an official TransCNN (v1) state dict onto :class:`mmhybrid.TransCNN`.

    Drops the classifier; keys already in mmhybrid's layout pass unchanged.
    """
    return _convert(state_dict, 'transcnn')


register_converter(FamilyConverter(family='hatnet', model_type='HATNet', detect=is_hatnet,
                                   convert=convert_hatnet))
register_converter(FamilyConverter(family='transcnn', model_type='TransCNN',
                                   detect=is_transcnn, convert=convert_transcnn))
