#!/usr/bin/env python
"""Convert an official ImageNet checkpoint to mmhybrid backbone weights.

    python tools/convert_checkpoint.py pretrained/van_b2.pth.tar pretrained/van_b2_mmhybrid.pth

Reads SRC without executing code from it, recognises the family (or takes --family), converts the
keys, checks them against the arch (--arch, or every official variant), and writes a plain tensor
state dict to DST atomically (loadable with ``torch.load(DST, weights_only=True)``). Prints the
sha256 and the key report. Exits with 1 when keys are left unmatched or do not fit the arch; SRC
is never overwritten.
"""
import argparse
import json
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)

from mmhybrid.checkpoint import CONVERTERS, CheckpointLoadError, CheckpointMismatchError  # noqa
from mmhybrid.checkpoint.core import convert_checkpoint_file  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint file')
    parser.add_argument('dst', nargs='?', help='output file (omit with --check)')
    parser.add_argument('--family', default='auto', choices=['auto', *CONVERTERS],
                        help='checkpoint family (default: recognised from the keys)')
    parser.add_argument('--arch', default=None,
                        help='arch name, or a JSON dict for a custom arch (default: find the '
                        'matching official variant)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    parser.add_argument('--check', action='store_true', help='only check, write nothing')
    args = parser.parse_args(argv)
    if args.dst is None and not args.check:
        parser.error('give DST, or --check to only verify SRC')
    if args.arch is not None and args.arch.lstrip().startswith('{'):
        args.arch = json.loads(args.arch)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = convert_checkpoint_file(args.src, None if args.check else args.dst,
                                         family=args.family, arch=args.arch,
                                         overwrite=args.overwrite)
    except (CheckpointLoadError, CheckpointMismatchError, FileExistsError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'family: {result.family}  arch: {result.arch}')
    print(result.report.format())
    if result.sha256 is not None:
        print(f'wrote {args.dst} ({len(result.state_dict)} tensors)\nsha256: {result.sha256}')
    else:
        print('check passed; nothing written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
