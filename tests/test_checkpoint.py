"""Safe loading of foreign checkpoints, the converter CLI, and mmengine resume allow-listing."""
import argparse
import hashlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import parity_file
from mmhybrid.checkpoint import (CheckpointLoadError, CheckpointMismatchError, InertObject,
                                 detect_family, load_foreign_checkpoint, unwrap_state_dict)
from mmhybrid.models import VAN

REPO = Path(__file__).resolve().parents[1]


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


def test_detects_van():
    data = parity_file('van_b0_reduced.pth')
    assert detect_family(unwrap_state_dict(data['checkpoint'])) == 'van'


def run_cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def test_convert_cli(tmp_path):
    data = parity_file('van_b0_reduced.pth')
    src = tmp_path / 'van_b0_reduced.pth.tar'
    torch.save(data['checkpoint'], src)
    src_bytes = src.read_bytes()
    dst = tmp_path / 'out' / 'van.pth'
    arch = '{"embed_dims": [16, 32, 80, 128], "depths": [1, 1, 2, 1], "mlp_ratios": [8, 8, 4, 4]}'
    # Without --arch, no official variant matches the reduced model: refuse, write nothing.
    result = run_cli(src, dst)
    assert result.returncode == 1 and 'matches no variant' in result.stderr
    assert not dst.exists()
    result = run_cli(src, dst, '--arch', arch)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()
    assert f'sha256: {digest}' in result.stdout
    assert 'dropped [2]: head.weight, head.bias' in result.stdout
    assert src.read_bytes() == src_bytes
    sd = torch.load(dst, weights_only=True)
    model = VAN(arch=dict(embed_dims=[16, 32, 80, 128], depths=[1, 1, 2, 1],
                          mlp_ratios=[8, 8, 4, 4]))
    model.load_state_dict(sd, strict=True)
    assert not [p for p in tmp_path.joinpath('out').iterdir() if p.name != 'van.pth'], \
        'temporary files left behind'
    # Existing DST is kept unless --overwrite; SRC is never a destination.
    assert run_cli(src, dst, '--arch', arch).returncode == 1
    assert run_cli(src, dst, '--arch', arch, '--overwrite').returncode == 0
    result = run_cli(src, src, '--arch', arch, '--overwrite')
    assert result.returncode == 1 and 'over its source' in result.stderr
    assert src.read_bytes() == src_bytes
    # A converted file converts again to the same thing (idempotent) and checks clean.
    assert run_cli(dst, '--check', '--arch', arch).returncode == 0


def test_convert_cli_unmatched_keys_fail(tmp_path):
    data = parity_file('van_b0_reduced.pth')
    sd = dict(data['checkpoint']['state_dict'])
    sd['some_extra.weight'] = torch.zeros(3)
    src = tmp_path / 'extra.pth'
    torch.save({'state_dict': sd}, src)
    arch = '{"embed_dims": [16, 32, 80, 128], "depths": [1, 1, 2, 1], "mlp_ratios": [8, 8, 4, 4]}'
    result = run_cli(src, tmp_path / 'dst.pth', '--arch', arch)
    assert result.returncode == 1
    assert 'some_extra.weight' in result.stderr
    assert not (tmp_path / 'dst.pth').exists()


def test_convert_cli_finds_the_official_arch(tmp_path):
    torch.manual_seed(0)
    model = VAN(arch='b0')
    official = {}
    for key, value in model.state_dict().items():  # back to the official key layout
        stage, rest = int(key.split('.')[1]), key.split('.', 2)[2]
        if rest.startswith('downsample.'):
            official[f'patch_embed{stage + 1}.' + rest[len('downsample.'):]] = value
        elif rest.startswith('norm.'):
            official[f'norm{stage + 1}.' + rest[len('norm.'):]] = value
        else:
            rest = rest[len('blocks.'):].replace('attn.lka.', 'attn.spatial_gating_unit.')
            rest = rest.replace('mlp.dwconv.', 'mlp.dwconv.dwconv.')
            official[f'block{stage + 1}.{rest}'] = value
    official['head.weight'] = torch.zeros(1000, 256)
    src = tmp_path / 'van_b0.pth.tar'
    torch.save({'state_dict': official}, src)
    result = run_cli(src, tmp_path / 'b0.pth')
    assert result.returncode == 0, result.stderr
    assert 'arch: b0' in result.stdout


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
