#!/usr/bin/env python
"""Export a segmenter or detector of this package to ONNX, checked against PyTorch.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--shape H W] [--dynamic]
        [--switch-to-deploy]

Segmenters (mmseg EncoderDecoder) export end to end: image → per-class logits at the input size.
Detectors export up to their raw head outputs (RetinaNet: per-level class logits and box deltas;
Mask R-CNN/Faster R-CNN: the FPN maps and RPN outputs in OUT.onnx, the box and mask heads in
OUT.bbox_head.onnx / OUT.mask_head.onnx); ``mmhybrid.deploy.postprocess`` turns them into boxes
and masks (docs/deploy.md). With ``--dynamic`` height and width are free (at least the model's
minimum). ``--switch-to-deploy`` folds the backbone's norms, layer scales and depth-wise residuals
into its convs before the trace (``HybridBackbone.switch_to_deploy``). Every file is run in
onnxruntime at the trace size (and a second size with
``--dynamic``) and compared with PyTorch before it is written; nothing is left on failure.
Needs the ``deploy`` extra: ``pip install -e .[deploy]``.
"""
import argparse
import os.path as osp
import sys
import warnings

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='a configs/det or configs/seg config')
    parser.add_argument('checkpoint', help='mmengine checkpoint of that model')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='trace input size (default 512 512)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic height and width (one file for every input size)')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (>= 17, default 18)')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the onnxruntime-vs-PyTorch check')
    parser.add_argument('--overwrite', action='store_true', help='replace existing files')
    parser.add_argument('--switch-to-deploy', action='store_true',
                        help='fold the backbone\'s norms into its convs before the trace')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmhybrid.engine import BadInputError, bad_input_exits, exit_bad_input
    try:
        from mmhybrid.deploy import ExportError, ExportFailedError, export_onnx
    except ImportError as error:  # onnx / onnxruntime / onnxscript missing
        exit_bad_input(f'{error}; install the deploy extra: pip install -e .[deploy]')
    with bad_input_exits():  # one message and exit status 2, no traceback
        try:
            result = export_onnx(args.config, args.checkpoint, args.out, shape=args.shape,
                                 dynamic=args.dynamic, opset=args.opset,
                                 check=not args.no_check, overwrite=args.overwrite,
                                 cfg_options=args.cfg_options,
                                 switch_to_deploy=args.switch_to_deploy)
        except ExportFailedError as error:  # the input was fine, the export or its check not
            print(f'error: {error}', file=sys.stderr)
            return 1
        except (ExportError, FileNotFoundError) as error:
            raise BadInputError(str(error)) from error
    for check in result.checks:
        size = 'x'.join(str(s) for s in check['input'])
        print(f'checked {check["file"]} at {size}: max relative error '
              f'{check["max_rel_error"]:.1e}')
    print(f'{result.kind}: wrote {", ".join(result.files)} (minimum input '
          f'{result.metadata["min_size"]}x{result.metadata["min_size"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
