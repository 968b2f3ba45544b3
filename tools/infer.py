#!/usr/bin/env python
"""Draw a model's predictions on images, from PyTorch or from its exported ONNX file.

    python tools/infer.py CONFIG CHECKPOINT IMAGE [IMAGE ...] --out DIR [--onnx FILE] [--plain]

Images go through the config's test pipeline; predictions are drawn by mmdet's / mmseg's
visualizer into DIR as ``<image>_pytorch.png`` or, with ``--onnx`` (a file written by
tools/deploy/export_onnx.py for this config), ``<image>_onnx.png``: run both to see them agree.
PyTorch runs the model optimised for CPU inference (``mmhybrid.optimize_for_inference``);
``--plain`` runs it as built.
"""
import argparse
import os.path as osp
import sys
import warnings

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('images', nargs='+', metavar='IMAGE')
    parser.add_argument('--out', required=True, help='folder for the pictures')
    parser.add_argument('--onnx', help='run this exported file (onnxruntime) instead of PyTorch')
    parser.add_argument('--plain', action='store_true',
                        help='run the model as built (no CPU inference fast paths)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections drawn from this score (default 0.3)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmhybrid.deploy.export import ExportError
    from mmhybrid.deploy.drawing import draw_predictions
    from mmhybrid.engine import BadInputError, bad_input_exits
    with bad_input_exits():  # one message and exit status 2, no traceback
        try:
            written = draw_predictions(args.config, args.checkpoint, args.images, args.out,
                                       onnx=args.onnx, score_thr=args.score_thr,
                                       optimize=not args.plain)
        except (ExportError, FileNotFoundError, ValueError) as error:
            raise BadInputError(str(error)) from error
    for path in written:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
