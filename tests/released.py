"""Whole detector/segmenter files in the layout the authors released them, built from a model.

``RELEASED_KINDS`` is the one table of the released kinds (one row per head x family): the
config of ours that runs them, the backbone family, the dataset of the file's ``meta`` and a few
neck/head keys that the released mmdet 2.x / mmseg 0.x file holds under exactly that name. The
tests (tests/test_full_convert.py) drive every row through conversion, loading and the wrong
pairings; a table of released models (config → kind) can drive the same helpers.

A file is made from a model whose weights were set directly (:func:`fill_model`): its backbone
keys renamed back to the official dense layout (:data:`OFFICIAL_DENSE_NAMES`, checked against
the key names of the authors' files in the parity data), its neck and head keys as they are
(mmdet 2.x / mmseg 0.x used the same names), ``meta`` with ``CLASSES`` (+ ``PALETTE``) and an
``optimizer`` entry.
"""
import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
DET_SCOPE_KEYS = ('neck', 'rpn_head', 'roi_head', 'bbox_head')

# mmhybrid key -> the key of the authors' det/seg backbone (first matching pattern wins).
_VAN_BLOCK = (('attn.lka.', 'attn.spatial_gating_unit.'), ('mlp.dwconv.', 'mlp.dwconv.dwconv.'))
OFFICIAL_DENSE_NAMES: Dict[str, List[Tuple[str, Callable[[re.Match], str]]]] = {
    # ICLR'22 branch detection/segmentation backbone: no classifier, no final norm, no buffers.
    'crossformer': [
        (r'^stages\.0\.downsample\.(.+)$', lambda m: f'patch_embed.{m[1]}'),
        (r'^stages\.(\d)\.blocks\.(.+)$', lambda m: f'layers.{m[1]}.blocks.{m[2]}'),
        (r'^stages\.(\d)\.downsample\.(.+)$',
         lambda m: f'layers.{int(m[1]) - 1}.downsample.{m[2]}'),
    ],
    # object_detection / semantic_segmentation backbone: per-output LayerNorms norm1..4.
    'uniformer': [
        (r'^stages\.(\d)\.downsample\.(.+)$', lambda m: f'patch_embed{int(m[1]) + 1}.{m[2]}'),
        (r'^stages\.(\d)\.blocks\.(.+)$', lambda m: f'blocks{int(m[1]) + 1}.{m[2]}'),
        (r'^out_norms\.(\d)\.(.+)$', lambda m: f'norm{int(m[1]) + 1}.{m[2]}'),
    ],
    # VAN-Segmentation backbone: the stage norms norm1..4 are its outputs' norms.
    'van': [
        (r'^stages\.(\d)\.downsample\.(.+)$', lambda m: f'patch_embed{int(m[1]) + 1}.{m[2]}'),
        (r'^stages\.(\d)\.blocks\.(\d+)\.(.+)$',
         lambda m: f'block{int(m[1]) + 1}.{m[2]}.' + _rename(m[3], _VAN_BLOCK)),
        (r'^stages\.(\d)\.norm\.(.+)$', lambda m: f'norm{int(m[1]) + 1}.{m[2]}'),
    ],
}


def _rename(text: str, pairs) -> str:
    for old, new in pairs:
        if text.startswith(old):
            return new + text[len(old):]
    return text


def official_dense_key(family: str, key: str) -> str:
    for pattern, build in OFFICIAL_DENSE_NAMES[family]:
        m = re.match(pattern, key)
        if m:
            return build(m)
    raise KeyError(f'no official {family} name for {key}')


class ReleasedKind(NamedTuple):
    config: str             # our config, relative to the repository
    family: str             # backbone family (mmhybrid.checkpoint converter)
    dataset: str            # 'coco' or 'ade20k': CLASSES (+ PALETTE) of the file's meta
    released_keys: Tuple[str, ...]  # neck/head keys of the released file, under these names
    reduced: str            # archs.PARITY_MODELS entry whose arch the mechanics tests use


_MASK_RCNN_KEYS = ('neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.3.conv.bias',
                   'rpn_head.rpn_conv.weight', 'rpn_head.rpn_cls.weight',
                   'rpn_head.rpn_reg.bias', 'roi_head.bbox_head.shared_fcs.1.weight',
                   'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_reg.bias',
                   'roi_head.mask_head.convs.3.conv.weight', 'roi_head.mask_head.upsample.weight',
                   'roi_head.mask_head.conv_logits.bias')
_UPERNET_KEYS = ('decode_head.psp_modules.3.1.conv.weight', 'decode_head.bottleneck.bn.running_var',
                 'decode_head.lateral_convs.2.conv.weight', 'decode_head.fpn_convs.0.bn.weight',
                 'decode_head.fpn_bottleneck.conv.weight', 'decode_head.conv_seg.bias',
                 'auxiliary_head.convs.0.bn.num_batches_tracked', 'auxiliary_head.conv_seg.weight')
_FPN_SEG_KEYS = ('neck.lateral_convs.3.conv.weight', 'neck.fpn_convs.0.conv.bias',
                 'decode_head.scale_heads.3.2.conv.weight', 'decode_head.scale_heads.0.0.bn.bias',
                 'decode_head.conv_seg.weight')

CASCADE_CONFIG = 'cascade:uniformer_s'  # built by cascade_config_text (no cascade config yet)

RELEASED_KINDS: Dict[str, ReleasedKind] = {
    'maskrcnn_crossformer_s_1x': ReleasedKind(
        'configs/det/maskrcnn_crossformer_s_1x.py', 'crossformer', 'coco', _MASK_RCNN_KEYS,
        'crossformer_tiny_reduced'),
    'retinanet_crossformer_s_1x': ReleasedKind(
        'configs/det/retinanet_crossformer_s_1x.py', 'crossformer', 'coco',
        ('neck.fpn_convs.4.conv.weight', 'bbox_head.cls_convs.3.conv.weight',
         'bbox_head.reg_convs.0.conv.bias', 'bbox_head.retina_cls.weight',
         'bbox_head.retina_reg.bias'), 'crossformer_tiny_reduced'),
    'maskrcnn_uniformer_s_1x': ReleasedKind(
        'configs/det/maskrcnn_uniformer_s_1x.py', 'uniformer', 'coco', _MASK_RCNN_KEYS,
        'uniformer_small_reduced'),
    # TODO: configs/det/cascade_maskrcnn_uniformer_{s,b}_3x_ms.py (another engineer's): until
    # it exists, the test builds a Cascade Mask R-CNN config (4conv1fc BN heads, GIoU).
    'cascade_maskrcnn_uniformer_s': ReleasedKind(
        CASCADE_CONFIG, 'uniformer', 'coco',
        ('roi_head.bbox_head.2.shared_convs.3.conv.weight',
         'roi_head.bbox_head.0.shared_convs.0.bn.running_mean',
         'roi_head.bbox_head.1.shared_fcs.0.weight', 'roi_head.bbox_head.2.fc_cls.weight',
         'roi_head.mask_head.2.conv_logits.weight', 'roi_head.mask_head.0.convs.0.conv.bias'),
        'uniformer_small_reduced'),
    'fpn_crossformer_s_80k': ReleasedKind(
        'configs/seg/fpn_crossformer_s_80k.py', 'crossformer', 'ade20k', _FPN_SEG_KEYS,
        'crossformer_tiny_reduced'),
    'upernet_crossformer_s_160k': ReleasedKind(
        'configs/seg/upernet_crossformer_s_160k.py', 'crossformer', 'ade20k', _UPERNET_KEYS,
        'crossformer_tiny_reduced'),
    'fpn_uniformer_s_80k': ReleasedKind(
        'configs/seg/fpn_uniformer_s_80k.py', 'uniformer', 'ade20k', _FPN_SEG_KEYS,
        'uniformer_small_reduced'),
    'upernet_uniformer_s_160k': ReleasedKind(
        'configs/seg/upernet_uniformer_s_160k.py', 'uniformer', 'ade20k', _UPERNET_KEYS,
        'uniformer_small_reduced'),
    'fpn_van_b2_80k': ReleasedKind(
        'configs/seg/fpn_van_b2_80k.py', 'van', 'ade20k', _FPN_SEG_KEYS, 'van_b0_reduced'),
    'upernet_van_b2_160k': ReleasedKind(
        'configs/seg/upernet_van_b2_160k.py', 'van', 'ade20k', _UPERNET_KEYS, 'van_b0_reduced'),
}

_CASCADE_TEXT = '''_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    {backbone!r},
]
_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),
    backbone={{{{_base_.backbone}}}},
    neck=dict(in_channels={{{{_base_.backbone_channels}}}}),
    roi_head=dict(bbox_head=[
        dict(type='Shared4Conv1FCBBoxHead', in_channels={width}, conv_out_channels={width},
             fc_out_channels={fc},
             roi_feat_size=7, num_classes=80, norm_cfg=dict(type='BN'),
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                             target_stds=s),
             reg_class_agnostic=False, reg_decoded_bbox=True,
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
             loss_bbox=dict(type='GIoULoss', loss_weight=10.0)) for s in _stds]))
'''


def config_path(kind: ReleasedKind, tmp_path: Path, width: int = 256, fc: int = 1024) -> Path:
    """The config file of ``kind`` (written to ``tmp_path`` where it is built by the test; its
    RoI heads ``width`` channels wide with ``fc`` features)."""
    if kind.config != CASCADE_CONFIG:
        return REPO / kind.config
    path = tmp_path / f'cascade_maskrcnn_uniformer_s_{width}.py'
    path.write_text(_CASCADE_TEXT.format(
        backbone=str(REPO / 'configs' / '_base_' / 'backbones' / 'uniformer_s.py'),
        width=width, fc=fc))
    return path


_NECK = dict(neck=dict(out_channels=16))
_RPN = dict(rpn_head=dict(in_channels=16, feat_channels=16),
            test_cfg=dict(rpn=dict(nms_pre=50, max_per_img=8), rcnn=dict(max_per_img=4)))
_ROI = dict(bbox_roi_extractor=dict(out_channels=16), mask_roi_extractor=dict(out_channels=16),
            mask_head=dict(in_channels=16, conv_out_channels=16))
# Narrow necks and heads for the mechanics tests (same keys, small tensors), few proposals.
_NARROW = {
    'maskrcnn': dict(**_NECK, **_RPN, roi_head=dict(
        _ROI, bbox_head=dict(in_channels=16, fc_out_channels=32))),
    'cascade': dict(**_NECK, **_RPN, roi_head=_ROI),  # bbox heads: config_path(width=16)
    'retinanet': dict(**_NECK, bbox_head=dict(in_channels=16, feat_channels=16)),
    'fpn': dict(**_NECK, decode_head=dict(in_channels=[16] * 4, channels=16)),
    'upernet': dict(decode_head=dict(channels=16), auxiliary_head=dict(channels=16)),
}


def _merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and \
            isinstance(out.get(key), dict) else value
    return out


def reduced_config(kind: ReleasedKind, arch: dict, tmp_path: Path) -> Path:
    """``kind``'s config with the backbone arch ``arch`` (channels follow), narrow necks and
    heads and few proposals (fast on a CPU): what the mechanics tests load."""
    dims = list(arch['embed_dims'])
    base = config_path(kind, tmp_path, width=16, fc=32)
    head = base.name.split('_')[0]
    model = _merged(_NARROW[head],
                    dict(backbone=dict(arch=dict(_delete_=True, **arch), init_cfg=None)))
    if head == 'upernet':
        model = _merged(model, dict(decode_head=dict(in_channels=dims),
                                    auxiliary_head=dict(in_channels=dims[2])))
    else:
        model = _merged(model, dict(neck=dict(in_channels=dims)))
    path = tmp_path / f'reduced_{base.name}'
    path.write_text(f'_base_ = [{str(base)!r}]\nmodel = {model!r}\n')
    return path


def fill_model(model: torch.nn.Module, seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Sets every float parameter and buffer of ``model`` directly (seeded normals, positive
    running variances); returns its state dict."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict(keep_vars=True).items():
            if not value.is_floating_point():
                continue
            noise = torch.randn(value.shape, generator=generator)
            value.copy_(0.5 + noise.abs() if key.endswith('running_var') else 0.05 * noise)
    return OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())


def dataset_meta_of(dataset: str) -> dict:
    """The ``meta`` of an mmdet 2.x (``CLASSES``) or mmseg 0.x (``CLASSES``, ``PALETTE``) file."""
    if dataset == 'coco':
        from mmdet.datasets import CocoDataset
        return {'CLASSES': tuple(CocoDataset.METAINFO['classes'])}
    from mmseg.datasets import ADE20KDataset
    return {'CLASSES': tuple(ADE20KDataset.METAINFO['classes']),
            'PALETTE': [list(c) for c in ADE20KDataset.METAINFO['palette']]}


def released_file(state_dict: Dict[str, torch.Tensor], family: str,
                  meta: Optional[dict] = None) -> dict:
    """A whole-model state dict (mmhybrid names) as the authors' training file holds it."""
    sd = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('backbone.'):
            key = 'backbone.' + official_dense_key(family, key[len('backbone.'):])
        sd[key] = value
    first = next(v for v in sd.values() if v.is_floating_point())
    return {
        'meta': dict(meta or {}, mmdet_version='2.11.0', epoch=12, config='# the config text'),
        'state_dict': sd,
        'optimizer': {'state': {0: {'step': 10, 'exp_avg': torch.zeros_like(first)}},
                      'param_groups': [{'lr': 1e-4, 'params': [0]}]},
        'amp': {'loss_scaler0': {'loss_scale': 512.0, 'unskipped': 3}},
    }
