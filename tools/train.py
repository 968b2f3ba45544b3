"""Train a detector or a segmenter from an mmhybrid (or any mmdet/mmseg) config.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

The registry scope (``mmdet`` or ``mmseg``) comes from the config's ``default_scope``, which the
inherited mmdet/mmseg base config sets. Works whether or not mmhybrid is pip-installed.
"""
import argparse
import logging
import os
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

# Early: registers the backbones and allow-lists the types of mmengine checkpoints for torch's
# weights_only loading (resume / load_from on torch >= 2.6).
import mmhybrid  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
import torch  # noqa: E402
import torch.distributed as torch_dist  # noqa: E402
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS, RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmhybrid.engine import ATOMIC_BACKEND  # noqa: E402


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


def register_scope(cfg: Config) -> str:
    """Registers the modules of the config's scope (``default_scope``) without making it the
    default yet (the Runner does that)."""
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmdet':
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmseg':
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    return scope


class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU modules (gloo): the Runner always passes
    ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for a module on the CPU, and
    SyncBatchNorm (mmseg's heads) only runs on GPUs, so it becomes BatchNorm here."""

    def __init__(self, module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


MODEL_WRAPPERS.register_module(module=CPUDistributedDataParallel, force=True)


def setup_cpu_distributed(cfg: Config) -> None:
    """Distributed training without CUDA: gloo, initialised here because mmengine's pytorch
    launcher calls ``torch.cuda.set_device``, and a DDP wrapper that accepts CPU modules."""
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['type'] = 'CPUDistributedDataParallel'
    cfg.model_wrapper_cfg = wrapper


def use_atomic_checkpoints(cfg: Config) -> None:
    """Checkpoints are written atomically unless the config chose a file backend."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is not None and not hook.get('backend_args') and not hook.get('file_client_args'):
        hook['backend_args'] = dict(backend=ATOMIC_BACKEND)


def use_deterministic_resume(cfg: Config) -> None:
    """With ``randomness.deterministic=True``, every iteration is reseeded from (seed, iteration)
    (``mmhybrid.DeterministicResumeHook``) so that a resumed run ends as the uninterrupted one."""
    if not cfg.get('randomness', {}).get('deterministic', False):
        return
    hooks = cfg.get('custom_hooks') or []
    if not any(str(h.get('type', '')).endswith('DeterministicResumeHook') for h in hooks):
        cfg.custom_hooks = list(hooks) + [dict(type='mmhybrid.DeterministicResumeHook')]


def setup_amp(cfg: Config) -> None:
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
    else:
        if optim_wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, '
                             f'got {optim_wrapper!r}')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        setup_amp(cfg)

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('Can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                               '"auto_scale_lr.base_batch_size" in your configuration file.')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    use_atomic_checkpoints(cfg)
    use_deterministic_resume(cfg)
    setup_cpu_distributed(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    register_scope(cfg)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
