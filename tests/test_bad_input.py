"""Every tool ends bad input with one ``error:`` message and exit status 2: no traceback, nothing
written, never the advice to load with ``weights_only=False``; third-party ``pkg_resources``
notices are hidden in the tools unless ``-W`` / ``PYTHONWARNINGS`` ask for them."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmhybrid.datasets import ShapesSpec, generate_shapes
from mmhybrid.engine import BAD_INPUT_EXIT, BadInputError, bad_input_exits

REPO = Path(__file__).resolve().parents[1]
TINY_VAN = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])


def _run(tool: str, *args, cwd: Path, env: dict = None,
         python_args: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python_args, str(REPO / 'tools' / tool),
                           *[str(a) for a in args]],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def _assert_one_message(proc: subprocess.CompletedProcess, *expected: str) -> None:
    assert proc.returncode == BAD_INPUT_EXIT, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert sum(line.startswith(('error:', 'usage:')) for line in proc.stderr.splitlines()) == 1
    assert 'weights_only' not in proc.stderr and 'pkg_resources' not in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr


@pytest.fixture(scope='module')
def seg_config(tmp_path_factory):
    """The demo segmenter on a tiny shapes tree, so that only the checkpoint is at fault."""
    root = tmp_path_factory.mktemp('bad_input')
    data = generate_shapes(root / 'shapes', layouts=['ade20k'],
                           spec=ShapesSpec(num_train=2, num_val=2, image_size=64))['ade20k']
    config = root / 'seg.py'
    config.write_text(
        f"_base_ = [{str(REPO / 'configs/demo/fpn_van_demo.py')!r}]\n"
        f"test_dataloader = dict(dataset=dict(data_root={str(data)!r}))\n")
    return config


@pytest.mark.parametrize('tool', ['train.py', 'test.py', 'get_flops.py'])
def test_missing_config(tool, tmp_path):
    args = ['nope.py'] + (['model.pth'] if tool == 'test.py' else [])
    proc = _run(tool, *args, cwd=tmp_path)
    _assert_one_message(proc, 'config file not found: nope.py')
    assert list(tmp_path.iterdir()) == []


def test_corrupt_checkpoint_is_named_without_unsafe_advice(seg_config, tmp_path):
    checkpoint = tmp_path / 'corrupt.pth'
    checkpoint.write_bytes(bytes(range(256)) * 4)
    # torch's own message advises weights_only=False: it must not be passed on.
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(checkpoint, weights_only=True)
    proc = _run('test.py', seg_config, checkpoint, '--work-dir', tmp_path / 'work', cwd=tmp_path)
    _assert_one_message(proc, f'cannot read checkpoint {checkpoint}', 'tools/train.py')
    assert not (tmp_path / 'work').exists()


def test_backbone_only_checkpoint_is_refused_before_the_work_dir(seg_config, tmp_path):
    from mmhybrid.models import VAN
    checkpoint = tmp_path / 'van_imagenet.pth'
    torch.save({'state_dict': VAN(arch=TINY_VAN).state_dict()}, checkpoint)
    proc = _run('test.py', seg_config, checkpoint, '--work-dir', tmp_path / 'work', cwd=tmp_path)
    _assert_one_message(proc, 'is not a trained detector or segmenter',
                        'tools/convert_checkpoint.py', 'init_cfg')
    assert not (tmp_path / 'work').exists()


def test_convert_checkpoint_bad_arch_json(tmp_path):
    src = tmp_path / 'src.pth'
    src.write_bytes(b'not read')
    proc = _run('convert_checkpoint.py', src, tmp_path / 'dst.pth', '--arch', '{bad json',
                cwd=tmp_path)
    _assert_one_message(proc, '--arch is not valid JSON')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['src.pth']


def test_make_shapes_keeps_a_folder_of_other_files(tmp_path):
    (tmp_path / 'coco').mkdir()
    (tmp_path / 'coco' / 'mine.txt').write_text('keep')
    proc = _run('make_shapes.py', tmp_path, '--layouts', 'coco', cwd=tmp_path)
    _assert_one_message(proc, f'{tmp_path / "coco"} exists, is not empty', 'new or empty folder')
    assert [p.name for p in (tmp_path / 'coco').iterdir()] == ['mine.txt']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['coco']


def test_unpickling_errors_of_the_runner_lose_the_unsafe_advice(capsys):
    """mmengine's own ``torch.load`` (``--resume``, ``load_from``) fails with torch's message;
    the tools pass on the unpickler's complaint only."""
    message = ('Weights only load failed. Re-running `torch.load` with `weights_only` set to '
               '`False` will likely succeed, but it can result in arbitrary code execution.\n'
               'WeightsUnpickler error: \n\nUnsupported operand 63\n\nCheck the documentation '
               'of torch.load to learn more about types accepted by default with weights_only')
    with pytest.raises(SystemExit) as exit_info:
        with bad_input_exits():
            raise pickle.UnpicklingError(message)
    assert exit_info.value.code == BAD_INPUT_EXIT
    err = capsys.readouterr().err
    assert 'Unsupported operand 63' in err and 'weights_only' not in err
    assert 'tools/convert_checkpoint.py' in err
    with pytest.raises(SystemExit):
        with bad_input_exits():
            raise BadInputError('--out must be a .pkl/.pickle file')
    assert capsys.readouterr().err == 'error: --out must be a .pkl/.pickle file\n'
    with pytest.raises(KeyError):  # anything else is a bug: its traceback is kept
        with bad_input_exits():
            raise KeyError('bug')


def test_tools_hide_only_the_pkg_resources_notice(tmp_path):
    # Reading an mmseg:: base config is what makes mmengine import pkg_resources.
    args = (REPO / 'configs/seg/fpn_van_b0_40k.py', '--shape', '64', '64')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    asked = _run('get_flops.py', *args, cwd=tmp_path, env=env, python_args=('-W', 'default'))
    assert asked.returncode == 0, asked.stderr[-3000:]
    if 'pkg_resources is deprecated' not in asked.stderr:
        pytest.skip('this setuptools emits no pkg_resources notice')
    plain = _run('get_flops.py', *args, cwd=tmp_path, env=env)
    assert plain.returncode == 0 and 'pkg_resources' not in plain.stderr, plain.stderr
    assert 'UserWarning' in plain.stderr  # mmseg's own notices are not ours to hide
    env['PYTHONWARNINGS'] = 'default'
    chosen = _run('get_flops.py', *args, cwd=tmp_path, env=env)
    assert 'pkg_resources is deprecated' in chosen.stderr


@pytest.mark.parametrize('tool', [
    'benchmark.py', 'convert_checkpoint.py', 'demo.py', 'get_flops.py', 'infer.py',
    'make_shapes.py',
    'model_zoo.py', 'test.py', 'train.py', 'deploy/benchmark_onnx.py', 'deploy/export_onnx.py'])
def test_tools_filter_the_notice_before_their_imports(tool):
    text = (REPO / 'tools' / tool).read_text()
    assert "message='pkg_resources is deprecated as an API'" in text
    assert 'if not sys.warnoptions:' in text
    first_import = min(text.index(s) for s in ('\nfrom mmhybrid', '\nfrom mmengine',
                                               '\n    from mmhybrid') if s in text)
    assert text.index('pkg_resources is deprecated') < first_import
