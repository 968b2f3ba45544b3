"""Utilities: backbones by ``family:arch`` name, frozen compiled inference, complexity counting,
benchmarks (``mmhybrid.utils.benchmark``)."""
from .build import DEFAULT_SPECS, build_backbone, build_config_model, resolve_specs
from .compile import compile_frozen
from .complexity import (ComplexityRow, backbone_complexity, config_complexity, count_macs,
                         count_params, format_complexity)

__all__ = ['DEFAULT_SPECS', 'build_backbone', 'build_config_model', 'resolve_specs',
           'compile_frozen', 'ComplexityRow', 'backbone_complexity', 'config_complexity',
           'count_macs', 'count_params', 'format_complexity']
