"""The synthetic shapes generator: layouts mmdet/mmseg read, determinism, idempotence."""
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmhybrid.datasets import (SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE, ShapesSpec,
                               generate_ade20k_shapes, generate_coco_shapes, generate_shapes,
                               render_scene)

REPO = Path(__file__).resolve().parents[1]
SPEC = ShapesSpec(num_train=6, num_val=3, image_size=96, seed=3)


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_light_import():
    # importable without mmdet / mmseg
    code = ('import sys; import mmhybrid.datasets; '
            'assert "mmdet" not in sys.modules and "mmseg" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO, timeout=120)


def test_coco_layout(tmp_path):
    root = generate_coco_shapes(tmp_path / 'coco', SPEC)
    for split, count in (('train', 6), ('val', 3)):
        ann = json.loads((root / 'annotations' / f'instances_{split}2017.json').read_text())
        assert [c['name'] for c in ann['categories']] == list(SHAPE_CLASSES)
        assert len(ann['images']) == count
        assert len({i['id'] for i in ann['images']}) == count
        for image in ann['images']:
            img = cv2.imread(str(root / f'{split}2017' / image['file_name']))
            assert img.shape == (96, 96, 3)
        assert ann['annotations']
        for a in ann['annotations']:
            x, y, w, h = a['bbox']
            assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w > 0 and h > 0
            assert a['area'] > 0 and a['iscrowd'] == 0
            assert all(len(poly) >= 6 and len(poly) % 2 == 0 for poly in a['segmentation'])


def test_ade20k_layout(tmp_path):
    root = generate_ade20k_shapes(tmp_path / 'ade', SPEC)
    for split, count in (('training', 6), ('validation', 3)):
        images = sorted((root / 'images' / split).glob('*.jpg'))
        labels = sorted((root / 'annotations' / split).glob('*.png'))
        assert len(images) == len(labels) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        seg = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
        assert seg.shape == (96, 96) and seg.dtype == np.uint8
        assert set(np.unique(seg)) <= set(range(len(SEG_CLASSES)))
    marker = json.loads((root / '.shapes.json').read_text())
    assert marker['classes'] == list(SEG_CLASSES) and marker['format_version'] == 2


def test_seg_classes_are_background_plus_shapes():
    # One place for the names and colours: segmentation = background + the detection classes,
    # same colours for the shapes, a background colour no shape has.
    assert SEG_CLASSES == ('background', 'circle', 'square', 'triangle')
    assert SEG_CLASSES[1:] == SHAPE_CLASSES and SEG_PALETTE[1:] == SHAPE_PALETTE
    assert len(SEG_PALETTE) == len(SEG_CLASSES) == len(set(SEG_PALETTE))


def test_stale_format_is_regenerated(tmp_path):
    # A tree written by format 1 (background ignored) is not reused: its marker differs.
    root = generate_ade20k_shapes(tmp_path / 'ade', SPEC)
    marker = json.loads((root / '.shapes.json').read_text())
    stale = dict(marker, format_version=1, classes=list(SHAPE_CLASSES))
    (root / '.shapes.json').write_text(json.dumps(stale))
    (root / 'stale.txt').write_text('old tree')
    generate_ade20k_shapes(tmp_path / 'ade', SPEC)
    assert not (root / 'stale.txt').exists()
    assert json.loads((root / '.shapes.json').read_text()) == marker


def test_scene_masks_match_label_map():
    scene = render_scene(SPEC, 0, 1)
    seg = scene.semantic_map()  # indices into SEG_CLASSES: 0 background, shape k is k + 1
    assert len(scene.labels) == len(scene.masks) >= 1
    union = np.zeros_like(seg, dtype=bool)
    for label, mask in zip(scene.labels, scene.masks):
        assert mask.any() and (seg[mask] == label + 1).all()
        assert SEG_CLASSES[label + 1] == SHAPE_CLASSES[label]
        assert not (union & mask).any()  # visible parts do not overlap
        union |= mask
    assert (seg[~union] == 0).all()


def test_deterministic_and_idempotent(tmp_path):
    a = generate_shapes(tmp_path / 'a', spec=SPEC)
    b = generate_shapes(tmp_path / 'b', spec=SPEC)
    for layout in ('coco', 'ade20k'):
        assert _digest(a[layout]) == _digest(b[layout])
    # a second call reuses the tree (files untouched)
    marker = a['coco'] / '.shapes.json'
    mtimes = {p: p.stat().st_mtime_ns for p in a['coco'].rglob('*')}
    generate_shapes(tmp_path / 'a', spec=SPEC)
    assert {p: p.stat().st_mtime_ns for p in a['coco'].rglob('*')} == mtimes
    assert json.loads(marker.read_text())['seed'] == 3
    # other parameters regenerate it
    other = generate_coco_shapes(tmp_path / 'a' / 'coco', num_train=2, num_val=1, image_size=96)
    assert len(list((other / 'train2017').iterdir())) == 2
    c = generate_coco_shapes(tmp_path / 'c', dataclasses.replace(SPEC, seed=4))
    assert _digest(c) != _digest(a['coco'])


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / 'x').mkdir()
    (tmp_path / 'x' / 'mine.txt').write_text('keep')
    with pytest.raises(FileExistsError):
        generate_coco_shapes(tmp_path / 'x', SPEC)
    assert (tmp_path / 'x' / 'mine.txt').read_text() == 'keep'


@pytest.mark.parametrize('kwargs', [dict(image_size=8), dict(min_shapes=3, max_shapes=2),
                                    dict(max_scale=0.9), dict(num_train=-1)])
def test_invalid_spec(kwargs):
    with pytest.raises(ValueError):
        ShapesSpec(**kwargs)


def test_readable_by_mmdet_and_mmseg(tmp_path):
    from mmengine.registry import DefaultScope
    roots = generate_shapes(tmp_path, spec=SPEC)
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules as register_mmdet
    register_mmdet(init_default_scope=False)
    # Pipelines resolve transforms in the current default scope, whatever earlier tests set.
    with DefaultScope.overwrite_default_scope('mmdet'):
        det = CocoDataset(data_root=f"{roots['coco']}/",
                          ann_file='annotations/instances_val2017.json',
                          data_prefix=dict(img='val2017/'), metainfo=dict(classes=SHAPE_CLASSES),
                          pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='LoadAnnotations', with_bbox=True, with_mask=True)])
        sample = det[0]
    assert sample['gt_masks'].masks.shape[0] == len(sample['gt_bboxes']) > 0
    from mmseg.datasets import BaseSegDataset
    from mmseg.utils import register_all_modules as register_mmseg
    register_mmseg(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        seg = BaseSegDataset(data_root=str(roots['ade20k']), img_suffix='.jpg',
                             seg_map_suffix='.png', reduce_zero_label=False,
                             metainfo=dict(classes=SEG_CLASSES),
                             data_prefix=dict(img_path='images/validation',
                                              seg_map_path='annotations/validation'),
                             pipeline=[dict(type='LoadImageFromFile'),
                                       dict(type='LoadAnnotations')])
        assert len(seg) == 3
        labels = set(np.unique(seg[0]['gt_seg_map']))
    # background is class 0, nothing is ignored (no 255)
    assert labels <= set(range(len(SEG_CLASSES))) and 0 in labels and len(labels) >= 2


def test_make_shapes_cli(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_shapes.py'), str(tmp_path),
                          '--layouts', 'coco', '--num-train', '2', '--num-val', '1'],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert 'coco:' in out
    assert (tmp_path / 'coco' / 'annotations' / 'instances_train2017.json').is_file()
    assert not (tmp_path / 'ade20k').exists()
