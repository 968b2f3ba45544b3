"""Train a detector or a segmenter from an mmhybrid (or any mmdet/mmseg) config.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

The registry scope (``mmdet`` or ``mmseg``) comes from the config's ``default_scope``, which the
inherited mmdet/mmseg base config sets. Works whether or not mmhybrid is pip-installed. The work is
done by ``mmhybrid.engine.build_train_config`` and ``build_runner``.
"""
import argparse
import os
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

from mmhybrid.engine import (bad_input_exits, build_runner, build_train_config,  # noqa: E402
                             exit_if_inputs_missing, train_fp32_without_amp_device)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or a segmenter')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='enable automatically scaling LR (mmdet configs with auto_scale_lr)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a value, resume from the latest checkpoint '
        'in the work_dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file. If the value to be overwritten is a list, it should '
        'be like key="[a,b]" or key=a,b. It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]". Note that the quotation marks are necessary and that no white '
        'space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    # When using PyTorch >= 2.0.0, `torch.distributed.launch` passes `--local-rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    with bad_input_exits():  # one message and exit status 2, no traceback
        cfg = build_train_config(args.config, work_dir=args.work_dir, amp=args.amp,
                                 auto_scale_lr=args.auto_scale_lr, resume=args.resume,
                                 cfg_options=args.cfg_options, launcher=args.launcher)
        splits = ('train', 'val') if cfg.get('val_cfg') else ('train', )
        exit_if_inputs_missing(args.config, cfg, splits, [(cfg.get('load_from'), 'load_from')])
        train_fp32_without_amp_device(cfg)
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
