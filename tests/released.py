"""Whole detector/segmenter files in the layout the authors released them, built from a model.

The rows are those of :data:`mmhybrid.checkpoint.zoo.RELEASED` (one per released file and test
setting): ``RELEASED_ROWS`` gives each its :class:`ReleasedKind` (our config, the backbone
converter family, the dataset of the file's ``meta``, a few neck/head keys that the released
mmdet 2.x / mmseg 0.x file holds under exactly that name, the reduced arch of the mechanics
tests), and ``RELEASED_KINDS`` one representative row per (backbone family, head). The tests
(tests/test_full_convert.py) drive the kinds through conversion, loading and outputs on reduced
backbones, and every row through the real variant's keys and shapes.

A file is made from a model whose weights were set directly (:func:`fill_model`): its backbone
keys renamed back to the official dense layout (:data:`OFFICIAL_DENSE_NAMES`, checked against
the key names of the authors' files in the parity data), its neck and head keys as they are
(mmdet 2.x / mmseg 0.x used the same names), ``meta`` with ``CLASSES`` (+ ``PALETTE``) and an
``optimizer`` entry.
"""
import re
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

from mmhybrid.checkpoint.zoo import RELEASED, ReleasedModel, checkpoint_paths

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
    # UniFormer-light's object_detection / semantic_segmentation backbone: UniFormer's names and
    # the class token (entering stage 3) with its projection to stage 4.
    'uniformer_light': [
        (r'^stages\.2\.(cls_token)$', lambda m: m[1]),
        (r'^stages\.3\.cls_upsample\.(.+)$', lambda m: f'cls_upsample.{m[1]}'),
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
    patterns = OFFICIAL_DENSE_NAMES[family] + (OFFICIAL_DENSE_NAMES['uniformer']
                                               if family == 'uniformer_light' else [])
    for pattern, build in patterns:
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
    head: str               # the zoo's head name ('maskrcnn', 'cascade_maskrcnn', 'fpn', ...)


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

_RETINANET_KEYS = ('neck.fpn_convs.4.conv.weight', 'bbox_head.cls_convs.3.conv.weight',
                   'bbox_head.reg_convs.0.conv.bias', 'bbox_head.retina_cls.weight',
                   'bbox_head.retina_reg.bias')
_CASCADE_KEYS = ('roi_head.bbox_head.2.shared_convs.3.conv.weight',
                 'roi_head.bbox_head.0.shared_convs.0.bn.running_mean',
                 'roi_head.bbox_head.1.shared_fcs.0.weight', 'roi_head.bbox_head.2.fc_cls.weight',
                 'roi_head.mask_head.2.conv_logits.weight',
                 'roi_head.mask_head.0.convs.0.conv.bias')
HEAD_KEYS = {'retinanet': _RETINANET_KEYS, 'maskrcnn': _MASK_RCNN_KEYS,
             'cascade_maskrcnn': _CASCADE_KEYS, 'fpn': _FPN_SEG_KEYS, 'upernet': _UPERNET_KEYS}
# archs.PARITY_MODELS entry of each backbone converter family (the mechanics tests' arch).
REDUCED = {'crossformer': 'crossformer_tiny_reduced', 'uniformer': 'uniformer_small_reduced',
           'uniformer_light': 'uniformer_light_xxs_reduced', 'van': 'van_b0_reduced'}
UNIFORMER_LIGHT_VARIANTS = ('xxs', 'xs')


def backbone_family(row: ReleasedModel) -> str:
    """The converter family of a row's backbone (the zoo files UniFormer-light under UniFormer)."""
    if row.family == 'uniformer' and row.variant in UNIFORMER_LIGHT_VARIANTS:
        return 'uniformer_light'
    return row.family


def kind_of(row: ReleasedModel) -> ReleasedKind:
    family = backbone_family(row)
    return ReleasedKind(row.config, family, 'coco' if row.task == 'det' else 'ade20k',
                        HEAD_KEYS[row.head], REDUCED[family], row.head)


def row_name(row: ReleasedModel) -> str:
    return PurePosixPath(row.config).stem


# Every released row, by its config's name (configs are unique per row).
RELEASED_ROWS: Dict[str, ReleasedKind] = {row_name(row): kind_of(row) for row in RELEASED}
# The config whose model makes a row's file: the config named as the file (UniFormer's w32/h32
# test configs evaluate the file of the globally trained `_g` config, zoo.checkpoint_paths).
FILE_CONFIG: Dict[str, str] = {
    row_name(row): str(PurePosixPath(row.config).with_stem(
        PurePosixPath(checkpoint_paths(row)[1]).stem)) for row in RELEASED}
# One representative row per (backbone family, head): the first in RELEASED.
RELEASED_KINDS: Dict[str, ReleasedKind] = {}
for _name, _kind in RELEASED_ROWS.items():
    if (_kind.family, _kind.head) not in {(k.family, k.head) for k in RELEASED_KINDS.values()}:
        RELEASED_KINDS[_name] = _kind


_NECK = dict(neck=dict(out_channels=16))
_RPN = dict(rpn_head=dict(in_channels=16, feat_channels=16),
            test_cfg=dict(rpn=dict(nms_pre=50, max_per_img=8), rcnn=dict(max_per_img=4)))
_ROI = dict(bbox_roi_extractor=dict(out_channels=16), mask_roi_extractor=dict(out_channels=16),
            mask_head=dict(in_channels=16, conv_out_channels=16))
_NARROW_BBOX = dict(in_channels=16, fc_out_channels=32)
# Narrow necks and heads for the mechanics tests (same keys, small tensors), few proposals.
_NARROW = {
    'maskrcnn': dict(**_NECK, **_RPN, roi_head=dict(_ROI, bbox_head=_NARROW_BBOX)),
    'cascade_maskrcnn': dict(**_NECK, **_RPN, roi_head=_ROI),  # bbox heads: reduced_config
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


def _plain(value):
    """ConfigDicts as plain dicts (their repr is then a config's Python text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def reduced_config(kind: ReleasedKind, arch: dict, tmp_path: Path) -> Path:
    """``kind``'s config with the backbone arch ``arch`` (channels follow), narrow necks and
    heads and few proposals (fast on a CPU): what the mechanics tests load."""
    dims = list(arch['embed_dims'])
    base = REPO / kind.config
    model = _merged(_NARROW[kind.head],
                    dict(backbone=dict(arch=dict(_delete_=True, **arch), init_cfg=None)))
    if kind.head == 'upernet':
        model = _merged(model, dict(decode_head=dict(in_channels=dims),
                                    auxiliary_head=dict(in_channels=dims[2])))
    else:
        model = _merged(model, dict(neck=dict(in_channels=dims)))
    if kind.head == 'cascade_maskrcnn':  # a list replaces the config's: each stage narrowed
        from mmengine.config import Config
        stages = Config.fromfile(str(base)).model.roi_head.bbox_head
        model = _merged(model, dict(roi_head=dict(bbox_head=[
            dict(_plain(stage), conv_out_channels=16, **_NARROW_BBOX) for stage in stages])))
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
