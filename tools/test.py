"""Evaluate a trained detector or segmenter with mmdet's/mmseg's own metrics.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--show-dir DIR]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]
        [--plain | --switch-to-deploy]

The registry scope comes from the config's ``default_scope``. ``--out`` dumps the raw predictions
(``.pkl``, mmdet's ``DumpDetResults`` / mmseg's ``DumpResults``), and ``--show-dir`` writes
pictures of the predictions (under the work_dir's timestamped folder). The metrics are printed and
also written to ``<work_dir>/<timestamp>/<timestamp>.json``. On the CPU the model is optimised
for inference once the checkpoint is loaded (``mmhybrid.optimize_for_inference``: the same
predictions up to float rounding, faster); ``--plain`` tests the model as built, and
``--switch-to-deploy`` only folds the backbone's norms (``HybridBackbone.switch_to_deploy``).
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

from mmhybrid.engine import (bad_input_exits, build_runner, build_test_config,  # noqa: E402
                             exit_if_checkpoint_unusable, exit_if_inputs_missing)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir', help='directory where painted images will be saved (relative to the '
        'work_dir\'s timestamped folder, as in mmdet/mmseg)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--plain', action='store_true',
                      help='test the model as built (no CPU inference fast paths)')
    mode.add_argument('--switch-to-deploy', action='store_true',
                      help='only fold the backbone\'s norms once the checkpoint is loaded')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    with bad_input_exits():  # one message and exit status 2, no traceback
        cfg = build_test_config(args.config, args.checkpoint, work_dir=args.work_dir,
                                out=args.out, show=args.show, show_dir=args.show_dir,
                                wait_time=args.wait_time, tta=args.tta,
                                cfg_options=args.cfg_options, launcher=args.launcher,
                                switch_to_deploy=args.switch_to_deploy, plain=args.plain)
        exit_if_inputs_missing(args.config, cfg, ('test', ),
                               [(args.checkpoint, 'checkpoint to test')], pretrained=False)
        exit_if_checkpoint_unusable(args.checkpoint)  # before the Runner writes its work_dir
        build_runner(cfg).test()


if __name__ == '__main__':
    main()
