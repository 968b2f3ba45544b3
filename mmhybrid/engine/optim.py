"""Optimizer wrapper construction that torch.compile can trace.

mmengine's ``compile=True`` compiles the whole ``train_step``, the optimizer step included.
``DefaultOptimWrapperConstructor`` with a ``paramwise_cfg`` hands its parameter groups to the
optimizer inside a ``ConfigDict``, which turns every group into a ``ConfigDict``; dynamo cannot
trace an optimizer step over such groups (``'UserDefinedDictVariable' object has no attribute
'items'`` in torch/_dynamo/variables/optimizer.py, torch 2.13). The configs that use a
``paramwise_cfg`` therefore name :class:`PlainGroupsOptimWrapperConstructor`.
"""
import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from mmhybrid.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PlainGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (same arguments, same groups and values), with the
    optimizer's parameter groups as plain dicts, so that ``compile=True`` can trace the step.

    Use: ``optim_wrapper = dict(constructor='mmhybrid.PlainGroupsOptimWrapperConstructor',
    optimizer=..., paramwise_cfg=...)``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        wrapper = super().__call__(model)
        groups = wrapper.optimizer.param_groups
        groups[:] = [dict(group) for group in groups]
        return wrapper
