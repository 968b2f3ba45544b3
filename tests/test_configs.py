"""Every det/seg config builds through mmdet/mmseg and runs a forward pass, states each number once
(channels from the backbone's arch zoo, recipes from configs/_base_/det|seg/), and keeps the
official recipe of its family."""
import ast
import fnmatch
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
    'det': ('retinanet_', 'maskrcnn_'),
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


@pytest.mark.parametrize('path', CONFIGS)
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
# Drop-path rates the dense configs set over the backbone file's (UniFormer's segmentation ones).
DROP_PATH = {
    'seg/fpn_uniformer_s_80k.py': 0.1, 'seg/fpn_uniformer_b_80k.py': 0.2,
    'seg/upernet_uniformer_s_160k.py': 0.25, 'seg/upernet_uniformer_b_160k.py': 0.4,
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
    assert _plain(cfg.optim_wrapper) == _plain(recipe['optim_wrapper'])
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
