"""`make demo`'s path, shortened: tools/demo.py --quick (a few iterations on a tiny tree)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert 'coco/bbox_mAP_50' in summary['metrics']['det']
    assert 'coco/segm_mAP' in summary['metrics']['det']
    assert 'mIoU' in summary['metrics']['seg']
    for name in ('det_curves.png', 'det_predictions.png', 'seg_curves.png',
                 'seg_predictions.png'):
        assert (out_dir / name).stat().st_size > 1000, name
    assert Path(summary['checkpoints']['det']).is_file()
    assert (tmp_path / 'shapes_quick' / 'coco' / '.shapes.json').is_file()
