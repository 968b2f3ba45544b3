"""Every det/seg config builds through mmdet/mmseg and runs a forward pass, states each number once
(channels from the backbone's arch zoo, recipes from configs/_base_/det|seg/), and keeps the
official recipe of its family."""
import ast
import fnmatch
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO)) for d in ('det', 'seg')
                 for p in (REPO / 'configs' / d).glob('*.py'))
DEMO_CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / 'configs' / 'demo').glob('*.py'))
NAME_PATTERN = {
    'det': ('retinanet_', 'maskrcnn_', 'cascade_maskrcnn_'),
    'seg': ('fpn_', 'upernet_'),
}


def load(path: str) -> Config:
    cfg = Config.fromfile(str(REPO / path))
    # The ImageNet files are not on a test machine: build with random weights.
    cfg.model.backbone.init_cfg = None
    return cfg


def build_model(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_configs_exist():
    assert any('van' in c for c in CONFIGS)


# Test-time variants of a trained model (UniFormer's `_w32` / `_h32` over `_g`): they change only
# the backbone's attention layout (test_test_variant_changes_only_the_attention below), so they
# build and load the same weights; the window/hybrid layouts run in tests/test_uniformer.py.
TEST_VARIANTS = {c: re.sub(r'_(w32|h32)\.py$', '_g.py', c) for c in CONFIGS
                 if re.search(r'_(w32|h32)\.py$', c)}


@pytest.mark.parametrize('path', [c for c in CONFIGS if c not in TEST_VARIANTS])
def test_config_builds_and_runs(path):
    kind = Path(path).parent.name
    name = Path(path).name
    assert name.startswith(NAME_PATTERN[kind]), f'{name}: unexpected head prefix'
    cfg = load(path)
    assert cfg.custom_imports['imports'] == ['mmhybrid']
    assert cfg.model.backbone.type.startswith('mmhybrid.')
    assert cfg.default_scope == ('mmdet' if kind == 'det' else 'mmseg')
    if kind == 'seg':
        assert cfg.model.get('pretrained') is None, 'seg configs must not pass `pretrained`'
    model = build_model(cfg).eval()
    backbone = model.backbone
    if kind == 'det' or 'neck' in cfg.model:
        assert list(cfg.model.neck.in_channels) == list(backbone.out_channels)
    else:
        assert list(cfg.model.decode_head.in_channels) == list(backbone.out_channels)
        assert cfg.model.auxiliary_head.in_channels == \
            backbone.out_channels[cfg.model.auxiliary_head.in_index]
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 96, 128))
    assert all(torch.isfinite(f).all() for f in feats)
    # The heads get contiguous NCHW maps: mmcv's RoIAlign reads raw NCHW memory and silently
    # returns wrong features for channels-last-strided ones.
    assert all(f.is_contiguous() for f in feats)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_points_at_official_checkpoint(path):
    init_cfg = Config.fromfile(str(REPO / path)).model.backbone.init_cfg
    assert init_cfg['type'] == 'Pretrained'
    assert init_cfg['checkpoint'].startswith('pretrained/')


# The official recipe of each (config, family), written out here as the check of what the
# configs/_base_/ files state once: optimizer, parameter-wise keys, clipping, LR schedule, loop
# length and images per GPU. First matching pattern wins.
_DET_1X = dict(
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)],
    train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1),
    batch_size=2)
_DET_3X = dict(  # mmdet 2.x's 1x warm-up, steps at epochs 27 and 33
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)],
    train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1),
    batch_size=2)
_FPN_POLY = dict(
    param_scheduler=[
        dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)],
    train_cfg=dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000),
    batch_size=2)
_UPERNET = dict(
    param_scheduler=[
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False)],
    train_cfg=dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000),
    batch_size=2)
_UPERNET_OPTIM = dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
_NO_DECAY = dict(decay_mult=0.)
RECIPES = [
    # CrossFormer and CrossFormer++ (the main branch keeps the recipe).
    ('det/*_crossformer*_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None))),
    ('det/*_uniformer_*_3x_ms.py', dict(_DET_3X, optim_wrapper=dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}), clip_grad=None))),
    ('det/*_uniformer_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}), clip_grad=None))),
    ('det/*_van_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05)))),
    ('det/*', dict(_DET_1X, optim_wrapper=dict(  # CMT, HAT-Net, TransCNN: PVT's
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4)))),
    ('seg/fpn_uniformer_*', dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                           clip_grad=None),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
            dict(type='CosineAnnealingLR', T_max=80000, eta_min_ratio=1e-8, begin=0, end=80000,
                 by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000),
        batch_size=4)),
    ('seg/fpn_van_*', dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                           clip_grad=None),
        param_scheduler=[
            dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000),
        batch_size=4)),
    ('seg/fpn_*', dict(_FPN_POLY, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None))),
    ('seg/upernet_van_b4*', dict(_UPERNET, batch_size=4, optim_wrapper=dict(  # official B4: 4/GPU
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'layer_scale': _NO_DECAY, 'norm': _NO_DECAY})))),
    ('seg/upernet_van_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'layer_scale': _NO_DECAY, 'norm': _NO_DECAY})))),
    ('seg/upernet_cmt_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'relative_pos': _NO_DECAY, 'norm': _NO_DECAY})))),
    ('seg/upernet_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY})))),
]
# Drop-path rates of the official configs where a dense config sets its own over the backbone
# file's (UniFormer's segmentation and 3x detection ones, VAN's UPerNet,
# UniFormer-light's).
DROP_PATH = {
    'seg/fpn_uniformer_s_80k.py': 0.1, 'seg/fpn_uniformer_b_80k.py': 0.2,
    'seg/upernet_uniformer_s_160k.py': 0.25, 'seg/upernet_uniformer_b_160k.py': 0.4,
    **{f'seg/fpn_uniformer_s_80k_{t}.py': 0.1 for t in ('g', 'w32', 'h32')},
    **{f'seg/fpn_uniformer_b_80k_{t}.py': 0.2 for t in ('g', 'w32', 'h32')},
    **{f'seg/upernet_uniformer_s_160k_{t}.py': 0.25 for t in ('g', 'w32', 'h32')},
    **{f'seg/upernet_uniformer_b_160k_{t}.py': 0.4 for t in ('g', 'w32', 'h32')},
    'det/maskrcnn_uniformer_s_3x_ms.py': 0.1, 'det/maskrcnn_uniformer_b_3x_ms.py': 0.3,
    'det/cascade_maskrcnn_uniformer_s_3x_ms.py': 0.2,
    'det/cascade_maskrcnn_uniformer_b_3x_ms.py': 0.4,
    'seg/upernet_van_b2_160k.py': 0.1, 'seg/upernet_van_b3_160k.py': 0.3,
    'seg/upernet_van_b4_160k.py': 0.4, 'seg/upernet_van_b4_in22k_160k.py': 0.4,
    'seg/upernet_van_b5_160k.py': 0.4, 'seg/upernet_van_b6_160k.py': 0.5,
    'det/maskrcnn_uniformer_xxs_1x.py': 0., 'det/maskrcnn_uniformer_xs_1x.py': 0.15,
    'seg/fpn_uniformer_xxs_80k.py': 0., 'seg/fpn_uniformer_xs_80k.py': 0.1,
}


# Backbone settings a config must keep: the official dense configs of CrossFormer++ (branch main)
# use group 7 / intervals 8, 4, 2, 1, not the ImageNet groups that are the archs' defaults.
BACKBONE_SETTINGS = [
    ('*_crossformerpp_*', dict(group_size=7, interval=(8, 4, 2, 1), lda_mode='regional')),
]


def _plain(value):
    """ConfigDicts and tuples as plain dicts and lists, for comparison (without the `_scope_`
    that mmengine adds to what comes from `mmdet::` / `mmseg::` bases)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize('path', CONFIGS)
def test_config_keeps_its_official_recipe(path):
    cfg = Config.fromfile(str(REPO / path))
    path = str(Path(path).relative_to('configs'))
    recipe = next(r for pattern, r in RECIPES if fnmatch.fnmatch(path, pattern))
    optim_wrapper = _plain(cfg.optim_wrapper)
    # The recipe's groups, built as plain dicts so that compile=True can trace the optimizer
    # step (mmhybrid.engine.optim; the groups themselves are tested in test_engine.py).
    constructor = optim_wrapper.pop('constructor', None)
    assert constructor == ('mmhybrid.PlainGroupsOptimWrapperConstructor'
                           if 'paramwise_cfg' in optim_wrapper else None)
    assert optim_wrapper == _plain(recipe['optim_wrapper'])
    assert _plain(cfg.param_scheduler) == _plain(recipe['param_scheduler'])
    assert _plain(cfg.train_cfg) == _plain(recipe['train_cfg'])
    assert cfg.train_dataloader.batch_size == recipe['batch_size']
    if path.startswith('det/'):
        # ImageNet mean/std in RGB, as the backbones were pretrained.
        assert cfg.model.data_preprocessor.bgr_to_rgb is True
    if path in DROP_PATH:
        assert cfg.model.backbone.drop_path_rate == DROP_PATH[path]
    for pattern, settings in BACKBONE_SETTINGS:
        if fnmatch.fnmatch(path, pattern):
            for key, value in settings.items():
                assert _plain(cfg.model.backbone.get(key)) == _plain(value), key
    if path.startswith('seg/'):
        checkpoint_every = cfg.default_hooks.checkpoint
        assert checkpoint_every.by_epoch is False
        assert checkpoint_every.interval == cfg.train_cfg.val_interval


# The official test of each segmenter (configs/_base_/seg/ade20k_test.py), written out: the
# resize steps of the single-scale pipeline (short side 512, long side at most 2048; rounded up to
# a multiple of 32 where the official pipeline had `AlignResize` / `ResizeToMultiple`) and whether
# the `--tta` pipeline flips. First matching pattern wins.
_SHORT_512 = [dict(type='Resize', scale=(2048, 512), keep_ratio=True)]
_ALIGN_32 = _SHORT_512 + [dict(type='ResizeToMultiple', size_divisor=32)]
SEG_TESTS = [
    ('seg/*_crossformer_*', _ALIGN_32, False),  # official ade20k[_swin].py: flip=False
    ('seg/fpn_uniformer_*', _ALIGN_32, True),
    ('seg/*_van_*', _ALIGN_32, True),
    ('seg/*', _SHORT_512, True),
]
# mmseg 0.x MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=[0.5, ..., 1.75]) targets.
MS_SCALES = [(1024, 256), (1536, 384), (2048, 512), (2560, 640), (3072, 768), (3584, 896)]
SEG_CONFIGS = [c for c in CONFIGS if c.startswith('configs/seg/')]


@pytest.mark.parametrize('path', SEG_CONFIGS)
def test_seg_config_keeps_its_official_test(path):
    cfg = Config.fromfile(str(REPO / path))
    rel = str(Path(path).relative_to('configs'))
    resizes, flip = next((r, f) for pattern, r, f in SEG_TESTS if fnmatch.fnmatch(rel, pattern))
    assert cfg.model.test_cfg.mode == 'whole'
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        steps = [t for t in loader.dataset.pipeline if 'Resize' in t['type']]
        assert _plain(steps) == _plain(resizes)
    load, tta = cfg.tta_pipeline
    assert load['type'] == 'LoadImageFromFile' and tta['type'] == 'TestTimeAug'
    scales, *rest = tta['transforms']
    assert [tuple(t['scale']) for t in scales] == MS_SCALES
    assert all(t['type'] == 'Resize' and t['keep_ratio'] for t in scales)
    if len(resizes) == 2:
        assert _plain(rest.pop(0)) == _plain(resizes[1:])
    flips = rest.pop(0)
    assert [t['prob'] for t in flips] == ([0., 1.] if flip else [0.])
    assert [[t['type'] for t in step] for step in rest] == [['LoadAnnotations'],
                                                            ['PackSegInputs']]


# One config per kind of `--tta` pipeline: mmhybrid's tools/test.py --tta wraps the model in
# mmseg's SegTTAModel and feeds it every scale x flip of an image, each rounded as configured.
@pytest.mark.parametrize('path', ['configs/seg/upernet_crossformer_s_160k.py',
                                  'configs/seg/upernet_van_b2_160k.py',
                                  'configs/seg/upernet_uniformer_s_160k_g.py'])
def test_seg_tta_builds(path, tmp_path):
    import mmcv
    import numpy as np
    from mmseg.registry import MODELS, TRANSFORMS

    from mmhybrid.engine.runner import use_tta
    cfg = load(path)
    use_tta(cfg)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'SegTTAModel' and hasattr(model.module, 'decode_head')
    image = np.random.default_rng(0).integers(0, 255, (300, 451, 3), dtype=np.uint8)
    mmcv.imwrite(image, str(tmp_path / 'a.jpg'))
    mmcv.imwrite(image[..., 0], str(tmp_path / 'a.png'))
    load_image, tta = [TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline]
    results = tta(load_image(dict(img_path=str(tmp_path / 'a.jpg'),
                                  seg_map_path=str(tmp_path / 'a.png'), reduce_zero_label=True,
                                  seg_fields=[])))
    shapes = [sample.metainfo['img_shape'] for sample in results['data_samples']]
    flips = [sample.metainfo['flip'] for sample in results['data_samples']]
    aligned = 'crossformer' in path or 'van' in path
    assert len(shapes) == len(MS_SCALES) * (1 if 'crossformer' in path else 2)
    assert flips == [False, True] * len(MS_SCALES) if len(shapes) > len(MS_SCALES) else \
        flips == [False] * len(MS_SCALES)
    for (h, w), (_, short) in zip(shapes[::len(shapes) // len(MS_SCALES)], MS_SCALES):
        # 300x451 scaled to short side `short`, then up to a multiple of 32 where configured.
        assert h == (-(-short // 32) * 32 if aligned else short)
        assert w % 32 == 0 if aligned else w == int(451 * short / 300 + 0.5)


@pytest.mark.parametrize('path', sorted(TEST_VARIANTS))
def test_test_variant_changes_only_the_attention(path):
    trained = Config.fromfile(str(REPO / TEST_VARIANTS[path])).to_dict()
    variant = Config.fromfile(str(REPO / path)).to_dict()
    mode = 'window' if path.endswith('_w32.py') else 'hybrid'
    assert variant['model']['backbone'].pop('attn_modes') == (mode, 'global')
    assert variant['model']['backbone'].pop('window_size') == 32
    assert trained['model']['backbone'].pop('attn_modes') == ('global', 'global')
    trained['model']['backbone'].pop('window_size')
    assert variant == trained


def _assigned(path: Path, name: str):
    """The value nodes assigned to ``name`` at the top level of a config file."""
    tree = ast.parse(path.read_text())
    return [node.value for node in tree.body if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)]


@pytest.mark.parametrize('path', sorted((REPO / 'configs' / '_base_' / 'backbones').glob('*.py')),
                         ids=lambda p: p.name)
def test_backbone_channels_are_read_from_the_arch_zoo(path):
    # STYLE.md habit 9: the stage widths live in the class's arch_zoo only; a base file derives
    # them (README.md there) and never writes them out.
    for value in _assigned(path, 'backbone_channels'):
        assert not isinstance(value, (ast.List, ast.Tuple)), f'{path.name} retypes the channels'
    cfg = Config.fromfile(str(path))
    if 'arch' in cfg.backbone:
        from mmhybrid.registry import MODELS
        backbone_cls = MODELS.get(cfg.backbone.type.split('.', 1)[1])
        assert list(cfg.backbone_channels) == list(
            backbone_cls.parse_arch(cfg.backbone.arch)[1]['embed_dims'])
        assert cfg.backbone_stage3_channels == cfg.backbone_channels[2]


@pytest.mark.parametrize('path', CONFIGS)
def test_leaf_states_no_channels_or_recipe(path):
    # A leaf names its head, recipe and backbone bases and wires the backbone's channels in; the
    # numbers live in configs/_base_/.
    text = (REPO / path).read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith('#')]
    assert 'in_channels=[' not in text
    assert not any(key in text for key in ('lr=', 'weight_decay=', 'max_iters=', 'max_epochs=',
                                           'param_scheduler', 'batch_size='))
    assert len(code) <= 12, f'{path}: {len(code)} lines of code'


@pytest.mark.parametrize('path', DEMO_CONFIGS)
def test_demo_classes_come_from_mmhybrid_datasets(path):
    # Detection: the 3 shape classes; segmentation: background + the shapes, nothing ignored.
    from mmhybrid.datasets import SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE
    text = (REPO / path).read_text()
    assert not any(repr(name) in text for name in SEG_CLASSES), f'{path} retypes class names'
    cfg = Config.fromfile(str(REPO / path))
    seg = 'decode_head' in cfg.model
    classes, palette = (SEG_CLASSES, SEG_PALETTE) if seg else (SHAPE_CLASSES, SHAPE_PALETTE)
    assert tuple(cfg.metainfo['classes']) == classes
    assert [tuple(c) for c in cfg.metainfo['palette']] == list(palette)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.dataset.metainfo == cfg.metainfo
        if seg:
            assert loader.dataset.reduce_zero_label is False
            assert all(t.get('reduce_zero_label') in (None, False)
                       for t in loader.dataset.pipeline)
    heads = ([cfg.model.decode_head] if seg else
             [cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head])
    assert all(head.num_classes == len(classes) for head in heads)
