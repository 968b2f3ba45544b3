"""A local file backend whose writes are atomic, for crash-safe checkpoints.

mmengine writes checkpoints with ``LocalBackend.put``: a process killed mid-write leaves a
truncated ``epoch_N.pth`` that ``--resume`` then picks up. This backend writes to a temporary file
in the same folder, fsyncs it and renames it over the target, so a checkpoint file is either the old
one, absent, or complete. Select it with
``default_hooks.checkpoint.backend_args=dict(backend='mmhybrid_atomic_local')`` (``tools/train.py``
does so unless the config chose a backend).
"""
import os
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'mmhybrid_atomic_local'


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Writes ``data`` to ``filepath`` through a temporary file and an atomic rename."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(filepath) + '.', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
