#!/usr/bin/env python
"""Convert an official checkpoint: ImageNet backbone weights, or a whole released detector or
segmenter (mmdet 2.x / mmseg 0.x) to an mmengine checkpoint.

    python tools/convert_checkpoint.py pretrained/van_b2.pth.tar pretrained/van_b2_mmhybrid.pth
    python tools/convert_checkpoint.py mask_rcnn_crossformer_s.pth maskrcnn_crossformer_s.pth \
        --config configs/det/maskrcnn_crossformer_s_1x.py

Reads SRC without executing code from it. A backbone file: recognises the family (or takes
--family), converts the keys, checks them against the arch (--arch, or every official variant),
and writes a plain tensor state dict to DST (loadable with ``torch.load(DST, weights_only=True)``).
A whole detector/segmenter (a backbone next to a neck or heads; --full forces it,
--backbone-only takes just its backbone the first way): converts the backbone with the family
converter, maps the neck and heads, drops optimizer/amp state and writes ``state_dict`` and
``meta.dataset_meta`` (classes, palette) for ``tools/test.py`` / ``load_from``; --config checks
that every key loads into that config's model (class count, head type, cascade stages, backbone
variant). DST is written atomically; prints the sha256 and the key report. Exits with 2 and one
message when SRC cannot be read, its keys are left unmatched or do not fit, or DST exists; SRC is
never overwritten.
"""
import argparse
import json
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

from mmengine.config import DictAction  # noqa: E402

from mmhybrid.checkpoint import CONVERTERS  # noqa: E402
from mmhybrid.checkpoint.dense import DenseConversion, convert_any_checkpoint_file  # noqa: E402
from mmhybrid.engine import BadInputError, bad_input_exits  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint file (backbone, or whole model)')
    parser.add_argument('dst', nargs='?', help='output file (omit with --check)')
    parser.add_argument('--family', default='auto', choices=['auto', *CONVERTERS],
                        help='checkpoint family (default: recognised from the keys)')
    parser.add_argument('--arch', default=None,
                        help='arch name, or a JSON dict for a custom arch (default: find the '
                        'matching official variant)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    parser.add_argument('--check', action='store_true', help='only check, write nothing')
    whole = parser.add_mutually_exclusive_group()
    whole.add_argument('--full', action='store_true', default=None,
                       help='SRC is a whole detector/segmenter (default: recognised from its '
                       'keys)')
    whole.add_argument('--backbone-only', dest='full', action='store_false',
                       help='convert only the backbone of a detector/segmenter file')
    parser.add_argument('--config', default=None,
                        help='check that the converted whole model loads into this mmdet/mmseg '
                        'config\'s model, every key placed')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override settings of --config (key=value)')
    args = parser.parse_args(argv)
    if args.dst is None and not args.check:
        parser.error('give DST, or --check to only verify SRC')
    if args.arch is not None and args.arch.lstrip().startswith('{'):
        try:
            args.arch = json.loads(args.arch)
        except json.JSONDecodeError as error:
            parser.error(f'--arch is not valid JSON ({error}); give an arch name or a dict such '
                         f'as \'{{"embed_dims": [32, 64, 160, 256], ...}}\'')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    with bad_input_exits():  # one message and exit status 2, no traceback
        try:
            result = convert_any_checkpoint_file(
                args.src, None if args.check else args.dst, full=args.full, config=args.config,
                cfg_options=args.cfg_options, family=args.family, arch=args.arch,
                overwrite=args.overwrite)
        except (FileExistsError, ValueError) as error:  # DST exists; an arch that is not one
            raise BadInputError(str(error)) from error
    if isinstance(result, DenseConversion):
        num_tensors = len(result.checkpoint['state_dict'])
    else:
        print(f'family: {result.family}  arch: {result.arch}')
        num_tensors = len(result.state_dict)
    print(result.report.format())
    if result.sha256 is not None:
        print(f'wrote {args.dst} ({num_tensors} tensors)\nsha256: {result.sha256}')
    else:
        print('check passed; nothing written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
