"""Whole released detectors and segmenters (mmdet 2.x / mmseg 0.x files) → mmengine checkpoints.

One row per (backbone family, head) of the released models (``released.RELEASED_KINDS``, from
``mmhybrid.checkpoint.zoo.RELEASED``): a file in the released layout (official dense backbone
names, the heads' names, ``meta`` with ``CLASSES``/``PALETTE``, ``optimizer``/``amp``) made from
a model whose weights were set directly converts, loads into the config's model with every key
placed, and gives that model's outputs (reduced backbone arch: mechanics). Every released row
(``released.RELEASED_ROWS``): the real variant's file converts and its keys and shapes fit the
row's config (meta device). Wrong pairings fail with a message naming the
mismatch; mmdet's / mmseg's own ``tools/test.py`` run a converted file.
"""
import copy
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint

from archs import PARITY_MODELS
from helpers import REPO, converted_weights, official_state_dict
from mmhybrid.checkpoint import CheckpointMismatchError, get_converter
from mmhybrid.checkpoint.dense import (check_fits_model, convert_any_checkpoint_file,
                                       convert_dense_checkpoint_file, convert_dense_state_dict,
                                       fit_problems)
from mmhybrid.utils import build_config_model
from test_e2e import TIMEOUT, _override, _tool_env, shapes_root  # noqa: F401 (fixture)
from released import (FILE_CONFIG, RELEASED_KINDS, RELEASED_ROWS, dataset_meta_of, fill_model,
                      official_dense_key, reduced_config, released_file)

KINDS = list(RELEASED_KINDS)
ROWS = list(RELEASED_ROWS)


# ------------------------------------------------------------- the official dense layout itself
@pytest.mark.parametrize('name', ['crossformer_tiny_reduced', 'uniformer_small_reduced',
                                  'uniformer_light_xxs_reduced', 'van_b0_reduced'])
def test_official_dense_names_are_the_authors(name):
    """The test's map back to the official dense layout gives the key names of the authors'
    files (parity data), less what the dense backbone does not have (classifier, final norm,
    geometry buffers), plus UniFormer's per-output norms ``norm1..4``."""
    family = get_converter({'VAN': 'van', 'CrossFormer': 'crossformer', 'UniFormer': 'uniformer',
                            'UniFormerLight': 'uniformer_light'}[PARITY_MODELS[name][0]]).family
    official = set(official_state_dict(name))
    dropped = re.compile(r'^(head|norm|head_cls|norm_cls)\.|'
                         r'\.attn\.(biases|relative_position_index)$')
    expected = {k for k in official if not dropped.search(k)}
    if family.startswith('uniformer'):
        expected |= {f'norm{i}.{p}' for i in range(1, 5) for p in ('weight', 'bias')}
    mapped = {official_dense_key(family, k) for k in converted_weights(name)}
    assert mapped == expected


# ------------------------------------------------------------- mechanics, reduced backbone
@lru_cache(maxsize=None)
def _meta(dataset):
    return dataset_meta_of(dataset)


def _build(config, device=None):
    return build_config_model(Config.fromfile(str(config)), device=device)


def _det_samples(model, shape):
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                         batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    return [sample]


def _outputs(model, inputs):
    """The model's raw outputs (``mode='tensor'``), flattened to a list of tensors."""
    samples = (_det_samples(model, tuple(inputs.shape[-2:]))
               if hasattr(model, 'rpn_head') else None)
    with torch.no_grad():
        out = model(inputs, samples, mode='tensor')
    flat = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            flat.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)
    walk(out)
    return flat


@pytest.mark.parametrize('kind', KINDS)
def test_released_file_converts_and_loads_with_its_outputs(kind, tmp_path):
    """Converted, the released file loads (strictly, every key placed) into the config's model,
    and that model's outputs are those of the model whose weights were set directly."""
    row = RELEASED_KINDS[kind]
    config = reduced_config(row, PARITY_MODELS[row.reduced][1], tmp_path)
    direct = _build(config).eval()
    loaded = copy.deepcopy(direct)
    weights = fill_model(direct)
    fill_model(loaded, seed=1)  # other weights everywhere: the load must replace them all
    released = released_file(weights, row.family, _meta(row.dataset))
    sd = released['state_dict']
    assert all(k in sd for k in row.released_keys), [k for k in row.released_keys
                                                     if k not in sd]
    assert not any(k.startswith('backbone.stages.') for k in sd)  # official backbone names
    src = tmp_path / 'released.pth'
    torch.save(released, src)
    dst = tmp_path / 'converted.pth'
    # (The fit check of --config runs for every kind on the real variant, below.)
    report = convert_dense_checkpoint_file(str(src), str(dst)).report
    assert report.backbone.family == row.family
    assert sorted(report.dropped_entries) == ['amp', 'optimizer']

    converted = torch.load(dst, map_location='cpu', weights_only=True)
    assert sorted(converted) == ['meta', 'state_dict']
    assert converted['meta']['dataset_meta']['classes'] == _meta(row.dataset)['CLASSES']
    assert len(converted['meta']['dataset_meta']['palette']) == len(_meta(row.dataset)['CLASSES'])
    assert sorted(converted['state_dict']) == sorted(weights)
    again, _ = convert_dense_state_dict(converted['state_dict'])  # idempotent
    assert list(again) == list(converted['state_dict'])

    load_checkpoint(loaded, str(dst), map_location='cpu', strict=True)
    inputs = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    expected, got = _outputs(direct, inputs), _outputs(loaded, inputs)
    assert len(expected) == len(got) > 0
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


# ------------------------------------------------------------- real variants: keys and shapes
@lru_cache(maxsize=None)
def _meta_model(config):
    return build_config_model(Config.fromfile(config), device='meta')


def _real_file(name):
    """The state dict of the released file of row ``name``, from its real variant (meta)."""
    model = _meta_model(str(REPO / FILE_CONFIG[name]))
    return released_file(model.state_dict(), RELEASED_ROWS[name].family)['state_dict']


@pytest.mark.parametrize('name', ROWS)
def test_real_variant_layout_fits_the_config(name):
    """Every released row: the file of its real variant converts (family recognised) and every
    key fits the row's config, shape for shape (the w32/h32 test configs take the `_g` file)."""
    row = RELEASED_ROWS[name]
    sd, report = convert_dense_state_dict(_real_file(name))
    assert report.backbone.family == row.family
    model = _meta_model(str(REPO / row.config))
    assert fit_problems(sd, model) == []


def _convert_real(name):
    return convert_dense_state_dict(_real_file(name))[0]


WRONG_PAIRINGS = {
    # file kind, config, expected message
    'maskrcnn_file_retinanet_config': (
        'maskrcnn_crossformer_s_1x', 'configs/det/retinanet_crossformer_s_1x.py',
        r'head type: file has rpn_head/roi_head \(Mask R-CNN\), config expects bbox_head '
        r'\(RetinaNet\)'),
    'upernet_150_classes_config_80': (
        'upernet_uniformer_s_160k_g', 'upernet_uniformer_s_160k_g_80',
        r'class count: file has 150 classes \(decode_head\.conv_seg: 150 outputs\), config has '
        r'80 \(decode_head\.conv_seg: 80 outputs\)'),
    'maskrcnn_80_classes_config_150': (
        'maskrcnn_crossformer_s_1x', 'maskrcnn_crossformer_s_1x_150',
        r'class count: file has 80 classes \(roi_head\.bbox_head\.fc_cls: 81 outputs = classes '
        r'\+ background\), config has 150'),
    'uniformer_s_file_b_config': (
        'maskrcnn_uniformer_s_1x', 'configs/det/maskrcnn_uniformer_b_1x.py',
        r"backbone variant: the file's backbone does not fit the config's "
        r"UniFormer\(arch='base'\); the file's backbone is UniFormer\(arch='small'\): \d+ "
        r"keys of the config's backbone absent from the file: stages\.\*\.blocks"),
    'crossformer_file_uniformer_config': (
        'maskrcnn_crossformer_s_1x', 'configs/det/maskrcnn_uniformer_s_1x.py',
        r"backbone family: the file's backbone is crossformer, the config's is "
        r"UniFormer\(arch='small'\)"),
    'uniformer_xxs_file_xs_config': (
        'maskrcnn_uniformer_xxs_1x', 'configs/det/maskrcnn_uniformer_xs_1x.py',
        r"backbone variant: the file's backbone does not fit the config's "
        r"UniFormerLight\(arch='xs'\); the file's backbone is UniFormerLight\(arch='xxs'\)"),
    'uniformer_light_file_uniformer_config': (
        'maskrcnn_uniformer_xxs_1x', 'configs/det/maskrcnn_uniformer_s_1x.py',
        r"backbone family: the file's backbone is uniformer_light, the config's is "
        r"UniFormer\(arch='small'\)"),
    'maskrcnn_file_cascade_config': (
        'maskrcnn_uniformer_s_1x', 'configs/det/cascade_maskrcnn_uniformer_s_3x_ms.py',
        r'head type: file has rpn_head/roi_head \(Mask R-CNN\), config expects '
        r'rpn_head/roi_head \(Cascade Mask R-CNN\)'),
}


def _wrong_config(name, tmp_path):
    if name.endswith(('_80', '_150')):
        base, classes = name.rsplit('_', 1)
        kind = RELEASED_ROWS[base]
        heads = ('decode_head=dict(num_classes={n}), auxiliary_head=dict(num_classes={n})'
                 if '/seg/' in kind.config else
                 'roi_head=dict(bbox_head=dict(num_classes={n}), mask_head=dict(num_classes={n}))')
        path = tmp_path / f'{name}.py'
        path.write_text(f'_base_ = [{str(REPO / kind.config)!r}]\n'
                        f'model = dict({heads.format(n=classes)})\n')
        return str(path)
    return str(REPO / name)


@pytest.mark.parametrize('pairing', list(WRONG_PAIRINGS))
def test_wrong_pairing_is_refused_naming_the_mismatch(pairing, tmp_path):
    kind, config, message = WRONG_PAIRINGS[pairing]
    sd = _convert_real(kind)
    model = _meta_model(_wrong_config(config, tmp_path))
    with pytest.raises(CheckpointMismatchError, match=message):
        check_fits_model(sd, model)


def test_cascade_stage_count_is_named():
    name = 'cascade_maskrcnn_uniformer_s_3x_ms'
    sd = _convert_real(name)
    sd = {k: v for k, v in sd.items() if not re.match(r'roi_head\.(bbox|mask)_head\.2\.', k)}
    model = _meta_model(str(REPO / RELEASED_ROWS[name].config))
    with pytest.raises(CheckpointMismatchError,
                       match=r'cascade stages: file has 2 \(roi_head\.bbox_head\.0-1\), config '
                             r'has 3'):
        check_fits_model(sd, model)


# ------------------------------------------------------------- heads we do not know
@pytest.mark.parametrize('extra, message', [
    ('query_head.layers.0.weight',
     r'parts this converter does not know: query_head\.\* \(e\.g\. query_head\.layers\.0\.'),
    ('decode_head.aspp_modules.0.conv.weight',
     r"decode_head is not a head this converter knows .*decode_head\.aspp_modules.*supported "
     r'decode_head: UPerHead, FPNHead, FCNHead'),
])
def test_unknown_head_is_an_error_naming_it(extra, message, tmp_path):
    sd = _real_file('upernet_van_b2_160k')
    sd[extra] = torch.zeros(2, device='meta')
    with pytest.raises(CheckpointMismatchError, match=message):
        convert_dense_state_dict(sd)


# ------------------------------------------------------------- meta: classes and palette
def _ade(**changes):
    meta = dict(_meta('ade20k'))
    meta.update(changes)
    return meta


def _numpy_placeholder():
    from mmhybrid.checkpoint.safe_load import _placeholder
    return _placeholder('numpy.core.multiarray', '_reconstruct')()


DATASET_META_CASES = {
    # name: (meta, palette expected or error regex, report text)
    'mmseg_0x': (lambda: _ade(), 'file', 'palette from the file'),
    'mmdet_2x_coco_no_palette': (lambda: _meta('coco'), 'coco',
                                 'palette of the dataset with these class names'),
    'pickled_numpy_palette': (lambda: _ade(PALETTE=_numpy_placeholder()), 'ade20k',
                              "the file's, a numpy.core.multiarray._reconstruct, is not read"),
    'mmengine_dataset_meta': (lambda: {'dataset_meta': {'classes': ('a', 'b'),
                                                        'palette': [[1, 2, 3], [4, 5, 6]]}},
                              'file', 'palette from the file'),
    'short_palette': (lambda: _ade(PALETTE=[[1, 2, 3]]),
                      r'not one RGB triple per class \(1 colours for 150 classes\)', None),
    'pairs_not_triples': (lambda: {'CLASSES': ('a', ), 'PALETTE': [[1, 2]]},
                          'not one RGB triple per class', None),
    'classes_a_string': (lambda: {'CLASSES': 'person'}, 'not a list of class names', None),
}


@pytest.mark.parametrize('case', list(DATASET_META_CASES))
def test_dataset_meta_from_the_files_meta(case):
    from mmhybrid.checkpoint.dense import DenseReport, dataset_meta
    from mmhybrid.checkpoint.core import ConversionReport
    make, expected, text = DATASET_META_CASES[case]
    meta = make()
    sd = {('decode_head.conv_seg.weight' if 'coco' not in case else 'rpn_head.rpn_conv.weight'):
          torch.zeros(1)}
    report = DenseReport(backbone=ConversionReport())
    if text is None:
        with pytest.raises(CheckpointMismatchError, match=expected):
            dataset_meta(meta, sd, report)
        return
    result = dataset_meta(meta, sd, report)
    classes = meta.get('CLASSES', meta.get('dataset_meta', {}).get('classes'))
    assert result['classes'] == tuple(classes)
    if expected == 'file':
        palette = meta.get('PALETTE', meta.get('dataset_meta', {}).get('palette'))
        assert result['palette'] == [list(c) for c in palette]
    else:
        from mmdet.datasets import CocoDataset
        from mmseg.datasets import ADE20KDataset
        dataset = CocoDataset if expected == 'coco' else ADE20KDataset
        assert result['palette'] == [list(c) for c in dataset.METAINFO['palette']]
    assert text in report.format()


# ------------------------------------------------------------- the CLI
def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'),
                           *map(str, args)], capture_output=True, text=True, timeout=300)


def _released_reduced(kind, tmp_path):
    row = RELEASED_ROWS[kind]
    config = reduced_config(row, PARITY_MODELS[row.reduced][1], tmp_path)
    weights = fill_model(_build(config))
    src = tmp_path / f'{kind}.pth'
    torch.save(released_file(weights, row.family, _meta(row.dataset)), src)
    return config, src


def test_cli_whole_file_recognised_checked_and_refused(tmp_path):
    config, src = _released_reduced('upernet_van_b2_160k', tmp_path)
    before = src.read_bytes()
    dst = tmp_path / 'out' / 'upernet.pth'
    result = _cli(src, dst, '--config', config)
    assert result.returncode == 0, result.stderr
    assert 'whole UPerNet file: backbone van' in result.stdout
    assert 'dropped training state: optimizer, amp' in result.stdout
    assert 'dataset_meta: 150 classes, palette from the file' in result.stdout
    assert re.search(r'sha256: [0-9a-f]{64}', result.stdout)
    assert torch.load(dst, weights_only=True)['meta']['dataset_meta']['palette'][0] == \
        [120, 120, 120]
    # A misfit writes nothing and names the problem; SRC is never a destination.
    result = _cli(src, tmp_path / 'never.pth', '--config', config, '--cfg-options',
                  'model.decode_head.num_classes=80', 'model.auxiliary_head.num_classes=80')
    assert result.returncode == 2
    assert 'file has 150 classes (decode_head.conv_seg: 150 outputs), config has 80' \
        in result.stderr
    assert not (tmp_path / 'never.pth').exists()
    # Class names that do not go with the head: the file is inconsistent.
    released = torch.load(src, weights_only=True)
    released['meta']['CLASSES'] = released['meta']['CLASSES'][:3]
    released['meta']['PALETTE'] = released['meta']['PALETTE'][:3]
    torch.save(released, tmp_path / 'inconsistent.pth')
    with pytest.raises(CheckpointMismatchError, match=r'meta CLASSES names 3 classes, but the '
                       r'head has 150 \(decode_head\.conv_seg: 150 outputs\)'):
        convert_dense_checkpoint_file(str(tmp_path / 'inconsistent.pth'), None)
    with pytest.raises(FileExistsError, match='over its source'):
        convert_any_checkpoint_file(str(src), str(src), overwrite=True)
    assert src.read_bytes() == before
    # full=False (--backbone-only): the backbone part, as for an ImageNet file (plain keys).
    result = convert_any_checkpoint_file(str(src), str(tmp_path / 'backbone.pth'), full=False,
                                         arch=PARITY_MODELS['van_b0_reduced'][1])
    assert result.report.ok
    assert all(k.startswith('stages.') for k in torch.load(tmp_path / 'backbone.pth',
                                                           weights_only=True))


# ------------------------------------------------------------- mmdet's / mmseg's own tools
OWN_TOOL_RUNS = {
    # kind: (package whose tools/test.py runs, e2e override kind, metric in its output)
    'maskrcnn_crossformer_s_1x': ('mmdet', 'det', 'coco/bbox_mAP'),
    'upernet_van_b2_160k': ('mmseg', 'seg', 'mIoU'),
}


@pytest.mark.xdist_group('e2e')
@pytest.mark.parametrize('kind', list(OWN_TOOL_RUNS))
def test_own_test_tool_runs_the_converted_file(kind, tmp_path, shapes_root):
    """mmdet's / mmseg's own ``tools/test.py`` evaluate a converted file on the synthetic
    shapes data: the checkpoint loads with every key matched, its classes reach the model."""
    import importlib

    from mmhybrid.datasets import SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES
    package, task, metric = OWN_TOOL_RUNS[kind]
    tool = Path(importlib.import_module(package).__file__).parent / '.mim' / 'tools' / 'test.py'
    if not tool.is_file():
        pytest.skip(f'{package} is installed without its tools ({tool})')
    row = RELEASED_ROWS[kind]
    config = tmp_path / f'{kind}_shapes.py'
    config.write_text(_override(task, reduced_config(row, PARITY_MODELS[row.reduced][1],
                                                     tmp_path), shapes_root))
    meta = ({'CLASSES': SHAPE_CLASSES} if task == 'det' else
            {'CLASSES': SEG_CLASSES, 'PALETTE': [list(c) for c in SEG_PALETTE]})
    src, dst = tmp_path / 'released.pth', tmp_path / 'converted.pth'
    torch.save(released_file(fill_model(_build(config)), row.family, meta), src)
    convert_dense_checkpoint_file(str(src), str(dst), config=str(config))
    env = dict(_tool_env(), PYTHONPATH=str(REPO))  # the tool imports this checkout's mmhybrid
    proc = subprocess.run([sys.executable, str(tool), str(config), str(dst), '--work-dir',
                           str(tmp_path / 'test')], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert 'Load checkpoint from' in out and metric in out, out[-3000:]
    assert 'do not match exactly' not in out and 'missing keys' not in out, out[-3000:]
