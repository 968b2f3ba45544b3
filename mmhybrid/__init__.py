"""mmhybrid: hybrid CNN-Transformer backbones for OpenMMLab 2.x.

Importing the package registers the backbones in the ``mmhybrid`` registry scope and allow-lists
the few mmengine/numpy types that mmengine's own training checkpoints need under torch's
``weights_only`` loading, so that ``--resume`` and testing a saved checkpoint work on torch >= 2.6.
It also registers what our configs may name in any runner, mmdet's and mmseg's own tools
included: the hooks (``mmhybrid.DeterministicResumeHook``, ``mmhybrid.WeightSyncCheckHook``), the
atomic checkpoint file backend and the ``CPUDistributedDataParallel`` model wrapper.
"""
from .version import __version__
from .checkpoint.safe_globals import register_mmengine_safe_globals
from .registry import MODELS
from . import engine  # noqa: F401  (registers the hooks, the file backend, the CPU DDP wrapper)
from . import models  # noqa: F401  (registers the backbones)

register_mmengine_safe_globals()

__all__ = ['__version__', 'MODELS']
