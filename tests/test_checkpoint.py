"""Safe loading of foreign checkpoints and mmengine resume allow-listing (conversion of the
official files and the converter CLI: test_converters.py)."""
import argparse
import io
import os
import sys
import types

import numpy as np
import pytest
import torch

from mmhybrid.checkpoint import (CheckpointLoadError, CheckpointMismatchError, InertObject,
                                 load_foreign_checkpoint, unwrap_state_dict)
from mmhybrid.models import VAN


class _SomeTrainerConfig:  # a class the loading process cannot import by name later
    def __init__(self):
        self.lr = 0.1


class _Payload:
    """Unpickling this would create a file: the restricted loader must not run it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f'touch {self.target}', ))


def test_namespace_and_unknown_class_load_with_tensors_intact(tmp_path):
    weights = {'a.weight': torch.randn(3, 4), 'a.bias': torch.randn(3)}
    path = tmp_path / 'ckpt.pth'
    # Pickle an object of a module that exists only while saving (like a training repo's
    # config class that the loading machine does not have).
    module = types.ModuleType('some_training_repo_config')
    module._SomeTrainerConfig = _SomeTrainerConfig
    _SomeTrainerConfig.__module__ = module.__name__
    sys.modules[module.__name__] = module
    try:
        torch.save({'model': weights, 'args': argparse.Namespace(lr=0.1, epochs=300),
                    'config': _SomeTrainerConfig(), 'epoch': np.int64(299)}, path)
    finally:
        _SomeTrainerConfig.__module__ = __name__
        del sys.modules[module.__name__]
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    obj = load_foreign_checkpoint(path)
    assert isinstance(obj['args'], InertObject) and isinstance(obj['config'], InertObject)
    assert 'Namespace' in repr(obj['args'])
    for key, value in weights.items():
        assert torch.equal(obj['model'][key], value)
    assert list(unwrap_state_dict(obj)) == list(weights)


def test_malicious_pickle_does_not_run(tmp_path):
    target = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': _Payload(target)}, path)
    obj = load_foreign_checkpoint(path)
    assert not target.exists(), 'loading executed code from the checkpoint'
    assert isinstance(obj['x'], InertObject)
    assert torch.equal(obj['state_dict']['w'], torch.ones(1))


def test_legacy_format_payload_does_not_run(tmp_path):
    target = tmp_path / 'pwned_legacy'
    path = tmp_path / 'evil_legacy.pth'
    torch.save({'w': torch.ones(2), 'x': _Payload(target)}, path,
               _use_new_zipfile_serialization=False)
    obj = load_foreign_checkpoint(path)
    assert not target.exists()
    assert torch.equal(obj['w'], torch.ones(2))


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'garbage', 'missing'])
def test_unreadable_files_are_clear_errors(tmp_path, damage):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.randn(100, 100)}}, good)
    bad = tmp_path / 'bad.pth'
    data = good.read_bytes()
    if damage == 'truncated':
        bad.write_bytes(data[:len(data) // 2])
    elif damage == 'empty':
        bad.write_bytes(b'')
    elif damage == 'garbage':
        bad.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(CheckpointLoadError, match='bad.pth'):
        load_foreign_checkpoint(bad)


def test_other_family_is_rejected(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'model': {'layers.0.blocks.0.attn.qkv.weight': torch.randn(6, 2)}}, path)
    model = VAN(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                          mlp_ratios=[2, 2, 2, 2]),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointMismatchError, match='not recognised'):
        model.init_weights()


def test_mmengine_checkpoint_loads_weights_only():
    import mmhybrid  # noqa: F401  (registers the allow-list)
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.5)
    obj = {'message_hub': {'log_scalars': {'loss': buffer},
                           'runtime_info': {'iter': np.int64(3), 'arr': np.zeros(2, np.float32)}},
           'meta': {'seed': np.array([1]), 'lr': np.float64(0.1)}}
    data = io.BytesIO()
    torch.save(obj, data)
    data.seek(0)
    loaded = torch.load(data, weights_only=True)
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5
    assert loaded['meta']['lr'] == 0.1
