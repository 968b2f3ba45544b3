"""Backbones named as the tools name them: ``family:arch`` (``van:b2``, ``crossformer:small``)."""
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from .. import models  # noqa: F401  (registers the backbones)
from ..registry import MODELS

# What ``all`` stands for: the variant of each family the papers compare at ~25M params.
DEFAULT_SPECS = ['crossformer:small', 'uniformer:small', 'cmt:small', 'hatnet:small',
                 'transcnn:small', 'van:b2']


def _registered_names() -> Dict[str, str]:
    return {name.lower(): name for name in MODELS.module_dict}


def resolve_specs(specs: List[str]) -> List[str]:
    """``['all']`` becomes :data:`DEFAULT_SPECS` (less any family not registered); other specs are
    checked against the registry.

    Raises:
        ValueError: A spec names no registered backbone.
    """
    names = _registered_names()
    result = []
    for spec in (DEFAULT_SPECS if specs == ['all'] else specs):
        family = spec.split(':')[0].lower()
        if family in names:
            result.append(spec)
        elif specs != ['all']:
            raise ValueError(f'unknown backbone {spec!r}; registered: {sorted(names)}')
    return result


def build_backbone(spec: str, kwargs: Optional[Dict[str, Any]] = None) -> nn.Module:
    """The backbone of ``spec`` (``family`` or ``family:arch``), built with ``kwargs``.

    Raises:
        ValueError: The family is not registered.
    """
    family, _, arch = spec.partition(':')
    names = _registered_names()
    if family.lower() not in names:
        raise ValueError(f'unknown backbone {spec!r}; registered: {sorted(names)}')
    cfg = dict(type=f'mmhybrid.{names[family.lower()]}', **(kwargs or {}))
    if arch:
        cfg['arch'] = arch
    return MODELS.build(cfg)


def build_config_model(config: Union[str, Config],
                       cfg_options: Optional[Dict[str, Any]] = None,
                       device: Optional[str] = None) -> nn.Module:
    """The model of an mmdet/mmseg config, built in the config's registry scope with the backbone
    from scratch (``init_cfg=None``: nothing is read from disk). ``device='meta'`` builds it
    without memory or initialisation, for key and shape checks.
    """
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.backbone.init_cfg = None
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    # Imported here, not at the top: only the config's own codebase is needed, and importing
    # mmdet or mmseg costs seconds.
    if scope == 'mmdet':
        from mmdet.registry import MODELS as SCOPE_MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS as SCOPE_MODELS
    else:
        raise ValueError(f'config scope {scope!r}: expected an mmdet or mmseg config')
    if device is None:
        return SCOPE_MODELS.build(cfg.model)
    with torch.device(device):
        return SCOPE_MODELS.build(cfg.model)
