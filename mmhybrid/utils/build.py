"""Backbones named as the tools name them: ``family:arch`` (``van:b2``, ``crossformer:small``)."""
from typing import Any, Dict, List, Optional

import torch.nn as nn

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
