"""Write the generated part of docs/model_zoo.md from mmhybrid/checkpoint/zoo.py's RELEASED.

    python tools/model_zoo.py [--check]

``--check`` changes nothing and exits with 1 when the page is out of date.
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

from mmhybrid.checkpoint.zoo import update_model_zoo_page  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='exit with 1 if docs/model_zoo.md is out of date, write nothing')
    args = parser.parse_args(argv)
    page = osp.join(_REPO, 'docs', 'model_zoo.md')
    changed = update_model_zoo_page(page, write=not args.check)
    if changed and args.check:
        print(f'{page} is out of date: run python tools/model_zoo.py')
        return 1
    print(f'{page}: {"updated" if changed else "up to date"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
