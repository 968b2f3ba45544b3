"""End to end: tools/train.py -> tools/test.py -> --resume on the real det/seg configs.

The configs under ``configs/`` run unchanged except for the data root (synthetic shapes trees),
class names / number of classes, batch size, image scale and schedule length, which a tiny
override config written to ``tmp_path`` sets (it inherits the real config by absolute path). The
backbone starts from scratch (``init_cfg=None``): the ImageNet file is absent on a fresh machine.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmhybrid.datasets import (SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE, ShapesSpec,
                               generate_shapes)

REPO = Path(__file__).resolve().parents[1]
DET_CONFIG = REPO / 'configs' / 'det' / 'maskrcnn_van_b0_1x.py'
SEG_CONFIG = REPO / 'configs' / 'seg' / 'upernet_van_b0_160k.py'
# Every family whose configs join the smoke: one det (Mask R-CNN) and one seg (UPerNet) config.
DET_CONFIGS = [DET_CONFIG, REPO / 'configs' / 'det' / 'maskrcnn_crossformer_t_1x.py']
SEG_CONFIGS = [SEG_CONFIG, REPO / 'configs' / 'seg' / 'upernet_crossformer_t_160k.py']
TIMEOUT = 600

pytestmark = pytest.mark.xdist_group('e2e')

# Detection: the 3 shape classes; segmentation: background + the shapes (label 0 is a class).
DET_CLASSES = f'''
classes = {SHAPE_CLASSES!r}
metainfo = dict(classes=classes, palette={[list(c) for c in SHAPE_PALETTE]!r})
scale = (128, 128)
'''
SEG_CLASSES_TEXT = f'''
classes = {SEG_CLASSES!r}
metainfo = dict(classes=classes, palette={[list(c) for c in SEG_PALETTE]!r})
scale = (128, 128)
'''

DET_OVERRIDE = '''_base_ = [{base!r}]
data_root = {root!r}
''' + DET_CLASSES + '''
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=len(classes)),
                  mask_head=dict(num_classes=len(classes))),
    # A detector two iterations old scores every box low: keep them all (predictions compared).
    test_cfg=dict(rcnn=dict(score_thr=0.0)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=2, num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''

SEG_OVERRIDE = '''_base_ = [{base!r}]
data_root = {root!r}
''' + SEG_CLASSES_TEXT + '''
crop_size = scale
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=len(classes)),
    auxiliary_head=dict(num_classes=len(classes)))
# ADE20KDataset accepts only subsets of ADE20K's class names: read the ADE20K layout with the
# generic dataset and ADE20K's file suffixes; background (label 0) is a class, not ignored.
shapes = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
              seg_map_suffix='.png', reduce_zero_label=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=1,
    dataset=dict(**shapes, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(**shapes, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
'''


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    # 4 train images (2 iterations of batch 2 per epoch), 4 val images.
    spec = ShapesSpec(num_train=4, num_val=4, image_size=128, seed=1)
    return generate_shapes(tmp_path_factory.mktemp('shapes'), spec=spec)


def _tool_env(**extra: str) -> dict:
    """The tools' environment: one thread each, and no PYTHONPATH (the tools must find the
    package on their own)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **extra)
    env.pop('PYTHONPATH', None)
    return env


def _override(kind: str, base: Path, shapes_root: dict) -> str:
    """The override config text of a ``'det'`` or ``'seg'`` base config on the shapes trees."""
    if kind == 'det':
        return DET_OVERRIDE.format(base=str(base), root=f"{shapes_root['coco']}/")
    return SEG_OVERRIDE.format(base=str(base), root=str(shapes_root['ade20k']))


def _run(tool: str, *args: str, cwd: Path) -> str:
    env = _tool_env()
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{tool} failed:\n{out[-6000:]}'
    return out


def _test_metrics(work_dir: Path) -> dict:
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir() and p.name[:8].isdigit())
    text = (runs[-1] / f'{runs[-1].name}.json').read_text()
    return json.loads(text.strip().splitlines()[-1])


def _load(path: Path) -> list:
    """The predictions ``tools/test.py --out`` dumped."""
    import pickle
    return pickle.loads(path.read_bytes())


def _assert_same_predictions(plain_file: Path, deployed_file: Path) -> None:
    """The predictions of the plain and the folded model (``--out`` dumps) agree: every box with
    its label and score, or every pixel's logits. The models come from two iterations of
    training, so their metrics say nothing; their outputs do."""
    import torch
    plain, deployed = _load(plain_file), _load(deployed_file)
    assert len(plain) == len(deployed) > 0
    compared = 0
    for a, b in zip(plain, deployed):
        assert a['img_path'] == b['img_path']
        if 'seg_logits' in a:  # segmenter: logits of every pixel
            logits_a, logits_b = a['seg_logits']['data'], b['seg_logits']['data']
            torch.testing.assert_close(logits_b, logits_a, rtol=1e-4,
                                       atol=1e-4 * float(logits_a.abs().max()))
            compared += logits_a.numel()
            continue
        # detector: the same boxes, labels and scores (order may swap between near-equal scores)
        pa, pb = a['pred_instances'], b['pred_instances']
        assert len(pa['scores']) == len(pb['scores'])
        torch.testing.assert_close(pb['scores'].sort(descending=True).values,
                                   pa['scores'].sort(descending=True).values, rtol=1e-3, atol=1e-5)
        for box, label, score in zip(pa['bboxes'], pa['labels'], pa['scores']):
            close = ((pb['bboxes'] - box).abs().amax(dim=1) <= 1e-2) & (pb['labels'] == label) \
                & ((pb['scores'] - score).abs() <= 1e-3 * float(score) + 1e-5)
            assert close.any(), (box, label, score)
        compared += len(pa['scores'])
    assert compared > 0, 'nothing to compare: no predictions'


def _train_test_resume(tmp_path: Path, config: Path, checkpoint: str,
                       resumed_checkpoint: str, longer: list,
                       check_deployed: bool = False) -> tuple:
    work_dir = tmp_path / 'work'
    out = _run('train.py', str(config), '--work-dir', str(work_dir), cwd=tmp_path)
    ckpt = work_dir / checkpoint
    assert ckpt.is_file(), out[-3000:]
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(ckpt)
    # no partial files left by the atomic checkpoint writer
    assert not [p for p in work_dir.iterdir() if p.name.startswith('.')]

    test_dir = tmp_path / 'test'
    preds = tmp_path / 'preds.pkl'
    test_out = _run('test.py', str(config), str(ckpt), '--work-dir', str(test_dir), '--out',
                    str(preds), cwd=tmp_path)
    assert preds.is_file()
    metrics = _test_metrics(test_dir)
    if check_deployed:
        # On the CPU tools/test.py tests the model optimised for inference; folded only
        # (--switch-to-deploy: VAN's BatchNorms and layer scales in its convs, no CPU fast
        # paths) it predicts the same.
        assert 'OptimizeForInferenceHook: VAN optimised for CPU inference' in test_out
        deployed_dir = tmp_path / 'test_deployed'
        deployed_preds = tmp_path / 'preds_deployed.pkl'
        deployed_out = _run('test.py', str(config), str(ckpt), '--work-dir', str(deployed_dir),
                            '--out', str(deployed_preds), '--switch-to-deploy', cwd=tmp_path)
        assert 'SwitchToDeployHook: VAN folded for inference' in deployed_out
        assert 'OptimizeForInferenceHook' not in deployed_out
        _assert_same_predictions(preds, deployed_preds)

    resume_out = _run('train.py', str(config), '--work-dir', str(work_dir), '--resume',
                      '--cfg-options', *longer, cwd=tmp_path)
    assert (work_dir / resumed_checkpoint).is_file(), resume_out[-3000:]
    return out, test_out, metrics, resume_out


@pytest.mark.parametrize('det_config', DET_CONFIGS, ids=lambda p: p.stem)
def test_maskrcnn_train_test_resume(tmp_path, shapes_root, det_config):
    config = tmp_path / 'maskrcnn_shapes.py'
    config.write_text(_override('det', det_config, shapes_root))
    out, test_out, metrics, resume_out = _train_test_resume(
        tmp_path, config, 'epoch_1.pth', 'epoch_2.pth',
        ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2'],
        check_deployed=det_config == DET_CONFIG)
    assert 'Epoch(train) [1][2/2]' in out
    assert 'coco/bbox_mAP' in out  # validation ran during training
    # A model two iterations old scores about 0: the metrics are checked for being COCO's, of
    # every kept box (score_thr 0: 100 per image); what they measure is tested by the demo.
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert 0.0 <= metrics[key] <= 1.0, metrics
    preds = _load(tmp_path / 'preds.pkl')
    assert [len(p['pred_instances']['scores']) for p in preds] == [100] * 4
    assert 'resumed epoch: 1, iter: 2' in resume_out
    assert 'Epoch(train) [2][2/2]' in resume_out
    assert 'Epoch(train) [1]' not in resume_out


@pytest.mark.parametrize('seg_config', SEG_CONFIGS, ids=lambda p: p.stem)
def test_upernet_train_test_resume(tmp_path, shapes_root, seg_config):
    config = tmp_path / 'upernet_shapes.py'
    config.write_text(_override('seg', seg_config, shapes_root))
    out, test_out, metrics, resume_out = _train_test_resume(
        tmp_path, config, 'iter_2.pth', 'iter_4.pth',
        ['train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         'default_hooks.checkpoint.interval=4'],
        check_deployed=seg_config == SEG_CONFIG)
    assert 'Iter(train) [2/2]' in out
    assert 'mIoU' in out  # validation ran during training
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert 0.0 <= metrics[key] <= 100.0, metrics
    # The pixel accuracy is that of the dumped predictions against the label maps, every pixel
    # and class counted (background included).
    preds = _load(tmp_path / 'preds.pkl')
    right = sum(int((p['pred_sem_seg']['data'] == p['gt_sem_seg']['data']).sum()) for p in preds)
    pixels = sum(p['gt_sem_seg']['data'].numel() for p in preds)
    assert metrics['aAcc'] == pytest.approx(100 * right / pixels, abs=0.01)
    assert '| background |' in test_out  # a class of IoUMetric's per-class table, not ignored
    assert 'resumed epoch: 0, iter: 2' in resume_out
    assert 'Iter(train) [4/4]' in resume_out
    assert 'Iter(train) [1/' not in resume_out


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ distributed, identical ranks

SYNC_CHECK = '''
custom_hooks = [dict(type='mmhybrid.WeightSyncCheckHook')]
'''


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_dist_train_ranks_end_identical(tmp_path, shapes_root, kind):
    """tools/dist_train.sh, 2 processes on the CPU (gloo, DDP, SyncBN reverted), a real det and
    a real seg config: the run ends with bit-identical parameters on both ranks
    (``mmhybrid.WeightSyncCheckHook`` compares SHA-256 digests of every parameter and raises on
    any difference)."""
    base, final = (DET_CONFIG, 'epoch_1.pth') if kind == 'det' else (SEG_CONFIG, 'iter_2.pth')
    config = tmp_path / f'{kind}_shapes.py'
    config.write_text(_override(kind, base, shapes_root) + SYNC_CHECK)
    work_dir = tmp_path / 'work'
    env = _tool_env(PYTHON=sys.executable, PORT=str(_free_port()))
    proc = subprocess.run(['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), '2',
                           '--work-dir', str(work_dir)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert 'Distributed training: True' in out
    assert (work_dir / final).is_file()
    assert 'identical on all 2 ranks' in out, out[-3000:]


# ------------------------------------------------------------------ SIGKILL mid-run, then resume

DETERMINISTIC = '''
randomness = dict(seed=0, deterministic=True)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
'''

KILL_CASES = {
    # Epoch-based (Mask R-CNN): 3 epochs of 2 iterations, a checkpoint per epoch. Workers are
    # not persistent: persistent workers carry their generators across epochs.
    'det': dict(base=DET_CONFIG, extra='''
train_cfg = dict(max_epochs=3, val_interval=100)
train_dataloader['persistent_workers'] = False
default_hooks = dict(checkpoint=dict(interval=1))
''', first='epoch_1.pth', final='epoch_3.pth'),
    # Iteration-based (UPerNet): 6 iterations, a checkpoint every 2.
    'seg': dict(base=SEG_CONFIG, extra='''
train_cfg = dict(max_iters=6, val_interval=100)
default_hooks = dict(checkpoint=dict(interval=2))
''', first='iter_2.pth', final='iter_6.pth'),
}


def _weights(path: Path) -> dict:
    import torch
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


@pytest.mark.parametrize('kind', sorted(KILL_CASES))
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, shapes_root, kind):
    """Train, SIGKILL the process right after its first checkpoint, ``--resume``: the final
    weights are bit-identical to an uninterrupted run's, and no checkpoint is ever truncated."""
    import signal
    import time

    import torch
    case = KILL_CASES[kind]
    config = tmp_path / f'{kind}_kill.py'
    config.write_text(_override(kind, case['base'], shapes_root) + DETERMINISTIC + case['extra'])

    straight = tmp_path / 'straight'
    _run('train.py', str(config), '--work-dir', str(straight), cwd=tmp_path)

    crashed = tmp_path / 'crashed'
    proc = subprocess.Popen([sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
                             '--work-dir', str(crashed)], cwd=tmp_path, env=_tool_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = crashed / 'last_checkpoint'
    deadline = time.monotonic() + TIMEOUT
    try:
        while not (last.is_file() and last.read_text().strip()):
            assert proc.poll() is None, 'training ended before its first checkpoint'
            assert time.monotonic() < deadline, 'no checkpoint written in time'
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its data-loader workers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (crashed / case['final']).exists(), 'the run finished before it was killed'
    # Only complete checkpoints: every .pth loads, no temporary files are left behind.
    for ckpt in crashed.glob('*.pth'):
        _weights(ckpt)
    assert not [p for p in crashed.iterdir() if p.name.startswith('.')]

    out = _run('train.py', str(config), '--work-dir', str(crashed), '--resume', cwd=tmp_path)
    assert 'resumed epoch' in out and 'Load checkpoint from' in out
    expected, resumed = _weights(straight / case['final']), _weights(crashed / case['final'])
    assert expected.keys() == resumed.keys()
    differing = [k for k in expected if not torch.equal(expected[k], resumed[k])]
    assert not differing, f'{len(differing)} tensors differ after resume, e.g. {differing[:5]}'


# ------------------------------------------------------------------ mmdet's own tools

def _mmdet_tool(name: str) -> Path:
    import mmdet
    path = Path(mmdet.__file__).parent / '.mim' / 'tools' / name
    if not path.is_file():
        pytest.skip(f'mmdet is installed without its tools ({path})')
    return path


def test_mmdet_own_tools_train_and_test(tmp_path, shapes_root):
    """mmdet's own ``tools/train.py`` and ``tools/test.py`` run our config: the config's
    ``custom_imports`` import mmhybrid, which registers the backbones, the checkpoint types for
    weights_only loading and the CPU DDP wrapper (under its own name; mmengine's is untouched)."""
    config = tmp_path / 'maskrcnn_shapes.py'
    config.write_text(_override('det', DET_CONFIG, shapes_root))
    env = dict(_tool_env(), PYTHONPATH=str(REPO))  # mmdet's tools import this checkout's mmhybrid

    def run(*cmd: str) -> str:
        proc = subprocess.run([sys.executable, *cmd], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
        return proc.stdout + proc.stderr

    registered = run('-c', 'import sys; from mmengine.config import Config; '
                     'from mmengine.registry import MODEL_WRAPPERS as W; '
                     'Config.fromfile(sys.argv[1]); '
                     'print(W.get("CPUDistributedDataParallel").__module__, '
                     'W.get("MMDistributedDataParallel").__module__)', str(config))
    assert 'mmhybrid.engine.dist mmengine.model.wrappers.distributed\n' in registered
    work_dir = tmp_path / 'work'
    out = run(str(_mmdet_tool('train.py')), str(config), '--work-dir', str(work_dir))
    assert 'Epoch(train) [1][2/2]' in out and (work_dir / 'epoch_1.pth').is_file()
    test_out = run(str(_mmdet_tool('test.py')), str(config), str(work_dir / 'epoch_1.pth'),
                   '--work-dir', str(tmp_path / 'test'))
    assert 'coco/bbox_mAP' in test_out
