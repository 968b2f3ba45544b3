"""Crash-safe checkpoint writes."""
import os

import pytest
from mmengine.fileio import get_file_backend

import mmhybrid  # noqa: F401
from mmhybrid.engine import ATOMIC_BACKEND, AtomicLocalBackend


def test_backend_is_registered(tmp_path):
    backend = get_file_backend(str(tmp_path / 'x.pth'), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)


def test_put_is_atomic(tmp_path, monkeypatch):
    backend = AtomicLocalBackend()
    target = tmp_path / 'epoch_1.pth'
    backend.put(b'complete checkpoint', target)
    assert target.read_bytes() == b'complete checkpoint'

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new bytes that never land', target)
    assert target.read_bytes() == b'complete checkpoint'
    assert os.listdir(tmp_path) == ['epoch_1.pth'], 'temporary file left behind'
    monkeypatch.undo()
    backend.put_text('work_dirs/x/epoch_1.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'work_dirs/x/epoch_1.pth'
