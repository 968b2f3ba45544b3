"""Write the synthetic shapes datasets (COCO and/or ADE20K layout); reuses an identical tree.

    python tools/make_shapes.py data/shapes                # data/shapes/coco + data/shapes/ade20k
    python tools/make_shapes.py data/shapes --layouts coco --num-train 256 --image-size 160
"""
import argparse
import os.path as osp
import sys
import warnings
import time

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)

from mmhybrid.datasets.shapes import ShapesSpec, generate_shapes  # noqa: E402
from mmhybrid.engine import BadInputError, bad_input_exits  # noqa: E402


def parse_args(argv=None):
    defaults = ShapesSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder (one sub-folder per layout)')
    parser.add_argument('--layouts', nargs='+', default=['coco', 'ade20k'],
                        choices=['coco', 'ade20k'])
    parser.add_argument('--num-train', type=int, default=defaults.num_train)
    parser.add_argument('--num-val', type=int, default=defaults.num_val)
    parser.add_argument('--image-size', type=int, default=defaults.image_size)
    parser.add_argument('--min-shapes', type=int, default=defaults.min_shapes)
    parser.add_argument('--max-shapes', type=int, default=defaults.max_shapes)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    with bad_input_exits():  # one message and exit status 2, no traceback
        try:
            spec = ShapesSpec(num_train=args.num_train, num_val=args.num_val,
                              image_size=args.image_size, min_shapes=args.min_shapes,
                              max_shapes=args.max_shapes, seed=args.seed)
            roots = generate_shapes(args.root, layouts=args.layouts, spec=spec)
        except FileExistsError as error:
            raise BadInputError(f'{error}: give a new or empty folder, or the folder of an '
                                f'earlier shapes tree') from error
        except ValueError as error:  # a spec out of range
            raise BadInputError(str(error)) from error
    for layout, root in roots.items():
        print(f'{layout}: {root}')
    print(f'done in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
