"""mmhybrid: hybrid CNN-Transformer backbones for OpenMMLab 2.x.

Importing the package registers the backbones in the ``mmhybrid`` registry scope and allow-lists
the few mmengine/numpy types that mmengine's own training checkpoints need under torch's
``weights_only`` loading, so that ``--resume`` and testing a saved checkpoint work on torch >= 2.6.
It also registers what our configs may name in any runner, mmdet's and mmseg's own tools
included: the hooks (``mmhybrid.DeterministicResumeHook``, ``mmhybrid.WeightSyncCheckHook``), the
atomic checkpoint file backend and the ``CPUDistributedDataParallel`` model wrapper.
``mmhybrid.optimize_for_inference(model)`` and ``mmhybrid.optimize_for_training(model)`` swap
the CPU fast paths of :mod:`mmhybrid.accel` into a model, in place.
"""
from .version import __version__
from .checkpoint.safe_globals import register_mmengine_safe_globals
from .registry import MODELS
from . import engine  # noqa: F401  (registers the hooks, the file backend, the CPU DDP wrapper)
from . import models  # noqa: F401  (registers the backbones)

register_mmengine_safe_globals()

__all__ = ['__version__', 'MODELS', 'optimize_for_inference', 'optimize_for_training']


def __getattr__(name: str):
    # The CPU fast paths load on first use (mmhybrid.accel), not with every import of mmhybrid.
    if name in ('optimize_for_inference', 'optimize_for_training'):
        from . import accel
        return getattr(accel, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
