"""mmhybrid's registries: children of mmengine's root registries.

Configs refer to our backbones as ``type='mmhybrid.VAN'``; mmdet's and mmseg's ``MODELS`` find
them through this child registry (scope ``mmhybrid``), which imports ``mmhybrid.models`` on demand.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmhybrid',
                  locations=['mmhybrid.models'])

# Training hooks, e.g. ``custom_hooks=[dict(type='mmhybrid.DeterministicResumeHook')]``.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmhybrid', locations=['mmhybrid.engine'])

# ``constructor='mmhybrid.PlainGroupsOptimWrapperConstructor'`` (configs with a paramwise_cfg).
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='mmhybrid', locations=['mmhybrid.engine'])

# ``mmhybrid.Pretrained``: the checked loader of the authors' files, to which every backbone
# routes its ``init_cfg=dict(type='Pretrained', ...)`` entries (see ``mmhybrid.checkpoint``).
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               scope='mmhybrid', locations=['mmhybrid.checkpoint'])

__all__ = ['MODELS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'WEIGHT_INITIALIZERS']
