"""Safe loading and conversion of the authors' released checkpoints."""
from .core import (CONVERTERS, CheckpointMismatchError, ConversionReport, FamilyConverter,
                   convert_state_dict, detect_family, get_converter, load_converted,
                   load_pretrained, match_arch, read_checkpoint, register_converter,
                   save_state_dict, strip_prefix, unwrap_state_dict)
from .safe_load import CheckpointLoadError, InertObject, load_foreign_checkpoint
from .safe_globals import mmengine_safe_globals, register_mmengine_safe_globals

__all__ = [
    'CONVERTERS', 'CheckpointLoadError', 'CheckpointMismatchError', 'ConversionReport',
    'FamilyConverter', 'InertObject', 'convert_state_dict', 'detect_family', 'get_converter',
    'load_converted', 'load_foreign_checkpoint', 'load_pretrained', 'match_arch',
    'mmengine_safe_globals', 'read_checkpoint', 'register_converter',
    'register_mmengine_safe_globals', 'save_state_dict', 'strip_prefix', 'unwrap_state_dict'
]
