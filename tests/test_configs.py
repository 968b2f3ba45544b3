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


def _batch_norms(*modules: torch.nn.Module) -> list:
    from torch.nn.modules.batchnorm import _BatchNorm
    return sorted({type(m).__name__ for module in modules for m in module.modules()
                   if isinstance(m, _BatchNorm)})


def test_configs_exist():
    assert any('van' in c for c in CONFIGS)
    assert QUICK_CONFIGS <= set(CONFIGS)


# Test-time variants of a trained model (UniFormer's `_w32` / `_h32` over `_g`): they change only
# the backbone's attention layout (test_test_variant_changes_only_the_attention below), so they
# build and load the same weights; the window/hybrid layouts run in tests/test_uniformer.py.
TEST_VARIANTS = {c: re.sub(r'_(w32|h32)\.py$', '_g.py', c) for c in CONFIGS
                 if re.search(r'_(w32|h32)\.py$', c)}


# The quick tier (`make test-quick`) builds and runs one config per family (CrossFormer, UniFormer,
# CMT, TransCNN / HAT-Net, VAN) and task, the smallest.
QUICK_CONFIGS = {f'configs/{c}.py' for c in (
    'det/maskrcnn_crossformer_t_1x', 'det/maskrcnn_uniformer_xxs_1x', 'det/retinanet_cmt_ti_1x',
    'det/maskrcnn_hatnet_t_1x', 'det/retinanet_van_b0_1x', 'seg/upernet_crossformer_t_160k',
    'seg/fpn_uniformer_xxs_80k', 'seg/fpn_cmt_s_80k', 'seg/fpn_hatnet_t_80k',
    'seg/fpn_van_b0_40k')}


@pytest.mark.parametrize('path', [
    pytest.param(c, marks=pytest.mark.quick) if c in QUICK_CONFIGS else c
    for c in CONFIGS if c not in TEST_VARIANTS])
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
    # Norm kinds as the authors' code (NORMS, with sources).
    backbone_norms, head_norms, _ = _first(NORMS, str(Path(path).relative_to('configs')))
    assert _batch_norms(backbone) == backbone_norms
    assert _batch_norms(*[m for n, m in model.named_children() if n != 'backbone']) == head_norms
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


# The authors' repositories at the commits every recipe value below is read from
# (`owner/repo@commit`; a source is `owner/repo@commit:path`).
CROSSFORMER = 'cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16'  # branch crossformer
CROSSFORMER_PP = 'cheerss/CrossFormer@795201075f0066e78408882617312084e25aef61'  # branch main
UNIFORMER = 'Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d'
VAN_UPERNET = 'Visual-Attention-Network/VAN-Segmentation@8285fc7ad39e7944d5f25ba132f1cdfdce7d865d'
# The commit whose README first links the released Semantic FPN files (the code that wrote them).
VAN_FPN = 'Visual-Attention-Network/VAN-Segmentation@9b9e632a5e5eebdc0add82aa91d6f84b4b8a9e22'
# Configs without an official counterpart: where their recipe comes from instead.
NO_OFFICIAL = 'no official config: '

# The official recipe of each (config, family), written out here as the check of what the
# configs/_base_/ files state once: optimizer (mixed precision included), parameter-wise keys,
# clipping, LR schedule, loop length, images per GPU x GPUs, with the source of the values. First
# matching pattern wins.
_DET_1X = dict(
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)],
    train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1),
    batch_size=2, gpus=8)
_DET_3X = dict(  # mmdet 2.x's 1x warm-up, steps at epochs 27 and 33
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)],
    train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=36, val_interval=1),
    batch_size=2, gpus=8)
_FPN_POLY = dict(
    param_scheduler=[
        dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)],
    train_cfg=dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000),
    batch_size=2, gpus=8)
_UPERNET = dict(
    param_scheduler=[
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False)],
    train_cfg=dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000),
    batch_size=2, gpus=8)
_UPERNET_OPTIM = dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01)
_NO_DECAY = dict(decay_mult=0.)
_UNIFORMER_DET_OPTIM = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}), clip_grad=None)
# apex AMP O1 (EpochBasedRunnerAmp, DistOptimizerHook(use_fp16=True)) in mmengine's terms.
_FP16 = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
RECIPES = [
    ('det/*_crossformer_t_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)), NO_OFFICIAL + 'the CrossFormer-S/B recipe below'),
    ('det/*_crossformerpp_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)),
     f'{CROSSFORMER_PP}:detection/configs/crossformer_pp/mask_rcnn_crossformerpp_s_fpn_1x_coco.py'),
    ('det/*_crossformer_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)),
     f'{CROSSFORMER}:detection/configs/mask_rcnn_crossformer_s_fpn_1x_coco.py'),
    ('det/*_uniformer_*_3x_ms.py', dict(_DET_3X, optim_wrapper=dict(_UNIFORMER_DET_OPTIM, **_FP16)),
     f'{UNIFORMER}:object_detection/exp/mask_rcnn_3x_ms_hybrid_small/config.py'),
    ('det/maskrcnn_uniformer_[sb]_1x.py', dict(_DET_1X, optim_wrapper=dict(
        _UNIFORMER_DET_OPTIM, **_FP16)),
     f'{UNIFORMER}:object_detection/exp/mask_rcnn_1x_hybrid_small/config.py'),
    ('det/maskrcnn_uniformer_*', dict(_DET_1X, optim_wrapper=_UNIFORMER_DET_OPTIM),  # fp32
     f'{UNIFORMER}:object_detection/exp_light/mask_rcnn_1x_xxs/config.py'),
    ('det/retinanet_uniformer_*', dict(_DET_1X, optim_wrapper=_UNIFORMER_DET_OPTIM),
     NO_OFFICIAL + 'the UniFormer Mask R-CNN optimizer, in fp32'),
    ('det/*_van_*', dict(_DET_1X, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))),
     NO_OFFICIAL + 'the VAN paper (arXiv 2202.09741), COCO settings'),
    ('det/*', dict(_DET_1X, optim_wrapper=dict(  # CMT, HAT-Net, TransCNN: PVT's
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))),
     NO_OFFICIAL + 'PVT\'s COCO recipe, which the CMT and HAT-Net papers follow'),
    ('seg/fpn_uniformer_x*', dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                           clip_grad=None),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
            dict(type='CosineAnnealingLR', T_max=80000, eta_min_ratio=1e-8, begin=0, end=80000,
                 by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000),
        batch_size=4, gpus=8),
     f'{UNIFORMER}:semantic_segmentation/fpn_seg/exp_light/fpn_xxs/config.py'),
    ('seg/fpn_uniformer_*', dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                           clip_grad=None),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
            dict(type='CosineAnnealingLR', T_max=80000, eta_min_ratio=1e-8, begin=0, end=80000,
                 by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000),
        batch_size=4, gpus=8),
     f'{UNIFORMER}:semantic_segmentation/fpn_seg/exp/fpn_hybrid_small/config.py'),
    ('seg/fpn_van_*', dict(
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                           clip_grad=None),
        param_scheduler=[
            dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000),
        batch_size=4, gpus=8),
     f'{VAN_FPN}:configs/sem_fpn/VAN/fpn_van_base_ade20k_40k.py'),
    ('seg/fpn_crossformerpp_*', dict(_FPN_POLY, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)),
     f'{CROSSFORMER_PP}:segmentation/configs/crossformer_pp/fpn_crossformerpp_s_ade20k_40k.py '
     '(batch: segmentation/README.md, 16)'),
    ('seg/fpn_crossformer_*', dict(_FPN_POLY, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)),
     f'{CROSSFORMER}:segmentation/configs/fpn_crossformer_s_ade20k_40k.py '
     '(batch: segmentation/README.md, 16)'),
    ('seg/fpn_*', dict(_FPN_POLY, optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        clip_grad=None)),
     NO_OFFICIAL + 'PVT\'s Semantic FPN recipe (the HAT-Net paper follows it)'),
    ('seg/upernet_van_b4*', dict(_UPERNET, batch_size=4, optim_wrapper=dict(  # official B4: 4/GPU
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     f'{VAN_UPERNET}:configs/upernet/1k_pretrained/upernet_van_b4_512x512_160k_ade20k.py'),
    ('seg/upernet_van_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     f'{VAN_UPERNET}:configs/upernet/1k_pretrained/upernet_van_b2_512x512_160k_ade20k.py'),
    ('seg/upernet_cmt_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'relative_pos': _NO_DECAY, 'norm': _NO_DECAY}))),
     NO_OFFICIAL + 'Swin\'s UPerNet recipe (no decay on its position biases either)'),
    ('seg/upernet_crossformer_t_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     NO_OFFICIAL + 'the CrossFormer-S/B/L recipe below'),
    ('seg/upernet_crossformerpp_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     f'{CROSSFORMER_PP}:segmentation/configs/crossformer_pp/upernet_crossformerpp_s_ade20k.py'),
    ('seg/upernet_crossformer_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     f'{CROSSFORMER}:segmentation/configs/upernet_crossformer_s_ade20k.py'),
    ('seg/upernet_uniformer_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     f'{UNIFORMER}:semantic_segmentation/exp/upernet_hybrid_small/config.py'),
    ('seg/upernet_*', dict(_UPERNET, optim_wrapper=dict(
        type='OptimWrapper', optimizer=_UPERNET_OPTIM,
        paramwise_cfg=dict(custom_keys={'norm': _NO_DECAY}))),
     NO_OFFICIAL + 'Swin\'s UPerNet recipe'),
]
# Drop-path rates of the official configs where a dense config sets its own over the backbone
# file's, with their sources.
_UF_SEG = f'{UNIFORMER}:semantic_segmentation'
DROP_PATH = {
    **{f'seg/fpn_uniformer_s_80k{t}.py': (0.1, f'{_UF_SEG}/fpn_seg/exp/fpn_global_small/config.py')
       for t in ('', '_g', '_w32', '_h32')},
    **{f'seg/fpn_uniformer_b_80k{t}.py': (0.2, f'{_UF_SEG}/fpn_seg/exp/fpn_global_base/config.py')
       for t in ('', '_g', '_w32', '_h32')},
    **{f'seg/upernet_uniformer_s_160k{t}.py': (
        0.25, f'{_UF_SEG}/exp/upernet_global_small/config.py')
       for t in ('', '_g', '_w32', '_h32')},
    **{f'seg/upernet_uniformer_b_160k{t}.py': (0.4, f'{_UF_SEG}/exp/upernet_global_base/config.py')
       for t in ('', '_g', '_w32', '_h32')},
    'det/maskrcnn_uniformer_s_1x.py': (
        0.2, f'{UNIFORMER}:object_detection/exp/mask_rcnn_1x_hybrid_small/config.py'),
    'det/maskrcnn_uniformer_s_3x_ms.py': (
        0.1, f'{UNIFORMER}:object_detection/exp/mask_rcnn_3x_ms_hybrid_small/config.py'),
    'det/maskrcnn_uniformer_b_3x_ms.py': (
        0.3, f'{UNIFORMER}:object_detection/exp/mask_rcnn_3x_ms_hybrid_base/config.py'),
    'det/cascade_maskrcnn_uniformer_s_3x_ms.py': (
        0.2, f'{UNIFORMER}:object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_small/config.py'),
    'det/cascade_maskrcnn_uniformer_b_3x_ms.py': (
        0.4, f'{UNIFORMER}:object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_base/config.py'),
    'det/maskrcnn_uniformer_xxs_1x.py': (
        0., f'{UNIFORMER}:object_detection/exp_light/mask_rcnn_1x_xxs/config.py'),
    'det/maskrcnn_uniformer_xs_1x.py': (
        0.15, f'{UNIFORMER}:object_detection/exp_light/mask_rcnn_1x_xs/config.py'),
    'seg/fpn_uniformer_xxs_80k.py': (
        0., f'{_UF_SEG}/fpn_seg/exp_light/fpn_xxs/config.py'),
    'seg/fpn_uniformer_xs_80k.py': (0.1, f'{_UF_SEG}/fpn_seg/exp_light/fpn_xs/config.py'),
    # VAN's UPerNet: the authors' _base_/models/upernet_van.py has 0.1 unless the leaf sets its own.
    **{f'seg/upernet_van_{v}_160k.py': (
        rate, f'{VAN_UPERNET}:configs/upernet/{pre}/upernet_van_{v.split("_")[0]}_512x512_160k_'
        f'ade20k{"_22k" if pre.startswith("22k") else ""}.py')
       for v, rate, pre in [('b0', 0.1, '1k_pretrained'), ('b1', 0.1, '1k_pretrained'),
                            ('b2', 0.1, '1k_pretrained'), ('b3', 0.3, '1k_pretrained'),
                            ('b4', 0.4, '1k_pretrained'), ('b4_in22k', 0.4, '22k_pretrained'),
                            ('b5', 0.4, '22k_pretrained'), ('b6', 0.5, '22k_pretrained')]},
    # VAN's Semantic FPN: the code of the released files sets 0.1 for every variant (van.py).
    **{f'seg/fpn_van_b{i}_40k.py': (0.1, f'{VAN_FPN}:van.py') for i in range(4)},
}

# The BatchNorm kinds a built model has, with their source: (backbone, necks and heads); `[]`
# for none (LayerNorm / GroupNorm models, mmdet's plain FPN neck and heads). SyncBN
# (SyncBatchNorm) keeps one set of statistics over all GPUs; plain BatchNorm2d one per GPU.
NORMS = [
    ('seg/upernet_van_*', ['SyncBatchNorm'], ['SyncBatchNorm'],
     f'{VAN_UPERNET}:configs/_base_/models/upernet_van.py (norm_cfg SyncBN, van.py passes it to '
     'every BatchNorm)'),
    ('seg/fpn_van_*', ['BatchNorm2d'], ['SyncBatchNorm'],
     f'{VAN_FPN}:van.py (nn.BatchNorm2d); configs/_base_/models/fpn_r50.py (heads)'),
    ('seg/*_crossformerpp_*', [], ['SyncBatchNorm'],
     f'{CROSSFORMER_PP}:segmentation/configs/_base_/models/upernet_crossformer.py'),
    ('seg/*_crossformer_*', [], ['SyncBatchNorm'],
     f'{CROSSFORMER}:segmentation/configs/_base_/models/upernet_crossformer.py'),
    ('seg/*_uniformer_*', ['BatchNorm2d'], ['SyncBatchNorm'],
     f'{UNIFORMER}:semantic_segmentation/exp/upernet_hybrid_small/config.py'),
    ('seg/*_hatnet_*', [], ['SyncBatchNorm'], NO_OFFICIAL + 'GroupNorm as classification; '
     'mmseg\'s heads'),
    ('seg/*_transcnn_*', ['SyncBatchNorm'], ['SyncBatchNorm'], NO_OFFICIAL + 'mmseg\'s SyncBN'),
    ('seg/*', ['BatchNorm2d'], ['SyncBatchNorm'], NO_OFFICIAL + 'BatchNorm as classification; '
     'mmseg\'s heads'),
    ('det/cascade_*_uniformer_*', ['BatchNorm2d'], ['SyncBatchNorm'],
     f'{UNIFORMER}:object_detection/configs/_base_/models/cascade_mask_rcnn_uniformer_fpn.py'),
    ('det/*_crossformer*', [], [],
     f'{CROSSFORMER}:detection/configs/_base_/models/mask_rcnn_r50_fpn.py'),
    ('det/*_uniformer_*', ['BatchNorm2d'], [],
     f'{UNIFORMER}:object_detection/configs/_base_/models/mask_rcnn_uniformer_fpn.py'),
    ('det/*_hatnet_*', [], [], NO_OFFICIAL + 'GroupNorm as classification; mmdet\'s heads'),
    ('det/*_transcnn_*', ['SyncBatchNorm'], [], NO_OFFICIAL + 'SyncBN for batches of 2'),
    ('det/*', ['BatchNorm2d'], [], NO_OFFICIAL + 'BatchNorm as classification; mmdet\'s heads'),
]

# Training pipelines: mmdet's / mmseg's, which the authors' mmdet 2.x / mmseg 0.x dataset files
# match step for step (source: the family's official dataset file).
_SEG_TRAIN = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5), dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')]
_DET_TRAIN = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
_MS_480_800 = [(s, 1333) for s in range(480, 801, 32)]
_DET_MS_CROP_TRAIN = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_MS_480_800, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
              allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_MS_480_800, keep_ratio=True)]]),
    dict(type='PackDetInputs')]
_DET_TEST_RESIZE = [dict(type='Resize', scale=(1333, 800), keep_ratio=True)]
TRAIN_PIPELINES = [
    ('det/*_3x_ms.py', _DET_MS_CROP_TRAIN,
     f'{UNIFORMER}:object_detection/exp/mask_rcnn_3x_ms_hybrid_small/config.py'),
    ('det/retinanet_*', [dict(type='LoadAnnotations', with_bbox=True)
                         if t['type'] == 'LoadAnnotations' else t for t in _DET_TRAIN],
     f'{CROSSFORMER}:detection/configs/_base_/datasets/coco_detection.py'),
    ('det/*', _DET_TRAIN, f'{CROSSFORMER}:detection/configs/_base_/datasets/coco_instance.py'),
    ('seg/*_crossformer*', _SEG_TRAIN,
     f'{CROSSFORMER}:segmentation/configs/_base_/datasets/ade20k.py'),
    ('seg/*_uniformer_*', _SEG_TRAIN, f'{UNIFORMER}:semantic_segmentation/configs/_base_/'
     'datasets/ade20k.py'),
    ('seg/*_van_*', _SEG_TRAIN, f'{VAN_UPERNET}:configs/_base_/datasets/ade20k.py'),
    ('seg/*', _SEG_TRAIN, NO_OFFICIAL + 'mmseg\'s ADE20K pipeline'),
]


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


def _first(table, path):
    return next(row[1:] for row in table if fnmatch.fnmatch(path, row[0]))


_SOURCE = re.compile(r'^(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>[0-9a-f]{40}):(?P<path>\S+)')


def _sources():
    rows = [r[-1] for r in RECIPES + NORMS + TRAIN_PIPELINES] + [s for _, s in DROP_PATH.values()]
    return rows + [r[-1] for r in SEG_TESTS]


def test_every_recipe_value_names_its_source():
    """Each table row says where its values come from: an authors' file as
    owner/repo@commit:path, or why there is none."""
    for source in _sources():
        assert _SOURCE.match(source) or source.startswith(NO_OFFICIAL), source


def _header(path: str) -> str:
    lines = (REPO / path).read_text().splitlines()
    return ' '.join(line[1:].strip() for line in lines[:next(
        i for i, line in enumerate(lines) if not line.startswith('#'))])


@pytest.mark.parametrize('path', CONFIGS)
def test_config_names_its_official_counterpart(path):
    """A config with an official counterpart names it (owner/repo@commit:path) in its header, of
    the repository and commit its recipe row reads; one without says where its recipe comes
    from."""
    rel = str(Path(path).relative_to('configs'))
    header = re.sub(r'\s+', ' ', _header(path))
    *_, source = _first(RECIPES, rel)
    if source.startswith(NO_OFFICIAL):
        assert 'No official config' in header and '(recipe:' in header, header
    else:
        repo_commit = source.split(':', 1)[0]
        assert re.search(re.escape(repo_commit) + r':\S+\.py', header), header


@pytest.mark.parametrize('path', CONFIGS)
def test_config_keeps_its_official_recipe(path):
    cfg = Config.fromfile(str(REPO / path))
    path = str(Path(path).relative_to('configs'))
    recipe, _ = _first(RECIPES, path)
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
    # The total batch, which --auto-scale-lr scales the learning rate from.
    assert cfg.auto_scale_lr.base_batch_size == recipe['batch_size'] * recipe['gpus']
    assert cfg.auto_scale_lr.enable is False
    if path.startswith('det/'):
        # ImageNet mean/std in RGB, as the backbones were pretrained.
        assert cfg.model.data_preprocessor.bgr_to_rgb is True
        test_resizes = [t for t in cfg.test_dataloader.dataset.pipeline if 'Resize' in t['type']]
        assert _plain(test_resizes) == _plain(_DET_TEST_RESIZE)
    train_pipeline, _ = _first(TRAIN_PIPELINES, path)
    assert _plain(cfg.train_dataloader.dataset.pipeline) == _plain(train_pipeline)
    if path in DROP_PATH:
        assert cfg.model.backbone.drop_path_rate == DROP_PATH[path][0]
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
# a multiple of 32 where the official pipeline had `AlignResize` / `ResizeToMultiple`), whether
# the `--tta` pipeline flips, and the source. First matching pattern wins.
_SHORT_512 = [dict(type='Resize', scale=(2048, 512), keep_ratio=True)]
_ALIGN_32 = _SHORT_512 + [dict(type='ResizeToMultiple', size_divisor=32)]
SEG_TESTS = [
    ('seg/*_crossformerpp_*', _ALIGN_32, False,
     f'{CROSSFORMER_PP}:segmentation/configs/_base_/datasets/ade20k_swin.py (flip=False)'),
    ('seg/*_crossformer_*', _ALIGN_32, False,
     f'{CROSSFORMER}:segmentation/configs/_base_/datasets/ade20k_swin.py (flip=False)'),
    ('seg/fpn_uniformer_*', _ALIGN_32, True,
     f'{UNIFORMER}:semantic_segmentation/fpn_seg/configs/_base_/datasets/ade20k.py'),
    ('seg/fpn_van_*', _ALIGN_32, False,
     f'{VAN_FPN}:configs/_base_/datasets/ade20k.py (img_ratios on, flip=False)'),
    ('seg/upernet_van_*', _ALIGN_32, True,
     f'{VAN_UPERNET}:test.py (--aug-test: img_ratios, flip=True)'),
    ('seg/upernet_uniformer_*', _SHORT_512, True,
     f'{UNIFORMER}:semantic_segmentation/configs/_base_/datasets/ade20k.py'),
    ('seg/*', _SHORT_512, True, NO_OFFICIAL + 'mmseg\'s ADE20K test, Swin\'s multi-scale + flip'),
]

# mmseg 0.x MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=[0.5, ..., 1.75]) targets.
MS_SCALES = [(1024, 256), (1536, 384), (2048, 512), (2560, 640), (3072, 768), (3584, 896)]
SEG_CONFIGS = [c for c in CONFIGS if c.startswith('configs/seg/')]


@pytest.mark.parametrize('path', SEG_CONFIGS)
def test_seg_config_keeps_its_official_test(path):
    cfg = Config.fromfile(str(REPO / path))
    rel = str(Path(path).relative_to('configs'))
    resizes, flip, _ = _first(SEG_TESTS, rel)
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
