"""ONNX export (tools/deploy/export_onnx.py) of segmenters and detectors with tiny backbones of
every family: onnxruntime equals PyTorch at two input sizes from one dynamic file, the numpy
post-processing gives mmdet's own predictions, tools/infer.py draws both, and bad input fails
cleanly without leaving files."""
import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

# Without the deploy extra this module is skipped with the reason; every other test still runs.
_EXTRA = 'needs the deploy extra (pip install -e .[deploy])'
onnx = pytest.importorskip('onnx', reason=f'ONNX export {_EXTRA}')
pytest.importorskip('onnxruntime', reason=f'onnxruntime inference {_EXTRA}')
pytest.importorskip('onnxscript', reason=f'torch.onnx\'s exporter {_EXTRA}')

from archs import CONTRACT_MODELS
from mmhybrid.deploy import ExportError, export_onnx, head_file, read_metadata
from mmhybrid.deploy.export import build_model
from mmhybrid.deploy.runtime import ExportedModel
from mmhybrid.registry import MODELS

REPO = Path(__file__).resolve().parents[1]

# family -> the seg config its segmenter test uses (FPN or UPerNet).
SEG_CONFIGS = {
    'CrossFormer': 'configs/seg/upernet_crossformer_s_160k.py',
    'UniFormer': 'configs/seg/fpn_uniformer_s_80k.py',
    'CMT': 'configs/seg/fpn_cmt_s_80k.py',
    'HATNet': 'configs/seg/fpn_hatnet_s_80k.py',
    'TransCNN': 'configs/seg/fpn_transcnn_s_80k.py',
    'VAN': 'configs/seg/upernet_van_b2_160k.py',
}
# Smaller groups than the contract arch's 7 (same code paths): the minimum export size falls
# from 225 to 97 and the test runs at smaller inputs.
BACKBONE_OVERRIDES = {'CrossFormer': dict(group_size=3)}
DET_CONFIGS = {
    'maskrcnn': ('CrossFormer', 'configs/det/maskrcnn_crossformer_s_1x.py'),
    'retinanet': ('HATNet', 'configs/det/retinanet_hatnet_s_1x.py'),
}


def tiny_config(tmp_path: Path, family: str, config: str) -> Path:
    """``config`` with the family's tiny contract backbone (neck/head widths to match), random
    init, and RCNN's score threshold low enough that a random model keeps detections."""
    kwargs = dict(CONTRACT_MODELS[family], **BACKBONE_OVERRIDES.get(family, {}))
    backbone = MODELS.build(dict(type=f'mmhybrid.{family}', **kwargs))
    channels = list(backbone.out_channels)
    cfg = Config.fromfile(str(REPO / config))
    cfg.model.backbone.update(kwargs)
    cfg.model.backbone.init_cfg = None
    if 'neck' in cfg.model:
        cfg.model.neck.in_channels = channels
    else:
        cfg.model.decode_head.in_channels = channels
    if 'auxiliary_head' in cfg.model:
        cfg.model.auxiliary_head.in_channels = channels[cfg.model.auxiliary_head.in_index]
        cfg.model.auxiliary_head.channels = 16
    if cfg.model.get('decode_head', {}).get('type') == 'UPerHead':
        cfg.model.decode_head.channels = 32
    if 'rcnn' in cfg.model.get('test_cfg', {}):
        cfg.model.test_cfg.rcnn.score_thr = 0.0124  # a random 81-way softmax is ~1/81
    path = tmp_path / f'{family}_{Path(config).name}'
    cfg.dump(str(path))
    return path


def save_checkpoint(config: Path, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model, _ = build_model(str(config))
    head = getattr(model, 'decode_head', None) or getattr(model, 'bbox_head', None) or \
        model.roi_head.bbox_head
    classes = [f'class{i}' for i in range(head.num_classes)]
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': classes}}},
               path)
    return path


def trace_size(family: str):
    backbone = MODELS.build(dict(type=f'mmhybrid.{family}', **CONTRACT_MODELS[family],
                                 **BACKBONE_OVERRIDES.get(family, {})))
    minimum = max(32, getattr(backbone, 'min_export_size', 32))
    return minimum, (max(minimum, 64), max(minimum, 64) + 32)


def relative_error(got: np.ndarray, ref: torch.Tensor) -> float:
    ref = ref.numpy()
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize('family', sorted(SEG_CONFIGS))
def test_segmenter_exports_with_dynamic_size(tmp_path, family):
    config = tiny_config(tmp_path, family, SEG_CONFIGS[family])
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    minimum, shape = trace_size(family)
    out = tmp_path / 'seg.onnx'
    result = export_onnx(str(config), str(checkpoint), str(out), shape=shape, dynamic=True)
    assert result.kind == 'segmenter' and [Path(f) for f in result.files] == [out]
    assert all(c['max_rel_error'] < 1e-4 for c in result.checks) and len(result.checks) == 2
    meta = read_metadata(str(out))
    assert meta['min_size'] == minimum
    assert meta['dataset_meta']['classes'][:2] == ['class0', 'class1']
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temporaries

    exported = ExportedModel(str(out))
    model, _ = build_model(str(config))
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    num_classes = model.decode_head.num_classes
    # Two sizes other than the trace size, one of them odd, from the same file.
    for size in [(minimum + 7, minimum + 61), (shape[0] + 32, shape[1] - 16)]:
        image = torch.rand(1, 3, *size) * 255
        got = exported.predict(image.numpy())
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=[image[0]]), False)
            meta_ = [dict(img_shape=size, ori_shape=size, pad_shape=size)]
            ref = model.encode_decode(data['inputs'], meta_)[0]
        assert got['seg_logits'].shape == (num_classes, *size)
        assert relative_error(got['seg_logits'], ref) < 1e-4
        assert (got['sem_seg'] == ref.argmax(0).numpy()).mean() > 0.999


@pytest.mark.parametrize('family', ['VAN', 'TransCNN'])
def test_segmenter_exports_folded_backbone(tmp_path, family):
    """``switch_to_deploy=True``: the backbone is folded before the trace, and the file's
    outputs are the unfolded model's."""
    config = tiny_config(tmp_path, family, SEG_CONFIGS[family])
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    _, shape = trace_size(family)
    out = tmp_path / 'seg.onnx'
    result = export_onnx(str(config), str(checkpoint), str(out), shape=shape, dynamic=True,
                         switch_to_deploy=True)
    assert all(c['max_rel_error'] < 1e-4 for c in result.checks)
    assert read_metadata(str(out))['switch_to_deploy'] is True
    model, _ = build_model(str(config))
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    # The folded backbone keeps no BatchNorm (VAN) or only its grid norms (TransCNN: their
    # output is also the residual), and the file holds none of the folded-away tensors.
    deployed = copy.deepcopy(model.backbone).switch_to_deploy()
    left = [name for name, m in deployed.named_modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(name.endswith('grid_norm') for name in left) and bool(left) == (family != 'VAN')
    gone = set(model.backbone.state_dict()) - set(deployed.state_dict())
    stored = {i.name.split('backbone.', 1)[1] for i in onnx.load(str(out)).graph.initializer
              if 'backbone.' in i.name}
    assert gone and stored and not stored & gone
    size = (shape[0] + 32, shape[1] - 16)
    image = torch.rand(1, 3, *size) * 255
    got = ExportedModel(str(out)).predict(image.numpy())
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image[0]]), False)
        ref = model.encode_decode(data['inputs'], [dict(img_shape=size, ori_shape=size,
                                                        pad_shape=size)])[0]
    assert relative_error(got['seg_logits'], ref) < 1e-4


def _mmdet_predict(model, image: torch.Tensor, scale: float):
    from mmdet.structures import DetDataSample
    height, width = image.shape[-2:]
    ori = (round(height / scale), round(width / scale))
    sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=ori,
                                         scale_factor=(scale, scale)))
    data = model.data_preprocessor(dict(inputs=[image[0]], data_samples=[sample]), False)
    with torch.no_grad():
        return model.predict(data['inputs'], data['data_samples'])[0].pred_instances, ori


@pytest.mark.parametrize('kind', sorted(DET_CONFIGS))
def test_detector_postprocess_equals_mmdet_predict(tmp_path, kind):
    family, base = DET_CONFIGS[kind]
    config = tiny_config(tmp_path, family, base)
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    minimum, shape = trace_size(family)
    out = tmp_path / 'det.onnx'
    result = export_onnx(str(config), str(checkpoint), str(out), shape=shape, dynamic=True)
    expected_files = [out] + ([Path(head_file(str(out), k)) for k in ('bbox', 'mask')]
                              if kind == 'maskrcnn' else [])
    assert [Path(f) for f in result.files] == expected_files
    assert all(f.is_file() for f in expected_files)
    assert all(c['max_rel_error'] < 1e-4 for c in result.checks)

    exported = ExportedModel(str(out))
    model, _ = build_model(str(config))
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    for size, scale in [((minimum + 40, minimum + 99), 1.0), ((shape[0], shape[1] + 64), 0.75)]:
        image = torch.rand(1, 3, *size) * 255
        ref, ori = _mmdet_predict(model, image, scale)
        got = exported.predict(image.numpy(), scale_factor=(scale, scale), ori_shape=ori)
        assert len(ref) > 10 and len(got['bboxes']) == len(ref)
        np.testing.assert_array_equal(got['labels'], ref.labels.numpy())
        np.testing.assert_allclose(got['scores'], ref.scores.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got['bboxes'], ref.bboxes.numpy(), rtol=1e-4, atol=1e-2)
        if kind == 'maskrcnn':
            assert got['masks'].shape == tuple(ref.masks.shape)
            assert (got['masks'] == ref.masks.numpy()).mean() > 0.999


def test_export_refuses_bad_input_and_leaves_nothing(tmp_path):
    config = tiny_config(tmp_path, 'CrossFormer', SEG_CONFIGS['CrossFormer'])
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    out = tmp_path / 'out.onnx'
    minimum, _ = trace_size('CrossFormer')
    with pytest.raises(ExportError, match=f'below this model.s minimum input size {minimum}'):
        export_onnx(str(config), str(checkpoint), str(out), shape=(64, 64))
    # A checkpoint of another model (the VAN segmenter).
    other = tiny_config(tmp_path, 'VAN', SEG_CONFIGS['VAN'])
    foreign = save_checkpoint(other, tmp_path / 'van.pth')
    with pytest.raises(ExportError, match='does not match the config.s model'):
        export_onnx(str(config), str(foreign), str(out), shape=(256, 256))
    with pytest.raises(ExportError, match='opset 16 is too old'):
        export_onnx(str(config), str(checkpoint), str(out), opset=16)
    # An unsupported model: a cascade detector.
    (tmp_path / 'cascade.py').write_text(
        "_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py']\n"
        "model = dict(backbone=dict(init_cfg=None))\n")
    with pytest.raises(ExportError, match='CascadeRoIHead is not supported'):
        export_onnx(str(tmp_path / 'cascade.py'), str(checkpoint), str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['model.pth', 'van.pth', 'cascade.py', config.name, other.name])
    # An existing output is never replaced without --overwrite.
    out.write_bytes(b'keep')
    with pytest.raises(ExportError, match='exists'):
        export_onnx(str(config), str(checkpoint), str(out), shape=(256, 256))
    assert out.read_bytes() == b'keep'
    exported_small = tmp_path / 'small.onnx'
    with pytest.raises(ValueError, match='not written by mmhybrid'):
        import onnx
        onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], 'g', [], [])),
                  str(exported_small))
        read_metadata(str(exported_small))


def test_runtime_refuses_inputs_below_the_minimum(tmp_path):
    config = tiny_config(tmp_path, 'VAN', SEG_CONFIGS['VAN'])
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    out = tmp_path / 'fixed.onnx'
    export_onnx(str(config), str(checkpoint), str(out), shape=(64, 96), dynamic=False)
    exported = ExportedModel(str(out))
    with pytest.raises(ValueError, match='exported for 64x96 inputs only'):
        exported.run(np.zeros((1, 3, 96, 64), np.float32))
    with pytest.raises(ValueError, match='below the exported model.s minimum size 32x32'):
        exported.run(np.zeros((1, 3, 16, 96), np.float32))
    assert exported.run(np.zeros((1, 3, 64, 96), np.float32))[0].shape[-2:] == (64, 96)


def test_export_and_infer_tools(tmp_path):
    """The two tools as a user runs them: export a RetinaNet, then draw the same image from
    PyTorch and from the ONNX file."""
    import cv2
    config = tiny_config(tmp_path, 'VAN', 'configs/det/retinanet_van_b0_1x.py')
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    image = tmp_path / 'image.jpg'
    rng = np.random.default_rng(0)
    cv2.imwrite(str(image), rng.integers(0, 255, (120, 170, 3), dtype=np.uint8))
    out = tmp_path / 'retina.onnx'
    run = [sys.executable, str(REPO / 'tools/deploy/export_onnx.py'), str(config),
           str(checkpoint), str(out), '--shape', '96', '128', '--dynamic']
    proc = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'checked retina.onnx at 1x3x96x128' in proc.stdout
    again = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 2 and 'exists; pass --overwrite' in again.stderr
    for extra, name in (([], 'image_pytorch.png'), (['--onnx', str(out)], 'image_onnx.png')):
        proc = subprocess.run([sys.executable, str(REPO / 'tools/infer.py'), str(config),
                               str(checkpoint), str(image), '--out', str(tmp_path / 'vis'),
                               '--score-thr', '0.05', *extra],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        picture = cv2.imread(str(tmp_path / 'vis' / name))
        assert picture is not None and picture.shape[:2] == (120, 170)


def _load_tool(name: str):
    """The module of ``tools/deploy/<name>.py``, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(f'_{name}', REPO / 'tools/deploy' / f'{name}.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_benchmark_onnx_times_the_folded_file(tmp_path, capsys):
    """tools/deploy/benchmark_onnx.py --switch-to-deploy: both files (as built and folded) are
    exported, checked against the unfolded model at every size (random BatchNorm statistics,
    so the fold changes the weights) and timed; one table row per config."""
    tool = _load_tool('benchmark_onnx')
    config = tiny_config(tmp_path, 'TransCNN', SEG_CONFIGS['TransCNN'])
    threads = torch.get_num_threads()
    try:
        assert tool.main([str(config), '--shape', '64', '96', '--check-sizes', '96x64',
                          '--repeat', '1', '--threads', '1', '--switch-to-deploy']) == 0
    finally:
        torch.set_num_threads(threads)
    header, _, row = capsys.readouterr().out.strip().splitlines()[-3:]
    assert 'onnxruntime, deployed file (s)' in header
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[:2] == [config.name, '64x96'] and len(cells) == 9
    assert all(float(c) > 0 for c in cells[2:6]) and cells[6].endswith('x')
    assert float(cells[8]) < 1e-4

    model, _ = build_model(str(config))
    tool.randomize_norm_statistics_(model)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(not torch.equal(m.running_var, torch.ones_like(m.running_var))
                         for m in norms)
    calls = []
    medians = tool.alternating_medians([lambda: calls.append('a'), lambda: calls.append('b')], 3)
    assert calls == ['a', 'b'] * 4 and len(medians) == 2


def test_a_failed_check_exits_1_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """An export whose onnxruntime check fails is not bad input: the tool prints one message,
    exits 1 (2 is for bad input) and leaves no file behind."""
    import mmhybrid.deploy.export as export
    tool = _load_tool('export_onnx')
    config = tiny_config(tmp_path, 'VAN', SEG_CONFIGS['VAN'])
    checkpoint = save_checkpoint(config, tmp_path / 'model.pth')
    monkeypatch.setattr(export, 'CHECK_RTOL', -1.0)  # every comparison now fails
    out = tmp_path / 'fixed.onnx'
    assert tool.main([str(config), str(checkpoint), str(out), '--shape', '64', '96']) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'onnxruntime differs from PyTorch' in err
    assert 'Traceback' not in err
    assert not out.exists() and not list(tmp_path.glob('*.onnx*'))
