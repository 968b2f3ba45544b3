"""Allow-listing the types mmengine's own training checkpoints hold (torch >= 2.6).

With torch >= 2.6, ``torch.load`` defaults to ``weights_only=True`` and mmengine 0.10.7 cannot
read back its own checkpoints (message hub ``HistoryBuffer`` objects, numpy arrays and
scalars), so ``--resume`` and testing a saved checkpoint fail. We allow-list exactly these
types instead of disabling ``weights_only`` globally. The list is what
``torch.serialization.get_unsafe_globals_in_checkpoint`` reports for checkpoints written by
mmdet 3.3 / mmseg 1.2.2 training with numpy 2.
"""
import builtins
from typing import List

import torch

_REGISTERED = False


def mmengine_safe_globals() -> List[object]:
    """The globals an mmengine training checkpoint needs beyond torch's defaults."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    # builtins.getattr is how numpy pickles dtypes; in the weights-only unpickler it may only
    # fetch attributes of the other allow-listed objects.
    dtype_classes = [type(np.dtype(t)) for t in ('f2', 'f4', 'f8', 'i1', 'i2', 'i4', 'i8',
                                                'u1', 'u2', 'u4', 'u8', '?')]
    return [HistoryBuffer, _reconstruct, scalar, np.dtype, np.ndarray, builtins.getattr,
            *dtype_classes]


def register_mmengine_safe_globals() -> None:
    """Registers :func:`mmengine_safe_globals` with torch once per process."""
    global _REGISTERED
    if _REGISTERED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals(mmengine_safe_globals())
    _REGISTERED = True
