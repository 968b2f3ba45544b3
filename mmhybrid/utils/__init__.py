"""Utilities: backbones by ``family:arch`` name, complexity counting, benchmarks
(``mmhybrid.utils.benchmark``)."""
from .build import DEFAULT_SPECS, build_backbone, build_config_model, resolve_specs
from .complexity import (ComplexityRow, backbone_complexity, config_complexity, count_macs,
                         count_params, format_complexity)

__all__ = ['DEFAULT_SPECS', 'build_backbone', 'build_config_model', 'resolve_specs',
           'ComplexityRow', 'backbone_complexity', 'config_complexity', 'count_macs', 'count_params',
           'format_complexity']
