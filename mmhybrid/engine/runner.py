"""The configs and Runners behind ``tools/train.py`` and ``tools/test.py``.

:func:`build_train_config` and :func:`build_test_config` turn a config file plus the
command-line choices into the final :class:`~mmengine.config.Config` (work_dir, AMP, resume,
``--cfg-options``, atomic checkpoints, ``DeterministicResumeHook``, CPU distributed set-up,
visualisation, prediction dumps, test-time augmentation); :func:`build_runner` builds the Runner
in the config's registry scope.
"""
import logging
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .atomic_backend import ATOMIC_BACKEND
from .cli import BadInputError, check_config_file
from .dist import setup_cpu_distributed


def config_scope(cfg: Config) -> str:
    """The registry scope of ``cfg``: its ``default_scope``, set by the inherited mmdet/mmseg
    base config (``'mmdet'`` when absent)."""
    return cfg.get('default_scope', 'mmdet')


def register_scope(cfg: Config) -> str:
    """Registers the modules of the config's scope without making it the default yet (the Runner
    does that); returns the scope."""
    scope = config_scope(cfg)
    # Imported here, not at the top: only the config's own codebase is needed, and importing
    # mmdet or mmseg costs seconds.
    if scope == 'mmdet':
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmseg':
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    return scope


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """Reads ``config``, merges ``cfg_options`` and sets the launcher and the work_dir
    (``work_dir`` > the config's > ``./work_dirs/<config name>``).

    Raises:
        BadInputError: ``config`` is not a file.
    """
    check_config_file(config)
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


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


def use_amp(cfg: Config) -> None:
    """Switches ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` with a dynamic loss scale."""
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if optim_wrapper != 'OptimWrapper':
        raise BadInputError(f'--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, '
                            f'got {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def amp_device_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can be built here (it asserts one of these)."""
    from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                                 is_npu_available)
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def train_fp32_without_amp_device(cfg: Config) -> bool:
    """Turns an ``AmpOptimWrapper`` (from the config or ``--amp``) into a plain fp32
    ``OptimWrapper`` on a machine without a GPU (or NPU/MLU/MUSA), where mmengine's wrapper
    would fail an assert when it is built; says so in one line. Returns whether it did.

    The configs that the authors trained with mixed precision ask for it; on a CPU the same
    recipe runs in fp32, which is what a CPU can run.
    """
    optim_wrapper = cfg.get('optim_wrapper') or {}
    if optim_wrapper.get('type') != 'AmpOptimWrapper' or amp_device_available():
        return False
    optim_wrapper.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        optim_wrapper.pop(key, None)
    print_log('no GPU here: mixed precision (AmpOptimWrapper) needs one, training in fp32 '
              'instead', logger='current', level=logging.WARNING)
    return True


def enable_auto_scale_lr(cfg: Config) -> None:
    """Turns on mmdet's ``auto_scale_lr`` (the config must define it)."""
    if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
            'base_batch_size' in cfg.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    else:
        raise BadInputError('--auto-scale-lr needs auto_scale_lr with enable and base_batch_size '
                            'in the config (mmdet configs have it)')


def build_train_config(config: str,
                 work_dir: Optional[str] = None,
                 amp: bool = False,
                 auto_scale_lr: bool = False,
                 resume: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 launcher: str = 'none') -> Config:
    """The training config of ``tools/train.py``.

    Args:
        config: Config file path.
        work_dir: Where logs and checkpoints go (default: the config's, else
            ``./work_dirs/<config name>``).
        amp: Train with automatic mixed precision.
        auto_scale_lr: Scale the learning rate with the total batch size (mmdet).
        resume: ``'auto'`` resumes from the latest checkpoint in the work_dir, a path from that
            checkpoint; ``None`` starts afresh.
        cfg_options: Overrides merged into the config.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    cfg = load_config(config, cfg_options, launcher, work_dir)
    if amp:
        use_amp(cfg)
    if auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    use_atomic_checkpoints(cfg)
    use_deterministic_resume(cfg)
    setup_cpu_distributed(cfg)
    return cfg


def enable_visualization(cfg: Config,
                         show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2.0) -> None:
    """Draws the test predictions: on screen (``show``) and/or as pictures under ``show_dir``
    (relative to the work_dir's timestamped folder, as in mmdet/mmseg)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise BadInputError('--show and --show-dir need a VisualizationHook in the config\'s '
                            'default_hooks')
    hooks.visualization.draw = True
    if show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = wait_time
    if show_dir:
        if config_scope(cfg) == 'mmseg':
            hooks.visualization.interval = 1
            cfg.visualizer.save_dir = show_dir
            cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
        else:
            hooks.visualization.test_out_dir = show_dir


def add_dump(cfg: Config, out: str) -> None:
    """Adds mmdet's ``DumpDetResults`` / mmseg's ``DumpResults`` to the test evaluator."""
    if not out.endswith(('.pkl', '.pickle')):
        raise BadInputError(f'--out must be a .pkl/.pickle file, got {out!r}')
    metric = dict(type='DumpDetResults' if config_scope(cfg) == 'mmdet' else 'DumpResults',
                  out_file_path=out)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = [*evaluator, metric]
    elif evaluator.get('type') == 'Evaluator':
        evaluator.metrics = [*list(evaluator.metrics), metric] if isinstance(
            evaluator.metrics, (list, tuple)) else [evaluator.metrics, metric]
    else:
        cfg.test_evaluator = [evaluator, metric]


def use_tta(cfg: Config) -> None:
    """Test-time augmentation from the config's ``tta_model`` and ``tta_pipeline``."""
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise BadInputError('--tta needs tta_model and tta_pipeline in the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def build_test_config(config: str,
                checkpoint: str,
                work_dir: Optional[str] = None,
                out: Optional[str] = None,
                show: bool = False,
                show_dir: Optional[str] = None,
                wait_time: float = 2.0,
                tta: bool = False,
                cfg_options: Optional[dict] = None,
                launcher: str = 'none',
                switch_to_deploy: bool = False,
                plain: bool = False) -> Config:
    """The test config of ``tools/test.py``.

    Args:
        config: Config file path.
        checkpoint: The checkpoint to evaluate.
        work_dir: Where the metrics file goes (default: the config's, else
            ``./work_dirs/<config name>``).
        out: Dump the raw predictions to this ``.pkl`` file.
        show: Show the predictions on screen.
        show_dir: Write pictures of the predictions here.
        wait_time: Seconds each picture is shown with ``show``.
        tta: Test-time augmentation (``tta_model``/``tta_pipeline`` of the config).
        cfg_options: Overrides merged into the config.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        switch_to_deploy: Fold the backbone for inference once the checkpoint is loaded
            (``mmhybrid.SwitchToDeployHook``), without the CPU fast paths.
        plain: Test the model as built. Otherwise (and without ``switch_to_deploy``) a model
            tested on the CPU is optimised for inference once the checkpoint is loaded
            (``mmhybrid.OptimizeForInferenceHook``).
    """
    cfg = load_config(config, cfg_options, launcher, work_dir)
    cfg.load_from = checkpoint
    if switch_to_deploy:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='mmhybrid.SwitchToDeployHook')]
    elif not plain:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='mmhybrid.OptimizeForInferenceHook')]
    setup_cpu_distributed(cfg)
    if show or show_dir:
        enable_visualization(cfg, show=show, show_dir=show_dir, wait_time=wait_time)
    if tta:
        use_tta(cfg)
    if out is not None:
        add_dump(cfg, out)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """The Runner of ``cfg`` (``runner_type`` if the config names one), with the modules of its
    scope registered."""
    register_scope(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
