"""Loading foreign checkpoint files without executing code from them.

Released ImageNet checkpoints often pickle non-tensor objects next to the weights (yacs
configs, argparse Namespaces, numpy scalars), which torch's ``weights_only=True`` loader
refuses. Rather than turning ``weights_only`` off (which lets a file run arbitrary code),
:func:`load_foreign_checkpoint` falls back to a restricted unpickler: it resolves only the
globals that torch's own weights-only unpickler allows (tensors, storages, containers) and
replaces every other global by an inert placeholder that is never called.
"""
import os
import pickle
import zipfile
from typing import Any, Dict, Tuple

import torch
from torch import _weights_only_unpickler


class CheckpointLoadError(ValueError):
    """A checkpoint file could not be read (missing, truncated, corrupt or not a checkpoint)."""


def without_unsafe_advice(text: str) -> str:
    """``text`` (an error message of ``torch.load``) without its lines about ``weights_only``.

    torch's weights-only errors advise loading with ``weights_only=False``, which would run a
    hostile file's code: that advice is never passed on. What is left is the unpickler's own
    complaint (e.g. ``Unsupported operand 63``).
    """
    kept = [line for line in text.splitlines() if line.strip() and 'weights_only' not in line]
    return '\n'.join(kept).strip() or 'torch could not unpickle the file'


class InertObject:
    """Stands in for an object of a class the checkpoint names but we refuse to import.

    The original ``module.name`` is kept in ``_mmhybrid_global``; constructor arguments and
    pickled state are stored, never interpreted.
    """

    _mmhybrid_global = '?'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._mmhybrid_args = args
        self._mmhybrid_kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self._mmhybrid_state = state

    def __repr__(self) -> str:
        return f'<inert {self._mmhybrid_global}>'


_PLACEHOLDERS: Dict[Tuple[str, str], type] = {}


def _placeholder(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = type(f'Inert_{name}', (InertObject, ),
                                  {'_mmhybrid_global': f'{module}.{name}'})
    return _PLACEHOLDERS[key]


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module: str, name: str) -> Any:
        allowed = _weights_only_unpickler._get_allowed_globals()
        full = f'{module}.{name}'
        if full in allowed:
            return allowed[full]
        # Placeholders are classes that accept anything; calling one (REDUCE/NEWOBJ/BUILD)
        # only records its arguments, so no code named by the file ever runs.
        return _placeholder(module, name)


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` that only uses the restricted unpickler."""
    Unpickler = _RestrictedUnpickler
    __name__ = 'mmhybrid_restricted_pickle'

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()


def load_foreign_checkpoint(path: str) -> Any:
    """Loads a checkpoint file on the CPU without executing code from it.

    Args:
        path: Path of a ``.pth`` / ``.pth.tar`` / ``.pt`` file.

    Returns:
        The unpickled object. Tensors are intact; objects of classes outside torch's
        weights-only allow-list are :class:`InertObject` placeholders.

    Raises:
        CheckpointLoadError: The file is missing, empty, truncated or not a torch checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointLoadError(f'checkpoint file not found: {path}')
    if os.path.getsize(path) == 0:
        raise CheckpointLoadError(f'checkpoint file is empty: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        pass  # it pickles objects beyond the allow-list: use the restricted unpickler
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointLoadError(f'cannot read checkpoint {path}: it looks truncated or '
                                  f'corrupt ({type(error).__name__}: '
                                  f'{without_unsafe_advice(str(error))})') from error
    try:
        return torch.load(path, map_location='cpu', weights_only=False,
                          pickle_module=_RestrictedPickleModule)
    except Exception as error:  # noqa: BLE001 - any failure here means an unreadable file
        raise CheckpointLoadError(f'cannot read checkpoint {path}: {type(error).__name__}: '
                                  f'{without_unsafe_advice(str(error))}') from error
