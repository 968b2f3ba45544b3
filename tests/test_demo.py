"""`make demo`'s path, shortened: tools/demo.py --quick (a few iterations on a tiny tree); the
segmentation picture against the label maps it shows."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmhybrid.datasets import SEG_CLASSES, SEG_PALETTE

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.xdist_group('demo')
def test_quick_demo(tmp_path):
    out_dir = tmp_path / 'out'
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'demo.py'), '--quick',
                           '--out-dir', str(out_dir), '--data-root', str(tmp_path / 'shapes')],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert 'mmhybrid demo' in proc.stdout and 'mIoU' in proc.stdout
    summary = json.loads((out_dir / 'summary.json').read_text())
    assert summary['quick'] is True
    det, seg = summary['metrics']['det'], summary['metrics']['seg']
    # The detector trains 3 iterations from scratch: its COCO metrics are about 0 (valid values
    # only). The segmenter trains 40: it finds the background, most of every image (runs reach
    # aAcc and background IoU 81-82, from 15 after 3 iterations), which a broken label pipeline
    # (background ignored or shifted) or a model that did not learn would not.
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert 0.0 <= det[key] <= 1.0, det
    assert seg['aAcc'] >= 70 and seg['mIoU'] >= 17.5, seg
    assert summary['seg_per_class']['IoU']['background'] >= 70
    # mmseg's per-class table, background included
    assert list(summary['seg_per_class']['IoU']) == list(SEG_CLASSES)
    assert 'IoU per class: background' in proc.stdout
    for name in ('det_curves.png', 'det_predictions.png', 'seg_curves.png',
                 'seg_predictions.png'):
        assert (out_dir / name).stat().st_size > 1000, name
    assert Path(summary['checkpoints']['det']).is_file()
    # the picture's prediction row shows the model's predicted label maps (saved beside it)
    import cv2
    picture = cv2.imread(str(out_dir / 'seg_predictions.png'))
    maps = np.load(out_dir / 'seg_predictions.npz')
    count, height, width = maps['pred'].shape
    assert count == 4 and maps['gt'].shape == maps['pred'].shape
    for i in range(count):
        assert _agreement(_panel(picture, 1, i, height, width), maps['gt'][i]) >= 0.99
        assert _agreement(_panel(picture, 2, i, height, width), maps['pred'][i]) >= 0.99
    assert (tmp_path / 'shapes_quick' / 'coco' / '.shapes.json').is_file()


def _panel(picture: np.ndarray, row: int, column: int, height: int, width: int,
           scale: int = 2) -> np.ndarray:
    """Panel (row, column) of compose_segmentation's layout, back at the label maps' size."""
    return picture[row * height * scale:(row + 1) * height * scale,
                   column * width * scale:(column + 1) * width * scale][::scale, ::scale]


def _agreement(panel: np.ndarray, labels: np.ndarray) -> float:
    """Share of pixels drawn in the palette colour (BGR on disk) of their class in ``labels``."""
    expected = np.array(SEG_PALETTE, np.uint8)[labels][..., ::-1]
    return float((panel == expected).all(axis=-1).mean())


def test_segmentation_picture_shows_the_label_maps():
    # Noise images and independent random ground truth / prediction label maps with every class
    # (background included), of a non-square size: the prediction row must show the prediction,
    # pixel for pixel, in the palette colours -- not the ground truth, not an overlay on the
    # image, not shifted by one class, not in RGB order.
    from mmhybrid.utils.demo import compose_segmentation
    rng = np.random.default_rng(0)
    height, width, count = 20, 28, 3
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    gts = [rng.integers(0, len(SEG_CLASSES), (height, width)).astype(np.uint8)
           for _ in range(count)]
    preds = [rng.integers(0, len(SEG_CLASSES), (height, width)).astype(np.uint8)
             for _ in range(count)]
    picture = compose_segmentation(images, gts, preds, SEG_CLASSES, SEG_PALETTE, scale=2)
    assert picture.shape[1] == count * width * 2 and picture.shape[0] > 3 * height * 2
    for i in range(count):
        assert (_panel(picture, 0, i, height, width) == images[i]).all()
        assert _agreement(_panel(picture, 1, i, height, width), gts[i]) >= 0.99
        pred_panel = _panel(picture, 2, i, height, width)
        assert _agreement(pred_panel, preds[i]) >= 0.99
        assert _agreement(pred_panel, gts[i]) < 0.5  # it is the prediction that is drawn
        background = preds[i] == 0
        assert background.any() and (pred_panel[background] == SEG_PALETTE[0][::-1]).all()


def test_per_class_results_read_mmsegs_table():
    from mmhybrid.utils.demo import per_class_results
    log = '''12/01 00:23:25 - mmengine - INFO - per class results:
12/01 00:23:25 - mmengine - INFO - 
+------------+-------+-------+
|   Class    |  IoU  |  Acc  |
+------------+-------+-------+
| background | 95.79 | 97.76 |
|   circle   | 88.48 |  98.4 |
|   square   |  nan  |  nan  |
|  triangle  | 82.29 | 89.53 |
+------------+-------+-------+
12/01 00:23:25 - mmengine - INFO - Iter(test) [40/40]    aAcc: 96.4600  mIoU: 86.9400
'''
    table = per_class_results('per class results:\n| Class | IoU |\n| old | 1.0 |\n' + log)
    assert table == {'IoU': {'background': 95.79, 'circle': 88.48, 'square': None,
                             'triangle': 82.29},
                     'Acc': {'background': 97.76, 'circle': 98.4, 'square': None,
                             'triangle': 89.53}}
    assert per_class_results('no table here') == {}


def test_a_missing_metric_fails_the_demo(tmp_path):
    """A metric the test did not write is an error naming it, never a printed 0.000."""
    from mmhybrid.utils.demo import DemoError, check_metrics, format_summary
    files = {'det': tmp_path / 'det.json', 'seg': tmp_path / 'seg.json'}
    metrics = {'det': {'coco/bbox_mAP': 0.5, 'coco/bbox_mAP_50': 0.7, 'coco/segm_mAP': 0.4,
                       'coco/segm_mAP_50': 0.6},
               'seg': {'mIoU': 80.0, 'aAcc': 95.0}}
    check_metrics(metrics, files)
    summary = dict(metrics=metrics, quick=True, total_s=60, train_s=50, test_s=10, pictures=[])
    assert 'segm mAP 0.400' in format_summary(summary, tmp_path)
    del metrics['det']['coco/segm_mAP']
    metrics['seg']['mIoU'] = None
    with pytest.raises(DemoError, match=r'det: coco/segm_mAP \(in .*det.json\), seg: mIoU'):
        check_metrics(metrics, files)
    with pytest.raises(KeyError):
        format_summary(summary, tmp_path)
