"""Safe loading and conversion of the authors' released checkpoints (backbones, and whole
detectors/segmenters: :mod:`.dense`).

Importing the package registers every family's converter and the checked ``mmhybrid.Pretrained``
weight initializer.
"""
from . import cmt, crossformer, transcnn, uniformer, van  # noqa: F401  (register converters)
from .core import (CONVERTERS, CheckedPretrainedInit, CheckpointMismatchError, ConversionReport,
                   FamilyConverter, convert_state_dict, detect_family, get_converter,
                   load_converted, load_pretrained, match_arch, read_checkpoint,
                   register_converter, save_state_dict, strip_prefix, unwrap_state_dict)
from .dense import (DenseConversion, DenseReport, check_fits_model, convert_any_checkpoint_file,
                    convert_dense_checkpoint_file, convert_dense_state_dict, is_dense_model)
from .safe_globals import mmengine_safe_globals, register_mmengine_safe_globals
from .safe_load import CheckpointLoadError, InertObject, load_foreign_checkpoint

__all__ = [
    'CONVERTERS', 'CheckedPretrainedInit', 'CheckpointLoadError', 'CheckpointMismatchError',
    'ConversionReport', 'DenseConversion', 'DenseReport', 'FamilyConverter', 'InertObject',
    'check_fits_model', 'convert_any_checkpoint_file', 'convert_dense_checkpoint_file',
    'convert_dense_state_dict', 'convert_state_dict', 'detect_family', 'is_dense_model',
    'get_converter', 'load_converted', 'load_foreign_checkpoint', 'load_pretrained',
    'match_arch', 'mmengine_safe_globals', 'read_checkpoint', 'register_converter',
    'register_mmengine_safe_globals', 'save_state_dict', 'strip_prefix', 'unwrap_state_dict'
]
