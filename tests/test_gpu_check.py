"""benchmarks/gpu_check.py's dry run (every part on the CPU, tiny sizes), its resuming and caps,
the bundle it reads, and the stand-in for mmcv's compiled ops that it uses where they are missing.

The bundle is prepared offline (``--no-authors --no-wheels``): a fresh clone has neither the
authors' files nor network, so mmhybrid's own model stands in for the authors' on both sides of
the side-by-side harness, and every such row says so.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / 'benchmarks'
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402
import mmcv_ops_stand_in  # noqa: E402
import prepare_gpu_bundle  # noqa: E402

MODEL = 'uniformer-s'  # attends (SDPA rows) and is small at the dry-run size
SEG = 'seg/fpn_van_b0_40k'
pytestmark = pytest.mark.xdist_group('gpu_check')


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / 'gpu_check.py'), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope='session')
def dry(tmp_path_factory):
    """A bundle and one dry run of every part: ``(bundle, results, work, process)``."""
    root = tmp_path_factory.mktemp('gpu_check')
    bundle = root / 'bundle'
    manifest = prepare_gpu_bundle.prepare(
        bundle, {}, authors=False, wheels=False,
        data_spec=dict(num_train=4, num_val=1, image_size=96, colour_by_class=True, seed=0))
    assert manifest['authors'] == {} and manifest['wheels'] == []
    results, work = root / 'results.jsonl', root / 'work'
    common = ['--bundle', str(bundle), '--results', str(results), '--work', str(work)]
    proc = _run('run', '--dry-run', *common, '--models', MODEL, '--dtypes', 'fp32',
                '--train-configs', SEG)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return bundle, results, work, common


def _rows(path: Path) -> dict:
    return {row['key']: row for row in gpu_check.read_rows(path)}


def test_dry_run_writes_every_part(dry):
    _, results, _, _ = dry
    rows = _rows(results)
    assert set(rows) == {'env', f'side_by_side/{MODEL}/fp32', f'sdpa/{MODEL}/fp32',
                         f'train/{SEG}'}
    env = rows['env']
    assert env['device'] == 'cpu' and env['torch'] == torch.__version__
    assert env['tf32_in_fp32_rows'] is False and 'tf32_defaults' in env

    for dtype in ('fp32', ):  # bf16 and fp16 run the same code under autocast
        row = rows[f'side_by_side/{MODEL}/{dtype}']
        assert row['authors'].startswith('stand-in'), row['authors']
        assert row['dtype'] == dtype and row['size'] == list(gpu_check.DRY_SIZE)
        assert row['max_abs_diff'] == 0 and row['ref_max_abs'] > 0  # the same model twice
        for side in ('authors', 'ours'):
            assert row[f'{side}_step_ms'] > 0 and row[f'{side}_fwd_ms'] > 0
        assert row['step_ratio'] == pytest.approx(row['ours_step_ms'] / row['authors_step_ms'])
        assert row['tf32']['matmul_allow_tf32'] is False

    for dtype in ('fp32', ):
        row = rows[f'sdpa/{MODEL}/{dtype}']
        # UniFormer's global blocks attend through SDPA, forward and backward.
        assert row['forward'] and row['backward'], row
        assert any('scaled_dot_product' in op for op in row['aten_ops'])

    train = rows[f'train/{SEG}']
    assert train['status'] == 'ok', train
    iters = gpu_check.DRY['seg_iters']
    assert train['final_iter_expected'] == train['iter_first'] == train['iter_resumed'] == iters
    assert len(train['losses']) == iters and train['losses_finite']
    assert train['resumed_from'] == f'iter_{iters // 2}.pth'
    assert train['resumed_first_iter'] == iters // 2 + 1
    assert train['next_loss_abs_diff'] <= gpu_check.NEXT_LOSS_TOL
    assert train['optimizer_steps_equal'] and train['resume_ok']

    text = gpu_check.report(gpu_check.read_rows(results))
    assert f'| {MODEL} | 64x96 | fp32 |' in text and f'| {MODEL} | fp32 | ' in text
    assert f'| configs/{SEG}.py | False | ok |' in text and 'Machine: ' in text


def test_a_second_run_skips_what_is_there(dry):
    _, results, _, common = dry
    before = results.read_text()
    proc = _run('run', '--dry-run', *common, '--models', MODEL, '--dtypes', 'fp32',
                '--train-configs', SEG)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results.read_text() == before


def test_a_cut_row_is_measured_by_the_next_run(dry, tmp_path):
    _, results, _, common = dry
    partial = tmp_path / 'partial.jsonl'
    lines = [line for line in results.read_text().splitlines()
             if json.loads(line)['key'] != 'env']
    partial.write_text('\n'.join(lines) + '\n{"key": "env", "dev')  # a line cut by a kill
    common = [a if a != str(results) else str(partial) for a in common]
    # A part whose cap leaves no time starts nothing; the next run measures the missing row.
    proc = _run('run', '--dry-run', *common, '--parts', 'env', '--cap', 'env=0')
    assert proc.returncode == 0 and 'cap reached' in proc.stdout
    assert 'env' not in _rows(partial)
    proc = _run('run', '--dry-run', *common, '--parts', 'env')
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _rows(partial)
    assert rows['env']['device'] == 'cpu' and len(rows) == len(lines) + 1


def test_bad_bundle_and_arguments_are_clear_errors(tmp_path):
    proc = _run('run', '--dry-run', '--bundle', str(tmp_path), '--results',
                str(tmp_path / 'r.jsonl'))
    assert proc.returncode != 0 and 'not a prepared bundle' in proc.stderr
    assert 'Traceback' not in proc.stderr
    (tmp_path / 'manifest.json').write_text('{}')
    proc = _run('run', '--dry-run', '--bundle', str(tmp_path), '--results',
                str(tmp_path / 'r.jsonl'), '--models', 'resnet-50')
    assert proc.returncode != 0 and 'unknown model' in proc.stderr
    proc = _run('run', '--dry-run', '--bundle', str(tmp_path), '--results',
                str(tmp_path / 'r.jsonl'), '--cap', 'sbs=10')
    assert proc.returncode != 0 and '--cap wants PART=SECONDS' in proc.stderr
    assert not (tmp_path / 'r.jsonl').exists()


def test_script_without_the_packages_or_their_wheels_says_so(tmp_path):
    bundle = tmp_path / 'bundle'
    prepare_gpu_bundle.prepare(bundle, {}, authors=False, wheels=False,
                               data_spec=dict(num_train=1, num_val=1, image_size=64))
    # A Python that cannot import the OpenMMLab packages ('false' fails every command).
    env = dict(os.environ, PYTHON='false', BUNDLE=str(bundle), GPU_CHECK_SITE=str(tmp_path))
    proc = subprocess.run(['bash', str(BENCHMARKS / 'gpu_check.sh'), '--dry-run'], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert 'lacks mmengine/mmcv/mmdet/mmseg' in proc.stderr and 'has no wheels' in proc.stderr


def test_prepare_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path):
    (tmp_path / 'mine.txt').write_text('keep')
    with pytest.raises(ValueError, match='not a bundle'):
        prepare_gpu_bundle.prepare(tmp_path, {}, authors=False, wheels=False)
    assert (tmp_path / 'mine.txt').read_text() == 'keep'


def test_prepare_refuses_a_bundle_over_the_limit(tmp_path):
    with pytest.raises(ValueError, match='over 0.001 MiB'):
        prepare_gpu_bundle.prepare(tmp_path / 'b', {}, authors=False, wheels=False,
                                   max_mib=0.001, data_spec=dict(num_train=1, num_val=1,
                                                                 image_size=64))
    assert not (tmp_path / 'b').exists()


# ----------------------------------------------------------------------- mmcv ops stand-in

def _mmcv_ext():
    from mmcv.utils import ext_loader
    return ext_loader.load_ext('_ext', ['nms', 'roi_align_forward', 'roi_align_backward'])


@pytest.mark.parametrize('sampling_ratio', [0, 2])
@pytest.mark.parametrize('aligned', [True, False])
def test_roi_align_stand_in_equals_mmcv(sampling_ratio, aligned):
    from mmcv.ops import roi_align
    torch.manual_seed(0)
    x = torch.randn(2, 3, 13, 17, dtype=torch.float64)
    # Inside, across and outside the border, one thinner than a bin, one covering the map.
    rois = torch.tensor([[0, 1.3, 2.2, 30.5, 20.1], [1, -4, -3, 10, 8], [1, 40, 30, 70, 60],
                         [0, 5, 5, 5.5, 5.2], [0, 0, 0, 67, 51]], dtype=torch.float64)
    xr = x.clone().requires_grad_()
    expected = roi_align(xr, rois, (7, 5), 0.25, sampling_ratio, 'avg', aligned)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    got = torch.zeros_like(expected)
    mmcv_ops_stand_in.roi_align_forward(x, rois, got, None, None, 7, 5, 0.25, sampling_ratio,
                                        1, aligned)
    grad_input = torch.zeros_like(x)
    mmcv_ops_stand_in.roi_align_backward(grad, rois, None, None, grad_input, 7, 5, 0.25,
                                         sampling_ratio, 1, aligned)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_input, xr.grad, rtol=0, atol=1e-12)


def test_roi_align_stand_in_takes_half_inputs_with_exact_corners():
    # Corners near 1000 px: in float16 they would round to whole or half pixels.
    x = torch.randn(1, 2, 40, 300, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 1000.3, 10.7, 1100.9, 90.2]])
    exact = mmcv_ops_stand_in.roi_align_reference(x.half().float(), rois, 7, 7, 0.25, 0, True)
    out = torch.zeros(1, 2, 7, 7, dtype=torch.float16)
    mmcv_ops_stand_in.roi_align_forward(x.half(), rois, out, None, None, 7, 7, 0.25, 0, 1, True)
    torch.testing.assert_close(out.float(), exact, rtol=0, atol=5e-3)
    grad_input = torch.zeros(1, 2, 40, 300, dtype=torch.float16)
    mmcv_ops_stand_in.roi_align_backward(torch.ones_like(out), rois, None, None, grad_input,
                                         7, 7, 0.25, 0, 1, True)
    assert grad_input.dtype == torch.float16 and grad_input.float().sum().item() == \
        pytest.approx(2 * 49, rel=1e-3)  # each bin averages weights summing to 1


@pytest.mark.parametrize('offset', [0, 1])
def test_nms_stand_in_equals_mmcv(offset):
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(300, 4, generator=generator) * 50
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(300, generator=generator)
    expected = _mmcv_ext().nms(boxes, scores, iou_threshold=0.5, offset=offset)
    assert torch.equal(mmcv_ops_stand_in.nms(boxes, scores, 0.5, offset), expected)


def test_stand_in_serves_mmcv_ops_and_names_what_it_lacks():
    code = '''
import sys, torch
sys.path.insert(0, sys.argv[1])
import mmcv_ops_stand_in
assert not mmcv_ops_stand_in.needed()  # mmcv is built with its ops here
assert mmcv_ops_stand_in.install(force=True)
from mmcv.ops import RoIAlign, batched_nms, sigmoid_focal_loss
assert sys.modules['mmcv._ext'].STAND_IN
boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
dets, keep = batched_nms(boxes, torch.tensor([.9, .8, .7]), torch.zeros(3), dict(iou_threshold=.5))
assert keep.tolist() == [0, 2], keep
out = RoIAlign((2, 2), 1.0, 0)(torch.ones(1, 1, 8, 8), torch.tensor([[0., 1, 1, 5, 5]]))
assert torch.allclose(out, torch.ones(1, 1, 2, 2))
try:
    sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
except NotImplementedError as error:
    assert 'sigmoid_focal_loss_forward' in str(error), error
else:
    raise AssertionError('an op the stand-in lacks must raise')
'''
    proc = subprocess.run([sys.executable, '-c', code, str(BENCHMARKS)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_worker_ends_with_its_parent(tmp_path):
    """A worker whose run is killed (its parent gone) stops instead of measuring on."""
    pid_file, script = tmp_path / 'pid', tmp_path / 'worker.py'
    script.write_text(f'import os, sys, time\nsys.path.insert(0, {str(BENCHMARKS)!r})\n'
                      f'import gpu_check\nopen({str(pid_file)!r}, "w").write(str(os.getpid()))\n'
                      f'gpu_check.exit_with_parent()\ntime.sleep(60)\n')
    # The shell starts the worker, gives it time to start watching, and exits.
    subprocess.run(['sh', '-c', f'"{sys.executable}" "{script}" & sleep 3'], timeout=60)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            state = Path(f'/proc/{pid}/status').read_text()
        except FileNotFoundError:
            return
        if '\nState:\tZ' in state:
            return
        time.sleep(0.2)
    raise AssertionError(f'worker {pid} outlived its parent')
