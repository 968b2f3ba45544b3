#!/usr/bin/env python
"""Parameters and FLOPs (multiply-accumulates, as the papers count them) of a backbone or config.

    python tools/get_flops.py van:b2 --shape 224 224
    python tools/get_flops.py configs/det/maskrcnn_van_b2_1x.py --shape 800 1333

Attention computed by ``scaled_dot_product_attention`` is counted (mmengine's counter misses it);
for a backbone the count without it is printed too (the convention of the HAT-Net paper's table).
For a config, the backbone and the backbone + neck (``extract_feat``) are counted; heads are not.
The counting is ``mmhybrid.utils.complexity``'s.
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

from mmhybrid.engine import BadInputError, bad_input_exits, check_config_file  # noqa: E402
from mmhybrid.utils import backbone_complexity, config_complexity, format_complexity  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('target', help='family:arch (e.g. van:b2) or a config file')
    parser.add_argument('--shape', nargs=2, type=int, default=[224, 224], metavar=('H', 'W'))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    is_config = args.target.endswith('.py')
    with bad_input_exits():  # one message and exit status 2, no traceback
        if is_config:
            check_config_file(args.target)
        try:
            rows = (config_complexity if is_config else backbone_complexity)(args.target,
                                                                            args.shape)
        except ValueError as error:  # an unknown backbone
            raise BadInputError(str(error)) from error
    print(format_complexity(rows, args.shape))
    return 0


if __name__ == '__main__':
    sys.exit(main())
