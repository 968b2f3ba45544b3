"""The official codes' default initialisation, as one pass over the modules."""
import math
from typing import Optional

import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_

CONV_INITS = ('trunc_normal', 'fan_out', 'fan_out_per_group')


def init_official_weights_(module: nn.Module,
                           conv: Optional[str] = None,
                           layer_norm: bool = False,
                           std: float = .02) -> None:
    """Initialises ``module`` in place as the official ``_init_weights`` functions do.

    Every ``nn.Linear``: truncated normal (``std``), zero bias. Every ``nn.Conv2d`` by
    ``conv``: ``None`` keeps PyTorch's default; ``'trunc_normal'`` as the Linears;
    ``'fan_out'`` He-normal over ``k*k*out`` (``kaiming_normal_(mode='fan_out')``, CMT);
    ``'fan_out_per_group'`` over ``k*k*out/groups`` (VAN); conv biases zero. With
    ``layer_norm`` every LayerNorm becomes the identity. One pass in module order, so the
    random draws follow the official order.
    """
    if conv is not None and conv not in CONV_INITS:
        raise ValueError(f'conv init must be None or one of {CONV_INITS}, got {conv!r}')
    for m in module.modules():
        if isinstance(m, nn.Linear) or (conv == 'trunc_normal' and isinstance(m, nn.Conv2d)):
            trunc_normal_(m.weight, std=std)
        elif conv is not None and isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            if conv == 'fan_out_per_group':
                fan_out //= m.groups
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        elif layer_norm and isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            continue
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
