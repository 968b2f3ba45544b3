"""The demo run by ``make demo``: train and evaluate a detector and a segmenter on a CPU.

1. writes the synthetic shapes data under ``data/shapes/`` (COCO and ADE20K layouts) unless an
   identical tree is already there;
2. trains Mask R-CNN (``configs/demo/maskrcnn_van_demo.py``) and Semantic FPN
   (``configs/demo/fpn_van_demo.py``), both with a small VAN backbone from scratch, with
   ``tools/train.py``; the two trainings run side by side, one CPU thread each (two processes of
   one thread use two cores better than one process of two threads, and much better when the
   cores are shared);
3. evaluates the final checkpoints with ``tools/test.py`` (mmdet's ``CocoMetric``, mmseg's
   ``IoUMetric``);
4. writes pictures under ``outputs/demo/``: predicted boxes and masks on validation images, the
   segmentation's image / ground truth / prediction label maps (background included), and the
   loss / metric curves read from mmengine's ``scalars.json``;
5. prints a summary (with mmseg's per-class IoU).

``--quick`` runs a few iterations on a tiny tree (the test suite runs it). The work is done by
``mmhybrid.utils.demo.run_demo``.
"""
import argparse
import sys
import warnings
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, str(_REPO))
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)

from mmhybrid.utils.demo import QUICK_ITERS, DemoError, run_demo  # noqa: E402

DET_CONFIG = _REPO / 'configs' / 'demo' / 'maskrcnn_van_demo.py'
SEG_CONFIG = _REPO / 'configs' / 'demo' / 'fpn_van_demo.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train + evaluate a detector and a segmenter '
                                     'with an mmhybrid backbone on synthetic data (CPU)')
    parser.add_argument('--quick', action='store_true',
                        help=f'{QUICK_ITERS["det"]} (detector) and {QUICK_ITERS["seg"]} '
                        f'(segmenter) iterations on a tiny tree (a smoke test)')
    parser.add_argument('--data-root', default=str(_REPO / 'data' / 'shapes'),
                        help='where the synthetic data is written / found')
    parser.add_argument('--out-dir', default=str(_REPO / 'outputs' / 'demo'),
                        help='work dirs, logs and pictures')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations of each model (default: the configs\')')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads per training process (default 1: the two models '
                        'train side by side)')
    parser.add_argument('--sequential', action='store_true',
                        help='train the two models one after the other instead of side by side')
    parser.add_argument('--only', choices=['det', 'seg'], default=None,
                        help='run only the detector or only the segmenter')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    tools = _REPO / 'tools'
    try:
        run_demo(DET_CONFIG, SEG_CONFIG, train_command=[sys.executable, str(tools / 'train.py')],
                 test_command=[sys.executable, str(tools / 'test.py')],
                 data_root=args.data_root, out_dir=args.out_dir, quick=args.quick,
                 iters=args.iters, threads=args.threads, sequential=args.sequential,
                 only=args.only, cwd=_REPO)
    except DemoError as error:  # a step failed: its message says which and where its log is
        print(f'error: demo failed: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
